"""Observability events: one small record per thing an operator may want to count or audit.

Modules emit through an :class:`Emitter`; with no sinks configured, emitting is a
single attribute check, so observability costs nothing when unused. Sinks (a
plain callback, the Prometheus extra, the audit logger) receive every event.
An event never carries a token, a cookie or a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

__all__ = ["Emitter", "Event", "EventSink"]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Something happened.

    Attributes:
        name: what happened, dotted: ``verify``, ``jwks.fetch``, ``discovery.fetch``,
            ``cache.hit``, ``cache.miss``, ``signin``, ``refusal``, ``logout``,
            ``session.created``, ``session.ended``, ``provision``, ``deprovision``,
            ``backchannel_logout``.
        outcome: ``ok``, ``error``, ``refused``, ``stale`` …
        reason: the machine-readable reason (an :class:`~asgi_sso.errors.AuthError`
            ``reason``, or a short code).
        time: wall-clock seconds since the epoch.
        issuer: the issuer label, when known.
        connection: the connection id, when known.
        subject: the ``sub``, when known.
        client_ip: the peer address, when known.
        duration: seconds taken, for latency histograms.
        detail: extra, non-secret fields.
    """

    name: str
    outcome: str = "ok"
    reason: str | None = None
    time: float = 0.0
    issuer: str | None = None
    connection: str | None = None
    subject: str | None = None
    client_ip: str | None = None
    duration: float | None = None
    detail: dict[str, Any] | None = None


EventSink = Callable[[Event], None]


class Emitter:
    """Fans events out to sinks; a sink that raises never breaks a request."""

    __slots__ = ("_sinks", "enabled")

    def __init__(self, sinks: Sequence[EventSink] = ()) -> None:
        self._sinks = tuple(sinks)
        self.enabled = bool(self._sinks)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every sink (call only when :attr:`enabled`)."""
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # noqa: S112 - observability must not fail requests
                continue


NULL_EMITTER = Emitter()
