"""Tests for the Prometheus event sink."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from prometheus_client import CollectorRegistry

from asgi_sso.errors import ConfigurationError
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.observe.metrics import PrometheusSink


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def sink(registry: CollectorRegistry) -> PrometheusSink:
    return PrometheusSink(registry)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_verifications_are_counted_by_outcome_reason_and_issuer(
    sink: PrometheusSink, registry: CollectorRegistry
) -> None:
    sink(Event(name="verify", outcome="ok", issuer="okta", duration=0.00002))
    sink(Event(name="verify", outcome="ok", issuer="okta", duration=0.00003))
    sink(Event(name="verify", outcome="refused", reason="expired", issuer="okta"))
    name = "asgi_sso_verifications_total"
    assert value(registry, name, outcome="ok", reason="", issuer="okta") == 2
    assert value(registry, name, outcome="refused", reason="expired", issuer="okta") == 1
    assert value(registry, "asgi_sso_verify_seconds_count", outcome="ok") == 2
    assert value(registry, "asgi_sso_verify_seconds_sum", outcome="ok") == pytest.approx(0.00005)
    assert value(registry, "asgi_sso_verify_seconds_count", outcome="refused") == 0


def test_cache_hit_ratio_is_derivable(sink: PrometheusSink, registry: CollectorRegistry) -> None:
    for _ in range(3):
        sink(Event(name="cache.hit"))
    sink(Event(name="cache.miss"))
    hits = value(registry, "asgi_sso_token_cache_total", result="hit")
    misses = value(registry, "asgi_sso_token_cache_total", result="miss")
    assert hits / (hits + misses) == 0.75


def test_jwks_and_discovery_fetches_are_counted_with_latency(
    sink: PrometheusSink, registry: CollectorRegistry
) -> None:
    sink(Event(name="jwks.fetch", outcome="ok", duration=0.04))
    sink(Event(name="jwks.fetch", outcome="error", duration=5.0))
    sink(Event(name="jwks.fetch", outcome="stale"))
    sink(Event(name="discovery.fetch", outcome="ok", duration=0.2))
    assert value(registry, "asgi_sso_jwks_fetches_total", result="ok") == 1
    assert value(registry, "asgi_sso_jwks_fetches_total", result="error") == 1
    assert value(registry, "asgi_sso_jwks_fetches_total", result="stale") == 1
    assert value(registry, "asgi_sso_jwks_fetch_seconds_count") == 2
    assert value(registry, "asgi_sso_jwks_fetch_seconds_bucket", le="0.05") == 1
    assert value(registry, "asgi_sso_discovery_fetches_total", result="ok") == 1
    assert value(registry, "asgi_sso_discovery_fetch_seconds_count") == 1


def test_sessions_provisioning_and_deprovisioning(
    sink: PrometheusSink, registry: CollectorRegistry
) -> None:
    sink(Event(name="session.created"))
    sink(Event(name="session.created"))
    sink(Event(name="session.ended"))
    sink(Event(name="session.refreshed"))
    sink(Event(name="provision", outcome="created"))
    sink(Event(name="deprovision", detail={"kind": "scim"}))
    sink(Event(name="deprovision"))
    sink(Event(name="backchannel_logout"))
    sink(Event(name="backchannel_logout", outcome="refused", reason="invalid_request"))
    assert value(registry, "asgi_sso_sessions_total", event="created") == 2
    assert value(registry, "asgi_sso_sessions_total", event="ended") == 1
    assert value(registry, "asgi_sso_sessions_total", event="refreshed") == 1
    assert value(registry, "asgi_sso_provisioning_total", outcome="created") == 1
    name = "asgi_sso_deprovisioning_total"
    assert value(registry, name, kind="scim", outcome="ok") == 1
    assert value(registry, name, kind="deprovision", outcome="ok") == 1
    assert value(registry, name, kind="backchannel_logout", outcome="ok") == 1
    assert value(registry, name, kind="backchannel_logout", outcome="refused") == 1


def test_signins_refusals_and_logouts(sink: PrometheusSink, registry: CollectorRegistry) -> None:
    sink(Event(name="signin", outcome="ok"))
    sink(Event(name="signin", outcome="error", reason="state"))
    sink(Event(name="refusal", outcome="refused", reason="signature"))
    sink(Event(name="logout"))
    assert value(registry, "asgi_sso_signins_total", outcome="ok") == 1
    assert value(registry, "asgi_sso_signins_total", outcome="error") == 1
    assert value(registry, "asgi_sso_refusals_total", reason="signature") == 1
    assert value(registry, "asgi_sso_logouts_total") == 1


def test_unknown_events_are_ignored(sink: PrometheusSink, registry: CollectorRegistry) -> None:
    sink(Event(name="something.new"))
    assert value(registry, "asgi_sso_logouts_total") == 0


def test_attacker_chosen_labels_cannot_explode_series(registry: CollectorRegistry) -> None:
    sink = PrometheusSink(registry, max_label_values=3)
    for n in range(50):
        sink(Event(name="verify", outcome="refused", reason="issuer", issuer=f"https://evil/{n}"))
    sink(Event(name="verify", outcome="refused", reason="issuer", issuer="x" * 500))
    issuers = {
        s.labels["issuer"]
        for metric in registry.collect()
        if metric.name == "asgi_sso_verifications"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert issuers == {"https://evil/0", "https://evil/1", "https://evil/2", "other"}
    name = "asgi_sso_verifications_total"
    assert value(registry, name, outcome="refused", reason="issuer", issuer="other") == 48


def test_two_sinks_in_one_registry_are_a_configuration_error(registry: CollectorRegistry) -> None:
    PrometheusSink(registry)
    with pytest.raises(ConfigurationError, match="already registered"):
        PrometheusSink(registry)
    PrometheusSink(registry, namespace="other_app")


def test_bad_label_limit_is_a_configuration_error(registry: CollectorRegistry) -> None:
    with pytest.raises(ConfigurationError):
        PrometheusSink(registry, max_label_values=0)


def test_sink_works_through_the_emitter(sink: PrometheusSink, registry: CollectorRegistry) -> None:
    emitter = Emitter([sink])
    assert emitter.enabled
    emitter.emit(Event(name="logout"))
    assert value(registry, "asgi_sso_logouts_total") == 1


async def test_asgi_app_serves_the_text_format(
    sink: PrometheusSink, registry: CollectorRegistry
) -> None:
    sink(Event(name="cache.hit"))
    transport = httpx.ASGITransport(app=sink.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert 'asgi_sso_token_cache_total{result="hit"} 1.0' in response.text


def test_importing_the_module_does_not_import_prometheus_client() -> None:
    code = (
        "import sys, asgi_sso.observe.metrics, asgi_sso.observe.events;"
        "print('prometheus_client' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


async def test_hit_ratio_of_requests_through_the_middleware(
    sink: PrometheusSink, registry: CollectorRegistry
) -> None:
    from starlette.responses import PlainTextResponse

    from asgi_sso import SSOMiddleware
    from asgi_sso.testing import DevIdP, DevUser

    idp = DevIdP("http://idp.test", users=[DevUser(sub="alice", email="alice@acme.test")])
    async with idp.http_client() as http:
        app = SSOMiddleware(
            PlainTextResponse("ok"),
            [idp.issuer_config(audience="api://x")],
            http_client=http,
            event_sinks=[sink],
        )
        token = idp.issue_token("alice", audience="api://x")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(4):
                r = await client.get("/", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200
    # A token is stored from its second sighting: two misses, then hits.
    assert value(registry, "asgi_sso_token_cache_total", result="hit") == 2
    assert value(registry, "asgi_sso_token_cache_total", result="miss") == 2
