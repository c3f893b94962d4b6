"""SQLUserStore against real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from asgi_sso.errors import ConfigurationError, StoreUnavailable
from asgi_sso.identity.stores import Profile
from asgi_sso.identity.stores.sql import SCHEMA_VERSION, SQLUserStore


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[SQLUserStore]:
    store = SQLUserStore(postgres_url, table_prefix=f"t{uuid.uuid4().hex[:12]}_")
    await store.start()
    yield store
    async with store._engine.begin() as conn:
        await conn.run_sync(store.metadata.drop_all)
    await store.close()


async def stored_version(store: SQLUserStore) -> int | None:
    async with store._engine.connect() as conn:
        return (await conn.execute(sa.select(store.versions.c.version))).scalar_one_or_none()


@pytest.mark.postgres
async def test_postgres_start_records_the_schema_version(pg_store: SQLUserStore) -> None:
    assert await stored_version(pg_store) == SCHEMA_VERSION
    await pg_store.start()  # idempotent: a second worker's start changes nothing
    assert await stored_version(pg_store) == SCHEMA_VERSION


@pytest.mark.postgres
async def test_postgres_concurrent_starts_do_not_collide(postgres_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    stores = [SQLUserStore(postgres_url, table_prefix=prefix) for _ in range(4)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        assert await stored_version(stores[0]) == SCHEMA_VERSION
    finally:
        async with stores[0]._engine.begin() as conn:
            await conn.run_sync(stores[0].metadata.drop_all)
        for s in stores:
            await s.close()


@pytest.mark.postgres
async def test_postgres_fifty_concurrent_first_sign_ins_make_one_row(
    pg_store: SQLUserStore,
) -> None:
    profile = Profile(email="bob@acme.example")
    results = await asyncio.gather(
        *(pg_store.get_or_provision("acme", "bob", profile) for _ in range(50))
    )
    assert len({u.id for u, _ in results}) == 1
    async with pg_store._engine.connect() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).select_from(pg_store.users))
        ).scalar()
    assert count == 1


@pytest.mark.postgres
async def test_postgres_unique_constraint_is_enforced_by_the_database(
    pg_store: SQLUserStore,
) -> None:
    await pg_store.get_or_provision("acme", "carol", Profile())
    row = {
        "id": str(uuid.uuid4()),
        "connection": "acme",
        "subject": "carol",
        "groups": [],
        "active": True,
        "deleted": False,
        "created_at": 0.0,
        "updated_at": 0.0,
    }
    with pytest.raises(sa.exc.IntegrityError):
        async with pg_store._engine.begin() as conn:
            await conn.execute(pg_store.users.insert().values(row))


@pytest.mark.postgres
async def test_postgres_newer_schema_is_refused(pg_store: SQLUserStore) -> None:
    async with pg_store._engine.begin() as conn:
        await conn.execute(pg_store.versions.update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(ConfigurationError, match="newer"):
        await pg_store.start()


async def test_unreachable_postgres_is_store_unavailable() -> None:
    store = SQLUserStore("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(StoreUnavailable) as info:
            await store.get_or_provision("acme", "dave", Profile())
        assert info.value.status == 503
        with pytest.raises(StoreUnavailable):
            await store.start()
    finally:
        await store.close()


async def test_sqlite_users_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'users.db'}"
    first = SQLUserStore(url)
    await first.start()
    user, _ = await first.get_or_provision("acme", "erin", Profile(tier="pro"))
    await first.close()
    second = SQLUserStore(url)
    await second.start()
    try:
        again, created = await second.get_or_provision("acme", "erin", Profile(tier="pro"))
        assert not created
        assert again.id == user.id
        assert await stored_version(second) == SCHEMA_VERSION
    finally:
        await second.close()


async def test_sqlite_migrates_from_an_empty_database(tmp_path: Path) -> None:
    store = SQLUserStore(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    assert not (tmp_path / "empty.db").exists()
    await store.start()
    try:
        assert await stored_version(store) == SCHEMA_VERSION
    finally:
        await store.close()


async def test_sqlite_corrupt_file_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database file" * 100)
    store = SQLUserStore(f"sqlite+aiosqlite:///{path}")
    try:
        with pytest.raises(StoreUnavailable):
            await store.start()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_failed_write_leaves_no_half_written_user(pg_store: SQLUserStore) -> None:
    user, _ = await pg_store.get_or_provision("acme", "frank", Profile(email="f@acme.example"))
    # A value the JSON column cannot encode fails the UPDATE inside its transaction.
    bad = Profile(email="new@acme.example", groups=(object(),))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        await pg_store.update(user.id, profile=bad, active=False)
    kept = await pg_store.get(user.id)
    assert kept is not None
    assert kept.active
    assert kept.profile.email == "f@acme.example"


def test_bad_configuration_fails_at_build_time() -> None:
    with pytest.raises(ConfigurationError):
        SQLUserStore()
    with pytest.raises(ConfigurationError):
        SQLUserStore("sqlite+aiosqlite://", table_prefix="x; DROP")


@pytest.mark.postgres
@pytest.mark.parametrize("value", ["a\\u0000b", "\\ud800", "ctl\\u0001", "x\x02"])
async def test_postgres_scim_filter_with_bad_characters_is_400_not_503(
    pg_store: SQLUserStore, value: str
) -> None:
    import httpx

    from asgi_sso.config import Secret
    from asgi_sso.deprovision.scim import ScimApp, ScimConfig

    await pg_store.get_or_provision("acme", "alice-sub", Profile(user_name="alice"))
    app = ScimApp(ScimConfig(tokens={"acme": Secret("acme-secret-0123456789")}), pg_store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t/scim/v2") as client:
        headers = {"authorization": "Bearer acme-secret-0123456789"}
        for attribute in ("userName", "externalId"):
            response = await client.get(
                "/Users", params={"filter": f'{attribute} eq "{value}"'}, headers=headers
            )
            assert response.status_code == 400, response.text
            assert response.json()["scimType"] == "invalidValue"
        found = await client.get(
            "/Users", params={"filter": 'userName eq "alice"'}, headers=headers
        )
        assert found.json()["totalResults"] == 1
