"""Tests for asgi_sso.keys.discovery: exact issuer match, jwks_uri rules, caching via the IdP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from asgi_sso.config import Limits
from asgi_sso.errors import KeysUnavailable
from asgi_sso.keys.discovery import DiscoveryCache, ProviderMetadata, parse_metadata
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import FakeClock

ISSUER = "https://idp.example.com"
URL = ISSUER + "/.well-known/openid-configuration"


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "jwks_uri": ISSUER + "/keys",
        "authorization_endpoint": ISSUER + "/authorize",
        "token_endpoint": ISSUER + "/token",
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "some_vendor_extension": {"nested": [1, 2, 3]},
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def encode(doc: dict[str, Any]) -> bytes:
    return msgspec.json.encode(doc)


def test_metadata_is_decoded_and_unknown_fields_ignored() -> None:
    metadata = parse_metadata(encode(document()), expected_issuer=ISSUER)
    assert metadata.jwks_uri == ISSUER + "/keys"
    assert metadata.code_challenge_methods_supported == ("S256",)
    assert metadata.authorization_response_iss_parameter_supported is True
    assert metadata.backchannel_logout_supported is False
    assert metadata.end_session_endpoint is None


@pytest.mark.parametrize(
    "issuer", [ISSUER + "/", "https://IDP.example.com", "https://evil.example"]
)
def test_issuer_must_match_exactly(issuer: str) -> None:
    with pytest.raises(ValueError, match="names issuer"):
        parse_metadata(encode(document(issuer=issuer)), expected_issuer=ISSUER)


@pytest.mark.parametrize(
    ("jwks_uri", "issuer", "ok"),
    [
        ("https://idp.example.com/keys", ISSUER, True),
        ("http://idp.example.com/keys", ISSUER, False),
        ("http://localhost:8000/keys", ISSUER, True),
        ("http://127.0.0.1:8000/keys", ISSUER, True),
        ("http://[::1]:8000/keys", ISSUER, True),
        ("http://dev-idp:9000/keys", "http://dev-idp:9000", True),
        ("ftp://idp.example.com/keys", ISSUER, False),
        ("file:///etc/passwd", ISSUER, False),
        ("https:///keys", ISSUER, False),
        ("http://[::1/keys", ISSUER, False),
        ("/keys", ISSUER, False),
    ],
)
def test_jwks_uri_must_be_https_or_loopback_http(jwks_uri: str, issuer: str, ok: bool) -> None:
    body = encode(document(issuer=issuer, jwks_uri=jwks_uri))
    if ok:
        assert parse_metadata(body, expected_issuer=issuer).jwks_uri == jwks_uri
    else:
        with pytest.raises(ValueError, match="jwks_uri"):
            parse_metadata(body, expected_issuer=issuer)


@pytest.mark.parametrize(
    "body",
    [
        encode(document(jwks_uri=None)),
        encode(document(issuer=None)),
        encode(document(jwks_uri=5)),
        encode(document(scopes_supported="openid")),
        b"[]",
        b"not json",
        encode(document()).decode().encode("utf-16"),
        b"{" * 50_000,
    ],
)
def test_malformed_documents_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_metadata(body, expected_issuer=ISSUER)


class FakeProvider:
    def __init__(self) -> None:
        self.doc = document()
        self.status = 200
        self.requests = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(
            self.status, content=encode(self.doc), headers={"cache-control": "max-age=300"}
        )


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def client(provider: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handler)) as http:
        yield http


async def test_cache_fetches_once_and_refreshes_after_ttl(
    client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    clock = FakeClock()
    events: list[Event] = []
    cache = DiscoveryCache(client, clock=clock, emitter=Emitter([events.append]))
    first = await cache.get(URL, expected_issuer=ISSUER)
    assert isinstance(first, ProviderMetadata)
    assert await cache.get(URL, expected_issuer=ISSUER) is first
    assert cache.cached(URL) is first
    assert provider.requests == 1
    clock.now += 300
    await cache.get(URL, expected_issuer=ISSUER)
    assert provider.requests == 2
    assert cache.fetch_count(URL) == 2
    assert [(e.name, e.outcome) for e in events] == [("discovery.fetch", "ok")] * 2


async def test_issuer_mismatch_is_an_unavailable_failure_with_a_clear_reason(
    client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    provider.doc = document(issuer="https://other.example.com")
    cache = DiscoveryCache(client, clock=FakeClock())
    with pytest.raises(
        KeysUnavailable, match=re.escape("names issuer 'https://other.example.com'")
    ):
        await cache.get(URL, expected_issuer=ISSUER)
    assert "expected 'https://idp.example.com'" in cache.health()[URL]["last_error"]
    assert await cache.prefetch(URL, expected_issuer=ISSUER) is False


async def test_cached_document_is_not_served_for_another_expected_issuer(
    client: httpx.AsyncClient,
) -> None:
    cache = DiscoveryCache(client, clock=FakeClock())
    assert await cache.prefetch(URL, expected_issuer=ISSUER) is True
    with pytest.raises(KeysUnavailable, match="another issuer"):
        await cache.get(URL, expected_issuer="https://someone-else.example.com")


async def test_stale_metadata_served_while_the_provider_fails(
    client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    clock = FakeClock()
    events: list[Event] = []
    cache = DiscoveryCache(
        client, limits=Limits(jwks_stale_max_age=60), clock=clock, emitter=Emitter([events.append])
    )
    good = await cache.get(URL, expected_issuer=ISSUER)
    provider.status = 502
    clock.now += 301
    assert await cache.get(URL, expected_issuer=ISSUER) is good
    assert events[-1].outcome == "stale"
    clock.now += 60
    with pytest.raises(KeysUnavailable):
        await cache.get(URL, expected_issuer=ISSUER)
    assert cache.health()[URL]["servable"] is False


def test_shared_tenant_document_may_spell_the_placeholder_tenantid() -> None:
    from asgi_sso.keys.discovery import issuer_matches

    template = "https://login.microsoftonline.com/{tenant}/v2.0"
    assert issuer_matches("https://login.microsoftonline.com/{tenantid}/v2.0", template)
    assert issuer_matches(template, template)
    assert not issuer_matches("https://login.microsoftonline.com/evil/v2.0", template)
    assert not issuer_matches("https://idp.example/{tenantid}", "https://idp.example/")
    assert not issuer_matches("https://idp.example/", "https://idp.example")


class MemoryShared:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes, float]] = {}

    async def get(self, url: str) -> tuple[bytes, float] | None:
        return self.entries.get(url)

    async def put(self, url: str, body: bytes, expires_at: float) -> None:
        self.entries[url] = (body, expires_at)


async def test_shared_metadata_spares_a_second_worker_the_fetch(
    client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    clock = FakeClock()
    shared = MemoryShared()
    first = DiscoveryCache(client, clock=clock, shared=shared)
    await first.get(URL, expected_issuer=ISSUER)
    events: list[Event] = []
    second = DiscoveryCache(client, clock=clock, shared=shared, emitter=Emitter([events.append]))
    metadata = await second.get(URL, expected_issuer=ISSUER)
    assert metadata.jwks_uri == ISSUER + "/keys"
    assert provider.requests == 1
    assert [(e.name, e.outcome) for e in events] == [("discovery.fetch", "shared")]


async def test_shared_metadata_is_checked_like_the_providers(
    client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    clock = FakeClock()
    shared = MemoryShared()
    forged = encode(document(issuer="https://evil.example", jwks_uri="https://evil.example/k"))
    shared.entries[URL] = (forged, clock.time() + 300)
    events: list[Event] = []
    cache = DiscoveryCache(client, clock=clock, shared=shared, emitter=Emitter([events.append]))
    metadata = await cache.get(URL, expected_issuer=ISSUER)
    assert metadata.jwks_uri == ISSUER + "/keys"
    assert provider.requests == 1
    assert [(e.name, e.outcome) for e in events] == [
        ("shared_documents", "error"),
        ("discovery.fetch", "ok"),
    ]
    assert "names issuer 'https://evil.example'" in (events[0].reason or "")
    assert shared.entries[URL][0] == encode(provider.doc)


@pytest.mark.parametrize(
    "member",
    ["token_endpoint", "introspection_endpoint", "pushed_authorization_request_endpoint"],
)
def test_an_endpoint_the_client_authenticates_at_must_be_https(member: str) -> None:
    # Client secrets and assertions go to these: plain http would hand them to the network.
    body = encode(document(**{member: "http://idp.example.com/" + member}))
    with pytest.raises(ValueError, match=f"{member} must be an https URL"):
        parse_metadata(body, expected_issuer=ISSUER)
