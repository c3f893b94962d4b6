"""An in-memory, server-side :class:`~asgi_sso.sessions.base.SessionStore` for one process.

Bounded: the oldest sessions and sign-in states are evicted past the size
limits, so a flood of sign-in attempts cannot exhaust memory. Every method is a
few dict operations with no ``await`` in between, so each is atomic under asyncio.
"""

from __future__ import annotations

from asgi_sso.config import Clock, SystemClock
from asgi_sso.errors import ConfigurationError
from asgi_sso.sessions.base import SessionRecord, lease_kind

__all__ = ["MemorySessionStore"]


class MemorySessionStore:
    """Sessions and one-time states in dicts (insertion order = age).

    Args:
        clock: wall time for session expiry, monotonic time for state expiry.
        max_sessions: most sessions kept; the oldest is evicted beyond it.
        max_states: most one-time states, and most leases of each kind (refreshes in
            progress, sign-in callbacks taken), kept; expired ones go first, then the
            oldest.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_sessions: int = 100_000,
        max_states: int = 10_000,
    ) -> None:
        if max_sessions < 1 or max_states < 1:
            raise ConfigurationError("MemorySessionStore limits must be positive")
        self._clock: Clock = clock or SystemClock()
        self._max_sessions = max_sessions
        self._max_states = max_states
        self._sessions: dict[str, SessionRecord] = {}
        self._states: dict[str, tuple[float, bytes]] = {}
        self._leases: dict[str, dict[str, float]] = {}  # lease_kind → key → end

    async def create(self, record: SessionRecord) -> None:
        """Store a new session, evicting the oldest past the limit."""
        self._sessions.pop(record.id, None)
        self._sessions[record.id] = record
        while len(self._sessions) > self._max_sessions:
            del self._sessions[next(iter(self._sessions))]

    async def get(self, session_id: str) -> SessionRecord | None:
        """Return the live session, dropping it if it has expired."""
        record = self._sessions.get(session_id)
        if record is None:
            return None
        if record.expires_at <= self._clock.time():
            del self._sessions[session_id]
            return None
        return record

    async def update(self, record: SessionRecord) -> None:
        """Replace a session that still exists."""
        if record.id in self._sessions:
            self._sessions[record.id] = record

    async def delete(self, session_id: str) -> None:
        """End one session."""
        self._sessions.pop(session_id, None)

    async def delete_user(self, connection: str, subject: str) -> int:
        """End every session of ``(connection, subject)``."""
        doomed = [
            key
            for key, record in self._sessions.items()
            if record.connection == connection and record.subject == subject
        ]
        for key in doomed:
            del self._sessions[key]
        return len(doomed)

    async def delete_by_provider(self, issuer: str, *, sub: str | None, sid: str | None) -> int:
        """End the sessions of ``issuer`` with that ``sub`` and/or ``sid`` (see the protocol)."""
        if sub is None and sid is None:
            return 0
        doomed = [
            key
            for key, record in self._sessions.items()
            if record.issuer == issuer
            and (sid is None or record.sid == sid)
            and (sub is None or record.id_sub == sub)
        ]
        for key in doomed:
            del self._sessions[key]
        return len(doomed)

    async def put_state(self, key: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds."""
        self._states.pop(key, None)
        self._states[key] = (self._clock.monotonic() + ttl, value)
        while len(self._states) > self._max_states:
            del self._states[next(iter(self._states))]

    async def pop_state(self, key: str) -> bytes | None:
        """Take the state under ``key`` once; ``None`` if absent, taken or expired."""
        entry = self._states.pop(key, None)
        if entry is None or entry[0] <= self._clock.monotonic():
            return None
        return entry[1]

    async def claim(self, key: str, ttl: float) -> bool:
        """Take the lease ``key`` unless someone holds it; it lapses after ``ttl`` seconds."""
        now = self._clock.monotonic()
        leases = self._leases.setdefault(lease_kind(key), {})
        held = leases.get(key)
        if held is not None and held > now:
            return False
        if held is None and len(leases) >= self._max_states:
            for ended in [k for k, until in leases.items() if until <= now]:
                del leases[ended]
            while len(leases) >= self._max_states:
                del leases[next(iter(leases))]
        leases[key] = now + ttl
        return True

    async def close(self) -> None:
        """Forget everything."""
        self._sessions.clear()
        self._states.clear()
        self._leases.clear()
