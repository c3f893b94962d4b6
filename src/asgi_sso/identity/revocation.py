"""Revocation: tell every interested part of this process that access has ended.

Deactivation (SCIM), back-channel logout and logout publish a
:class:`Revocation`; the verified-token cache, the session store and the
identity layer subscribe and drop what they hold. :class:`RevocationBus` is the
in-process bus; the Redis extra broadcasts the same events to every worker.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec

__all__ = ["GapListener", "Revocation", "RevocationBus", "RevocationListener"]


class Revocation(msgspec.Struct, frozen=True, kw_only=True):
    """Access ended (or, with ``kind="reactivate"``, was restored).

    Attributes:
        kind: ``user`` (every token and session of a user), ``session`` (one
            local session, by ``session_id``), ``logout`` (the provider's
            back-channel logout: the sessions signed in at ``issuer`` with the ID
            token ``subject`` and/or the IdP ``session_id``), or ``reactivate``.
        connection: the connection id of the user (``user``, ``session``, ``reactivate``).
        subject: the user key at that connection (the issuer's ``user_claim``,
            ``Principal.identity``); for ``logout``, the ID token's ``sub``.
        issuer: the issuer (``logout``: the sign-in provider the logout names).
        session_id: the local session id; for ``logout``, the IdP ``sid``.
        time: wall-clock seconds when it was issued.
    """

    kind: Literal["user", "session", "logout", "reactivate", "connection"]
    connection: str | None = None
    subject: str | None = None
    issuer: str | None = None
    session_id: str | None = None
    time: float = 0.0


RevocationListener = Callable[[Revocation], Awaitable[None] | None]
GapListener = Callable[[], Awaitable[None] | None]


class RevocationBus:
    """Delivers revocations to local listeners, in order of subscription."""

    def __init__(self) -> None:
        self._listeners: list[RevocationListener] = []
        self._gap_listeners: list[GapListener] = []

    def subscribe(self, listener: RevocationListener) -> None:
        """Call ``listener`` for every revocation published from now on."""
        self._listeners.append(listener)

    def subscribe_gaps(self, listener: GapListener) -> None:
        """Call ``listener`` when revocations may have been missed (drop every cache).

        The in-process bus never misses one; a shared bus calls this after it lost
        messages, so caches fall back to the authoritative stores.
        """
        self._gap_listeners.append(listener)

    async def publish(self, revocation: Revocation) -> None:
        """Apply ``revocation`` in this process (subclasses also broadcast it)."""
        await self.deliver(revocation)

    async def deliver(self, revocation: Revocation) -> None:
        """Run every local listener on ``revocation``.

        A listener that fails (say, its store is down) does not stop the others;
        the first failure is raised once all have run.
        """
        failure: Exception | None = None
        for listener in self._listeners:
            try:
                result = listener(revocation)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    async def start(self) -> None:
        """Start background work (a subscription); nothing for the local bus."""

    async def close(self) -> None:
        """Stop background work; nothing for the local bus."""
