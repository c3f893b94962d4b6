"""The grouped settings, and from_env(): one URL each for Redis and the user database."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso.config import Secret
from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.redis_bus import RedisRevocationBus
from asgi_sso.identity.stores.memory import MemoryUserStore
from asgi_sso.identity.stores.sql import SQLUserStore
from asgi_sso.keys.redis import RedisDocumentCache
from asgi_sso.sessions.redis import RedisSessionStore
from asgi_sso.settings import (
    Backends,
    CredentialSources,
    DPoPSettings,
    Environment,
    PathRules,
    database_url,
    from_env,
)
from asgi_sso.verify.dpop_redis import RedisProofMemory


async def close(env: Environment) -> None:
    if env.sessions is not None:
        await env.sessions.close()
    if env.revocations is not None:
        await env.revocations.close()
    await env.user_store.close()
    if isinstance(env.documents, RedisDocumentCache):
        await env.documents.aclose()
    if isinstance(env.dpop_proofs, RedisProofMemory):
        await env.dpop_proofs.aclose()


async def test_no_variables_keep_everything_in_process() -> None:
    env = from_env({})
    assert isinstance(env.user_store, MemoryUserStore)
    assert not env.shared
    # Nothing shared: the middleware keeps cookie sessions, its own bus and key caches.
    assert env.backends() == Backends()
    identity = env.identity()
    assert identity.user_store is env.user_store
    assert identity.tier_mapper is None


async def test_redis_url_shares_sessions_state_and_revocations() -> None:
    env = from_env(
        {
            "ASGI_SSO_REDIS_URL": "redis://:pw-secret@127.0.0.1:6379/0",
            "ASGI_SSO_REDIS_PREFIX": "app1:",
        }
    )
    backends = env.backends()
    assert isinstance(backends.sessions, RedisSessionStore)
    assert isinstance(backends.revocations, RedisRevocationBus)
    assert isinstance(backends.documents, RedisDocumentCache)
    assert env.shared
    assert "app1:" in repr(backends.sessions)
    assert backends.documents.key("https://idp/jwks").startswith("app1:doc:")
    # DPoP proofs too: one accepted by a worker is refused by every other.
    assert isinstance(backends.dpop_proofs, RedisProofMemory)
    assert backends.dpop_proofs.key("jkt jti").startswith("app1:dpop:")
    assert "pw-secret" not in repr(backends.dpop_proofs)
    assert "pw-secret" not in repr(backends.documents)
    assert "pw-secret" not in repr(env)
    # An app without browser sign-in shares revocations and keys, but has no sessions.
    api_only = env.backends(sessions=False)
    assert api_only.sessions is None
    assert api_only.revocations is backends.revocations
    assert api_only.documents is backends.documents
    assert api_only.dpop_proofs is backends.dpop_proofs
    await close(env)


async def test_database_url_selects_the_sql_store() -> None:
    env = from_env({"ASGI_SSO_DATABASE_URL": "sqlite:///:memory:"})
    assert isinstance(env.user_store, SQLUserStore)
    assert env.identity().user_store is env.user_store
    await close(env)


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


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PathRules(public="/health"), r"public takes a list of str, got a single"),
        (lambda: PathRules(public=["health"]), "must start with '/'"),
        (
            lambda: PathRules(scope_rules={"/a/*": "admin"}),
            r"PathRules.scope_rules takes .* got an entry that is a single str",
        ),
        (lambda: PathRules(root_path="/api/"), "root_path"),
        (
            lambda: PathRules(public=["/static/*"], scope_rules={"/static/admin/*": ["a"]}),
            r"'/static/admin/\*' lies within PathRules.public",
        ),
        (
            lambda: PathRules(public=["/*"], scope_rules={"/admin": ["a"]}),
            "'/admin' lies within PathRules.public",
        ),
        (lambda: CredentialSources(cookie_names="token"), r"cookie_names takes a list of str, got"),
        (lambda: CredentialSources(cookie_names=["a;b"]), "not a cookie token"),
        (lambda: CredentialSources(allowed_origins=["https://a.example/x"]), "scheme://host"),
        (
            lambda: CredentialSources(allowed_origins=["https://a.example"], check_origin=False),
            "check_origin=False turns off: drop one of them",
        ),
    ],
)
def test_bad_grouped_settings_fail_when_built(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_a_scope_rule_may_carve_into_public_paths_but_not_lie_within_them() -> None:
    # A public exception inside a protected prefix, and a rule beside a public prefix.
    PathRules(public=["/admin/health"], scope_rules={"/admin/*": ["admin"]})
    PathRules(public=["/static/*"], scope_rules={"/statistics/*": ["stats"]})
    PathRules(public=["/a/b/*"], scope_rules={"/a/*": ["x"]})


def test_grouped_settings_are_frozen_and_forbid_unknown_fields() -> None:
    rules = PathRules(public=["/health"])
    with pytest.raises(AttributeError):
        rules.optional = True  # type: ignore[misc]
    for kind in (PathRules, CredentialSources, Backends):
        with pytest.raises(TypeError):
            kind(public_paths=["/x"])  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com",
        "https://api.example.com/base/",
        "https://API.example.com:8443/a/b",
        "http://127.0.0.1:8000/x",
        "http://localhost",
        "http://[::1]:8000",
    ],
)
def test_an_external_url_is_kept_without_its_trailing_slash(url: str) -> None:
    assert PathRules(external_url=url).external_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("api.example.com", "absolute"),
        ("/base", "absolute"),
        ("ftp://api.example.com", "absolute"),
        ("http://api.example.com", "https"),
        ("http://10.0.0.1", "https"),
        ("https://api.example.com/?a=1", "query"),
        ("https://api.example.com/#top", "fragment"),
        ("https://user:pw@api.example.com", "user info"),
        ("https://api.example.com:99999", "malformed"),
        ("https://api.exámple.com", "characters"),
        ("https://api.example.com/a b", "characters"),
        ("https://api.example.com/a\nb", "characters"),
        ("https://api.example.com//a", "empty path segment"),
    ],
)
def test_a_malformed_external_url_is_refused(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        PathRules(external_url=url)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"nonce_secrets": [Secret(b"short")]}, "32 bytes"),
        ({"nonce_lifetime": 0}, "1 to 86400"),
        ({"nonce_lifetime": 10**6}, "1 to 86400"),
        ({"nonce_secrets": Secret(b"s" * 32)}, "nonce_secrets"),
    ],
)
def test_dpop_settings_are_checked(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        DPoPSettings(**kw)
    assert DPoPSettings(nonce_secrets=[Secret(b"s" * 32)]).nonce_secrets == (Secret(b"s" * 32),)
