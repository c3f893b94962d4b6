"""The cookie-only store (seal, trim, revocation marks) and the memory store's bounds."""

from __future__ import annotations

import msgspec
import pytest

from asgi_sso.config import Secret
from asgi_sso.errors import ConfigurationError
from asgi_sso.sessions import CookieCodec, CookieSessionStore, MemorySessionStore, SessionInvalid
from asgi_sso.sessions.base import SessionRecord
from asgi_sso.sessions.cookie import CHUNK_SIZE, MAX_CHUNKS
from asgi_sso.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cookies(clock: FakeClock) -> CookieSessionStore:
    codec = CookieCodec([Secret(b"k" * 32)], purpose="session")
    return CookieSessionStore(codec, clock=clock, lifetime=8 * 3600)


def _record(clock: FakeClock, **claims: object) -> SessionRecord:
    return SessionRecord(
        id="sess-1",
        subject="alice",
        issuer="https://idp.example",
        connection="acme",
        claims={"email": "alice@corp.example", **claims},
        sid="idp-sid",
        id_token="h." + "p" * 2000 + ".s",
        created_at=clock.now,
        last_seen=clock.now,
        expires_at=clock.now + 3600,
    )


def test_seal_and_open_round_trip(cookies: CookieSessionStore, clock: FakeClock) -> None:
    record = _record(clock, groups=["a"])
    assert cookies.open(cookies.seal(record)) == record


def test_oversized_records_drop_the_id_token_then_bulky_claims(
    cookies: CookieSessionStore, clock: FakeClock
) -> None:
    medium = _record(clock, blob="x" * (CHUNK_SIZE * MAX_CHUNKS * 3 // 4 - 1200))
    opened = cookies.open(cookies.seal(medium))
    assert opened.id_token is None
    assert opened.claims["blob"] == medium.claims["blob"]
    huge = _record(clock, groups=[f"g{i:05d}" for i in range(5000)], name="Alice")
    sealed = cookies.seal(huge)
    assert len(sealed) <= CHUNK_SIZE * MAX_CHUNKS
    opened = cookies.open(sealed)
    assert "groups" not in opened.claims
    assert opened.claims == {"email": "alice@corp.example", "name": "Alice"}


def test_a_record_from_another_format_is_refused(cookies: CookieSessionStore) -> None:
    codec = CookieCodec([Secret(b"k" * 32)], purpose="session")
    with pytest.raises(SessionInvalid):
        cookies.open(codec.encode(b'{"not": "a record"}'))


def test_user_revocation_covers_sessions_created_before_it(
    cookies: CookieSessionStore, clock: FakeClock
) -> None:
    old = _record(clock)
    cookies.revoke_user("acme", "alice", clock.now)
    assert cookies.is_revoked(old)
    clock.now += 5
    assert not cookies.is_revoked(_record(clock))


def test_session_revocation_matches_the_local_id_only(
    cookies: CookieSessionStore, clock: FakeClock
) -> None:
    record = _record(clock)
    cookies.revoke_session("idp-sid")  # an IdP sid is no local id (nor scoped by issuer)
    assert not cookies.is_revoked(record)
    cookies.revoke_session("sess-1")
    assert cookies.is_revoked(record)


@pytest.mark.parametrize(
    ("sub", "sid", "ends"),
    [
        ("alice", None, True),
        (None, "idp-sid", True),
        ("alice", "idp-sid", True),
        ("bob", None, False),
        (None, "other-sid", False),
        ("bob", "idp-sid", False),
        ("alice", "other-sid", False),
    ],
)
def test_a_provider_logout_ends_the_cookie_sessions_it_names(
    cookies: CookieSessionStore, clock: FakeClock, sub: str | None, sid: str | None, ends: bool
) -> None:
    record = _record(clock)
    cookies.revoke_logout("https://other.example", "alice", "idp-sid", clock.now)
    assert not cookies.is_revoked(record)  # another issuer's sub and sid are other users'
    cookies.revoke_logout("https://idp.example", sub, sid, clock.now)
    assert cookies.is_revoked(record) is ends


def test_a_provider_logout_matches_the_id_token_sub_not_the_user_key(
    cookies: CookieSessionStore, clock: FakeClock
) -> None:
    record = msgspec.structs.replace(_record(clock), subject="oid-1", sub="pairwise-1")
    cookies.revoke_logout("https://idp.example", "oid-1", None, clock.now)
    assert not cookies.is_revoked(record)
    cookies.revoke_logout("https://idp.example", "pairwise-1", None, clock.now)
    assert cookies.is_revoked(record)


def test_a_provider_logout_spares_sessions_signed_in_after_it(
    cookies: CookieSessionStore, clock: FakeClock
) -> None:
    cookies.revoke_logout("https://idp.example", "alice", None, clock.now)
    clock.now += 5
    assert not cookies.is_revoked(_record(clock))


def test_revocation_marks_are_forgotten_after_the_session_lifetime(
    cookies: CookieSessionStore, clock: FakeClock
) -> None:
    cookies.revoke_session("sess-1")
    cookies.revoke_logout("https://idp.example", None, "idp-sid", clock.now + 1)
    clock.now += 8 * 3600 + 2
    cookies.revoke_session("unrelated")  # pruning happens on write
    old = msgspec.structs.replace(_record(clock), created_at=clock.now - 8 * 3600)
    assert not cookies.is_revoked(old)


def test_logout_marks_are_bounded(
    cookies: CookieSessionStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("asgi_sso.sessions.cookie.MAX_MARKS", 3)
    for n in range(10):
        cookies.revoke_logout("https://idp.example", f"user-{n}", None, clock.now)
    assert len(cookies._logouts) == 3
    assert not cookies.is_revoked(msgspec.structs.replace(_record(clock), subject="user-0"))
    assert cookies.is_revoked(msgspec.structs.replace(_record(clock), subject="user-9"))


def test_first_use_is_once_per_ttl(cookies: CookieSessionStore, clock: FakeClock) -> None:
    assert cookies.first_use("k", 600)
    assert not cookies.first_use("k", 600)
    clock.now += 601
    assert cookies.first_use("k", 600)


def test_record_repr_shows_no_tokens_or_claims(clock: FakeClock) -> None:
    text = repr(_record(clock))
    assert "ppppp" not in text
    assert "alice@corp.example" not in text


async def test_memory_store_evicts_oldest_beyond_its_bounds(clock: FakeClock) -> None:
    store = MemorySessionStore(clock=clock, max_sessions=2, max_states=2)
    for name in ("a", "b", "c"):
        await store.create(_renamed(clock, name))
        await store.put_state(name, b"1", 60)
    assert await store.get("a") is None
    assert await store.get("c") is not None
    assert await store.pop_state("a") is None
    assert await store.pop_state("c") == b"1"


def _renamed(clock: FakeClock, name: str) -> SessionRecord:

    return msgspec.structs.replace(_record(clock), id=name)


def test_memory_store_limits_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        MemorySessionStore(max_sessions=0)
