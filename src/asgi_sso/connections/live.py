"""The connections a worker uses now: a snapshot kept current without a restart.

:class:`LiveConnections` loads the store at start-up, then a background task asks
it for its revision every ``poll_interval`` seconds (a request never waits for
it) and loads it again when the revision moved, so a change made anywhere is in
use in every worker within about ``poll_interval`` seconds, with or without
traffic. A change
announced on the revocation bus (``Revocation(kind="connection")``, broadcast
to every worker by the Redis bus) starts that check at once. Listeners learn
each new snapshot; a store that cannot be reached leaves the last one in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from asgi_sso.config import Clock
from asgi_sso.connections.directory import ConnectionDirectory
from asgi_sso.connections.model import Connection
from asgi_sso.errors import ConfigurationError
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event

if TYPE_CHECKING:
    from asgi_sso.connections.store import ConnectionStore

__all__ = ["Admit", "ChangeListener", "LiveConnections", "admission"]

ChangeListener = Callable[[ConnectionDirectory, ConnectionDirectory], None]
"""Called with the old and the new snapshot after every change."""

Admit = Callable[[Connection], str | None]
"""Returns why a connection must be left out of the snapshot, or ``None``."""

_log = logging.getLogger(__name__)


def admission(admit: Admit, connection: Connection) -> str | None:
    """Why ``admit`` leaves ``connection`` out, or ``None``; a check that raises refuses it.

    A failing check costs that one connection, never the whole reload or write: the
    other connections' changes (a disable included) must still apply.
    """
    try:
        return admit(connection)
    except Exception as exc:
        return f"it could not be checked ({type(exc).__name__})"


class LiveConnections:
    """The current :class:`ConnectionDirectory` of one worker.

    Args:
        store: where the connections are kept.
        clock: wall time for events.
        poll_interval: how often the store's revision is checked, seconds.
        emitter: receives ``connections.reload`` events.
        admit: returns why a connection must be left out of the snapshot (it
            collides with a configured issuer, names an unknown tier), or ``None``;
            while a load is checked, :attr:`admitting` holds the connections it let in
            so far (those in use and unchanged come first).
    """

    def __init__(
        self,
        store: ConnectionStore,
        *,
        clock: Clock,
        poll_interval: float,
        emitter: Emitter = NULL_EMITTER,
        admit: Admit | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._interval = poll_interval
        self._emitter = emitter
        self._admit = admit
        self._directory = ConnectionDirectory()
        self._revision: str | None = None
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._listeners: list[ChangeListener] = []
        self._lock = asyncio.Lock()
        self._unreachable = False  # the store failed since the last good check
        self.refused: dict[str, str] = {}
        # The connections admitted so far while a load is checked, else None: what
        # admit may compare a connection with (a kid another one uses).
        self.admitting: list[Connection] | None = None

    @property
    def directory(self) -> ConnectionDirectory:
        """The snapshot in use."""
        return self._directory

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener(old, new)`` after every change of the snapshot."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Open the store and load the first snapshot.

        Raises:
            StoreUnavailable: the store cannot be reached.
        """
        await self.store.start()
        await self.reload()
        if self._poller is None or self._poller.done():
            self._wake = asyncio.Event()
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def close(self) -> None:
        """Stop the background task and close the store."""
        poller, self._poller = self._poller, None
        if poller is not None and not poller.done():
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        await self.store.close()

    def changed(self) -> None:
        """A change was announced: check the store now, not at the next interval."""
        self._wake.set()

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.check()

    async def reload(self) -> ConnectionDirectory:
        """Load every connection from the store and make it the snapshot in use."""
        async with self._lock:
            revision, items = await self.store.load()
            admitted, refused = self._admitted(items)
            try:
                directory = ConnectionDirectory(admitted)
            except ConfigurationError as exc:  # a store that let a conflict through
                self._emit("error", str(exc))
                _log.warning(
                    "the connections were not reloaded (%s); the %d loaded before stay in use",
                    exc,
                    len(self._directory),
                )
                return self._directory
            old, self._directory, self._revision = self._directory, directory, revision
            for connection_id, reason in refused.items():
                if self.refused.get(connection_id) != reason:
                    self._emit("refused", f"connection {connection_id!r}: {reason}")
                    _log.warning("connection %r is left out: %s", connection_id, reason)
            self.refused = refused
        for listener in self._listeners:
            listener(old, directory)
        return directory

    def _admitted(self, items: list[Connection]) -> tuple[list[Connection], dict[str, str]]:
        if self._admit is None:
            return items, {}
        # The connections in use, unchanged, are checked first: a newcomer or a change
        # never displaces one (by taking a kid it publishes, say).
        ordered = sorted(items, key=lambda c: self._directory.get(c.id) != c)
        refused: dict[str, str] = {}
        self.admitting = admitted = []
        try:
            for connection in ordered:
                reason = admission(self._admit, connection)
                if reason is None:
                    admitted.append(connection)
                else:
                    refused[connection.id] = reason
        finally:
            self.admitting = None
        return [c for c in items if c.id not in refused], refused

    async def check(self) -> bool:
        """Load the store again if its revision moved; return whether it did.

        A store that cannot be reached leaves the last snapshot in use (and emits
        an event); the next interval tries again.
        """
        try:
            if await self.store.revision() == self._revision:
                self._reachable()
                return False
            await self.reload()
        except Exception as exc:
            # A store of the app's own may raise anything: the background task must go
            # on, or this worker would never see another change (a disable included).
            self._emit("error", type(exc).__name__)
            if not self._unreachable:  # once per outage, not every poll
                self._unreachable = True
                _log.warning(
                    "the connection store cannot be read (%s); the %d connections loaded "
                    "before stay in use until it can",
                    type(exc).__name__,
                    len(self._directory),
                )
            return False
        self._reachable()
        return True

    def _reachable(self) -> None:
        if self._unreachable:
            self._unreachable = False
            _log.info("the connection store can be read again")

    def _emit(self, outcome: str, reason: str) -> None:
        if self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name="connections.reload",
                    outcome=outcome,
                    reason=reason,
                    time=self._clock.time(),
                )
            )
