"""The contract every UserStore keeps, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from asgi_sso.identity.stores import MemoryUserStore, Profile, UserStore
from asgi_sso.identity.stores.sql import SQLUserStore

ALICE = Profile(email="alice@acme.example", name="Alice", user_name="alice@acme.example")


class UserStoreContract:
    """Subclasses provide a started ``store`` fixture."""

    async def test_first_sight_provisions_an_active_user(self, store: UserStore) -> None:
        user, created = await store.get_or_provision("acme", "sub-1", ALICE)
        assert created
        assert user.active
        assert not user.deleted
        assert (user.connection, user.subject, user.profile) == ("acme", "sub-1", ALICE)
        assert await store.get(user.id) == user

    async def test_second_sight_returns_the_same_user(self, store: UserStore) -> None:
        first, _ = await store.get_or_provision("acme", "sub-1", ALICE)
        second, created = await store.get_or_provision("acme", "sub-1", ALICE)
        assert not created
        assert second.id == first.id

    async def test_same_sub_in_two_connections_is_two_users(self, store: UserStore) -> None:
        a, _ = await store.get_or_provision("acme", "same", ALICE)
        b, _ = await store.get_or_provision("globex", "same", ALICE)
        assert a.id != b.id

    async def test_same_email_under_two_subs_is_two_users(self, store: UserStore) -> None:
        a, _ = await store.get_or_provision("acme", "sub-a", ALICE)
        b, created = await store.get_or_provision("acme", "sub-b", ALICE)
        assert created
        assert a.id != b.id

    async def test_changed_profile_is_written(self, store: UserStore) -> None:
        user, _ = await store.get_or_provision("acme", "sub-1", ALICE)
        newer = Profile(email="alice@new.example", groups=("screenshot-pro",), tier="pro")
        updated, created = await store.get_or_provision("acme", "sub-1", newer)
        assert not created
        assert updated.id == user.id
        assert updated.profile == newer
        assert (await store.get(user.id)).profile == newer  # type: ignore[union-attr]

    async def test_update_false_keeps_the_stored_profile(self, store: UserStore) -> None:
        await store.get_or_provision("acme", "sub-1", ALICE)
        user, _ = await store.get_or_provision("acme", "sub-1", Profile(), update=False)
        assert user.profile == ALICE

    async def test_deactivate_and_reactivate(self, store: UserStore) -> None:
        user, _ = await store.get_or_provision("acme", "sub-1", ALICE)
        off = await store.update(user.id, active=False)
        assert off is not None
        assert not off.active
        seen, _ = await store.get_or_provision("acme", "sub-1", ALICE)
        assert not seen.active
        on = await store.update(user.id, active=True)
        assert on is not None
        assert on.active

    async def test_delete_leaves_an_inactive_tombstone(self, store: UserStore) -> None:
        user, _ = await store.get_or_provision("acme", "sub-1", ALICE)
        gone = await store.update(user.id, deleted=True)
        assert gone is not None
        assert gone.deleted
        assert not gone.active
        again, created = await store.get_or_provision("acme", "sub-1", Profile(email="x@y.z"))
        assert not created
        assert again.deleted
        assert not again.active
        assert again.profile == ALICE  # a tombstone is never updated by a sign-in
        assert await store.find_by_user_name("acme", "alice@acme.example") is None

    async def test_unknown_ids_return_none(self, store: UserStore) -> None:
        assert await store.get(str(uuid.uuid4())) is None
        assert await store.get_by_subject("acme", "nobody") is None
        assert await store.update(str(uuid.uuid4()), active=False) is None

    async def test_find_by_user_name_is_case_insensitive_and_per_connection(
        self, store: UserStore
    ) -> None:
        user, _ = await store.get_or_provision("acme", "sub-1", ALICE)
        found = await store.find_by_user_name("acme", "ALICE@Acme.Example")
        assert found is not None
        assert found.id == user.id
        assert await store.find_by_user_name("globex", "alice@acme.example") is None

    async def test_list_pages_through_one_connection(self, store: UserStore) -> None:
        ids = set()
        for i in range(7):
            user, _ = await store.get_or_provision("acme", f"sub-{i}", Profile())
            ids.add(user.id)
        await store.get_or_provision("globex", "sub-x", Profile())
        seen: list[str] = []
        after = None
        for _ in range(10):
            page = await store.list("acme", limit=3, after=after)
            seen.extend(u.id for u in page.users)
            assert all(u.connection == "acme" for u in page.users)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert seen == sorted(ids)

    async def test_concurrent_first_sign_ins_create_one_record(self, store: UserStore) -> None:
        results = await asyncio.gather(
            *(store.get_or_provision("acme", "racer", ALICE) for _ in range(50))
        )
        assert len({user.id for user, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        page = await store.list("acme", limit=100)
        assert [u.subject for u in page.users] == ["racer"]


class TestMemoryUserStore(UserStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[UserStore]:
        store = MemoryUserStore()
        await store.start()
        yield store
        await store.close()


class TestSQLiteUserStore(UserStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[UserStore]:
        store = SQLUserStore(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}")
        await store.start()
        yield store
        await store.close()


@pytest.mark.postgres
class TestPostgresUserStore(UserStoreContract):
    @pytest.fixture
    async def store(self, postgres_url: str) -> AsyncIterator[UserStore]:
        store = SQLUserStore(postgres_url, table_prefix=f"t{uuid.uuid4().hex[:12]}_")
        await store.start()
        yield store
        async with store._engine.begin() as conn:
            await conn.run_sync(store.metadata.drop_all)
        await store.close()


def test_sql_store_has_a_unique_constraint_on_connection_and_subject() -> None:
    store = SQLUserStore("sqlite+aiosqlite://")
    uniques = [
        tuple(c.name for c in cons.columns)
        for cons in store.users.constraints
        if isinstance(cons, sa.UniqueConstraint)
    ]
    assert ("connection", "subject") in uniques
