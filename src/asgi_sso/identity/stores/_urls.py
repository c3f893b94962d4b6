"""Database URLs as operators write them, mapped to SQLAlchemy's async drivers."""

from __future__ import annotations

from asgi_sso.errors import ConfigurationError

__all__ = ["async_database_url"]

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def async_database_url(url: str, *, setting: str = "the database URL") -> str:
    """Map ``sqlite:///…`` / ``postgres://…`` to the async driver URL SQLAlchemy needs.

    Raises:
        ConfigurationError: the scheme is neither SQLite nor PostgreSQL (the message
            names ``setting`` and never the URL, which may hold a password).
    """
    scheme, sep, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower())
    if not sep or driver is None:
        raise ConfigurationError(
            f"{setting} must be a sqlite:// or postgresql:// URL (got scheme {scheme[:20]!r})"
        )
    return f"{driver}://{rest}"
