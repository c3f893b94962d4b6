"""Suite ``connections``: verification cost with 1 and 1,000 configured connections, on pyperf.

Issue 22 asks that cold and warm verification cost the same however many customer
connections an app has. Each connection gets its own https issuer and ``jwks_uri``,
all answered by one ``httpx.MockTransport``; the timed tokens belong to the connection
added last, so a scan over the connections would show as a cost growing with the
count. A loop is one request through the step an ``SSOMiddleware`` built with
``connections=StaticConnections([...])`` takes for it: extract the bearer token,
verify it (routed by ``iss``), check its connection is still in force, build the
principal. Cold: a fresh middleware (connections loaded, the timed connection's keys
fetched, all untimed) for every pass over the pre-minted tokens; warm: the same token
every loop, a verified-token cache hit. Ratios divide the 1,000-connection mean by the
1-connection mean of the same run.

The parent also times, as a plain wall-clock figure, how long a worker takes to load a
new snapshot (``LiveConnections.reload()``) of 1 and of 1,000 connections.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pyperf

from benchmarks._asgi_sso import (
    AuthError,
    Connection,
    Limits,
    LiveConnections,
    SSOMiddleware,
    StaticConnections,
    authenticate,
    live_connections,
)
from benchmarks.fixtures import AUDIENCE, Material, make_material
from benchmarks.harness import (
    Budget,
    failure,
    ratio_of,
    read_pyperf,
    run_pyperf,
    suite_runner,
)

COUNTS = (1, 1000)
MODES = ("cold", "warm")
TARGET = "target"
"""The id of the connection whose tokens are timed (always added last)."""
TARGET_ISSUER = "https://target.idp.bench.example"
MATERIAL = "material-connections.json"
BAND = 0.10
"""A 1,000/1 ratio within 1 ± BAND is read as "does not depend on the count"."""
CHUNK = 10_000
"""Warm requests prepared at once: fresh header bytes each, in bounded memory."""


def cases() -> list[str]:
    """The pyperf benchmark names, e.g. ``cold:1000``, in report order."""
    return [f"{mode}:{count}" for mode in MODES for count in COUNTS]


def connections(count: int) -> list[Connection]:
    """``count`` connections, each with its own issuer and key set; the target is last."""

    def one(cid: str, issuer: str) -> Connection:
        return Connection(
            id=cid,
            issuer=issuer,
            jwks_uri=f"{issuer}/jwks",
            audience=(AUDIENCE,),
            domains=(f"{cid}.example",),
        )

    others = [one(f"c{i:04d}", f"https://c{i:04d}.idp.bench.example") for i in range(count - 1)]
    return [*others, one(TARGET, TARGET_ISSUER)]


def jwks_client(material: Material, items: Sequence[Connection]) -> httpx.AsyncClient:
    """An HTTP client answering each connection's ``jwks_uri`` (and nothing else)."""
    uris = {c.jwks_uri for c in items}
    body = material.jwks

    def answer(request: httpx.Request) -> httpx.Response:
        if str(request.url) in uris:
            return httpx.Response(200, json=body)
        return httpx.Response(404)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def scope(token: str) -> dict[str, Any]:
    """A request's scope as far as the authentication step reads it (fresh header bytes)."""
    return {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]}


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the suite times the middleware's step, never the app")


class Bench:
    """Middlewares over ``count`` connections, driven on one event loop."""

    def __init__(self, material: Material, count: int) -> None:
        self.material = material
        self.connections = connections(count)
        self.loop = asyncio.new_event_loop()
        self.warm: SSOMiddleware | None = None

    def app(self) -> SSOMiddleware:
        """A started middleware whose target keys are fetched (its warm-up token seen twice)."""
        app = SSOMiddleware(
            _inner,
            connections=StaticConnections(self.connections),
            http_client=jwks_client(self.material, self.connections),
            limits=Limits(token_cache_size=100_000),
        )
        self.loop.run_until_complete(app.startup())
        warmup = scope(self.material.warmup[0])
        self.serve(app, [warmup, warmup])  # a token is cached from its second sighting on
        return app

    def serve(self, app: SSOMiddleware, scopes: Sequence[dict[str, Any]]) -> float:
        """Seconds spent authenticating ``scopes`` one after the other (raises on a refusal)."""
        step: Callable[[Any], Awaitable[Any]] = authenticate(app)

        async def serve() -> float:
            started = pyperf.perf_counter()
            for each in scopes:
                await step(each)
            return pyperf.perf_counter() - started

        return self.loop.run_until_complete(serve())

    def principal(self, app: SSOMiddleware, token: str) -> Any:
        """The principal the middleware makes of ``token``."""
        principal, _ = self.loop.run_until_complete(authenticate(app)(scope(token)))
        return principal

    def close(self, app: SSOMiddleware) -> None:
        """Stop the middleware's background work and close its HTTP client."""
        self.loop.run_until_complete(app.shutdown())
        self.loop.run_until_complete(app.http_client.aclose())

    def finish(self) -> None:
        """Close the warm middleware, if any, and the event loop."""
        if self.warm is not None:
            self.close(self.warm)
            self.warm = None
        self.loop.close()


def time_func(bench: Bench, mode: str) -> Callable[[int], float]:
    """pyperf's ``time_func(loops)``: seconds spent authenticating ``loops`` requests."""

    def timed(loops: int) -> float:
        total = 0.0
        if mode == "warm":
            if bench.warm is None:  # one cache per worker process, primed once
                bench.warm = bench.app()
            token = bench.material.warmup[0]
            for start in range(0, loops, CHUNK):
                scopes = [scope(token) for _ in range(min(CHUNK, loops - start))]
                total += bench.serve(bench.warm, scopes)
            return total
        tokens = bench.material.tokens
        for start in range(0, loops, len(tokens)):
            app = bench.app()  # fresh: no timed token seen before
            total += bench.serve(app, [scope(t) for t in tokens[: min(len(tokens), loops - start)]])
            bench.close(app)
        return total

    return timed


def main() -> None:
    """The pyperf script: ``--case cold:1000`` for each case to time."""
    runner, args = suite_runner("benchmarks.connections_cost")
    material = Material.load(Path(args.material_dir) / MATERIAL)
    for case in args.case:
        mode, _, count = case.partition(":")
        bench = Bench(material, int(count))
        runner.bench_time_func(case, time_func(bench, mode))
        bench.finish()


def check(material: Material, count: int) -> dict[str, Any]:
    """Parent side, before timing: ``{}``, or why the case cannot run.

    The timed tokens must name the target connection, a tampered one must be refused.
    """
    bench = Bench(material, count)
    try:
        app = bench.app()
        tenant = bench.principal(app, material.tokens[0]).tenant
        if tenant != TARGET:
            raise AssertionError(f"the token was given to connection {tenant!r}")
        try:
            bench.principal(app, material.tampered())
        except AuthError:
            pass
        else:
            raise AssertionError("a tampered token was accepted")
        bench.close(app)
    except Exception as exc:
        return failure(exc)
    finally:
        bench.finish()
    return {}


def reload_cost(material: Material, count: int, repeats: int) -> dict[str, Any]:
    """Wall-clock milliseconds of ``LiveConnections.reload()`` over ``count`` connections.

    ``worker``: the middleware's own live view, so each reload also re-admits every
    connection and hands the new snapshot to the verifier (what a worker pays on a
    change); ``snapshot``: a bare ``LiveConnections`` over the same store.
    """
    bench = Bench(material, count)
    app = bench.app()
    bare = LiveConnections(
        StaticConnections(bench.connections), clock=app.clock, poll_interval=3600.0
    )
    out: dict[str, Any] = {"connections": count, "repeats": repeats}
    try:
        for name, live in (("worker", live_connections(app)), ("snapshot", bare)):
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                directory = bench.loop.run_until_complete(live.reload())
                seconds.append(time.perf_counter() - started)
            if len(directory) != count:
                raise AssertionError(f"reloaded {len(directory)} of {count} connections")
            out[name] = {
                "median_ms": statistics.median(seconds) * 1e3,
                "min_ms": min(seconds) * 1e3,
                "max_ms": max(seconds) * 1e3,
            }
        bench.close(app)
    except Exception as exc:
        return {"connections": count, **failure(exc)}
    finally:
        bench.finish()
    return out


def run(budget: Budget, workdir: Path) -> tuple[dict[str, Any], Path]:
    """Parent side: mint, check every case, time them on pyperf, compare 1,000 with 1."""
    material, _ = make_material("RS256", budget.tokens, issuer=TARGET_ISSUER)
    material.save(workdir / MATERIAL)
    checked = {count: check(material, count) for count in COUNTS}
    results = {case: dict(checked[int(case.partition(":")[2])]) for case in cases()}
    ready = [case for case, outcome in results.items() if not outcome]
    path = run_pyperf("benchmarks.connections_cost", workdir, ready, budget.pyperf)
    judged = judge(results, ready, read_pyperf(path))
    judged["reload"] = {str(n): reload_cost(material, n, budget.reloads) for n in COUNTS}
    return judged, path


def judge(
    results: dict[str, dict[str, Any]], ready: list[str], timed: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Merge pyperf's figures; per mode, the 1,000-connection mean over the 1-connection one.

    The ratio's spread combines both relative standard deviations; the ratio of the
    medians is given beside it (it moves less when a neighbour loads the machine).
    """
    for case in ready:
        results[case].update(timed.get(case, {"error": "pyperf produced no values"}))
    ratios: dict[str, dict[str, float]] = {}
    few, many = COUNTS
    for mode in MODES:
        ratio = ratio_of(results.get(f"{mode}:{few}", {}), results.get(f"{mode}:{many}", {}))
        if ratio is not None:
            ratios[mode] = ratio
    return {"cases": results, "ratios": ratios}


if __name__ == "__main__":
    main()
