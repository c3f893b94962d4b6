"""The shared JWKS/discovery cache against the real Redis at 127.0.0.1:6379.

Two TokenVerifiers play two workers: the first fetches discovery and the JWKS
from a DevIdP, the second verifies a token without asking the IdP anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from asgi_sso.config import Limits
from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.redis import RedisDocumentCache
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import DevIdP, FakeClock
from asgi_sso.verify import TokenVerifier

URL = "https://idp.example.com/jwks"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(
    redis_url: str, redis_prefix: str, clock: FakeClock
) -> AsyncIterator[RedisDocumentCache]:
    documents = RedisDocumentCache(redis_url, prefix=redis_prefix, clock=clock)
    yield documents
    await documents.aclose()


async def test_a_second_verifier_needs_no_idp_request(
    redis_url: str, redis_prefix: str, clock: FakeClock
) -> None:
    idp = DevIdP(clock=clock)
    issuer = idp.issuer_config(audience="api")
    token = idp.issue_token(audience="api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=idp)) as http:
        verifiers: list[TokenVerifier] = []
        stores: list[RedisDocumentCache] = []
        events: list[Event] = []
        for _ in range(2):  # two workers: a client and a store each
            stores.append(RedisDocumentCache(redis_url, prefix=redis_prefix, clock=clock))
            verifiers.append(
                TokenVerifier(
                    [issuer],
                    client=http,
                    clock=clock,
                    emitter=Emitter([events.append]),
                    shared_documents=stores[-1],
                )
            )
        try:
            first = await verifiers[0].verify(token)
            fetched = dict(idp.requests)
            assert fetched == {"/.well-known/openid-configuration": 1, "/jwks": 1}
            second = await verifiers[1].verify(token)
            assert second.claims["sub"] == first.claims["sub"] == "user-1"
            assert dict(idp.requests) == fetched  # zero requests from the second worker
            shared = [(e.name, e.outcome) for e in events if e.outcome == "shared"]
            assert shared == [("discovery.fetch", "shared"), ("jwks.fetch", "shared")]
        finally:
            for verifier in verifiers:
                await verifier.aclose()
            for documents in stores:
                await documents.aclose()


async def test_bodies_round_trip_with_a_redis_ttl(
    store: RedisDocumentCache, redis_client: Redis, clock: FakeClock
) -> None:
    assert await store.get(URL) is None
    await store.put(URL, b'{"keys": []}', clock.time() + 120)
    assert await store.get(URL) == (b'{"keys": []}', clock.time() + 120)
    ttl_ms = await redis_client.pttl(store.key(URL))
    assert 0 < ttl_ms <= 120_000
    await store.put("https://other.example/jwks", b"{}", clock.time() - 1)  # already expired
    assert await store.get("https://other.example/jwks") is None


async def test_oversize_or_garbage_entries_read_as_absent(
    store: RedisDocumentCache, redis_client: Redis
) -> None:
    await redis_client.set(store.key(URL), b"\xc1 not msgpack")
    assert await store.get(URL) is None
    await redis_client.set(store.key(URL), b"x" * (Limits().max_document_bytes + 1024))
    assert await store.get(URL) is None


async def test_an_unreachable_redis_falls_back_to_the_idp(clock: FakeClock) -> None:
    idp = DevIdP(clock=clock)
    token = idp.issue_token(audience="api")
    documents = RedisDocumentCache("redis://127.0.0.1:1/0", clock=clock, timeout=0.2)
    events: list[Event] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=idp)) as http:
        verifier = TokenVerifier(
            [idp.issuer_config(audience="api")],
            client=http,
            clock=clock,
            emitter=Emitter([events.append]),
            shared_documents=documents,
        )
        try:
            assert (await verifier.verify(token)).claims["sub"] == "user-1"
        finally:
            await verifier.aclose()
            await documents.aclose()
    assert idp.requests["/jwks"] == 1
    assert {e.outcome for e in events if e.name == "shared_documents"} == {"error"}


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_settings_fail_at_start_up(timeout: float) -> None:
    with pytest.raises(ConfigurationError):
        RedisDocumentCache("redis://127.0.0.1:6379/0", timeout=timeout)


def test_bad_urls_and_prefixes_fail_without_echoing_secrets() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisDocumentCache("http://:pw-secret@127.0.0.1:6379")
    assert "pw-secret" not in str(caught.value)
    with pytest.raises(ConfigurationError):
        RedisDocumentCache("redis://127.0.0.1:6379/0", prefix="a b")
