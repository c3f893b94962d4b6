"""Observability: the events the middleware emits, and two sinks for them.

Every step reports through :class:`EventSink` (``emit(event)``); the audit log
(:class:`AuditLogger`) and Prometheus metrics (:class:`PrometheusSink`, the
``prometheus`` extra, imported lazily) are sinks like any other.
"""

from __future__ import annotations

from asgi_sso.observe.audit import AuditLogger
from asgi_sso.observe.events import Event, EventSink
from asgi_sso.observe.metrics import PrometheusSink

__all__ = ["AuditLogger", "Event", "EventSink", "PrometheusSink"]
