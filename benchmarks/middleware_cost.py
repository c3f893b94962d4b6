"""Suite ``middleware``: per-request cost in-process (``await app(scope, receive, send)``).

The parent mints RS256 tokens and checks every app once (warm-up answered 200, a
tampered token refused); ``python -m benchmarks.middleware_cost`` is the pyperf
script that times them, each app in pyperf's own worker processes. A loop is one
request. Cold: every request carries a token never seen before (a fresh app, built
untimed, for every pass over the tokens); warm: the same token every time. The
overhead of a protected app is its mean time per request minus its unauthenticated
baseline's, both measured in the same run.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyperf

from benchmarks.apps import APPS, BASELINE, STUBBED
from benchmarks.fixtures import Material, make_material
from benchmarks.harness import Budget, failure, read_pyperf, run_pyperf, suite_runner

CASES = (
    ("starlette", "warm"),
    ("asgi_sso", "warm"),
    ("asgi_sso", "cold"),
    ("asgi_sso_stubbed", "cold"),
    ("asgi_sso_signature_only", "cold"),
    ("verify_then_starlette", "cold"),
    ("starlette_pyjwt", "cold"),
    ("litestar", "warm"),
    ("litestar_jwt", "cold"),
    ("fastapi", "warm"),
    ("fastapi_pyjwt", "cold"),
)
"""(app, mode); baselines carry a token header too but do not read it.
``asgi_sso_stubbed`` (verification stubbed out) splits the cold cost into the
middleware's own steps and verification inside the request loop;
``asgi_sso_signature_only`` (nothing but the floor's signature check) bounds the
cold ratio any verifier could reach; ``verify_then_starlette`` (no middleware, the
verifier called by hand before bare Starlette) is verification's own cost inside
the request loop."""

MATERIAL = "material-middleware.json"


def _scope(token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"user-agent", b"bench"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


class _Exchange:
    """receive/send of one request, remembering the response status."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


class Driver:
    """Serves requests to one app in-process, on one event loop."""

    def __init__(self, material: Material, name: str) -> None:
        self.material = material
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.exchange = _Exchange()

    def serve(self, app: Any, scopes: list[dict[str, Any]]) -> float:
        """Seconds spent serving ``scopes`` one after the other; fails unless all got 200."""

        async def serve() -> float:
            receive, send = self.exchange.receive, self.exchange.send
            started = pyperf.perf_counter()
            for scope in scopes:
                await app(scope, receive, send)
            return pyperf.perf_counter() - started

        seconds = self.loop.run_until_complete(serve())
        if self.exchange.status != 200:
            raise AssertionError(f"{self.name} answered {self.exchange.status}")
        return seconds

    def app(self) -> Any:
        """A fresh app, warmed up: twice, since asgi_sso stores a token from its second
        sighting on."""
        app = APPS[self.name](self.material)
        self.serve(app, [_scope(self.material.warmup[0]) for _ in range(2)])
        return app

    def status_of(self, token: str) -> int:
        """The status a fresh app answers ``token`` with."""
        app = APPS[self.name](self.material)
        self.loop.run_until_complete(app(_scope(token), self.exchange.receive, self.exchange.send))
        return self.exchange.status


def time_func(driver: Driver, mode: str) -> Callable[[int], float]:
    """pyperf's ``time_func(loops)``: seconds spent serving ``loops`` requests.

    Every request gets fresh header bytes, as a server makes them (a bytes object
    caches its hash: reusing one would flatter header lookups).
    """
    warm: list[Any] = []

    def timed(loops: int) -> float:
        if mode == "warm":
            if not warm:
                warm.append(driver.app())
            token = driver.material.warmup[0]
            return driver.serve(warm[0], [_scope(token) for _ in range(loops)])
        total, tokens = 0.0, driver.material.tokens
        for start in range(0, loops, len(tokens)):
            scopes = [_scope(t) for t in tokens[: min(len(tokens), loops - start)]]
            total += driver.serve(driver.app(), scopes)
        return total

    return timed


def main() -> None:
    """The pyperf script: ``--case asgi_sso:cold`` for each case to time."""
    runner, args = suite_runner("benchmarks.middleware_cost")
    material = Material.load(Path(args.material_dir) / MATERIAL)
    for case in args.case:
        app, _, mode = case.partition(":")
        runner.bench_time_func(case, time_func(Driver(material, app), mode))


def check(material: Material, app: str) -> dict[str, Any]:
    """Parent side, before timing: ``{}``, or why the app cannot run.

    Every protected app must refuse a tampered token (the stubbed ones accept any).
    """
    driver = Driver(material, app)
    try:
        driver.serve(driver.app(), [_scope(material.tokens[0])])
        if app in BASELINE and app not in STUBBED and driver.status_of(material.tampered()) != 401:
            raise AssertionError("a tampered token was not refused with 401")
    except Exception as exc:
        return failure(exc)
    finally:
        driver.loop.close()
    return {}


def run(budget: Budget, workdir: Path) -> tuple[dict[str, Any], Path]:
    """Parent side: mint, check every app, time them on pyperf, subtract the baselines."""
    material, _ = make_material("RS256", budget.mw_requests)
    material.save(workdir / MATERIAL)
    results = {f"{app}:{mode}": check(material, app) for app, mode in CASES}
    ready = [case for case, outcome in results.items() if not outcome]
    path = run_pyperf("benchmarks.middleware_cost", workdir, ready, budget.pyperf)
    return judge(results, ready, read_pyperf(path)), path


def judge(
    results: dict[str, dict[str, Any]], ready: list[str], timed: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Merge pyperf's figures; each protected app's overhead over its baseline's mean."""
    for case in ready:
        results[case].update(timed.get(case, {"error": "pyperf produced no values"}))
    for case, figures in results.items():
        baseline = BASELINE.get(case.partition(":")[0])
        base = results.get(f"{baseline}:warm", {})
        if baseline is None or "mean_us" not in figures or "mean_us" not in base:
            continue
        figures["baseline"] = baseline
        figures["overhead_us"] = figures["mean_us"] - base["mean_us"]
        figures["overhead_stdev_us"] = math.hypot(figures["stdev_us"], base["stdev_us"])
    return results


if __name__ == "__main__":
    main()
