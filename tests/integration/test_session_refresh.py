"""Refresh tokens renew server-side sessions: against the DevIdP, with an injected clock.

The DevIdP issues 300 s access and ID tokens and rotates refresh tokens, so a
session is due for refresh 240 s after sign-in (60 s leeway).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import msgspec
import pytest
from _browser_env import Env, Forward

from asgi_sso.config import AT_JWT_TYPES
from asgi_sso.login import LoginConfig
from asgi_sso.sessions import MemorySessionStore, SessionRecord
from asgi_sso.sessions.codec import CookieCodec
from asgi_sso.testing import DevUser, FakeClock


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


def _token_calls(env: Env) -> int:
    return env.idp.requests["/token"]


async def test_sign_in_keeps_the_refresh_token_server_side_only(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    record = await _record(env, store)
    assert record.refresh_token in env.idp.refresh_tokens
    assert record.refresh_at == pytest.approx(record.created_at + 240)
    assert not any(record.refresh_token in value for value in env.cookies.values())


async def test_cookie_only_sessions_never_carry_a_refresh_token(clock: FakeClock) -> None:
    env = Env(clock)
    await env.sign_in()
    config = env.login.config
    codec = CookieCodec(
        (config.cookie_secrets[0],),
        purpose="asgi_sso session",
        binding=(config.issuer, config.client_id),
    )
    sealed = "".join(v for _, v in sorted(env.session_cookies().items()))
    record = msgspec.json.decode(codec.decode(sealed), type=SessionRecord)
    assert record.refresh_token is None
    assert record.refresh_at == 0.0
    clock.advance(250)
    assert (await env.get("/a")).status_code == 200
    assert _token_calls(env) == 1  # the code exchange only


async def test_due_session_is_refreshed_once_with_rotation(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    before = await _record(env, store)
    captured: list[httpx.Request] = []

    async def spy(request: httpx.Request, forward: Forward) -> httpx.Response:
        captured.append(request)
        return await forward(request)

    env.overrides["/token"] = spy
    clock.advance(239)
    assert (await env.get("/a")).status_code == 200
    assert not captured  # not due yet
    clock.advance(2)
    after = await _record(env, store)
    assert len(captured) == 1
    form = dict(httpx.QueryParams(captured[0].content.decode()))
    assert form == {"grant_type": "refresh_token", "refresh_token": before.refresh_token}
    assert captured[0].headers["authorization"].startswith("Basic ")
    assert after.refresh_token != before.refresh_token
    assert before.refresh_token not in env.idp.refresh_tokens  # rotated at the IdP
    assert after.id_token != before.id_token
    assert after.refresh_at == pytest.approx(clock.time() + 240)
    assert after.expires_at == before.expires_at  # no max_session_lifetime: no extension
    assert (await env.get("/a")).status_code == 200
    assert len(captured) == 1


async def test_refresh_works_when_the_issuer_demands_at_jwt_bearer_tokens(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    # A refreshed ID token (typ JWT, no nonce: OIDC Core §12.2) is checked by the
    # ID-token rules, not the issuer's bearer token_types, and is never cached.
    strict = {"token_types": AT_JWT_TYPES, "audience": "web", "client_id": "web"}
    env = Env(clock, store=store, issuer=strict)
    await env.sign_in()
    before = await _record(env, store)
    clock.advance(241)
    after = await _record(env, store)
    assert after.id_token is not None
    assert after.id_token != before.id_token
    payload = after.id_token.split(".")[1]
    assert "nonce" not in msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * 3))
    assert len(env.verifier.cache) == 0


async def test_refresh_never_extends_past_session_lifetime_by_default(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    for _ in range(9):
        clock.advance(3000)
        assert (await env.get("/a")).status_code == 200
    clock.advance(3000)  # 8 h 20 min after sign-in
    assert (await env.get("/a")).status_code == 401
    assert _token_calls(env) == 1 + 10 - 1  # refreshed on every request but the last


async def test_max_session_lifetime_lets_refresh_extend_the_session(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store, session_lifetime=3600.0, max_session_lifetime=4 * 3600.0)
    await env.sign_in()
    for _ in range(14):  # 3.9 h of activity, far past the 1 h session_lifetime
        clock.advance(1000)
        assert (await env.get("/a")).status_code == 200
    clock.advance(1000)  # past the 4 h cap
    response = await env.get("/a")
    assert response.status_code == 401


async def test_without_activity_an_extendable_session_still_ends(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store, session_lifetime=3600.0, max_session_lifetime=4 * 3600.0)
    await env.sign_in()
    clock.advance(3601)
    assert (await env.get("/a")).status_code == 401


async def test_invalid_grant_ends_the_session_and_clears_the_cookie(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    record = await _record(env, store)
    env.idp.refresh_tokens.clear()  # the IdP revoked the grant (user disabled, consent withdrawn)
    clock.advance(241)
    response = await env.get("/a")
    assert response.status_code == 401
    assert "identity provider ended" in response.json()["error"]
    assert not env.session_cookies()
    assert await store.get(record.id) is None
    ended = [e for e in env.events if e.name == "session.refreshed"]
    assert ended[-1].outcome == "refused"


async def test_provider_down_keeps_the_session_and_retries_later(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    first = await _record(env, store)

    attempts: list[httpx.Request] = []

    async def down(request: httpx.Request, forward: Forward) -> httpx.Response:
        attempts.append(request)
        return httpx.Response(503, json={"error": "temporarily_unavailable"})

    env.overrides["/token"] = down
    clock.advance(241)
    for _ in range(5):
        assert (await env.get("/a")).status_code == 200
    assert len(attempts) == 1  # one attempt per refresh_retry, not one per request
    record = await store.get(first.id)
    assert record is not None
    assert record.refresh_token == first.refresh_token
    assert record.refresh_at == pytest.approx(clock.time() + 60)
    del env.overrides["/token"]
    clock.advance(61)
    assert (await env.get("/a")).status_code == 200
    refreshed = await store.get(first.id)
    assert refreshed is not None
    assert refreshed.refresh_token != first.refresh_token


async def test_unreachable_provider_keeps_the_session_until_its_normal_end(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()

    async def refused(request: httpx.Request, forward: Forward) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    env.overrides["/token"] = refused
    for _ in range(9):
        clock.advance(3000)
        assert (await env.get("/a")).status_code == 200
    clock.advance(3000)
    assert (await env.get("/a")).status_code == 401


def _gated_token_endpoint(env: Env) -> tuple[asyncio.Event, list[str]]:
    """Hold every token call until the returned event is set; record the calls."""
    gate = asyncio.Event()
    calls: list[str] = []

    async def slow(request: httpx.Request, forward: Forward) -> httpx.Response:
        calls.append(request.url.path)
        await gate.wait()
        return await forward(request)

    env.overrides["/token"] = slow
    return gate, calls


async def _until(condition: Any) -> None:
    for _ in range(200):  # bounded: let the other task reach the token call
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the refresh never reached the token endpoint")


async def test_parallel_requests_spend_the_refresh_token_once(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    gate, calls = _gated_token_endpoint(env)
    clock.advance(241)
    cookie = {"cookie": "; ".join(f"{k}={v}" for k, v in env.cookies.items())}
    first = asyncio.create_task(env.app.get("/a", headers=cookie))
    await _until(lambda: calls)
    others = await asyncio.gather(*(env.app.get("/a", headers=cookie) for _ in range(5)))
    gate.set()
    assert (await first).status_code == 200
    assert [r.status_code for r in others] == [200] * 5
    assert calls == ["/token"]


async def test_two_workers_sharing_a_store_refresh_once(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    other = env.make_login(env.login.config.cookie_secrets)  # a second worker, same store
    gate, calls = _gated_token_endpoint(env)
    clock.advance(241)
    cookie = "; ".join(f"{k}={v}" for k, v in env.cookies.items()).encode()
    scope = {"type": "http", "method": "GET", "path": "/a", "headers": [(b"cookie", cookie)]}
    first = asyncio.create_task(env.login.authenticate(scope))
    await _until(lambda: calls)
    second = await other.authenticate(scope)
    gate.set()
    results = [await first, second]
    assert all(r is not None and r.principal.identity == "alice" for r in results)
    assert calls == ["/token"]
    later = await other.authenticate(scope)  # the second worker sees the rotated record
    assert later is not None
    assert calls == ["/token"]


async def test_refresh_renews_the_claims(clock: FakeClock, store: MemorySessionStore) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    assert (await env.get("/a")).status_code == 200
    assert env.seen[-1]["claims"]["groups"] == ["admins"]
    env.idp.add_user(DevUser(sub="alice", email="alice@corp.example", groups=("auditors",)))
    clock.advance(241)
    assert (await env.get("/a")).status_code == 200
    assert env.seen[-1]["claims"]["groups"] == ["auditors"]


def _rewrite_token_response(env: Env, change: Any) -> None:
    """Pass the DevIdP's refresh-grant answers through ``change(body)``."""

    async def rewrite(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = await forward(request)
        body = response.json()
        if "refresh_token" in str(request.content) and response.status_code == 200:
            body = change(body)
        return httpx.Response(response.status_code, json=body)

    env.overrides["/token"] = rewrite


async def test_refresh_response_without_id_token_keeps_identity(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()
    before = await _record(env, store)
    _rewrite_token_response(env, lambda body: {k: v for k, v in body.items() if k != "id_token"})
    clock.advance(241)
    after = await _record(env, store)
    assert after.id_token == before.id_token
    assert after.refresh_token != before.refresh_token
    assert after.claims["email"] == "alice@corp.example"


async def test_refreshed_id_token_for_another_user_ends_the_session(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()

    def swap(body: dict[str, Any]) -> dict[str, Any]:
        now = int(clock.time())
        claims = {"iss": env.idp.issuer, "sub": "mallory", "aud": "web", "iat": now,
                  "exp": now + 300}  # fmt: skip
        return {**body, "id_token": env.idp.sign(claims, "JWT")}

    _rewrite_token_response(env, swap)
    clock.advance(241)
    response = await env.get("/a")
    assert response.status_code == 401
    assert "does not match" in response.json()["error"]


async def test_expires_in_as_a_string_schedules_the_refresh(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)

    async def stringly(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = await forward(request)
        body = response.json()
        return httpx.Response(200, json={**body, "expires_in": "1200"})

    env.overrides["/token"] = stringly
    await env.sign_in()
    record = await _record(env, store)
    assert record.refresh_at == pytest.approx(record.created_at + 1140)


def test_max_session_lifetime_below_session_lifetime_is_refused() -> None:
    from asgi_sso.config import Secret
    from asgi_sso.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        LoginConfig(
            issuer="https://idp.example",
            client_id="web",
            client_secret=Secret("s"),
            cookie_secrets=(Secret(b"k" * 32),),
            max_session_lifetime=60.0,
        )


async def test_other_refusals_stop_refreshing_but_keep_the_session(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    await env.sign_in()

    async def unauthorized(request: httpx.Request, forward: Forward) -> httpx.Response:
        return httpx.Response(400, json={"error": "unauthorized_client"})

    env.overrides["/token"] = unauthorized
    clock.advance(241)
    record = await _record(env, store)
    assert record.refresh_token is None
    assert record.refresh_at == 0.0
    assert [e.reason for e in env.events if e.name == "session.refreshed"] == [
        "refresh_unauthorized_client"
    ]
    clock.advance(3000)
    assert (await env.get("/a")).status_code == 200


async def test_refresh_sends_the_configured_resource(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    # RFC 8707 §2.2: the refreshed access token stays issued for this resource.
    env = Env(clock, store=store, resource="http://127.0.0.1:8000/mcp/")
    await env.sign_in()
    captured: list[httpx.Request] = []

    async def spy(request: httpx.Request, forward: Forward) -> httpx.Response:
        captured.append(request)
        return await forward(request)

    env.overrides["/token"] = spy
    clock.advance(241)
    assert (await env.get("/a")).status_code == 200
    form = dict(httpx.QueryParams(captured[0].content.decode()))
    assert form["grant_type"] == "refresh_token"
    assert form["resource"] == "http://127.0.0.1:8000/mcp"
