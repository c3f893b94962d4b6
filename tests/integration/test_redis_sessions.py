"""The Redis session store against real Redis: the shared contract plus what only Redis adds."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from asgi_sso.errors import ConfigurationError, StoreUnavailable
from asgi_sso.sessions import SessionStore
from asgi_sso.sessions.redis import RedisSessionStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from _browser_env import Env
from _redis_server import free_port
from test_session_store_contract import FakeClock, SessionStoreContract, record

pytestmark = pytest.mark.redis


class TestRedisSessionStore(SessionStoreContract):
    @pytest.fixture
    async def store(  # type: ignore[override]
        self, clock: FakeClock, redis_client: Redis, redis_prefix: str
    ) -> AsyncIterator[SessionStore]:
        store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=clock)
        yield store
        await store.close()


async def test_a_session_created_by_one_worker_is_seen_by_another(
    redis_url: str, redis_prefix: str
) -> None:
    clock = FakeClock()
    one = RedisSessionStore(redis_url, prefix=redis_prefix, clock=clock)
    two = RedisSessionStore(redis_url, prefix=redis_prefix, clock=clock)
    try:
        await one.create(record("s1", sid="idp-1"))
        assert await two.get("s1") == record("s1", sid="idp-1")
        assert await two.delete_by_provider("https://idp.example", sub=None, sid="idp-1") == 1
        assert await one.get("s1") is None
    finally:
        await one.close()
        await two.close()


async def test_state_is_taken_once_across_workers(redis_url: str, redis_prefix: str) -> None:
    stores = [
        RedisSessionStore(redis_url, prefix=redis_prefix, clock=FakeClock()) for _ in range(4)
    ]
    try:
        await stores[0].put_state("flow", b"verifier", 60)
        results = await asyncio.gather(*(s.pop_state("flow") for s in stores for _ in range(25)))
        assert results.count(b"verifier") == 1
    finally:
        for store in stores:
            await store.close()


async def test_redis_expires_sessions_and_states_by_itself(
    redis_client: Redis, redis_prefix: str
) -> None:
    clock = FakeClock()
    store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=clock)
    await store.create(record("s1", sid="idp-1", expires_in=120))
    await store.put_state("flow", b"x", 30)
    ttls = {
        key.decode().removeprefix(redis_prefix).split(":")[0]: await redis_client.pttl(key)
        async for key in redis_client.scan_iter(match=redis_prefix + "*")
    }
    assert set(ttls) == {"session", "user", "sub", "sid", "state"}
    assert 119_000 < ttls["session"] <= 120_000
    assert 119_000 < ttls["user"] <= 120_000  # an index lives as long as its longest member
    assert 119_000 < ttls["sub"] <= 120_000
    assert 119_000 < ttls["sid"] <= 120_000
    assert 29_000 < ttls["state"] <= 30_000


async def test_an_index_outlives_its_shorter_members(
    redis_client: Redis, redis_prefix: str
) -> None:
    store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=FakeClock())
    await store.create(record("long", expires_in=600))
    await store.create(record("short", expires_in=60))
    [user_key] = [key async for key in redis_client.scan_iter(match=redis_prefix + "user:*")]
    assert await redis_client.pttl(user_key) > 590_000


async def test_a_record_already_past_its_end_is_not_stored(
    redis_client: Redis, redis_prefix: str
) -> None:
    clock = FakeClock()
    store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=clock)
    await store.create(record("s1", expires_in=-1))
    assert [key async for key in redis_client.scan_iter(match=redis_prefix + "*")] == []
    await store.create(record("s2", expires_in=10))
    clock.advance(20)
    await store.update(record("s2", expires_in=10))  # past its end: ended, not renewed
    assert [key async for key in redis_client.scan_iter(match=redis_prefix + "session:*")] == []
    assert await store.get("s2") is None


async def test_update_does_not_resurrect_a_deleted_session(
    redis_client: Redis, redis_prefix: str
) -> None:
    store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=FakeClock())
    await store.create(record("s1"))
    await store.delete_user("acme", "alice")
    await store.update(record("s1"))  # a request that was in flight during the revocation
    assert await store.get("s1") is None


async def test_foreign_values_under_our_keys_read_as_no_session(
    redis_client: Redis, redis_prefix: str
) -> None:
    store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=FakeClock())
    await store.create(record("s1"))
    [key] = [key async for key in redis_client.scan_iter(match=redis_prefix + "session:*")]
    await redis_client.set(key, b"\xff not json")
    assert await store.get("s1") is None
    await store.delete("s1")
    assert await redis_client.exists(key) == 0


async def test_unreachable_redis_is_store_unavailable_fast() -> None:
    store = RedisSessionStore(f"redis://127.0.0.1:{free_port()}/0", clock=FakeClock())
    started = time.monotonic()
    for call in (
        store.get("s1"),
        store.create(record("s1")),
        store.delete_user("acme", "alice"),
        store.pop_state("k"),
    ):
        with pytest.raises(StoreUnavailable) as caught:
            await call
        assert caught.value.status == 503
        assert "Redis" in caught.value.description
    assert time.monotonic() - started < 5
    assert await store.ping() is False
    await store.close()


def test_bad_configuration_fails_when_built() -> None:
    with pytest.raises(ConfigurationError):
        RedisSessionStore("postgresql://127.0.0.1/db")
    with pytest.raises(ConfigurationError):
        RedisSessionStore("redis://127.0.0.1:6379", prefix="")


def test_repr_shows_neither_url_nor_password() -> None:
    store = RedisSessionStore("redis://:hunter2-secret@127.0.0.1:6379/0")
    assert "hunter2" not in repr(store)


async def test_leases_are_bounded_in_total_and_expire_with_redis(
    redis_client: Redis, redis_prefix: str
) -> None:
    clock = FakeClock()
    store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=clock, max_leases=3)
    for n in range(10):
        assert await store.claim(f"signin:{n}", 60 + n)
    assert not await store.claim("signin:9", 60)  # the newest are held
    keys = [key async for key in redis_client.scan_iter(match=redis_prefix + "*")]
    assert keys == [(redis_prefix + "leases:signin").encode()]
    assert await redis_client.zcard(keys[0]) == 3
    assert 68_000 < await redis_client.pttl(keys[0]) <= 69_000
    clock.advance(70)  # every lease has ended: the set empties as the next one is taken
    assert await store.claim("signin:0", 60)
    assert await redis_client.zcard(keys[0]) == 1


async def test_anonymous_logins_write_nothing_to_redis(
    redis_client: Redis, redis_prefix: str
) -> None:
    clock = FakeClock()
    store = RedisSessionStore(redis_client, prefix=redis_prefix, clock=clock)
    env = Env(clock, store=store)
    url = await env.start("/mine")
    state_cookies = {k: v for k, v in env.cookies.items() if "sso_state" in k}
    for _ in range(30):
        assert (await env.app.get("/auth/login")).status_code == 302
    assert [key async for key in redis_client.scan_iter(match=redis_prefix + "*")] == []
    assert (await env.callback(url)).headers["location"] == "/mine"
    env.cookies.update(state_cookies)  # a replay, on any worker sharing this Redis
    replay = await env.callback(url)
    assert replay.status_code == 400
    assert "already used" in replay.json()["error_description"]


def test_max_leases_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        RedisSessionStore("redis://127.0.0.1:6379/0", max_leases=0)
