"""Suite ``memory``: what N cached verified tokens cost, measured in a fresh process.

HS256 tokens (cheap to mint, same cache entry as any algorithm) are verified
twice each (a token is cached from its second sighting) into a verifier whose
cache holds them all; the cost is the RSS delta and the ``tracemalloc`` delta,
plus the cache's admission filter (a fixed 2 MiB allocated with the verifier,
before the window). Each token string is created inside the measured
window (from bytes allocated before it) and dropped after its verification, as a
server drops a request's header, so whatever the cache keeps of a token - the
token text itself included - is counted. Then ``N/2`` more tokens go through a
cache of size ``N`` to show the cache stays bounded.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks._asgi_sso import Limits, cache_footprint
from benchmarks.candidates.asgi_sso_ import verifier
from benchmarks.fixtures import _mint_range, make_material
from benchmarks.harness import Budget, Progress, run_isolated


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def run_case(task: dict[str, Any]) -> dict[str, Any]:
    """Worker side: fill a verified-token cache with ``count`` tokens and measure it."""
    count: int = task["count"]
    material, key = make_material("HS256", 0)
    tokens = [
        t.encode() for t in _mint_range("HS256", key, 0, count + count // 2, int(time.time()))
    ]
    limits = Limits(token_cache_size=count, token_cache_ttl=3600.0)
    loop = asyncio.new_event_loop()

    async def fill(v: Any, batch: list[bytes]) -> None:
        for token in batch:
            await v.verify(token.decode())
            await v.verify(token.decode())

    first = tokens[:count]
    v = verifier(material, limits)
    warmup = [material.warmup[0].encode()]
    loop.run_until_complete(fill(v, warmup))
    gc.collect()
    rss0 = _rss_bytes()
    loop.run_until_complete(fill(v, first))
    gc.collect()
    rss = _rss_bytes() - rss0
    cached, _ = cache_footprint(v)
    loop.run_until_complete(fill(v, tokens[count:]))
    bounded, _ = cache_footprint(v)
    del v
    gc.collect()

    v = verifier(material, limits)
    loop.run_until_complete(fill(v, warmup))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    loop.run_until_complete(fill(v, first))
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    filter_bytes = cache_footprint(v)[1]
    return {
        "tokens": count,
        "cached": cached,
        "after_overflow": bounded,
        "cache_size": count,
        "rss_bytes": rss,
        "traced_bytes": traced,
        "bytes_per_token": traced / count,
        "filter_bytes": filter_bytes,
        "projected_100k_mb": (traced / count * 100_000 + filter_bytes) / 2**20,
    }


def run(budget: Budget, workdir: Path) -> dict[str, Any]:
    """Parent side: one fresh process (bytes are counted, not timed)."""
    progress = Progress(1, "memory")
    for count in progress.over([budget.memory_tokens], lambda c: f"{c} cached tokens"):
        return run_isolated({"suite": "memory", "count": count}, timeout=600)
    return {}
