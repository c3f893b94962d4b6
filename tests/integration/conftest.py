"""Fixtures shared by the real-server integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the shared test Redis."""
    redis = Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix of its own for one test; every key under it is deleted afterwards."""
    value = f"asgi_sso_test:{uuid.uuid4().hex}:"
    yield value
    keys = [key async for key in redis_client.scan_iter(match=value + "*")]
    if keys:
        await redis_client.delete(*keys)
