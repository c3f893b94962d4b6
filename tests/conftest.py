"""Shared test configuration: Hypothesis profiles and real-server markers."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled module older than its source (``pip install -e .`` again)."""
    from importlib.machinery import EXTENSION_SUFFIXES
    from pathlib import Path

    import asgi_sso
    from asgi_sso._compiled import HOT_MODULES

    package = Path(asgi_sso.__path__[0])
    for name in HOT_MODULES:
        stem = package.joinpath(*name.split(".")[1:])
        source = stem.with_suffix(".py")
        for suffix in EXTENSION_SUFFIXES:
            built = stem.parent / f"{stem.name}{suffix}"
            if built.exists() and source.stat().st_mtime > built.stat().st_mtime:
                raise pytest.UsageError(
                    f"{built.name} is older than {source.name}: the tests would run stale "
                    "compiled code; rebuild with `pip install -e .` (or ./scripts/test)"
                )


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL URL; skips with a reason when it is down, unless CI=true."""
    if not _reachable("127.0.0.1", 5432) and os.environ.get("CI") != "true":
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (set CI=true to require it)")
    return "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis URL; skips with a reason when it is down, unless CI=true."""
    if not _reachable("127.0.0.1", 6379) and os.environ.get("CI") != "true":
        pytest.skip("Redis is not reachable at 127.0.0.1:6379 (set CI=true to require it)")
    return "redis://127.0.0.1:6379/0"
