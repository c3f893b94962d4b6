"""Tests for asgi_sso.keys.jwks and the fetch and cache machinery (keys.fetch, keys.documents).

An httpx.MockTransport plays the IdP; a fake monotonic clock is advanced by hand.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from joserfc.jwk import ECKey, RSAKey

from asgi_sso.config import Limits
from asgi_sso.errors import KeysUnavailable, UnknownKey
from asgi_sso.keys import JWKSCache
from asgi_sso.keys.documents import DocumentCache
from asgi_sso.keys.fetch import max_age_of
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import FakeClock

URI = "https://idp.example.com/jwks"


class FakeIdP:
    """Serves a JWK set; counts requests; can fail, be slow, or hold requests at a gate."""

    def __init__(self, *jwks: dict[str, Any]) -> None:
        self.keys = list(jwks)
        self.requests = 0
        self.status = 200
        self.headers: dict[str, str] = {"cache-control": "max-age=600"}
        self.body: bytes | None = None
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.error: Exception | None = None

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        body = self.body if self.body is not None else msgspec.json.encode({"keys": self.keys})
        return httpx.Response(self.status, content=body, headers=self.headers)


def ec_jwk(kid: str) -> dict[str, Any]:
    return {**ECKey.generate_key("P-256").as_dict(private=False), "kid": kid}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP(ec_jwk("k1"))


@pytest.fixture
async def client(idp: FakeIdP) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.handler)) as http:
        yield http


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def cache(client: httpx.AsyncClient, clock: FakeClock, events: list[Event]) -> JWKSCache:
    return JWKSCache(client, clock=clock, emitter=Emitter([events.append]))


async def test_cold_get_fetches_once_then_serves_from_memory(
    cache: JWKSCache, idp: FakeIdP, events: list[Event]
) -> None:
    assert cache.cached(URI) is None
    keys = await cache.get(URI)
    assert keys.kids == {"k1"}
    assert await cache.get(URI) is keys
    assert cache.cached(URI) is keys
    assert idp.requests == 1
    assert cache.fetch_count(URI) == 1
    assert [(e.name, e.outcome, e.detail) for e in events] == [("jwks.fetch", "ok", {"uri": URI})]


@pytest.mark.parametrize(
    ("cache_control", "fresh_for"),
    [
        ("max-age=600", 600),
        ("public, max-age=120, must-revalidate", 120),
        ("max-age=5", 60),  # below jwks_min_ttl
        ("max-age=999999999", 86400),  # above jwks_max_ttl
        ("no-store", 60),
        ("no-cache", 60),
        ("max-age=abc", 3600),  # unusable → default
        (None, 3600),
    ],
)
async def test_ttl_from_cache_control_within_bounds(
    cache: JWKSCache, idp: FakeIdP, clock: FakeClock, cache_control: str | None, fresh_for: int
) -> None:
    idp.headers = {} if cache_control is None else {"cache-control": cache_control}
    await cache.get(URI)
    clock.advance(fresh_for - 1)
    await cache.get(URI)
    assert idp.requests == 1
    clock.advance(1)
    await cache.get(URI)
    assert idp.requests == 2


def test_age_header_shortens_max_age() -> None:
    assert max_age_of("max-age=600", "100") == 500.0
    assert max_age_of("max-age=60", "100") == 0.0
    assert max_age_of("max-age=600", "junk") == 600.0
    assert max_age_of('max-age="30"') == 30.0
    assert max_age_of("private") is None
    assert max_age_of("") is None
    assert max_age_of("max-age=²") is None  # only ASCII digits are delta-seconds
    assert max_age_of("max-age=١٢") is None


async def test_key_rotation_is_picked_up_after_expiry(
    cache: JWKSCache, idp: FakeIdP, clock: FakeClock
) -> None:
    await cache.get(URI)
    idp.keys = [ec_jwk("k2")]
    clock.advance(600)
    keys = await cache.get(URI)
    assert keys.kids == {"k2"}


async def test_unknown_kid_triggers_one_refetch_per_cooldown(
    cache: JWKSCache, idp: FakeIdP, clock: FakeClock
) -> None:
    await cache.get(URI)
    clock.advance(31)  # past the 30 s cooldown since the first fetch
    with pytest.raises(UnknownKey):
        await cache.find(URI, "new", "ES256")
    assert idp.requests == 2
    # Negative-cached for unknown_kid_ttl (5 s), then the cooldown still holds.
    clock.advance(1)
    with pytest.raises(UnknownKey):
        await cache.find(URI, "new", "ES256")
    clock.advance(10)
    with pytest.raises(UnknownKey):
        await cache.find(URI, "new", "ES256")
    assert idp.requests == 2
    # Rotation: the IdP publishes the kid; the next refetch after the cooldown finds it.
    idp.keys.append(ec_jwk("new"))
    clock.advance(20)
    (key,) = await cache.find(URI, "new", "ES256")
    assert key.kid == "new"
    assert idp.requests == 3


async def test_unknown_kid_right_after_a_cold_fetch_costs_one_refetch_per_cooldown(
    cache: JWKSCache, idp: FakeIdP
) -> None:
    # A key published right after start-up is found at once...
    idp.keys.append(ec_jwk("fresh"))
    await cache.get(URI)
    assert idp.requests == 1
    idp.keys.append(ec_jwk("later"))
    (key,) = await cache.find(URI, "later", "ES256")
    assert key.kid == "later"
    assert idp.requests == 2
    # ...but further unknown kids within the cooldown cost nothing.
    with pytest.raises(UnknownKey):
        await cache.find(URI, "other", "ES256")
    assert idp.requests == 2


async def test_known_kid_with_the_wrong_alg_never_refetches(
    cache: JWKSCache, idp: FakeIdP, clock: FakeClock
) -> None:
    await cache.get(URI)
    clock.advance(100)
    with pytest.raises(UnknownKey, match="cannot verify RS256"):
        await cache.find(URI, "k1", "RS256")
    assert idp.requests == 1


async def test_find_without_kid_returns_every_key_fitting_the_alg(
    cache: JWKSCache, idp: FakeIdP
) -> None:
    idp.keys.append(ec_jwk("k2"))
    idp.keys.append({**RSAKey.generate_key(2048).as_dict(private=False), "kid": "r"})
    found = await cache.find(URI, None, "ES256")
    assert {key.kid for key in found} == {"k1", "k2"}


async def test_cold_cache_single_flight_1000_concurrent_finds(
    cache: JWKSCache, idp: FakeIdP
) -> None:
    idp.gate = asyncio.Event()
    waiters = asyncio.gather(*(cache.find(URI, "k1", "ES256") for _ in range(1000)))
    async with asyncio.timeout(5):
        await idp.started.wait()
    idp.gate.set()
    async with asyncio.timeout(5):
        results = await waiters
    assert idp.requests == 1
    assert cache.fetch_count(URI) == 1
    assert len({result[0].thumbprint for result in results}) == 1


async def test_flood_of_random_kids_costs_one_refetch(
    cache: JWKSCache, idp: FakeIdP, clock: FakeClock
) -> None:
    await cache.get(URI)
    clock.advance(31)
    idp.gate = asyncio.Event()
    idp.started.clear()
    rng = random.Random(7)
    kids = [f"kid-{rng.getrandbits(64):x}" for _ in range(1000)]
    flood = asyncio.gather(*(cache.find(URI, kid, "ES256") for kid in kids), return_exceptions=True)
    async with asyncio.timeout(5):
        await idp.started.wait()
    idp.gate.set()
    async with asyncio.timeout(5):
        outcomes = await flood
    assert all(isinstance(outcome, UnknownKey) for outcome in outcomes)
    assert idp.requests == 2
    # A second wave inside the cooldown costs nothing.
    again = await asyncio.gather(
        *(cache.find(URI, kid + "x", "ES256") for kid in kids), return_exceptions=True
    )
    assert all(isinstance(outcome, UnknownKey) for outcome in again)
    assert idp.requests == 2


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch(
    cache: JWKSCache, idp: FakeIdP
) -> None:
    idp.gate = asyncio.Event()
    first = asyncio.create_task(cache.get(URI))
    second = asyncio.create_task(cache.get(URI))
    async with asyncio.timeout(5):
        await idp.started.wait()
    first.cancel()
    idp.gate.set()
    async with asyncio.timeout(5):
        keys = await second
    assert keys.kids == {"k1"}
    assert idp.requests == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_stale_if_error_serves_last_good_keys_and_reports(
    cache: JWKSCache, idp: FakeIdP, clock: FakeClock, events: list[Event]
) -> None:
    good = await cache.get(URI)
    idp.status = 500
    clock.advance(700)  # expired
    assert cache.cached(URI) is None  # stale keys only come through get(), which retries
    assert await cache.get(URI) is good
    assert idp.requests == 2
    assert (events[-1].outcome, events[-1].reason) == ("stale", "HTTP status 500")
    # Retries no more often than the cooldown.
    clock.advance(10)
    assert await cache.get(URI) is good
    assert idp.requests == 2
    clock.advance(25)
    assert await cache.get(URI) is good
    assert idp.requests == 3
    report = cache.health()[URI]
    assert report["stale"] is True
    assert report["servable"] is True
    assert report["last_error"] == "HTTP status 500"
    assert report["fetches"] == 3
    # Recovery.
    idp.status = 200
    clock.advance(31)
    await cache.get(URI)
    assert cache.health()[URI]["last_error"] is None
    assert events[-1].outcome == "ok"


async def test_stale_past_max_age_raises_keys_unavailable(
    client: httpx.AsyncClient, idp: FakeIdP, clock: FakeClock, events: list[Event]
) -> None:
    limits = Limits(jwks_stale_max_age=100.0)
    cache = JWKSCache(client, limits=limits, clock=clock, emitter=Emitter([events.append]))
    await cache.get(URI)
    idp.status = 503
    clock.advance(600 + 99)
    await cache.get(URI)
    clock.advance(2)
    assert cache.cached(URI) is None
    with pytest.raises(KeysUnavailable) as caught:
        await cache.find(URI, "k1", "ES256")
    assert caught.value.status == 503
    assert 1 <= caught.value.retry_after <= 30
    clock.advance(30)
    with pytest.raises(KeysUnavailable):
        await cache.get(URI)
    assert events[-1].outcome == "error"


async def test_cold_failure_is_retried_only_after_the_cooldown(
    cache: JWKSCache, idp: FakeIdP, clock: FakeClock
) -> None:
    idp.error = httpx.ConnectError("refused")
    with pytest.raises(KeysUnavailable) as caught:
        await cache.get(URI)
    assert "ConnectError" in caught.value.description
    clock.advance(10)
    with pytest.raises(KeysUnavailable) as caught:
        await cache.get(URI)
    assert caught.value.retry_after == 20
    assert idp.requests == 1
    idp.error = None
    clock.advance(20)
    assert (await cache.get(URI)).kids == {"k1"}
    assert idp.requests == 2


async def test_prefetch_reports_and_never_raises(cache: JWKSCache, idp: FakeIdP) -> None:
    idp.status = 404
    assert await cache.prefetch(URI) is False
    other = "https://other.example.com/jwks"
    idp.status = 200
    assert await cache.prefetch(other) is True
    assert cache.fetch_count(other) == 1


@pytest.mark.parametrize(
    "body",
    [
        '{"keys": []}'.encode("utf-16"),
        b"<html>oops</html>",
        b"[1, 2]",
        b'{"keys": {"kty": "RSA"}}',
        b'{"no": "keys"}',
        b"",
    ],
)
async def test_bad_documents_are_fetch_failures(
    cache: JWKSCache, idp: FakeIdP, body: bytes
) -> None:
    idp.body = body
    with pytest.raises(KeysUnavailable):
        await cache.get(URI)
    assert cache.health()[URI]["last_error"]


async def test_bad_keys_are_skipped_not_fatal(cache: JWKSCache, idp: FakeIdP) -> None:
    idp.keys += [
        {**ec_jwk("enc"), "use": "enc"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
        {"kty": "RSA", "kid": "junk", "n": 1},
    ]
    keys = await cache.get(URI)
    assert keys.kids == {"k1"}
    with pytest.raises(UnknownKey):
        await cache.find(URI, "hmac", "HS256")
    skipped = cache.health()[URI]["skipped"]
    assert len(skipped) == 3
    assert not any("c2VjcmV0" in reason for reason in skipped)


def chunks(count: int, size: int, served: list[int]) -> Iterator[bytes]:
    for _ in range(count):
        served.append(size)
        yield b" " * size


async def test_oversize_body_refused_while_streaming(clock: FakeClock) -> None:
    served: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks(1000, 1024, served):
                yield chunk

        return httpx.Response(200, content=body())

    limits = Limits(max_document_bytes=10 * 1024)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        cache = JWKSCache(http, limits=limits, clock=clock)
        with pytest.raises(KeysUnavailable, match="larger than"):
            await cache.get(URI)
    assert sum(served) <= 12 * 1024  # stopped early, not after reading a megabyte


async def test_declared_oversize_body_refused_before_reading(
    client: httpx.AsyncClient, idp: FakeIdP, clock: FakeClock
) -> None:
    idp.keys = [ec_jwk(f"k{i}") for i in range(20)]
    cache = JWKSCache(client, limits=Limits(max_document_bytes=1024), clock=clock)
    with pytest.raises(KeysUnavailable, match="larger than 1024"):
        await cache.get(URI)


async def test_hanging_idp_fails_within_the_total_deadline(
    client: httpx.AsyncClient, idp: FakeIdP, clock: FakeClock
) -> None:
    idp.gate = asyncio.Event()  # never set: the IdP never answers
    cache = JWKSCache(client, limits=Limits(fetch_timeout=0.05), clock=clock)
    async with asyncio.timeout(5):
        with pytest.raises(KeysUnavailable, match=r"within 0\.05 s"):
            await cache.get(URI)


async def test_unexpected_parser_errors_are_failures_that_never_quote_the_body(
    client: httpx.AsyncClient, idp: FakeIdP, clock: FakeClock
) -> None:
    def parse(body: bytes) -> object:
        raise RuntimeError(body.decode())

    documents: DocumentCache[object] = DocumentCache(
        client, event_name="x.fetch", what="things", limits=Limits(), clock=clock, emitter=Emitter()
    )
    with pytest.raises(KeysUnavailable) as caught:
        await documents.get(URI, parse)
    assert caught.value.description == (
        "the identity provider's things are unavailable (RuntimeError while parsing)"
    )
    assert documents.health()[URI]["last_error"] == "RuntimeError while parsing"


class FakeShared:
    """A SharedDocuments store in memory; can fail or hang."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes, float]] = {}
        self.gets = 0
        self.puts = 0
        self.error: Exception | None = None
        self.hang = False

    async def get(self, url: str) -> tuple[bytes, float] | None:
        self.gets += 1
        if self.error is not None:
            raise self.error
        if self.hang:
            await asyncio.Event().wait()
        return self.entries.get(url)

    async def put(self, url: str, body: bytes, expires_at: float) -> None:
        self.puts += 1
        if self.error is not None:
            raise self.error
        if self.hang:
            await asyncio.Event().wait()
        self.entries[url] = (body, expires_at)


@pytest.fixture
def shared() -> FakeShared:
    return FakeShared()


@pytest.fixture
def worker(
    client: httpx.AsyncClient, clock: FakeClock, shared: FakeShared, events: list[Event]
) -> Callable[[], JWKSCache]:
    """Builds another worker's JWKS cache sharing the same store (and IdP)."""

    def build() -> JWKSCache:
        return JWKSCache(client, clock=clock, emitter=Emitter([events.append]), shared=shared)

    return build


async def test_a_second_worker_takes_the_keys_from_the_shared_store(
    worker: Callable[[], JWKSCache],
    idp: FakeIdP,
    clock: FakeClock,
    shared: FakeShared,
    events: list[Event],
) -> None:
    first = worker()
    await first.get(URI)
    assert idp.requests == 1
    assert shared.entries[URI][1] == clock.time() + 600
    clock.advance(100)
    second = worker()
    keys = await second.get(URI)
    assert keys.kids == {"k1"}
    assert idp.requests == 1
    assert [e.outcome for e in events if e.name == "jwks.fetch"] == ["ok", "shared"]
    clock.advance(499)  # the shared body's remaining lifetime, not a fresh 600 s
    assert second.cached(URI) is keys
    clock.advance(1)
    assert second.cached(URI) is None


async def test_expired_shared_bodies_are_ignored(
    worker: Callable[[], JWKSCache],
    idp: FakeIdP,
    clock: FakeClock,
    shared: FakeShared,
) -> None:
    old = msgspec.json.encode({"keys": [ec_jwk("old")]})
    shared.entries[URI] = (old, clock.time())
    keys = await worker().get(URI)
    assert keys.kids == {"k1"}
    assert idp.requests == 1
    assert shared.entries[URI][0] != old  # replaced by the fresh body


async def test_unknown_kid_bypasses_the_shared_store_and_updates_it(
    worker: Callable[[], JWKSCache],
    idp: FakeIdP,
    shared: FakeShared,
) -> None:
    await worker().get(URI)
    idp.keys = [ec_jwk("k1"), ec_jwk("k2")]  # rotation: the stored set lacks k2
    second = worker()
    found = await second.find(URI, "k2", "ES256")
    assert [key.kid for key in found] == ["k2"]
    assert idp.requests == 2
    gets = shared.gets
    third = worker()
    assert (await third.find(URI, "k2", "ES256"))[0].kid == "k2"
    assert idp.requests == 2
    assert shared.gets == gets + 1


@pytest.mark.parametrize(
    ("body", "expires_in"),
    [
        (b"not json", 600.0),
        (b'{"keys": 5}', 600.0),
        (b'{"keys": []}' + b" " * 1_100_000, 600.0),  # over max_document_bytes
        (b'{"keys": []}', float("nan")),
    ],
)
async def test_a_bad_shared_body_is_ignored_and_the_idp_asked(
    worker: Callable[[], JWKSCache],
    idp: FakeIdP,
    clock: FakeClock,
    shared: FakeShared,
    body: bytes,
    expires_in: float,
) -> None:
    shared.entries[URI] = (body, clock.time() + expires_in)
    keys = await worker().get(URI)
    assert keys.kids == {"k1"}
    assert idp.requests == 1
    assert msgspec.json.decode(shared.entries[URI][0])["keys"][0]["kid"] == "k1"


async def test_shared_store_errors_fall_back_to_the_idp_without_leaking(
    worker: Callable[[], JWKSCache],
    idp: FakeIdP,
    shared: FakeShared,
    events: list[Event],
) -> None:
    shared.error = ConnectionError("redis://:pw-secret@127.0.0.1:6379 refused")
    keys = await worker().get(URI)
    assert keys.kids == {"k1"}
    assert idp.requests == 1
    failures = [e for e in events if e.name == "shared_documents"]
    assert [e.outcome for e in failures] == ["error", "error"]  # the read and the write
    assert all("pw-secret" not in repr(e) for e in events)


async def test_a_hanging_shared_store_costs_at_most_its_timeout(
    worker: Callable[[], JWKSCache],
    shared: FakeShared,
    events: list[Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("asgi_sso.keys.documents.SHARED_TIMEOUT", 0.01)
    shared.hang = True
    async with asyncio.timeout(5):
        keys = await worker().get(URI)
    assert keys.kids == {"k1"}
    assert [e.reason for e in events if e.name == "shared_documents"] == [
        "TimeoutError in the shared store"
    ] * 2


async def test_refused_kids_are_bounded_in_total_across_every_uri(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    cache = JWKSCache(client, clock=clock, limits=Limits(max_unknown_kids=3))
    uris = [f"https://idp{n}.example.com/jwks" for n in range(4)]
    for n, uri in enumerate(uris):
        with pytest.raises(UnknownKey):
            await cache.find(uri, f"random-{n}", "ES256")
    assert list(cache._unknown) == [(uri, f"random-{n}", "ES256") for n, uri in enumerate(uris)][1:]


async def test_refused_kids_go_with_their_evicted_key_set(
    client: httpx.AsyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("asgi_sso.keys.documents.MAX_CACHED_URLS", 2)
    cache = JWKSCache(client, clock=clock)
    first, second, third = (f"https://idp{n}.example.com/jwks" for n in range(3))
    for uri in (first, second):
        with pytest.raises(UnknownKey):
            await cache.find(uri, "random", "ES256")
    assert {key[0] for key in cache._unknown} == {first, second}
    await cache.get(third)  # makes room by evicting the first URI's key set
    assert {key[0] for key in cache._unknown} == {second}
    assert first not in cache.health()


async def test_reserved_room_keeps_every_key_set(
    client: httpx.AsyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With more trusted key sets than the default room, none may push another out.
    monkeypatch.setattr("asgi_sso.keys.documents.MAX_CACHED_URLS", 2)
    cache = JWKSCache(client, clock=clock)
    cache.reserve(3)
    uris = [f"https://idp{n}.example.com/jwks" for n in range(3)]
    for uri in uris:
        await cache.get(uri)
    assert all(cache.cached(uri) is not None for uri in uris)
    await cache.get("https://idp3.example.com/jwks")  # past the room: the oldest goes
    assert cache.cached(uris[0]) is None
