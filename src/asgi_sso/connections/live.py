"""The connections a worker uses now: a snapshot kept current without a restart.

:class:`LiveConnections` loads the store at start-up, then asks it for its
revision at most every ``poll_interval`` seconds, in the background (a request
never waits for it), and loads it again when the revision moved. A change
announced on the revocation bus (``Revocation(kind="connection")``, broadcast
to every worker by the Redis bus) starts that check at once. Listeners learn
each new snapshot; a store that cannot be reached leaves the last one in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from asgi_sso.config import Clock
from asgi_sso.connections.directory import ConnectionDirectory
from asgi_sso.connections.model import Connection
from asgi_sso.errors import ConfigurationError, SSOError
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event

if TYPE_CHECKING:
    from asgi_sso.connections.store import ConnectionStore

__all__ = ["ChangeListener", "LiveConnections"]

ChangeListener = Callable[[ConnectionDirectory, ConnectionDirectory], None]
"""Called with the old and the new snapshot after every change."""


class LiveConnections:
    """The current :class:`ConnectionDirectory` of one worker.

    Args:
        store: where the connections are kept.
        clock: monotonic time for the polling interval.
        poll_interval: how often the store's revision is checked, seconds.
        emitter: receives ``connections.reload`` events.
        admit: returns why a connection must be left out of the snapshot (it
            collides with a configured issuer, names an unknown tier), or ``None``.
    """

    def __init__(
        self,
        store: ConnectionStore,
        *,
        clock: Clock,
        poll_interval: float,
        emitter: Emitter = NULL_EMITTER,
        admit: Callable[[Connection], str | None] | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._interval = poll_interval
        self._emitter = emitter
        self._admit = admit
        self._directory = ConnectionDirectory()
        self._revision: str | None = None
        self._next_check = 0.0
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[ChangeListener] = []
        self._lock = asyncio.Lock()
        self.refused: dict[str, str] = {}

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

    async def close(self) -> None:
        """Stop a running check and close the store."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.store.close()

    def poll(self) -> None:
        """Start a background check of the store when one is due (called per request)."""
        if self._clock.monotonic() >= self._next_check and self._task is None:
            self._next_check = self._clock.monotonic() + self._interval
            self._task = asyncio.get_running_loop().create_task(self._check())

    def changed(self) -> None:
        """A change was announced: check the store now, not at the next interval."""
        self._next_check = 0.0
        self.poll()

    async def reload(self) -> ConnectionDirectory:
        """Load every connection from the store and make it the snapshot in use."""
        async with self._lock:
            revision, items = await self.store.load()
            admitted, refused = self._admitted(items)
            try:
                directory = ConnectionDirectory(admitted)
            except ConfigurationError as exc:  # a store that let a conflict through
                self._emit("error", str(exc))
                return self._directory
            old, self._directory, self._revision = self._directory, directory, revision
            self._next_check = self._clock.monotonic() + self._interval
            for connection_id, reason in refused.items():
                if self.refused.get(connection_id) != reason:
                    self._emit("refused", f"connection {connection_id!r}: {reason}")
            self.refused = refused
        for listener in self._listeners:
            listener(old, directory)
        return directory

    def _admitted(self, items: list[Connection]) -> tuple[list[Connection], dict[str, str]]:
        if self._admit is None:
            return items, {}
        admitted: list[Connection] = []
        refused: dict[str, str] = {}
        for connection in items:
            reason = self._admit(connection)
            if reason is None:
                admitted.append(connection)
            else:
                refused[connection.id] = reason
        return admitted, refused

    async def _check(self) -> None:
        try:
            if await self.store.revision() != self._revision:
                await self.reload()
        except SSOError as exc:
            # The last snapshot stays in use; the next interval tries again.
            self._emit("error", type(exc).__name__)
        finally:
            self._task = None

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
