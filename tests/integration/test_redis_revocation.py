"""The Redis revocation bus against real Redis: fan-out, reconciliation, gaps and outages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from _redis_server import RedisServer, free_port
from redis.asyncio import Redis

from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.redis_bus import RedisRevocationBus
from asgi_sso.identity.revocation import Revocation
from asgi_sso.observe.events import Emitter, Event

pytestmark = pytest.mark.redis

ALICE = Revocation(kind="user", connection="acme", subject="alice", time=1.0)
BOB = Revocation(kind="user", connection="acme", subject="bob", time=2.0)


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def connect_then_stop(bus: RedisRevocationBus) -> None:
    """Let ``bus`` learn the stream position, then cut it off."""
    await bus.start()
    assert await bus.wait_connected(5)
    await bus.close()


def recorder(bus: RedisRevocationBus) -> list[Revocation]:
    seen: list[Revocation] = []
    bus.subscribe(seen.append)
    return seen


async def test_revocation_reaches_other_process_once_and_publisher_once(
    redis_client: Redis, redis_prefix: str
) -> None:
    a = RedisRevocationBus(redis_client, prefix=redis_prefix)
    b = RedisRevocationBus(redis_client, prefix=redis_prefix)
    seen_a, seen_b = recorder(a), recorder(b)
    await a.start()
    await b.start()
    try:
        assert await a.wait_connected(5)
        assert await b.wait_connected(5)
        await a.publish(ALICE)
        await eventually(lambda: seen_b == [ALICE])
        await b.publish(BOB)
        await eventually(lambda: seen_a == [ALICE, BOB])
        await asyncio.sleep(0.05)  # give a duplicate delivery the chance to show up
        assert seen_a == [ALICE, BOB]
        assert seen_b == [ALICE, BOB]
    finally:
        await a.close()
        await b.close()


async def test_a_new_process_does_not_replay_old_revocations(
    redis_client: Redis, redis_prefix: str
) -> None:
    a = RedisRevocationBus(redis_client, prefix=redis_prefix)
    await a.publish(ALICE)
    late = RedisRevocationBus(redis_client, prefix=redis_prefix)
    seen = recorder(late)
    await late.start()
    try:
        assert await late.wait_connected(5)
        await a.publish(BOB)
        await eventually(lambda: seen == [BOB])
    finally:
        await late.close()


async def test_revocations_missed_while_stopped_are_replayed_on_reconnect(
    redis_client: Redis, redis_prefix: str
) -> None:
    a = RedisRevocationBus(redis_client, prefix=redis_prefix)
    b = RedisRevocationBus(redis_client, prefix=redis_prefix)
    seen = recorder(b)
    await connect_then_stop(b)  # b is cut off; a keeps revoking
    await a.publish(ALICE)
    await a.publish(BOB)
    await b.start()
    try:
        await eventually(lambda: seen == [ALICE, BOB])
        assert b.gaps == 0
    finally:
        await b.close()


async def test_trimmed_entries_are_reported_as_a_gap(
    redis_client: Redis, redis_prefix: str
) -> None:
    gaps: list[int] = []
    a = RedisRevocationBus(redis_client, prefix=redis_prefix)
    b = RedisRevocationBus(redis_client, prefix=redis_prefix, on_gap=lambda: gaps.append(1))
    await connect_then_stop(b)
    await a.publish(ALICE)
    await redis_client.xtrim(
        redis_prefix + "revocations", maxlen=0
    )  # ALICE is lost before b reads it
    await b.start()
    try:
        await eventually(lambda: gaps == [1])
        assert b.gaps == 1
    finally:
        await b.close()


async def test_malformed_entries_and_failing_listeners_do_not_stop_the_reader(
    redis_client: Redis, redis_prefix: str
) -> None:
    a = RedisRevocationBus(redis_client, prefix=redis_prefix)
    events: list[Event] = []
    b = RedisRevocationBus(redis_client, prefix=redis_prefix, emitter=Emitter([events.append]))
    seen = recorder(b)

    def explode(revocation: Revocation) -> None:
        if revocation.subject == "alice":
            raise RuntimeError("listener bug")

    b.subscribe(explode)
    await b.start()
    try:
        assert await b.wait_connected(5)
        await redis_client.xadd(redis_prefix + "revocations", {"r": b"{not json", "o": "someone"})
        await a.publish(ALICE)
        await a.publish(BOB)
        await eventually(lambda: seen == [ALICE, BOB])
        outcomes = {event.outcome for event in events}
        assert {"connected", "malformed", "listener_error"} <= outcomes
    finally:
        await b.close()


async def test_publish_while_redis_is_down_applies_locally_and_never_raises() -> None:
    bus = RedisRevocationBus(f"redis://127.0.0.1:{free_port()}/0", prefix="asgi_sso_test:")
    seen = recorder(bus)
    await bus.publish(ALICE)
    assert seen == [ALICE]
    assert not bus.connected
    await bus.close()


async def test_redis_restart_loses_nothing_revoked_and_the_reader_recovers(
    own_redis: RedisServer,
) -> None:
    gaps: list[int] = []
    a = RedisRevocationBus(own_redis.url, backoff=(0.02, 0.2))
    b = RedisRevocationBus(own_redis.url, backoff=(0.02, 0.2), on_gap=lambda: gaps.append(1))
    seen = recorder(b)
    await a.start()
    await b.start()
    try:
        assert await a.wait_connected(5)
        assert await b.wait_connected(5)
        await a.publish(ALICE)
        await eventually(lambda: seen == [ALICE])

        own_redis.stop()
        await eventually(lambda: not b.connected)
        await a.publish(BOB)  # Redis is down: kept in a's outbox
        own_redis.start()  # a fresh, empty Redis on the same port

        await eventually(lambda: seen == [ALICE, BOB], within=10)
        assert gaps == [1]  # b learns that whatever the old Redis held is gone
        assert b.connected
    finally:
        await a.close()
        await b.close()


def test_configuration_is_checked_when_built() -> None:
    with pytest.raises(ConfigurationError):
        RedisRevocationBus("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError):
        RedisRevocationBus("redis://127.0.0.1:6379", retention=0)
    with pytest.raises(ConfigurationError):
        RedisRevocationBus("redis://127.0.0.1:6379", prefix="has space")


def test_repr_never_shows_the_url_password() -> None:
    bus = RedisRevocationBus("redis://:hunter2-secret@127.0.0.1:6379/0")
    assert "hunter2" not in repr(bus)


async def test_a_failing_local_listener_does_not_stop_the_broadcast(
    redis_client: Redis, redis_prefix: str
) -> None:
    a = RedisRevocationBus(redis_client, prefix=redis_prefix)
    b = RedisRevocationBus(redis_client, prefix=redis_prefix)
    seen = recorder(b)

    def store_down(revocation: Revocation) -> None:
        raise RuntimeError("local store down")

    a.subscribe(store_down)
    await b.start()
    try:
        assert await b.wait_connected(5)
        with pytest.raises(RuntimeError):
            await a.publish(ALICE)
        await eventually(lambda: seen == [ALICE])
    finally:
        await b.close()


class GateProxy:
    """A TCP proxy to the shared Redis that refuses connections until opened."""

    def __init__(self) -> None:
        self.open = False
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            self.refused += 1
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_revocations_published_before_a_late_first_connection_are_a_gap(
    redis_client: Redis, redis_prefix: str
) -> None:
    # A worker starts while Redis is unreachable; another revokes meanwhile. The
    # stream position at start-up is unknown, so the late worker must drop its caches.
    proxy = GateProxy()
    gaps: list[int] = []
    events: list[Event] = []
    late = RedisRevocationBus(
        await proxy.start(),
        prefix=redis_prefix,
        backoff=(0.01, 0.05),
        on_gap=lambda: gaps.append(1),
        emitter=Emitter([events.append]),
    )
    publisher = RedisRevocationBus(redis_client, prefix=redis_prefix)
    try:
        await late.start()
        await eventually(lambda: any(e.outcome == "unreachable" for e in events))
        assert not late.connected
        await publisher.publish(ALICE)
        proxy.open = True
        assert await late.wait_connected(5)
        await eventually(lambda: gaps == [1])
        assert late.gaps == 1
    finally:
        await late.close()
        await proxy.close()


async def test_a_first_connection_at_once_is_no_gap(redis_client: Redis, redis_prefix: str) -> None:
    await RedisRevocationBus(redis_client, prefix=redis_prefix).publish(ALICE)
    bus = RedisRevocationBus(redis_client, prefix=redis_prefix)
    try:
        await bus.start()
        assert await bus.wait_connected(5)
        assert bus.gaps == 0
    finally:
        await bus.close()
