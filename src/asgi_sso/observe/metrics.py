"""Prometheus metrics: an event sink that turns :class:`~asgi_sso.Event` into counters.

Optional: needs the ``prometheus`` extra (``pip install asgi-sso[prometheus]``).
``prometheus_client`` is imported only when a :class:`PrometheusSink` is built, so
importing this module, or not configuring it, costs nothing.

Labels are bounded: an ``issuer`` or ``reason`` an attacker can influence (the
``iss`` of a refused token, say) never creates more than ``max_label_values``
series per label; later values are counted under ``"other"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from asgi_sso.errors import ConfigurationError
from asgi_sso.observe.events import Event

__all__ = ["DEFAULT_FETCH_BUCKETS", "DEFAULT_VERIFY_BUCKETS", "PrometheusSink"]

DEFAULT_VERIFY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
)  # fmt: skip
"""Seconds; a cache hit is microseconds, an RSA check tens of microseconds."""

DEFAULT_FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds; a JWKS fetch is a network round trip to the IdP."""

_OTHER = "other"
_NONE = ""
_MAX_LABEL_LENGTH = 64


class _LabelGuard:
    """Caps the distinct values one label may take, so series cannot explode."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return _NONE
        if value in self._seen:
            return value
        if len(value) > _MAX_LABEL_LENGTH or len(self._seen) >= self._limit:
            return _OTHER
        self._seen.add(value)
        return value


class PrometheusSink:
    """Counts what the middleware does, for a Prometheus scrape.

    Pass it in ``event_sinks=[PrometheusSink()]``. Exposed series (with the default
    ``namespace="asgi_sso"``):

    * ``asgi_sso_verifications_total{outcome,reason,issuer}`` and the
      ``asgi_sso_verify_seconds{outcome}`` histogram;
    * ``asgi_sso_token_cache_total{result}`` (``hit``/``miss``: the hit ratio is
      ``rate(..{result="hit"}) / rate(..)``);
    * ``asgi_sso_jwks_fetches_total{result}``, ``asgi_sso_jwks_fetch_seconds``,
      ``asgi_sso_discovery_fetches_total{result}``, ``asgi_sso_discovery_fetch_seconds``;
    * ``asgi_sso_signins_total{outcome}``, ``asgi_sso_refusals_total{reason}``,
      ``asgi_sso_logouts_total``;
    * ``asgi_sso_sessions_total{event}`` (``created``/``ended``);
    * ``asgi_sso_provisioning_total{outcome}``;
    * ``asgi_sso_deprovisioning_total{kind,outcome}`` (``kind`` is
      ``backchannel_logout``, the ``kind`` a deprovisioning event's detail names,
      or ``deprovision``; a refused logout token counts with ``outcome="refused"``).

    Args:
        registry: the ``CollectorRegistry`` to register in; defaults to the
            global ``prometheus_client.REGISTRY``. Tests pass their own.
        namespace: the metric name prefix.
        verify_buckets: histogram buckets of verification latency, in seconds.
        fetch_buckets: histogram buckets of JWKS / discovery fetch latency.
        max_label_values: the most distinct values one label takes before
            further ones are counted as ``"other"``.

    Raises:
        ConfigurationError: ``prometheus-client`` is not installed, or a
            metric of the same name is already registered in ``registry``.
    """

    def __init__(
        self,
        registry: Any = None,
        *,
        namespace: str = "asgi_sso",
        verify_buckets: tuple[float, ...] = DEFAULT_VERIFY_BUCKETS,
        fetch_buckets: tuple[float, ...] = DEFAULT_FETCH_BUCKETS,
        max_label_values: int = 100,
    ) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "PrometheusSink needs prometheus-client: pip install 'asgi-sso[prometheus]'"
            ) from exc
        if max_label_values < 1:
            raise ConfigurationError("max_label_values must be at least 1")
        self._prom = prom
        self.registry = prom.REGISTRY if registry is None else registry
        self._register(namespace, verify_buckets, fetch_buckets)
        self._issuer = _LabelGuard(max_label_values)
        self._reason = _LabelGuard(max_label_values)
        self._kind = _LabelGuard(max_label_values)
        self._outcome = _LabelGuard(max_label_values)
        self._handlers = self._handler_table()

    def _register(
        self, namespace: str, verify_buckets: tuple[float, ...], fetch_buckets: tuple[float, ...]
    ) -> None:
        prom, ns = self._prom, namespace

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return prom.Counter(name, doc, labels, namespace=ns, registry=self.registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Any:
            return prom.Histogram(
                name, doc, labels, namespace=ns, registry=self.registry, buckets=buckets
            )

        try:
            self.verifications = counter(
                "verifications", "Token verifications.", ("outcome", "reason", "issuer")
            )
            self.verify_seconds = histogram(
                "verify_seconds", "Verification time.", verify_buckets, "outcome"
            )
            self.token_cache = counter("token_cache", "Verified-token cache lookups.", ("result",))
            self.jwks_fetches = counter("jwks_fetches", "JWKS fetches.", ("result",))
            self.jwks_fetch_seconds = histogram(
                "jwks_fetch_seconds", "JWKS fetch time.", fetch_buckets
            )
            self.discovery_fetches = counter(
                "discovery_fetches", "OIDC discovery fetches.", ("result",)
            )
            self.discovery_fetch_seconds = histogram(
                "discovery_fetch_seconds", "Discovery fetch time.", fetch_buckets
            )
            self.signins = counter("signins", "Browser sign-ins.", ("outcome",))
            self.refusals = counter("refusals", "Refused requests.", ("reason",))
            self.logouts = counter("logouts", "Logouts.")
            self.sessions = counter("sessions", "Session lifecycle.", ("event",))
            self.provisioning = counter(
                "provisioning", "Just-in-time user provisioning.", ("outcome",)
            )
            self.deprovisioning = counter(
                "deprovisioning", "Deprovisioning events.", ("kind", "outcome")
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"metrics with namespace {namespace!r} are already registered in this registry"
            ) from exc

    def _handler_table(self) -> Mapping[str, Callable[[Event], None]]:
        return {
            "verify": self._on_verify,
            "cache.hit": self._on_cache,
            "cache.miss": self._on_cache,
            "jwks.fetch": self._on_jwks,
            "discovery.fetch": self._on_discovery,
            "signin": self._on_signin,
            "refusal": self._on_refusal,
            "logout": self._on_logout,
            "session.created": self._on_session,
            "session.ended": self._on_session,
            "session.refreshed": self._on_session,
            "provision": self._on_provision,
            "deprovision": self._on_deprovision,
            "backchannel_logout": self._on_deprovision,
        }

    def __call__(self, event: Event) -> None:
        """Count ``event``; unknown event names are ignored."""
        handler = self._handlers.get(event.name)
        if handler is not None:
            handler(event)

    def asgi_app(self) -> Any:
        """An ASGI app serving this sink's registry in the Prometheus text format."""
        return self._prom.make_asgi_app(registry=self.registry)

    def _on_verify(self, event: Event) -> None:
        outcome = self._outcome(event.outcome)
        self.verifications.labels(
            outcome=outcome, reason=self._reason(event.reason), issuer=self._issuer(event.issuer)
        ).inc()
        if event.duration is not None:
            self.verify_seconds.labels(outcome=outcome).observe(event.duration)

    def _on_cache(self, event: Event) -> None:
        self.token_cache.labels(result=event.name.partition(".")[2]).inc()

    def _on_jwks(self, event: Event) -> None:
        self.jwks_fetches.labels(result=self._outcome(event.outcome)).inc()
        if event.duration is not None:
            self.jwks_fetch_seconds.observe(event.duration)

    def _on_discovery(self, event: Event) -> None:
        self.discovery_fetches.labels(result=self._outcome(event.outcome)).inc()
        if event.duration is not None:
            self.discovery_fetch_seconds.observe(event.duration)

    def _on_signin(self, event: Event) -> None:
        self.signins.labels(outcome=self._outcome(event.outcome)).inc()

    def _on_refusal(self, event: Event) -> None:
        self.refusals.labels(reason=self._reason(event.reason)).inc()

    def _on_logout(self, event: Event) -> None:
        self.logouts.inc()

    def _on_session(self, event: Event) -> None:
        self.sessions.labels(event=event.name.partition(".")[2]).inc()

    def _on_provision(self, event: Event) -> None:
        self.provisioning.labels(outcome=self._outcome(event.outcome)).inc()

    def _on_deprovision(self, event: Event) -> None:
        kind = event.name
        if event.name == "deprovision" and event.detail is not None:
            named = event.detail.get("kind")
            if isinstance(named, str):
                kind = named
        self.deprovisioning.labels(
            kind=self._kind(kind), outcome=self._outcome(event.outcome)
        ).inc()
