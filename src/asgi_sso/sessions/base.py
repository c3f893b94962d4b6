"""The server-side session contract: the ``SessionStore`` protocol and its ``SessionRecord``.

A browser session is a :class:`SessionRecord`. The cookie-only mode carries the
whole record inside the encrypted cookie; a server-side store keeps it and the
cookie only names it. One-time sign-in state (``put_state``/``pop_state``) lives
in the same store so several workers share it.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from asgi_sso.errors import InvalidToken

__all__ = ["SessionInvalid", "SessionRecord", "SessionStore", "lease_kind"]


class SessionInvalid(InvalidToken):
    """The session cookie is tampered, truncated, expired, idle-timed-out or revoked.

    Attributes:
        headers: ``Set-Cookie`` headers that clear the bad cookie; the middleware
            adds them to the refusal (or to the redirect to sign in).
    """

    default_description = "the session is invalid"
    reason = "session"

    def __init__(
        self, description: str | None = None, *, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(description)
        self.headers: list[tuple[bytes, bytes]] = headers or []


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One signed-in browser session.

    Attributes:
        id: the local session id (random, URL-safe).
        subject: the user key: the sign-in issuer's ``user_claim`` (``sub`` by
            default), as ``Principal.identity``; user revocations match it.
        issuer: the ID token's ``iss``.
        connection: the connection id (``Principal.connection``).
        client_id: the OAuth client id of the app that signed the user in; with
            ``issuer`` it names the one app the session opens in.
        claims: the ID token and userinfo claims, minus bulky protocol ones.
        sid: the IdP session id (``sid`` claim), for back-channel logout.
        sub: the ID token's ``sub`` when it differs from ``subject`` (``None``: the
            same); back-channel logout matches :attr:`id_sub`.
        id_token: the raw ID token, for ``id_token_hint`` at logout (may be dropped).
        refresh_token: the refresh token (server-side stores only).
        dpop_key: the sign-in's DPoP private key as JWK JSON, kept with the refresh
            token (server-side stores only) so a refresh proves the same key.
        created_at: wall-clock seconds when the user signed in.
        last_seen: wall-clock seconds of the last request that touched the session.
        expires_at: wall-clock seconds of the absolute end of the session.
        refresh_at: wall-clock seconds from which the refresh token should be used
            (``0``: never; the session cannot or need not be refreshed).
    """

    id: str
    subject: str
    issuer: str
    connection: str
    client_id: str = ""
    claims: dict[str, Any] = {}
    sid: str | None = None
    sub: str | None = None
    id_token: str | None = None
    refresh_token: str | None = None
    dpop_key: str | None = None
    created_at: float = 0.0
    last_seen: float = 0.0
    expires_at: float = 0.0
    refresh_at: float = 0.0

    @property
    def id_sub(self) -> str:
        """The ID token's ``sub``: what a back-channel logout token names."""
        return self.subject if self.sub is None else self.sub

    def __repr__(self) -> str:
        # Tokens and claims never reach a log line (STYLE.md rule 10).
        return (
            f"SessionRecord(id={self.id[:6]!r}..., subject={self.subject!r}, "
            f"connection={self.connection!r}, expires_at={self.expires_at!r})"
        )

    __str__ = __repr__


class SessionStore(Protocol):
    """Where server-side sessions and one-time sign-in state live.

    Every method may raise :class:`~asgi_sso.errors.StoreUnavailable`. A record is
    gone (``get`` returns ``None``) once ``expires_at`` has passed.
    """

    async def create(self, record: SessionRecord) -> None:
        """Store a new session."""
        ...

    async def get(self, session_id: str) -> SessionRecord | None:
        """Return the live session named ``session_id``, or ``None``."""
        ...

    async def update(self, record: SessionRecord) -> None:
        """Replace a session (sliding ``last_seen``, refreshed tokens); no-op if gone."""
        ...

    async def delete(self, session_id: str) -> None:
        """End one session; no-op if gone."""
        ...

    async def delete_user(self, connection: str, subject: str) -> int:
        """End every session of a user; return how many ended."""
        ...

    async def delete_by_provider(self, issuer: str, *, sub: str | None, sid: str | None) -> int:
        """End the sessions a provider's back-channel logout names; return how many ended.

        Only sessions signed in at ``issuer`` match (OIDC Back-Channel Logout 1.0
        §2.7): with ``sid`` alone, those of that IdP session; with ``sub`` alone,
        every session whose :attr:`SessionRecord.id_sub` is ``sub``; with both,
        the sessions of that ``sid`` whose ``id_sub`` is ``sub``. Neither ends nothing.
        """
        ...

    async def put_state(self, key: str, value: bytes, ttl: float) -> None:
        """Keep one-time sign-in state for ``ttl`` seconds."""
        ...

    async def pop_state(self, key: str) -> bytes | None:
        """Take the state under ``key`` atomically: only the first caller gets it."""
        ...

    async def claim(self, key: str, ttl: float) -> bool:
        """Take a short lease named ``key`` for ``ttl`` seconds.

        A store may bound how many leases it keeps, but per :func:`lease_kind`: leases
        of one kind never push out those of another.

        Returns:
            ``True`` for exactly one caller until the lease expires (set-if-absent),
            so one worker refreshes a session's tokens while the others wait.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def lease_kind(key: str) -> str:
    """The kind of the lease ``key``: its text before the first ``:``, or ``""``.

    Stores bound their leases per kind, so a kind anyone can cause (``signin``: a
    ``/login`` of one's own, then a callback) never pushes out another (``refresh``:
    the one worker refreshing a session's tokens).
    """
    kind, sep, _ = key.partition(":")
    return kind if sep and len(kind) <= 32 and kind.isascii() and kind.isalnum() else ""
