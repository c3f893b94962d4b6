"""OIDC Back-Channel Logout endpoint, driven with logout tokens from the dev IdP."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asgi_sso.deprovision.backchannel import (
    BACKCHANNEL_LOGOUT_EVENT,
    BackchannelConfig,
    BackchannelLogoutApp,
)
from asgi_sso.errors import ConfigurationError, StoreUnavailable
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import DevIdP
from asgi_sso.verify import TokenVerifier

CLIENT = "dev-client"


class Env:
    def __init__(self, *, other: DevIdP | None = None, **config: Any) -> None:
        self.idp = DevIdP()
        mounts = {other.origin: httpx.ASGITransport(app=other)} if other is not None else {}
        self.idp_client = self.idp.http_client(mounts=mounts)
        # The issuer's default policy requires sub; the endpoint still accepts sid-only tokens.
        issuers = [self.idp.issuer_config(audience="api://x")]
        if other is not None:  # another issuer the API trusts, not the sign-in provider
            issuers.append(other.issuer_config(audience="api://x", client_id=CLIENT))
        self.verifier = TokenVerifier(issuers, client=self.idp_client)
        self.bus = RevocationBus()
        self.revoked: list[Revocation] = []
        self.bus.subscribe(self.revoked.append)
        self.events: list[Event] = []
        app = BackchannelLogoutApp(
            BackchannelConfig(client_id=CLIENT, issuer=self.idp.issuer, **config), self.verifier,
            revocations=self.bus, emitter=Emitter([self.events.append]), clock=self.idp.clock,
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


async def test_sid_and_sub_logout_names_that_session_of_the_sign_in_issuer(env: Env) -> None:
    response = await env.post(env.idp.logout_token(CLIENT, sub="alice", sid="sess-1"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    [revocation] = env.revoked
    assert revocation == Revocation(
        kind="logout", issuer=env.idp.issuer, subject="alice", session_id="sess-1",
        time=revocation.time,
    )  # fmt: skip
    assert revocation.time > 0
    assert env.events[-1].name == "backchannel_logout"
    assert env.events[-1].outcome == "ok"


async def test_sub_only_logout_names_the_id_token_sub_at_the_issuer(env: Env) -> None:
    assert (await env.post(env.idp.logout_token(CLIENT, sub="alice"))).status_code == 200
    [revocation] = env.revoked
    assert (revocation.kind, revocation.issuer) == ("logout", env.idp.issuer)
    assert (revocation.subject, revocation.session_id) == ("alice", None)
    assert revocation.connection is None  # a logout token names no broker connection


async def test_sid_only_logout_is_accepted(env: Env) -> None:
    assert (await env.post(env.idp.logout_token(CLIENT, sid="sess-2"))).status_code == 200
    [revocation] = env.revoked
    assert (revocation.kind, revocation.subject, revocation.session_id) == (
        "logout",
        None,
        "sess-2",
    )


async def test_a_logout_token_from_another_trusted_issuer_is_refused() -> None:
    other = DevIdP("https://other-idp.example")
    env = Env(other=other)
    async with env.client, env.idp_client:
        response = await env.post(other.logout_token(CLIENT, sub="alice", sid="sess-1"))
        assert_400(response)
        assert "sign-in provider" in response.json()["error_description"]
        assert env.revoked == []
        assert (await env.post(env.idp.logout_token(CLIENT, sub="alice"))).status_code == 200


async def test_a_failed_logout_is_503_and_the_token_may_be_sent_again(env: Env) -> None:
    down = True

    def store(revocation: Revocation) -> None:
        if down:
            raise StoreUnavailable("the session store is unreachable")

    env.bus.subscribe(store)
    token = env.idp.logout_token(CLIENT, sub="alice")
    response = await env.post(token)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "temporarily_unavailable"
    assert env.events[-1].outcome == "error"
    down = False
    assert (await env.post(token)).status_code == 200
    assert_400(await env.post(token))  # now a replay


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
        BackchannelConfig(client_id="", issuer="https://idp.example")
    with pytest.raises(ConfigurationError):
        BackchannelConfig(client_id="c", issuer="")
    with pytest.raises(ConfigurationError):
        BackchannelConfig(client_id="c", issuer="https://idp.example", max_lifetime=0)


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


def test_config_names_the_default_provider_whole_or_not_at_all() -> None:
    assert BackchannelConfig().issuer is None
    with pytest.raises(ConfigurationError, match="go together"):
        BackchannelConfig(client_id="c")
    with pytest.raises(ConfigurationError, match="go together"):
        BackchannelConfig(issuer="https://idp.example")


class Connections:
    """Logout tokens of connections: each issuer's audience is asked on every request."""

    def __init__(self, *, default: bool) -> None:
        self.idp = DevIdP()
        self.acme = DevIdP("https://acme-idp.example")
        self.globex = DevIdP("https://globex-idp.example")
        self.audiences = {self.acme.issuer: "app-acme", self.globex.issuer: "app-globex"}
        self.disable_after = 0  # > 0: the connections go away after that many look-ups
        mounts = {idp.origin: httpx.ASGITransport(app=idp) for idp in (self.acme, self.globex)}
        self.http = self.idp.http_client(mounts=mounts)
        issuers = [self.idp.issuer_config(audience="api://x")]
        issuers += [self.acme.issuer_config(audience="app-acme")]
        issuers += [self.globex.issuer_config(audience="app-globex")]
        verifier = TokenVerifier(issuers, client=self.http)
        self.bus = RevocationBus()
        self.revoked: list[Revocation] = []
        self.bus.subscribe(self.revoked.append)
        self.asked: list[str] = []
        config = BackchannelConfig(client_id=CLIENT, issuer=self.idp.issuer) if default else None
        app = BackchannelLogoutApp(
            config or BackchannelConfig(), verifier, revocations=self.bus,
            clock=self.idp.clock, audiences=self.audience,
        )  # fmt: skip
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://rp"
        )

    def audience(self, iss: str) -> str | None:
        self.asked.append(iss)
        found = self.audiences.get(iss)
        if self.disable_after and len(self.asked) >= self.disable_after:
            self.audiences.clear()
        return found

    async def post(self, token: str) -> httpx.Response:
        return await self.client.post("/", data={"logout_token": token})

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.http.aclose()


@pytest.mark.parametrize("default", [True, False], ids=["with-default", "connections-only"])
async def test_each_connection_is_heard_with_its_own_audience_and_issuer(default: bool) -> None:
    env = Connections(default=default)
    try:
        ok = await env.post(env.acme.logout_token("app-acme", sub="u1"))
        assert ok.status_code == 200, ok.text
        [revocation] = env.revoked
        assert (revocation.kind, revocation.issuer, revocation.subject) == (
            "logout", env.acme.issuer, "u1"
        )  # fmt: skip
        assert revocation.connection is None
        assert env.asked == [env.acme.issuer, env.acme.issuer]  # before and after the await
        now = int(env.acme.clock.time())
        forged = env.globex.sign(  # globex's key, claiming acme's iss
            {"iss": env.acme.issuer, "aud": "app-acme", "iat": now, "exp": now + 60,
             "jti": "j1", "sub": "u1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}},
            "logout+jwt",
        )  # fmt: skip
        for token in (
            env.acme.logout_token("app-globex", sub="u1"),  # another connection's client
            env.globex.logout_token("app-acme", sub="u1"),
            forged,
        ):
            assert_400(await env.post(token))
        assert len(env.revoked) == 1
        default_token = env.idp.logout_token(CLIENT, sub="u1")
        assert (await env.post(default_token)).status_code == (200 if default else 400)
    finally:
        await env.aclose()


async def test_a_connection_disabled_while_its_token_is_verified_is_not_heard() -> None:
    env = Connections(default=False)
    env.disable_after = 1
    try:
        response = await env.post(env.acme.logout_token("app-acme", sub="u1"))
        assert_400(response)
        assert env.revoked == []
    finally:
        await env.aclose()
