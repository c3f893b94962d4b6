"""The shared DPoP replay memory against the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from _redis_server import RedisServer
from redis.asyncio import Redis

from asgi_sso.config import Limits
from asgi_sso.errors import InvalidDPoPProof, StoreUnavailable
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.verify.dpop import DPoPChecker
from asgi_sso.verify.dpop_redis import RedisProofMemory

pytestmark = pytest.mark.redis

URL = "https://api.test/things"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"


@pytest.fixture
async def memories(redis_url: str, redis_prefix: str) -> AsyncIterator[list[RedisProofMemory]]:
    pair = [RedisProofMemory(redis_url, prefix=redis_prefix) for _ in range(2)]
    yield pair
    for memory in pair:
        await memory.aclose()


async def test_two_workers_accept_a_proof_once_and_redis_forgets_it_after_its_window(
    memories: list[RedisProofMemory], redis_client: Redis, redis_prefix: str
) -> None:
    client = DPoPClient()
    checkers = [
        DPoPChecker(Limits(dpop_proof_window=2.0), client.clock, memory=m) for m in memories
    ]
    request = {"method": "GET", "url": URL, "token": TOKEN, "jkt": client.jkt}
    proof = client.proof("GET", URL, TOKEN)
    await checkers[0].check(proof, **request)
    with pytest.raises(InvalidDPoPProof, match="already used"):
        await checkers[1].check(proof, **request)
    await checkers[1].check(client.proof("GET", URL, TOKEN), **request)
    keys = [key async for key in redis_client.scan_iter(match=redis_prefix + "dpop:*")]
    assert len(keys) == 2
    ttl = await redis_client.pttl(keys[0])
    assert 0 < ttl <= 3000  # iat + window, at most


async def test_concurrent_workers_let_exactly_one_use_through(
    memories: list[RedisProofMemory],
) -> None:
    until = time.time() + 60  # the memories' clock is the system's
    results = await asyncio.gather(
        *(memories[i % 2].remember("jkt race", until) for i in range(50))
    )
    assert results.count(True) == 1


async def test_a_redis_outage_refuses_with_503_and_recovers() -> None:
    server = RedisServer()
    server.start()
    memory = RedisProofMemory(server.url, timeout=0.5)
    try:
        assert await memory.remember("jkt a", 1e12)
        server.stop()
        with pytest.raises(StoreUnavailable):
            await memory.remember("jkt b", 1e12)
        server.start()  # empty again: only the new proof is known
        assert await memory.remember("jkt b", 1e12)
    finally:
        await memory.aclose()
        server.stop()
