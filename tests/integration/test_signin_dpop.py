"""Sign-in with DPoP-bound tokens (RFC 9449) through the in-process browser harness.

The DevIdP binds tokens to the key a token request proves and takes them at
userinfo only with a proof of it; :class:`Watch` sits in front of it and writes
down each proof's key, the key each access token is bound to (``cnf.jkt``) and
the scheme of each userinfo call. The real-socket sign-in with a public client
is in test_signin_dpop_served.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import msgspec
import pytest
from _browser_env import Env, Forward
from _connections_env import Site
from joserfc import jws

from asgi_sso.keys.jwk import parse_jwk
from asgi_sso.login.dpop import DPoPKey
from asgi_sso.sessions import MemorySessionStore, SessionRecord
from asgi_sso.sessions.codec import CookieCodec
from asgi_sso.testing import FakeClock


def _payload(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def _proof_jkt(proof: str) -> str:
    """The thumbprint of the key a proof carries (the DevIdP checks the rest)."""
    jwk = dict(jws.extract_compact(proof.encode()).headers())["jwk"]
    return parse_jwk(jwk).thumbprint


class Watch:
    """Writes down the DPoP side of the calls to ``env``'s DevIdP.

    Args:
        env: the harness whose ``/token`` and ``/userinfo`` calls it watches.
        algs: replaces the advertised ``dpop_signing_alg_values_supported``.
        strip: drop token requests' proofs on the way, as a server ignoring DPoP.
    """

    def __init__(self, env: Env, *, algs: list[str] | None = None, strip: bool = False) -> None:
        self.algs = algs
        self.strip = strip
        self.token_proofs: list[str | None] = []  # the key each token request proved, or None
        self.bound: list[str | None] = []  # the cnf.jkt of each access token issued
        self.userinfo: list[tuple[str, int]] = []  # scheme and status of each userinfo call
        env.overrides["/.well-known/openid-configuration"] = self._discovery
        env.overrides["/token"] = self._token
        env.overrides["/userinfo"] = self._userinfo

    async def _discovery(self, request: httpx.Request, forward: Forward) -> httpx.Response:
        answer = await forward(request)
        if self.algs is None:
            return answer
        document = answer.json()
        document["dpop_signing_alg_values_supported"] = self.algs
        return httpx.Response(200, json=document)

    async def _token(self, request: httpx.Request, forward: Forward) -> httpx.Response:
        proof = request.headers.get("dpop")
        self.token_proofs.append(None if proof is None else _proof_jkt(proof))
        if self.strip and proof is not None:
            del request.headers["dpop"]
        answer = await forward(request)
        if answer.status_code == 200:
            self.bound.append(_payload(answer.json()["access_token"]).get("cnf", {}).get("jkt"))
        return answer

    async def _userinfo(self, request: httpx.Request, forward: Forward) -> httpx.Response:
        answer = await forward(request)
        scheme = request.headers["authorization"].partition(" ")[0]
        self.userinfo.append((scheme, answer.status_code))
        return answer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemorySessionStore:
    return MemorySessionStore(clock=clock)


async def _record(env: Env, store: MemorySessionStore) -> SessionRecord:
    assert (await env.get("/probe")).status_code == 200
    record = await store.get(env.seen[-1]["session_id"])
    assert record is not None
    return record


def _jkt(record: SessionRecord) -> str:
    assert record.dpop_key is not None
    return DPoPKey.from_jwk(record.dpop_key, FakeClock()).jkt


async def test_sign_in_binds_the_tokens_to_a_key_the_session_keeps(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    watch = Watch(env)
    assert (await env.sign_in()).status_code == 303
    record = await _record(env, store)
    jkt = _jkt(record)
    assert watch.token_proofs == [jkt]
    assert watch.bound == [jkt]
    assert watch.userinfo == [("DPoP", 200)]
    assert record.claims["groups"] == ["admins"]  # userinfo merged
    assert record.dpop_key is not None
    assert "d" in json.loads(record.dpop_key)
    assert record.dpop_key not in repr(record)


async def test_refresh_proves_the_sign_in_key_in_any_worker(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    watch = Watch(env)
    await env.sign_in()
    before = await _record(env, store)
    env.login = env.make_login(env.login.config.cookie_secrets)  # another worker, same store
    clock.advance(241)
    after = await _record(env, store)
    assert after.refresh_token != before.refresh_token  # refreshed
    assert watch.token_proofs == [_jkt(before)] * 2
    assert watch.bound == [_jkt(before)] * 2
    assert watch.userinfo == [("DPoP", 200)] * 2
    assert after.dpop_key == before.dpop_key


async def test_server_nonces_cost_one_retry_per_call(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    env.idp.dpop_nonce = "server-nonce-1"
    watch = Watch(env)
    assert (await env.sign_in()).status_code == 303
    jkt = _jkt(await _record(env, store))
    assert watch.token_proofs == [jkt, jkt]
    assert watch.userinfo == [("DPoP", 401), ("DPoP", 200)]
    env.idp.dpop_nonce = "server-nonce-2"  # rotated: the refresh learns it anew
    clock.advance(241)
    await _record(env, store)
    assert watch.token_proofs == [jkt] * 4
    assert watch.bound == [jkt, jkt]
    assert watch.userinfo[2:] == [("DPoP", 401), ("DPoP", 200)]


async def test_cookie_sessions_prove_a_key_but_never_carry_it(clock: FakeClock) -> None:
    env = Env(clock)
    watch = Watch(env)
    assert (await env.sign_in()).status_code == 303
    assert watch.token_proofs[0] is not None
    assert watch.bound == watch.token_proofs
    assert watch.userinfo == [("DPoP", 200)]
    config = env.login.config
    codec = CookieCodec(config.cookie_secrets, purpose="asgi_sso session",
                        binding=(config.issuer, config.client_id))  # fmt: skip
    sealed = "".join(v for _, v in sorted(env.session_cookies().items()))
    record = msgspec.json.decode(codec.decode(sealed), type=SessionRecord)
    assert record.dpop_key is None
    assert record.refresh_token is None


@pytest.mark.parametrize(
    ("algs", "login"),
    [([], {}), (["RS256", "PS256"], {}), (None, {"dpop": "off"})],
    ids=["not-advertised", "no-es256", "off"],
)
async def test_no_proof_unless_the_provider_takes_es256_and_dpop_is_on(
    clock: FakeClock, store: MemorySessionStore, algs: list[str] | None, login: dict[str, Any]
) -> None:
    env = Env(clock, store=store, **login)
    watch = Watch(env, algs=algs)
    assert (await env.sign_in()).status_code == 303
    record = await _record(env, store)
    assert record.dpop_key is None
    clock.advance(241)
    await _record(env, store)
    assert watch.token_proofs == [None, None]
    assert watch.bound == [None, None]
    assert watch.userinfo == [("Bearer", 200)] * 2


async def test_a_provider_ignoring_the_proof_gets_bearer_calls(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    watch = Watch(env, strip=True)
    assert (await env.sign_in()).status_code == 303
    record = await _record(env, store)
    assert watch.token_proofs == [_jkt(record)]
    assert watch.bound == [None]  # token_type Bearer
    assert watch.userinfo == [("Bearer", 200)]


async def test_turning_dpop_off_keeps_proving_the_key_of_a_live_session(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    # Its refresh token may be bound to that key: dropping the proof would end the session.
    env = Env(clock, store=store)
    watch = Watch(env)
    await env.sign_in()
    before = await _record(env, store)
    env.login = env.make_login(env.login.config.cookie_secrets, dpop="off")
    clock.advance(241)
    await _record(env, store)
    assert watch.token_proofs == [_jkt(before)] * 2


async def test_an_unreadable_stored_key_ends_the_session_at_refresh(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    watch = Watch(env)
    await env.sign_in()
    record = await _record(env, store)
    await store.update(msgspec.structs.replace(record, dpop_key='{"kty":"EC"}'))
    clock.advance(241)
    response = await env.get("/a")
    assert response.status_code == 401
    assert await store.get(record.id) is None
    assert len(watch.token_proofs) == 1  # no refresh was tried
    assert "refresh_dpop_key" in [e.reason for e in env.events if e.name == "session.ended"]


async def test_connections_follow_the_same_rule(clock: FakeClock) -> None:
    store = MemorySessionStore(clock=clock)
    site = Site(clock, store)
    try:
        browser = site.browser()
        await browser.sign_in(email="user1@globex.test")
        session_id = (await browser.me()).json()["session_id"]
        record = await store.get(session_id)
        assert record is not None
        assert record.connection == "globex"
        token_calls = [r for r in site.sent if r.url == site["globex"].idp.url("/token")]
        assert [r.headers.get("dpop") is not None for r in token_calls] == [True]
        assert _proof_jkt(token_calls[0].headers["dpop"]) == _jkt(record)
    finally:
        await site.aclose()
