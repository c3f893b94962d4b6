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

IDP = "https://idp.example"


def record(
    session_id: str, *, subject: str = "alice", connection: str = "acme", sid: str | None = None,
    expires_in: float = 3600.0, now: float = 1_700_000_000.0, issuer: str = IDP,
    sub: str | None = None,
) -> SessionRecord:  # fmt: skip
    return SessionRecord(
        id=session_id,
        subject=subject,
        issuer=issuer,
        connection=connection,
        claims={"email": f"{subject}@corp.example", "groups": ["a", "b"]},
        sid=sid,
        sub=sub,
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

    async def test_a_record_keeps_its_dpop_key(self, store: SessionStore) -> None:
        # Another worker refreshes the session: it must prove the sign-in's key.
        jwk = '{"crv":"P-256","kty":"EC","x":"eA","y":"eQ","d":"ZA"}'
        await store.create(msgspec.structs.replace(record("s1"), dpop_key=jwk))
        got = await store.get("s1")
        assert got is not None
        assert got.dpop_key == jwk
        assert "ZA" not in repr(got)

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

    async def test_a_sid_logout_ends_that_idp_session_of_that_issuer_only(
        self, store: SessionStore
    ) -> None:
        await store.create(record("s1", sid="idp-sid"))
        await store.create(record("s2", sid="other"))
        await store.create(record("elsewhere", sid="idp-sid", issuer="https://other.example"))
        assert await store.delete_by_provider(IDP, sub=None, sid="idp-sid") == 1
        assert await store.get("s1") is None
        assert await store.get("s2") is not None
        assert await store.get("elsewhere") is not None
        assert await store.delete_by_provider(IDP, sub=None, sid="idp-sid") == 0

    async def test_a_sub_logout_ends_every_session_of_that_id_token_sub_at_that_issuer(
        self, store: SessionStore
    ) -> None:
        # The user key (subject) is another claim: the logout names the ID token's sub.
        await store.create(record("a1", subject="oid-1", sub="pairwise-1", sid="x"))
        await store.create(record("a2", subject="oid-1", sub="pairwise-1", connection="globex"))
        await store.create(record("key-only", subject="pairwise-1", sub="other"))
        await store.create(record("elsewhere", subject="oid-1", sub="pairwise-1", issuer="o"))
        await store.create(record("plain", subject="bob"))
        assert await store.delete_by_provider(IDP, sub="pairwise-1", sid=None) == 2
        assert await store.get("a1") is None
        assert await store.get("a2") is None
        for kept in ("key-only", "elsewhere", "plain"):
            assert await store.get(kept) is not None
        assert await store.delete_by_provider(IDP, sub="bob", sid=None) == 1

    async def test_a_logout_with_sub_and_sid_ends_that_session_of_that_sub(
        self, store: SessionStore
    ) -> None:
        await store.create(record("mine", sid="shared"))
        await store.create(record("my-other", sid="second"))
        await store.create(record("theirs", subject="bob", sid="shared"))
        assert await store.delete_by_provider(IDP, sub="alice", sid="shared") == 1
        assert await store.get("mine") is None
        assert await store.get("my-other") is not None
        assert await store.get("theirs") is not None
        assert await store.delete_by_provider(IDP, sub="carol", sid="second") == 0
        assert await store.delete_by_provider(IDP, sub=None, sid=None) == 0
        assert await store.get("my-other") is not None

    async def test_delete_removes_a_session_from_the_logout_indexes(
        self, store: SessionStore
    ) -> None:
        await store.create(record("s1", sid="idp-sid"))
        await store.delete("s1")
        await store.create(record("s2", sid="idp-sid"))
        assert await store.delete_by_provider(IDP, sub="alice", sid="idp-sid") == 1
        assert await store.delete_user("acme", "alice") == 0

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
