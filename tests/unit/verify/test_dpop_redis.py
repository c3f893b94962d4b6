"""RedisProofMemory without a server: one atomic SET NX per proof, and an outage is a 503."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from asgi_sso.config import Limits
from asgi_sso.errors import ConfigurationError, InvalidDPoPProof, StoreUnavailable
from asgi_sso.testing import FakeClock
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.verify.dpop import DPoPChecker
from asgi_sso.verify.dpop_redis import RedisProofMemory

URL = "https://api.test/things"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"


class FakeRedis:
    """The one command the memory sends, with Redis's SET NX semantics."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, dict[str, Any]]] = []
        self.keys: set[str] = set()

    async def set(self, key: str, value: bytes, **options: Any) -> bool | None:
        self.calls.append((key, value, options))
        if key in self.keys:
            return None
        self.keys.add(key)
        return True


class DownRedis:
    async def set(self, key: str, value: bytes, **options: Any) -> bool | None:
        raise RedisConnectionError("Error 111 connecting to redis://:secret@10.0.0.1")


async def test_each_proof_is_one_set_nx_with_its_window_as_ttl() -> None:
    clock, redis = FakeClock(), FakeRedis()
    memory = RedisProofMemory(redis, prefix="app:", clock=clock)  # type: ignore[arg-type]
    assert await memory.remember("jkt jti", clock.time() + 60)
    assert not await memory.remember("jkt jti", clock.time() + 60)
    assert await memory.remember("jkt other", clock.time() + 0.0001)
    (key, value, options), _, (_, _, edge) = redis.calls
    assert key.startswith("app:dpop:")
    assert "jti" not in key  # hashed: untrusted input
    assert value == b"1"
    assert options == {"nx": True, "px": 60_000}
    assert edge["px"] == 1  # never 0 (an error) nor negative


async def test_workers_sharing_the_memory_accept_a_proof_once() -> None:
    clock, redis, client = FakeClock(), FakeRedis(), DPoPClient()
    client.clock = clock
    checkers = [
        DPoPChecker(Limits(), clock, memory=RedisProofMemory(redis, clock=clock))  # type: ignore[arg-type]
        for _ in range(2)
    ]
    proof = client.proof("GET", URL, TOKEN)
    request = {"method": "GET", "url": URL, "token": TOKEN, "jkt": client.jkt}
    await checkers[0].check(proof, **request)
    with pytest.raises(InvalidDPoPProof, match="already used"):
        await checkers[1].check(proof, **request)


async def test_an_outage_is_a_503_naming_no_url(caplog: pytest.LogCaptureFixture) -> None:
    memory = RedisProofMemory(DownRedis())  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable) as refused:
        await memory.remember("jkt jti", 1e12)
    assert refused.value.status == 503
    assert refused.value.retry_after > 0
    assert "secret" not in str(refused.value) + caplog.text


@pytest.mark.parametrize(
    "kw",
    [{"timeout": 0}, {"timeout": float("inf")}, {"prefix": "a b"}, {"prefix": ""}],
)
def test_bad_settings_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RedisProofMemory("redis://127.0.0.1:6379/0", **kw)


def test_a_url_is_checked_and_never_shown() -> None:
    with pytest.raises(ConfigurationError):
        RedisProofMemory("http://127.0.0.1:6379")
    assert "pw" not in repr(RedisProofMemory("redis://:pw@127.0.0.1:6379/0"))
