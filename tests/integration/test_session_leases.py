"""Leases of the server-side session stores: what anonymous sign-in traffic cannot push out.

A sign-in callback marks its state used with a lease (``signin:…``); a worker
refreshing a session holds another (``refresh:…``) so no other worker refreshes
it at the same time. Anyone can cause the first kind - a ``/login`` of their own,
then a callback with ``error=access_denied`` - so leases are bounded per kind and
a flood of sign-in marks never ends a refresh in progress.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from redis.asyncio import Redis

from asgi_sso.sessions import MemorySessionStore, SessionStore
from asgi_sso.sessions.redis import RedisSessionStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from _browser_env import Env
from test_session_store_contract import FakeClock

BOUND = 4


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> SessionStore:
    """A server-side store holding at most ``BOUND`` leases of a kind."""
    if request.param == "memory":
        return MemorySessionStore(clock=clock, max_states=BOUND)
    redis: Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return RedisSessionStore(redis, prefix=prefix, clock=clock, max_leases=BOUND)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _anonymous_callback(env: Env) -> int:
    """One anonymous visitor: a ``/login`` of its own, then the provider's refusal."""
    started = await env.get("/auth/login")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    query = urlencode({"state": state, "error": "access_denied"})
    return (await env.get("/auth/callback?" + query)).status_code


async def test_anonymous_callbacks_never_push_out_a_refresh_in_progress(
    store: SessionStore, clock: FakeClock
) -> None:
    env = Env(clock, store=store)
    assert await store.claim("refresh:session-1", 15)
    for _ in range(2 * BOUND):
        assert await _anonymous_callback(env) == 400
    # Still held: a second worker would refresh too and replay a rotated refresh token.
    assert not await store.claim("refresh:session-1", 15)


async def test_sign_in_marks_stay_bounded_by_kind(store: SessionStore, clock: FakeClock) -> None:
    for n in range(2 * BOUND):
        assert await store.claim(f"signin:{n}", 600)
    assert not await store.claim(f"signin:{2 * BOUND - 1}", 600)  # the newest are held
    assert await store.claim("signin:0", 600)  # the oldest went to keep the bound
