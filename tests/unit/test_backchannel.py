"""OIDC Back-Channel Logout endpoint, driven with logout tokens from the dev IdP."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asgi_sso.backchannel import BACKCHANNEL_LOGOUT_EVENT, BackchannelConfig, BackchannelLogoutApp
from asgi_sso.errors import ConfigurationError
from asgi_sso.events import Emitter, Event
from asgi_sso.revocation import Revocation, RevocationBus
from asgi_sso.testing import DevIdP
from asgi_sso.verify import TokenVerifier

CLIENT = "dev-client"


class Env:
    def __init__(self, **config: Any) -> None:
        self.idp = DevIdP()
        self.idp_client = self.idp.http_client()
        # The issuer's default policy requires sub; the endpoint still accepts sid-only tokens.
        issuer = self.idp.issuer_config(audience="api://x")
        self.verifier = TokenVerifier([issuer], client=self.idp_client)
        self.bus = RevocationBus()
        self.revoked: list[Revocation] = []
        self.bus.subscribe(self.revoked.append)
        self.events: list[Event] = []
        app = BackchannelLogoutApp(
            BackchannelConfig(client_id=CLIENT, **config), self.verifier, revocations=self.bus,
            emitter=Emitter([self.events.append]), clock=self.idp.clock,
        )  # fmt: skip
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://rp"
        )

    def claims(self, **extra: Any) -> dict[str, Any]:
        now = int(self.idp.clock.time())
        base = {
            "iss": self.idp.issuer,
            "aud": CLIENT,
            "iat": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
            "sub": "alice",
        }
        base.update(extra)
        return {k: v for k, v in base.items() if v is not None}

    async def post(self, token: str) -> httpx.Response:
        return await self.client.post("/", data={"logout_token": token})


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    e = Env()
    async with e.client, e.idp_client:
        yield e


def assert_400(response: httpx.Response) -> None:
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "invalid_request"


async def test_sid_logout_ends_that_session(env: Env) -> None:
    response = await env.post(env.idp.logout_token(CLIENT, sub="alice", sid="sess-1"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    [revocation] = env.revoked
    assert revocation.kind == "session"
    assert (revocation.session_id, revocation.subject) == ("sess-1", "alice")
    assert revocation.issuer == env.idp.issuer
    assert env.events[-1].name == "backchannel_logout"
    assert env.events[-1].outcome == "ok"


async def test_sub_only_logout_ends_every_session_of_the_user(env: Env) -> None:
    assert (await env.post(env.idp.logout_token(CLIENT, sub="alice"))).status_code == 200
    assert env.revoked[0].kind == "user"
    assert env.revoked[0].subject == "alice"


async def test_sid_only_logout_is_accepted(env: Env) -> None:
    assert (await env.post(env.idp.logout_token(CLIENT, sid="sess-2"))).status_code == 200
    assert env.revoked[0].subject is None


async def test_replayed_jti_is_refused(env: Env) -> None:
    token = env.idp.logout_token(CLIENT, sub="alice")
    assert (await env.post(token)).status_code == 200
    assert_400(await env.post(token))
    assert len(env.revoked) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"events": None},
        {"events": {"other": {}}},
        {"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}},
        {"sub": None},
        {"sub": 5},
        {"nonce": "n"},
        {"jti": None},
        {"aud": "someone-else"},
        {"exp": 10**10},
    ],
)
async def test_bad_logout_tokens_are_400(env: Env, change: dict[str, Any]) -> None:
    assert_400(await env.post(env.idp.sign(env.claims(**change), "logout+jwt")))
    assert env.revoked == []
    assert env.events[-1].outcome == "refused"


async def test_an_access_token_is_not_a_logout_token(env: Env) -> None:
    assert_400(await env.post(env.idp.sign(env.claims(), "at+jwt")))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"logout_token=a.b.c",
        b"x=1",
        b"logout_token=a&logout_token=b",
        b"%ff=\xff",
        b"a" * 20_000,
    ],
)
async def test_malformed_bodies_are_400(env: Env, body: bytes) -> None:
    response = await env.client.post(
        "/", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_400(response)


async def test_only_post_is_allowed(env: Env) -> None:
    response = await env.client.get("/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_config_is_validated() -> None:
    with pytest.raises(ConfigurationError):
        BackchannelConfig(client_id="")
    with pytest.raises(ConfigurationError):
        BackchannelConfig(client_id="c", max_lifetime=0)


async def test_typ_is_optional_but_must_be_logout_jwt_when_present(env: Env) -> None:
    without = env.idp.tokens.token(claims=env.claims(), headers={"typ": None})
    assert "typ" not in json.loads(base64.urlsafe_b64decode(without.split(".")[0] + "=="))
    assert (await env.post(without)).status_code == 200
    assert_400(await env.post(env.idp.sign(env.claims(), "JWT")))
    assert_400(await env.post(env.idp.sign(env.claims(), "at+jwt")))
    ok = await env.post(env.idp.sign(env.claims(), "application/logout+jwt"))
    assert ok.status_code == 200


async def test_require_typ_refuses_untyped_tokens() -> None:
    env = Env(require_typ=True)
    async with env.client, env.idp_client:
        untyped = env.idp.tokens.token(claims=env.claims(), headers={"typ": None})
        assert_400(await env.post(untyped))
        assert (await env.post(env.idp.sign(env.claims(), "logout+jwt"))).status_code == 200
