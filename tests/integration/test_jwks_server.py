"""The JWKS and discovery caches against a real HTTP server on 127.0.0.1.

Lifetimes run on a fake monotonic clock; only the deadline test waits in real time.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _jwks_server import JWKSServer
from joserfc.jwk import ECKey

from asgi_sso.config import Limits
from asgi_sso.errors import KeysUnavailable, UnknownKey
from asgi_sso.keys import DiscoveryCache, JWKSCache
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import FakeClock


def jwk(kid: str) -> dict[str, Any]:
    return {**ECKey.generate_key("P-256").as_dict(private=False), "kid": kid}


@pytest.fixture
async def server() -> AsyncIterator[JWKSServer]:
    idp = JWKSServer()
    idp.keys = [jwk("k1")]
    await idp.start()
    try:
        yield idp
    finally:
        await idp.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_rotation_picked_up_on_unknown_kid_without_restart(
    server: JWKSServer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    cache = JWKSCache(client, clock=clock)
    uri = server.base + "/jwks"
    assert (await cache.find(uri, "k1", "ES256"))[0].kid == "k1"
    server.keys = [*server.keys, jwk("k2")]
    clock.now += 31  # past the refetch cooldown
    async with asyncio.timeout(10):
        (key,) = await cache.find(uri, "k2", "ES256")
    assert key.kid == "k2"
    assert server.count() == 2


async def test_outage_serves_stale_keys_then_refuses_past_max_age(
    server: JWKSServer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    events: list[Event] = []
    limits = Limits(jwks_stale_max_age=120.0)
    cache = JWKSCache(client, limits=limits, clock=clock, emitter=Emitter([events.append]))
    uri = server.base + "/jwks"
    good = await cache.get(uri)
    server.mode = "error"
    clock.now += 600  # expired (max-age=600)
    assert await cache.get(uri) is good
    assert (events[-1].outcome, events[-1].reason) == ("stale", "HTTP status 500")
    await server.stop()  # now connections are refused
    clock.now += 31
    assert await cache.get(uri) is good
    assert events[-1].outcome == "stale"
    assert "ConnectError" in (events[-1].reason or "")
    clock.now += 90  # 121 s past expiry
    with pytest.raises(KeysUnavailable):
        await cache.find(uri, "k1", "ES256")
    assert events[-1].outcome == "error"
    assert server.count() == 2  # the refused connection never reached the handler


async def test_trickling_idp_fails_within_the_fetch_deadline(
    server: JWKSServer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    server.mode = "trickle"  # one byte every 0.2 s: ~40 s for the whole body
    cache = JWKSCache(client, limits=Limits(fetch_timeout=1.0), clock=clock)
    started = time.monotonic()
    async with asyncio.timeout(10):
        with pytest.raises(KeysUnavailable, match="no complete answer"):
            await cache.find(server.base + "/jwks", "k1", "ES256")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0
    assert server.count() == 1


async def test_flood_of_unknown_kids_costs_the_idp_one_refetch(
    server: JWKSServer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    cache = JWKSCache(client, clock=clock)
    uri = server.base + "/jwks"
    await cache.prefetch(uri)
    clock.now += 31
    async with asyncio.timeout(20):
        outcomes = await asyncio.gather(
            *(cache.find(uri, secrets.token_hex(8), "ES256") for _ in range(1000)),
            return_exceptions=True,
        )
    assert all(isinstance(outcome, UnknownKey) for outcome in outcomes)
    assert server.count() == 2


async def test_cold_cache_under_load_fetches_once(
    server: JWKSServer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    cache = JWKSCache(client, clock=clock)
    uri = server.base + "/jwks"
    async with asyncio.timeout(20):
        found = await asyncio.gather(*(cache.find(uri, "k1", "ES256") for _ in range(1000)))
    assert {keys[0].kid for keys in found} == {"k1"}
    assert server.count() == 1


async def test_discovery_then_keys_from_a_dev_idp_over_http(
    server: JWKSServer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    discovery = DiscoveryCache(client, clock=clock)
    url = server.base + "/.well-known/openid-configuration"
    metadata = await discovery.get(url, expected_issuer=server.base)
    assert metadata.jwks_uri == server.base + "/jwks"
    keys = await JWKSCache(client, clock=clock).get(metadata.jwks_uri)
    assert keys.kids == {"k1"}
    assert await discovery.prefetch(url, expected_issuer=server.base + "/") is False
