"""Each request gets its own claims: an app editing ``request.user.claims`` changes no session."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from _browser_env import Env, _json

from asgi_sso.sessions import MemorySessionStore, SessionStore
from asgi_sso.sessions.redis import RedisSessionStore
from asgi_sso.testing import FakeClock


class MutatingEnv(Env):
    """An app that records the claims it is given, then edits them in place."""

    claims_seen: list[dict[str, Any]]

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        if self.login.handles(scope):
            await self.login.handle(scope, receive, send)
            return
        result = await self.login.authenticate(scope)
        assert result is not None
        claims: Any = result.principal.claims
        self.claims_seen.append(copy.deepcopy(dict(claims)))
        claims["email"] = "mallory@evil.example"
        claims["groups"].append("forged-admins")
        claims["nested"] = {"x": 1}
        await _json(send, 200, {"ok": True}, result.headers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _app_edits_never_persist(
    clock: FakeClock, store: SessionStore | None, touch: bool
) -> None:
    env = MutatingEnv(clock, store=store)
    env.claims_seen = []
    assert (await env.sign_in("/")).status_code == 303
    for _ in range(3):
        if touch:
            clock.advance(120)  # past the touch interval: the record is written again
        assert (await env.get("/reports")).status_code == 200
    assert len(env.claims_seen) == 3
    for seen in env.claims_seen:  # a refresh may renew exp/iat, never the app's edits
        assert seen["email"] == "alice@corp.example"
        assert seen["groups"] == ["admins"]
        assert "nested" not in seen


_TOUCH = pytest.mark.parametrize("touch", [False, True], ids=["same-instant", "after-touch"])


@_TOUCH
async def test_cookie_only_session_claims_are_the_requests_own(
    clock: FakeClock, touch: bool
) -> None:
    await _app_edits_never_persist(clock, None, touch)


@_TOUCH
async def test_memory_store_session_claims_are_the_requests_own(
    clock: FakeClock, touch: bool
) -> None:
    await _app_edits_never_persist(clock, MemorySessionStore(clock=clock), touch)


@pytest.mark.redis
@_TOUCH
async def test_redis_store_session_claims_are_the_requests_own(
    clock: FakeClock, touch: bool, redis_url: str, redis_prefix: str
) -> None:
    store = RedisSessionStore(redis_url, prefix=redis_prefix, clock=clock)
    try:
        await _app_edits_never_persist(clock, store, touch)
    finally:
        await store.close()
