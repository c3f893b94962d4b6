"""Broadcast revocations to every worker and host through a Redis stream.

:meth:`RedisRevocationBus.publish` applies a revocation in this process at once,
then appends it to one Redis stream (``XADD``). Each process runs one background
task that blocks on ``XREAD`` from the last entry id it has seen and delivers
every entry written by another process to its local listeners.

Why a stream rather than ``PUBLISH``/``SUBSCRIBE``: a pub/sub message sent while
a subscriber is reconnecting is lost, and a separate replay log raced against
the subscription delivers some revocations twice and can miss others in
between. Reading a stream from the last seen id *is* the reconciliation: after
a reconnect the task simply continues where it stopped, so a missed message
cannot leave a revoked user signed in.

Two things can still lose entries - Redis restarted without persistence (or
flushed), or the stream trimmed past an entry not yet read. The bus detects
both (an *epoch* key that a fresh Redis lacks; the last entry read no longer
in the stream), as well as a first connection that failed (Redis unreachable
when the worker started: what was revoked before it connects is unknown), and
calls ``on_gap``: the process should then drop every cached verification, so
each token is checked again against the user store.
Revocations published while Redis is down are kept in a bounded outbox and
sent once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import uuid
from collections import deque
from typing import Any

import msgspec
from redis.asyncio import Redis

from asgi_sso._log import Throttle, held_back
from asgi_sso._redis import DEFAULT_PREFIX, check_prefix, client_from
from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.revocation import GapListener, Revocation, RevocationBus
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event

__all__ = ["RedisRevocationBus"]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Revocation)
_START = "0-0"

_log = logging.getLogger(__name__)
_REPORTS = {
    "unreachable": (
        logging.WARNING,
        "the revocation bus (Redis) cannot be reached; revocations made in other "
        "workers reach this one once it can",
    ),
    "disconnected": (
        logging.WARNING,
        "the revocation bus (Redis) lost its connection; revocations made in other "
        "workers reach this one once it is back",
    ),
    "connected": (logging.INFO, "the revocation bus (Redis) is connected again"),
    "gap": (
        logging.WARNING,
        "revocations may have been missed while the revocation bus was away: cached "
        "tokens and users are dropped, so the stores decide again",
    ),
    "publish_deferred": (
        logging.WARNING,
        "a revocation waits in the outbox until the revocation bus (Redis) is back",
    ),
    "malformed": (
        logging.WARNING,
        "the revocation stream holds an entry this package did not write; skipped",
    ),
    "listener_error": (logging.WARNING, "a revocation listener failed"),
    "gap_listener_error": (logging.WARNING, "a revocation gap listener failed"),
}


class RedisRevocationBus(RevocationBus):
    """A :class:`~asgi_sso.identity.revocation.RevocationBus` shared by every process through Redis.

    Args:
        redis: a ``redis://`` / ``rediss://`` URL (the bus owns and closes the
            client) or an existing :class:`redis.asyncio.Redis` (left open).
        prefix: prepended to the stream and epoch keys.
        retention: about how many revocations the stream keeps (``MAXLEN ~``);
            a process disconnected for longer than that many revocations sees a gap.
        block: seconds one ``XREAD`` waits for news; keep it below the client's
            socket timeout.
        backoff: the first and the longest wait, in seconds, between reconnects.
        outbox: most revocations kept while Redis is down (oldest dropped first).
        on_gap: called when revocations may have been lost (see the module docs).
        emitter: receives ``revocation.bus`` events (connected, disconnected, gap, and
            unreachable for each failed attempt before the first connection).
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention: int = 10_000,
        block: float = 1.0,
        backoff: tuple[float, float] = (0.05, 2.0),
        outbox: int = 1_000,
        on_gap: GapListener | None = None,
        emitter: Emitter = NULL_EMITTER,
    ) -> None:
        super().__init__()
        if retention < 1 or outbox < 1:
            raise ConfigurationError("RedisRevocationBus retention and outbox must be positive")
        if block <= 0 or not 0 < backoff[0] <= backoff[1]:
            raise ConfigurationError("RedisRevocationBus block and backoff must be positive")
        prefix = check_prefix(prefix)
        self._stream = f"{prefix}revocations"
        self._epoch_key = f"{prefix}revocations:epoch"
        self._redis, self._owned = client_from(redis, timeout=max(2.0, block + 1.0))
        self._retention = retention
        self._block_ms = max(1, int(block * 1000))
        self._backoff = backoff
        self._outbox: deque[bytes] = deque(maxlen=outbox)
        if on_gap is not None:
            self._gap_listeners.append(on_gap)
        self._emitter = emitter
        self.instance_id = uuid.uuid4().hex
        self._epoch: str | None = None
        self._last_id = _START
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._connected = asyncio.Event()
        self._late_start = False
        self._troubled = False  # logged the start of an outage, not yet its end
        self._throttle = Throttle()
        self.gaps = 0

    def __repr__(self) -> str:
        return f"RedisRevocationBus(stream={self._stream!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """Whether the subscriber is reading the stream right now (for health checks)."""
        return self._connected.is_set()

    async def wait_connected(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the subscriber to be reading; return whether it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within)
        return self.connected

    async def publish(self, revocation: Revocation) -> None:
        """Apply ``revocation`` here, then append it to the shared stream (or the outbox)."""
        try:
            await self.deliver(revocation)
        finally:
            # Broadcast even when a local listener failed (say, its store is down).
            payload = _encoder.encode(revocation)
            try:
                await self._append(payload)
            except Exception:
                # Redis is down: the subscriber task sends the outbox once it reconnects.
                self._outbox.append(payload)
                self._emit("publish_deferred")

    async def start(self) -> None:
        """Start the subscriber task (idempotent); it connects and reconnects by itself."""
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="asgi_sso-revocations"
            )

    async def close(self) -> None:
        """Stop the subscriber task and close the client when the bus created it."""
        task, self._task = self._task, None
        self._closing = True
        if task is not None:
            # redis-py may swallow a cancellation in a blocking read; the flag ends the
            # loop at the latest when that read returns (``block`` seconds).
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, self._block_ms / 1000 + 5)
        self._connected.clear()
        if self._owned:
            await self._redis.aclose()

    async def _append(self, payload: bytes) -> None:
        fields: dict[Any, Any] = {"r": payload, "o": self.instance_id}
        await self._redis.xadd(self._stream, fields, maxlen=self._retention, approximate=True)

    async def _run(self) -> None:
        delay = self._backoff[0]
        while not self._closing:
            try:
                await self._reconcile()
                self._connected.set()
                self._emit("connected")
                delay = self._backoff[0]
                while not self._closing:
                    await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._epoch is None:
                    self._late_start = True
                    self._emit("unreachable")
                if self._connected.is_set():
                    self._connected.clear()
                    self._emit("disconnected")
                await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter
                delay = min(delay * 2, self._backoff[1])

    async def _reconcile(self) -> None:
        """On (re)connect: detect lost entries, pick the read position, flush the outbox."""
        await self._redis.set(self._epoch_key, uuid.uuid4().hex, nx=True)
        raw_epoch = await self._redis.get(self._epoch_key)
        epoch = raw_epoch.decode() if isinstance(raw_epoch, bytes) else str(raw_epoch)
        if self._epoch is None:
            # First connection: everything before now was applied by its publisher already.
            latest = await self._redis.xrevrange(self._stream, count=1)
            self._last_id = _entry_id(latest[0][0]) if latest else _START  # type: ignore[arg-type]
            if self._late_start:
                # This process has been serving since start() without reading the
                # stream, and where the stream stood then is unknown: whatever was
                # revoked meanwhile is lost to it.
                await self._gap()
        elif epoch != self._epoch:
            # A fresh Redis: whatever the old one held and we had not read is gone; read
            # the new stream from its beginning (revocations published since the restart).
            self._last_id = _START
            await self._gap()
        elif await self._trimmed_past_last():
            await self._gap()
        self._epoch = epoch
        while self._outbox:
            await self._append(self._outbox[0])
            self._outbox.popleft()

    async def _trimmed_past_last(self) -> bool:
        """Whether an entry after the last one read was deleted or trimmed away."""
        try:
            info = await self._redis.xinfo_stream(self._stream)
        except Exception:  # no stream at all: nothing was written since
            return False
        deleted = info.get("max-deleted-entry-id")  # XDEL (Redis 7+)
        if deleted is not None and _id_tuple(_entry_id(deleted)) > _id_tuple(self._last_id):
            return True
        if self._last_id == _START:
            return int(info.get("entries-added", 0)) > int(info.get("length", 0))
        # Trimming removes the oldest entries first: while the last entry we read is
        # still there, nothing after it can be gone.
        kept = await self._redis.xrange(self._stream, min=self._last_id, max=self._last_id)
        return not kept

    async def _read_once(self) -> None:
        response: list[Any] = await self._redis.xread(  # type: ignore[assignment]
            {self._stream: self._last_id}, count=100, block=self._block_ms
        )
        for _stream, entries in response or ():
            for entry_id, fields in entries:
                self._last_id = _entry_id(entry_id)
                await self._handle(fields)

    async def _handle(self, fields: dict[Any, Any]) -> None:
        origin = fields.get(b"o", fields.get("o"))
        if isinstance(origin, bytes):
            origin = origin.decode(errors="replace")
        if origin == self.instance_id:
            return  # delivered locally when it was published
        try:
            revocation = _decoder.decode(fields.get(b"r", fields.get("r", b"")))
        except Exception:  # an entry we did not write
            self._emit("malformed")
            return
        try:
            await self.deliver(revocation)
        except Exception:  # a failing listener must not stop the broadcast
            self._emit("listener_error")

    async def _gap(self) -> None:
        self.gaps += 1
        self._emit("gap")
        for listener in self._gap_listeners:
            try:
                result = listener()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the reader must keep running; the event says what happened
                self._emit("gap_listener_error")

    def _emit(self, outcome: str) -> None:
        self._report(outcome)
        if self._emitter.enabled:
            self._emitter.emit(Event(name="revocation.bus", outcome=outcome))

    def _report(self, outcome: str) -> None:
        # One record per outage (its start and its end); the rest at most once a minute.
        report = _REPORTS.get(outcome)
        if report is None:
            return
        level, message = report
        if outcome in ("unreachable", "disconnected", "connected"):
            if (outcome == "connected") != self._troubled:
                return
            self._troubled = outcome != "connected"
            _log.log(level, message)
            return
        count = self._throttle.allow(outcome)
        if count is not None:
            _log.log(level, "%s%s", message, held_back(count))


def _entry_id(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
