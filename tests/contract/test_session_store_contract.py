"""The contract every server-side SessionStore honours.

A store's test module subclasses :class:`SessionStoreContract` and overrides the
``store`` fixture (taking the ``clock`` fixture, so expiry is tested without sleeping).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from asgi_sso.sessions import MemorySessionStore, SessionRecord, SessionStore
from asgi_sso.testing import FakeClock


def record(
    session_id: str, *, subject: str = "alice", connection: str = "acme", sid: str | None = None,
    expires_in: float = 3600.0, now: float = 1_700_000_000.0,
) -> SessionRecord:  # fmt: skip
    return SessionRecord(
        id=session_id,
        subject=subject,
        issuer="https://idp.example",
        connection=connection,
        claims={"email": f"{subject}@corp.example", "groups": ["a", "b"]},
        sid=sid,
        id_token="header.payload.signature",
        refresh_token="refresh-token",
        created_at=now,
        last_seen=now,
        expires_at=now + expires_in,
    )


class SessionStoreContract:
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, clock: FakeClock) -> SessionStore:
        raise NotImplementedError("a store test class overrides the store fixture")

    async def test_create_then_get_returns_an_equal_record(self, store: SessionStore) -> None:
        await store.create(record("s1"))
        assert await store.get("s1") == record("s1")
        assert await store.get("unknown") is None

    async def test_a_record_keeps_the_app_it_belongs_to(self, store: SessionStore) -> None:
        bound = msgspec.structs.replace(record("s1"), client_id="web")
        await store.create(bound)
        got = await store.get("s1")
        assert got is not None
        assert (got.issuer, got.client_id) == ("https://idp.example", "web")

    async def test_update_replaces_a_live_record(self, store: SessionStore) -> None:
        await store.create(record("s1"))
        newer = record("s1", expires_in=7200)
        await store.update(newer)
        assert await store.get("s1") == newer

    async def test_delete_ends_one_session(self, store: SessionStore) -> None:
        await store.create(record("s1"))
        await store.create(record("s2"))
        await store.delete("s1")
        await store.delete("s1")  # idempotent
        assert await store.get("s1") is None
        assert await store.get("s2") is not None

    async def test_expired_records_are_gone(self, store: SessionStore, clock: FakeClock) -> None:
        await store.create(record("s1", expires_in=10))
        clock.advance(11)
        assert await store.get("s1") is None

    async def test_delete_user_ends_only_that_users_sessions(self, store: SessionStore) -> None:
        await store.create(record("a1"))
        await store.create(record("a2"))
        await store.create(record("other-conn", connection="globex"))
        await store.create(record("b1", subject="bob"))
        assert await store.delete_user("acme", "alice") == 2
        assert await store.get("a1") is None
        assert await store.get("a2") is None
        assert await store.get("other-conn") is not None
        assert await store.get("b1") is not None
        assert await store.delete_user("acme", "alice") == 0

    async def test_delete_by_sid(self, store: SessionStore) -> None:
        await store.create(record("s1", sid="idp-sid"))
        await store.create(record("s2", sid="other"))
        assert await store.delete_by_sid("idp-sid") == 1
        assert await store.get("s1") is None
        assert await store.get("s2") is not None

    async def test_state_is_taken_once(self, store: SessionStore) -> None:
        await store.put_state("k", b"value", 60)
        assert await store.pop_state("k") == b"value"
        assert await store.pop_state("k") is None
        assert await store.pop_state("never") is None

    async def test_state_expires(self, store: SessionStore, clock: FakeClock) -> None:
        await store.put_state("k", b"value", 60)
        clock.advance(61)
        assert await store.pop_state("k") is None

    async def test_concurrent_pops_yield_the_state_once(self, store: SessionStore) -> None:
        await store.put_state("k", b"value", 60)
        results = await asyncio.gather(*(store.pop_state("k") for _ in range(10)))
        assert results.count(b"value") == 1

    async def test_a_lease_has_one_holder_until_it_lapses(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        results = await asyncio.gather(*(store.claim("lease", 30) for _ in range(10)))
        assert results.count(True) == 1
        assert await store.claim("another", 30)
        clock.advance(31)
        assert await store.claim("lease", 30)
        assert not await store.claim("lease", 30)


class TestMemorySessionStore(SessionStoreContract):
    @pytest.fixture
    async def store(self, clock: FakeClock) -> AsyncIterator[SessionStore]:
        store = MemorySessionStore(clock=clock)
        yield store
        await store.close()
