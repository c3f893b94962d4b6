"""Audit log: one structured stdlib ``logging`` record per sign-in, refusal, logout, deprovisioning.

:class:`AuditLogger` is an event sink. Each record carries its fields in
``extra=`` (``event``, ``outcome``, ``reason``, ``time``, ``issuer``,
``connection``, ``subject``, ``client_ip`` and an allow-listed ``detail``), so a
JSON formatter or any log pipeline routes them as structured data. A token, a
cookie or a secret never reaches a record: only allow-listed detail keys are
copied, every value is truncated, and anything shaped like a JWT is redacted
(the truncation comes first: the work per record is bounded).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable
from typing import Any

from asgi_sso.config import Clock, SystemClock
from asgi_sso.observe.events import Event

__all__ = ["AUDITED_EVENTS", "AUDIT_FIELDS", "SAFE_DETAIL_KEYS", "AuditLogger"]

AUDITED_EVENTS = frozenset({"signin", "refusal", "logout", "deprovision", "backchannel_logout"})
"""The event names written to the audit log by default."""

AUDIT_FIELDS = (
    "event", "outcome", "reason", "time", "issuer", "connection", "subject", "client_ip", "detail",
)  # fmt: skip
"""The ``extra=`` attributes every audit record carries (``None`` when unknown)."""

SAFE_DETAIL_KEYS = frozenset(
    {"kind", "method", "path", "status", "source", "tier", "user_id", "scopes", "count", "jti"}
)
"""Event ``detail`` keys copied into ``detail``; anything else is dropped."""

_MAX_VALUE_LENGTH = 256
_MAX_ITEMS = 32
_MAX_DEPTH = 2
_REDACTED = "[redacted]"
# A compact JWS/JWE: a base64url run holding a JSON header ("eyJ" and at least four
# more characters), a dot, another run, a dot. A match starts only where a run starts
# (the lookbehind) and runs are taken possessively, so each character is read at most
# twice: linear time. Where "eyJ" sits in the run is checked afterwards, in
# _looks_like_token (a pattern that searched for it inside the run would rescan the
# run from every "eyJ" in it: quadratic).
_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]++)(?=\.[A-Za-z0-9_-]*+\.)")


def _looks_like_token(text: str) -> bool:
    for match in _TOKEN_SHAPE.finditer(text):
        run = match.group(1)
        start = run.find("eyJ")
        if start >= 0 and len(run) - start >= 7:
            return True
    return False


def _clean(value: Any, depth: int = 0) -> Any:
    """A log-safe copy of one field value.

    Every value is cut to its limit before any pattern sees it, so the work per
    value is bounded whatever a request sent (a 100 KB path costs what 256
    characters cost). A cut value is checked as if the cut ended a token, so a
    token split by the cut is redacted too.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= _MAX_DEPTH:
            return "[...]"
        return [_clean(item, depth + 1) for item in itertools.islice(value, _MAX_ITEMS)]
    text = value if isinstance(value, str) else str(value)
    cut = text[:_MAX_VALUE_LENGTH]
    if _looks_like_token(cut + ".." if len(text) > _MAX_VALUE_LENGTH else cut):
        return _REDACTED
    return cut


class AuditLogger:
    """Writes audit events as structured ``logging`` records.

    Args:
        logger: the logger, or its name (default ``"asgi_sso.audit"``).
        level: the level of ordinary records.
        refusal_level: the level of refusals and failed outcomes.
        events: which event names to write (default :data:`AUDITED_EVENTS`).
        clock: fills ``time`` when an event carries none.

    Example:
        >>> import logging
        >>> logging.getLogger("asgi_sso.audit").setLevel(logging.INFO)
        >>> sink = AuditLogger()  # then SSOMiddleware(app, ..., event_sinks=[sink])
    """

    __slots__ = ("_clock", "_events", "_level", "_logger", "_refusal_level")

    def __init__(
        self,
        logger: logging.Logger | str = "asgi_sso.audit",
        *,
        level: int = logging.INFO,
        refusal_level: int = logging.WARNING,
        events: Iterable[str] = AUDITED_EVENTS,
        clock: Clock | None = None,
    ) -> None:
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._level = level
        self._refusal_level = refusal_level
        self._events = frozenset(events)
        self._clock: Clock = clock if clock is not None else SystemClock()

    @property
    def logger(self) -> logging.Logger:
        """The logger records are written to."""
        return self._logger

    def __call__(self, event: Event) -> None:
        """Write ``event`` when it is audited and the logger is enabled for its level."""
        if event.name not in self._events:
            return
        failed = event.name == "refusal" or event.outcome not in ("ok", "success")
        level = self._refusal_level if failed else self._level
        if not self._logger.isEnabledFor(level):
            return
        fields = self.fields(event)
        self._logger.log(
            level,
            "%s %s reason=%s connection=%s subject=%s client_ip=%s",
            fields["event"],
            fields["outcome"],
            fields["reason"],
            fields["connection"],
            fields["subject"],
            fields["client_ip"],
            extra=fields,
        )

    def fields(self, event: Event) -> dict[str, Any]:
        """The structured, log-safe fields of ``event`` (the record's ``extra``)."""
        detail = None
        if event.detail:
            detail = {
                key: _clean(value) for key, value in event.detail.items() if key in SAFE_DETAIL_KEYS
            }
        return {
            "event": event.name,
            "outcome": _clean(event.outcome),
            "reason": _clean(event.reason),
            "time": event.time or self._clock.time(),
            "issuer": _clean(event.issuer),
            "connection": _clean(event.connection),
            "subject": _clean(event.subject),
            "client_ip": _clean(event.client_ip),
            "detail": detail or None,
        }
