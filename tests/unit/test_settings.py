"""from_env(): one URL each for Redis and the user database; zero-config defaults."""

from __future__ import annotations

import pytest

from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.redis_bus import RedisRevocationBus
from asgi_sso.identity.revocation import RevocationBus
from asgi_sso.identity.stores.memory import MemoryUserStore
from asgi_sso.identity.stores.sql import SQLUserStore
from asgi_sso.keys.redis import RedisDocumentCache
from asgi_sso.sessions.redis import RedisSessionStore
from asgi_sso.settings import Backends, database_url, from_env


async def close(backends: Backends) -> None:
    if backends.session_store is not None:
        await backends.session_store.close()
    await backends.revocations.close()
    await backends.user_store.close()
    if isinstance(backends.shared_documents, RedisDocumentCache):
        await backends.shared_documents.aclose()


async def test_no_variables_keep_everything_in_process() -> None:
    backends = from_env({})
    assert backends.session_store is None
    assert type(backends.revocations) is RevocationBus
    assert isinstance(backends.user_store, MemoryUserStore)
    assert not backends.shared
    assert backends.shared_documents is None
    assert backends.middleware_kwargs() == {
        "session_store": None,
        "revocations": backends.revocations,
        "user_store": backends.user_store,
        "shared_documents": None,
    }


async def test_redis_url_shares_sessions_state_and_revocations() -> None:
    backends = from_env(
        {
            "ASGI_SSO_REDIS_URL": "redis://:pw-secret@127.0.0.1:6379/0",
            "ASGI_SSO_REDIS_PREFIX": "app1:",
        }
    )
    assert isinstance(backends.session_store, RedisSessionStore)
    assert isinstance(backends.revocations, RedisRevocationBus)
    assert isinstance(backends.shared_documents, RedisDocumentCache)
    assert backends.middleware_kwargs()["shared_documents"] is backends.shared_documents
    assert backends.shared
    assert "app1:" in repr(backends.session_store)
    assert backends.shared_documents.key("https://idp/jwks").startswith("app1:doc:")
    assert "pw-secret" not in repr(backends.shared_documents)
    assert "pw-secret" not in repr(backends)
    await close(backends)


async def test_database_url_selects_the_sql_store() -> None:
    backends = from_env({"ASGI_SSO_DATABASE_URL": "sqlite:///:memory:"})
    assert isinstance(backends.user_store, SQLUserStore)
    await close(backends)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///users.db", "sqlite+aiosqlite:///users.db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_plain_database_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert database_url(given) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"ASGI_SSO_DATABASE_URL": "mysql://u:secret-pw@h/db"},
        {"ASGI_SSO_DATABASE_URL": "users.db"},
        {"ASGI_SSO_REDIS_URL": "http://127.0.0.1:6379"},
        {"ASGI_SSO_REDIS_URL": "redis://127.0.0.1:6379", "ASGI_SSO_REDIS_PREFIX": "a b"},
    ],
)
def test_bad_urls_fail_at_start_up_without_echoing_secrets(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        from_env(env)
    assert "secret-pw" not in str(caught.value)
