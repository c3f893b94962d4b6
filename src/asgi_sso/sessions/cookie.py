"""The cookie-only session store (the default): the whole record travels in the encrypted cookie.

Nothing is kept on the server but bounded, short-lived marks: which users,
sessions and provider logouts were revoked (so a revocation ends cookie sessions
in this process until they would have expired anyway) and which sign-in states
were used once.
A record too large for :data:`MAX_CHUNKS` cookies is trimmed: the ID token goes
first, then every claim but a few identity ones.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from asgi_sso.config import Clock
from asgi_sso.sessions.base import SessionInvalid, SessionRecord
from asgi_sso.sessions.codec import CookieCodec

__all__ = ["CHUNK_SIZE", "MAX_CHUNKS", "CookieSessionStore"]

CHUNK_SIZE = 3800
"""Characters of cookie value per cookie: browsers keep at least 4096 bytes per cookie."""
MAX_CHUNKS = 4
"""Most cookies one session may use; keeps the ``Cookie`` header well under 16 KB."""
MAX_MARKS = 100_000
_KEPT_CLAIMS = frozenset(
    {"sub", "iss", "name", "email", "email_verified", "preferred_username", "tid", "sid"}
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SessionRecord)
_K = TypeVar("_K")


class CookieSessionStore:
    """Seals session records into cookies and remembers revocations for their lifetime.

    Args:
        codec: the session-purpose cookie codec.
        clock: wall time for revocation marks.
        lifetime: the absolute session lifetime; marks older than it are forgotten.
    """

    def __init__(self, codec: CookieCodec, *, clock: Clock, lifetime: float) -> None:
        self._codec = codec
        self._clock = clock
        self._lifetime = lifetime
        self._users: dict[tuple[str, str], float] = {}
        self._sessions: dict[str, float] = {}
        # (issuer, sub or "", sid or ""): "" matches any (a logout names sub, sid or both).
        self._logouts: dict[tuple[str, str, str], float] = {}
        self._used: dict[str, float] = {}

    def seal(self, record: SessionRecord) -> str:
        """Encrypt ``record``, trimming it until it fits in :data:`MAX_CHUNKS` cookies."""
        limit = CHUNK_SIZE * MAX_CHUNKS
        value = self._codec.encode(_encoder.encode(record))
        if len(value) <= limit:
            return value
        record = msgspec.structs.replace(record, id_token=None, refresh_token=None, dpop_key=None)
        value = self._codec.encode(_encoder.encode(record))
        if len(value) <= limit:
            return value
        kept = {k: v for k, v in record.claims.items() if k in _KEPT_CLAIMS}
        value = self._codec.encode(_encoder.encode(msgspec.structs.replace(record, claims=kept)))
        if len(value) <= limit:
            return value
        return self._codec.encode(_encoder.encode(msgspec.structs.replace(record, claims={})))

    def open(self, value: str) -> SessionRecord:
        """Decrypt and decode a sealed record; raise :class:`SessionInvalid` on any defect."""
        plaintext = self._codec.decode(value)
        try:
            return _decoder.decode(plaintext)
        except Exception as exc:  # a payload we did not write (old format, corruption)
            raise SessionInvalid("the session cookie is malformed") from exc

    def revoke_user(self, connection: str, subject: str, at: float) -> None:
        """End every session of the user created at or before ``at``."""
        self._prune()
        key = (connection, subject)
        self._users[key] = max(at, self._users.get(key, 0.0))
        self._bound(self._users)

    def revoke_session(self, session_id: str) -> None:
        """End the session whose local id is ``session_id``."""
        self._prune()
        self._sessions[session_id] = self._clock.time()
        self._bound(self._sessions)

    def revoke_logout(self, issuer: str, sub: str | None, sid: str | None, at: float) -> None:
        """End the sessions signed in at ``issuer`` by ``at`` that a provider logout names.

        As :meth:`~asgi_sso.sessions.SessionStore.delete_by_provider`: ``sub`` matches
        :attr:`SessionRecord.id_sub`, ``sid`` the IdP session; given both, both must match.
        """
        if not sub and not sid:
            return
        self._prune()
        key = (issuer, sub or "", sid or "")
        self._logouts[key] = max(at, self._logouts.get(key, 0.0))
        self._bound(self._logouts)

    def is_revoked(self, record: SessionRecord) -> bool:
        """Whether a revocation covers ``record``."""
        mark = self._users.get((record.connection, record.subject))
        if mark is not None and record.created_at <= mark:
            return True
        if record.id in self._sessions:
            return True
        return bool(self._logouts) and self._logged_out(record)

    def _logged_out(self, record: SessionRecord) -> bool:
        sub, sid = record.id_sub, record.sid
        keys = [(record.issuer, sub, "")]
        if sid:
            keys += [(record.issuer, "", sid), (record.issuer, sub, sid)]
        for key in keys:
            mark = self._logouts.get(key)
            if mark is not None and record.created_at <= mark:
                return True
        return False

    def first_use(self, key: str, ttl: float) -> bool:
        """Record a one-time key; ``False`` if it was already used within ``ttl`` seconds."""
        now = self._clock.time()
        while self._used:  # insertion order is expiry order: every state has the same ttl
            oldest = next(iter(self._used))
            if self._used[oldest] > now:
                break
            del self._used[oldest]
        if key in self._used:
            return False
        self._used[key] = now + ttl
        self._bound(self._used)
        return True

    def _prune(self) -> None:
        horizon = self._clock.time() - self._lifetime
        _drop_before(self._users, horizon)
        _drop_before(self._sessions, horizon)
        _drop_before(self._logouts, horizon)

    @staticmethod
    def _bound(marks: dict[_K, float]) -> None:
        while len(marks) > MAX_MARKS:
            del marks[next(iter(marks))]


def _drop_before(marks: dict[_K, float], horizon: float) -> None:
    for key in [k for k, at in marks.items() if at < horizon]:
        del marks[key]
