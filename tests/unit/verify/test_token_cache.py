"""The verified-token cache: lifetimes, LRU bound, subject eviction, remembered failures."""

from __future__ import annotations

import gc
import weakref

import pytest

from asgi_sso.errors import ConfigurationError, ExpiredToken, InvalidSignature
from asgi_sso.verify.token_cache import CacheEntry, VerifiedTokenCache

NOW = 1_000.0


class Value(CacheEntry):
    """A cached value that compares equal to its text."""

    __slots__ = ("text",)

    def __init__(self, text: str, subject: str = "alice") -> None:
        self.text = text
        self.subject = subject

    def __eq__(self, other: object) -> bool:
        return self.text == other

    def __hash__(self) -> int:
        return hash(self.text)


def put(cache: VerifiedTokenCache[Value], token: str, **kw: object) -> None:
    options: dict[str, object] = {
        "until": NOW + 100,
        "now": NOW,
        "issuer": "https://idp.test",
        "connection": "acme",
    }
    options.update(kw)
    subject = str(options.pop("subject", "alice"))
    cache.put(token, Value(f"value-{token}", subject), **options)  # type: ignore[arg-type]


def test_hit_until_the_token_deadline() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    put(cache, "t1", until=NOW + 50)
    assert cache.get("t1", NOW + 49.9) == "value-t1"
    assert cache.get("t1", NOW + 50) is None
    assert len(cache) == 0  # evicted on the expired lookup


def test_ttl_caps_the_life_of_an_entry() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 30)
    put(cache, "t1", until=NOW + 1000)
    assert cache.get("t1", NOW + 29) == "value-t1"
    assert cache.get("t1", NOW + 30) is None


def test_already_expired_or_disabled_cache_stores_nothing() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 30)
    put(cache, "t1", until=NOW)
    assert len(cache) == 0
    off: VerifiedTokenCache[Value] = VerifiedTokenCache(0, 30)
    put(off, "t1")
    assert off.get("t1", NOW) is None


def test_least_recently_used_entry_is_evicted_first() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(2, 300)
    put(cache, "a")
    put(cache, "b", subject="bob")
    assert cache.get("a", NOW) == "value-a"  # a becomes most recent
    put(cache, "c", subject="carol")
    assert cache.get("b", NOW) is None
    assert cache.get("a", NOW) == "value-a"
    assert cache.get("c", NOW) == "value-c"
    assert cache.evict_subject(subject="bob") == 0  # the index followed the eviction


def test_replacing_a_token_keeps_one_entry() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(5, 300)
    put(cache, "a")
    put(cache, "a", subject="bob")
    assert len(cache) == 1
    assert cache.evict_subject(subject="alice") == 0
    assert cache.evict_subject(subject="bob") == 1


def test_evict_subject_by_issuer_and_connection() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    put(cache, "a1")
    put(cache, "a2", connection="other")
    put(cache, "a3", issuer="https://other.test")
    put(cache, "b1", subject="bob")
    assert cache.evict_subject(subject="alice", connection="other") == 1
    assert cache.get("a2", NOW) is None
    assert cache.evict_subject(subject="alice", issuer="https://idp.test") == 1
    assert cache.get("a1", NOW) is None
    assert cache.evict_subject(subject="alice") == 1
    assert cache.evict_subject(subject="alice") == 0
    assert cache.get("b1", NOW) == "value-b1"
    assert cache.evict_subject(subject="nobody") == 0


def test_failures_are_remembered_briefly() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300, failure_ttl=2)
    error = InvalidSignature("the signature does not match key k1")
    cache.remember_failure("bad", error, 50.0)
    rebuilt = cache.failure("bad", 51.9)
    assert type(rebuilt) is InvalidSignature
    assert rebuilt.description == error.description
    assert rebuilt is not error
    assert cache.failure("bad", 52.0) is None
    assert cache.failure("bad", 51.0) is None  # forgotten once expired


def test_a_remembered_failure_keeps_neither_the_error_nor_its_traceback_alive() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300, failure_ttl=2)

    class Request:
        """Stands for what a refused request's frames hold (scope, headers, token)."""

    def refuse(request: Request) -> None:
        raise ExpiredToken()

    request = Request()
    alive = weakref.ref(request)
    try:
        refuse(request)
    except ExpiredToken as exc:
        error_alive = weakref.ref(exc)
        cache.remember_failure("bad", exc, 0.0)
    del request
    gc.collect()
    assert error_alive() is None
    assert alive() is None
    rebuilt = cache.failure("bad", 1.0)
    assert isinstance(rebuilt, ExpiredToken)
    assert rebuilt.__traceback__ is None


def test_a_remembered_failure_is_a_short_record() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300, failure_ttl=2)
    cache.remember_failure("bad", InvalidSignature("x" * 100_000), 0.0)
    rebuilt = cache.failure("bad", 1.0)
    assert rebuilt is not None
    assert len(rebuilt.description) <= 256
    ((kind, description, _),) = cache._failures.values()
    assert kind is InvalidSignature
    assert description == rebuilt.description


def test_failure_map_is_bounded_and_off_without_ttl() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300, failure_ttl=2)
    for n in range(3000):
        cache.remember_failure(f"bad{n}", ExpiredToken(), 0.0)
    assert len(cache._failures) <= 1024
    assert cache.failure("bad2999", 0.0) is not None
    off: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    off.remember_failure("bad", ExpiredToken(), 0.0)
    assert off.failure("bad", 0.0) is None


def test_clear_forgets_everything() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300, failure_ttl=2)
    put(cache, "a")
    cache.remember_failure("bad", ExpiredToken(), 0.0)
    cache.clear()
    assert cache.get("a", NOW) is None
    assert cache.failure("bad", 0.0) is None
    assert cache.evict_subject(subject="alice") == 0


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        VerifiedTokenCache(-1, 10)


def test_entries_are_keyed_by_a_keyed_digest_not_the_token() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    token = "header.payload.signature-" + "x" * 500
    put(cache, token)
    (key,) = cache._entries
    assert isinstance(key, bytes)
    assert len(key) == 15
    assert token.encode() not in key
    assert key == cache.key(token)
    # Another process (another random key) files the same token under another digest.
    assert VerifiedTokenCache[Value](10, 300).key(token) != key
    assert cache.key(token + "x") != key
    assert cache.get(token[:-1], NOW) is None


def test_odd_text_never_breaks_hashing() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    for token in ("", "\udcff", "é" * 3, "\x00"):
        assert len(cache.key(token)) == 15
        assert cache.get(token, NOW) is None


def test_a_recent_hit_still_rechecks_the_deadline() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    put(cache, "t1", until=NOW + 50)
    assert cache.get("t1", NOW) == "value-t1"  # now also in the recent-token map
    value, key = cache.lookup("t1", NOW + 1)
    assert value == "value-t1"
    assert key == b""  # served without hashing
    assert cache.get("t1", NOW + 50) is None
    assert len(cache) == 0


def test_eviction_by_subject_also_drops_recent_hits() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    put(cache, "a1")
    put(cache, "b1", subject="bob")
    assert cache.get("a1", NOW) == "value-a1"
    assert cache.get("b1", NOW) == "value-b1"
    assert cache.evict_subject(subject="alice") == 1
    assert cache.get("a1", NOW) is None
    assert cache.get("b1", NOW) == "value-b1"


def test_replacing_or_clearing_drops_recent_hits() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    put(cache, "a")
    assert cache.get("a", NOW) == "value-a"
    cache.put("a", Value("newer"), until=NOW + 10, now=NOW, issuer="i", connection="c")
    assert cache.get("a", NOW) == "newer"
    cache.clear()
    assert cache.get("a", NOW) is None


def test_recent_map_stays_small() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(5000, 300)
    for n in range(2000):
        put(cache, f"t{n}", subject=f"s{n}")
        assert cache.get(f"t{n}", NOW) == f"value-t{n}"
    assert len(cache._recent) <= 256
    assert len(cache) == 2000


def test_lookup_reports_a_first_sighting_and_then_the_key_of_a_miss() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    assert cache.lookup("t1", NOW) == (None, b"")  # first sighting: not even hashed
    assert cache.lookup("t1", NOW) == (None, cache.key("t1"))
    assert cache.get("t2", NOW) is None  # get() records no sighting ...
    assert cache.lookup("t2", NOW) == (None, b"")  # ... so this is t2's first
    key = cache.key("t1")
    cache.put_by_key(key, Value("v", "s"), until=NOW + 5, now=NOW, issuer="i", connection="c")
    assert cache.get("t1", NOW) == "v"


def test_eviction_by_subject_reaches_a_recent_hit_whose_entry_was_pushed_out() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(1, 300)
    put(cache, "a1")
    assert cache.get("a1", NOW) == "value-a1"  # recent hit
    put(cache, "b1", subject="bob")  # the size bound pushes a1 out of the main map
    assert cache.get("a1", NOW) == "value-a1"  # still served from the recent map
    assert cache.evict_subject(subject="alice") == 0
    assert cache.get("a1", NOW) is None


def test_lookup_finds_what_put_stored_without_a_sighting_first() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    put(cache, "t1")
    assert cache.lookup("t1", NOW) == ("value-t1", cache.key("t1"))


def test_a_disabled_cache_never_hashes() -> None:
    off: VerifiedTokenCache[Value] = VerifiedTokenCache(0, 300)
    for _ in range(3):
        assert off.lookup("t1", NOW) == (None, b"")


def test_the_recent_map_and_the_remembered_refusals_keep_their_limits() -> None:
    from asgi_sso.errors import InvalidSignature

    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(
        5000, 300, failure_ttl=10, failure_size=3, recent=4
    )
    for n in range(10):
        put(cache, f"t{n}", subject=f"s{n}")
        assert cache.get(f"t{n}", NOW) == f"value-t{n}"
        cache.remember_failure(f"bad{n}", InvalidSignature("no"), NOW)
    assert 0 < len(cache._recent) <= 4
    assert len(cache._failures) == 3
    assert cache.failure("bad9", NOW) is not None
    assert cache.failure("bad0", NOW) is None  # the oldest went first


def test_clear_forgets_sightings() -> None:
    cache: VerifiedTokenCache[Value] = VerifiedTokenCache(10, 300)
    cache.lookup("t1", NOW)
    cache.clear()
    assert cache.lookup("t1", NOW) == (None, b"")
    assert cache.filter_bytes == 2 * 2**20
