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
