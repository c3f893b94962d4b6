from __future__ import annotations

from pathlib import Path

import pytest

from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.stores import Profile
from asgi_sso.identity.stores._urls import async_database_url
from asgi_sso.identity.stores.sql import SQLUserStore


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///users.db", "sqlite+aiosqlite:///users.db"),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
    ],
)
def test_plain_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert async_database_url(given) == expected


def test_unknown_scheme_is_refused_without_echoing_the_url() -> None:
    with pytest.raises(ConfigurationError) as info:
        async_database_url("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(info.value)


async def test_sql_store_takes_the_plain_sqlite_url_users_write(tmp_path: Path) -> None:
    store = SQLUserStore(f"sqlite:///{tmp_path / 'users.db'}")
    await store.start()
    try:
        user, created = await store.get_or_provision("acme", "ann", Profile(email="ann@acme.test"))
        assert created
        assert (await store.get(user.id)) == user
    finally:
        await store.close()
