"""Suite ``middleware``: per-request cost in-process (``await app(scope, receive, send)``).

Each app runs in its own process. Cold: every request carries a token never
seen before; warm: the same token every time. The overhead of a protected app
is its per-request CPU time minus its unauthenticated baseline's (same run).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from benchmarks.apps import APPS, BASELINE, STUBBED
from benchmarks.fixtures import Material, make_material
from benchmarks.harness import Budget, Progress, measure, median_round, run_isolated
from benchmarks.quiet import Gate, QuietSpells

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


def run_case(task: dict[str, Any]) -> dict[str, Any]:
    """Worker side: time one app over cold or warm requests."""
    material = Material.load(task["material"])
    mode: str = task["mode"]
    loop = asyncio.new_event_loop()
    ex = _Exchange()
    tokens = material.tokens if mode == "cold" else [material.warmup[0]] * task["warm_requests"]

    async def serve(app: Any, scopes: list[dict[str, Any]]) -> None:
        receive, send = ex.receive, ex.send
        for template in scopes:
            await app(dict(template), receive, send)

    def prepared() -> Any:
        app = APPS[task["app"]](material)
        # Twice: asgi_sso stores a token from its second sighting on.
        loop.run_until_complete(serve(app, [_scope(material.warmup[0])] * 2))
        if ex.status != 200:
            raise AssertionError(f"warm-up answered {ex.status}")
        # Fresh header bytes for every request of every repeat, as a server makes them
        # (a bytes object caches its hash: reusing one would flatter header lookups).
        scopes = [_scope(t) for t in tokens]
        return lambda: loop.run_until_complete(serve(app, scopes))

    probe = prepared  # a tampered token must be refused by every protected app
    if task["app"] in BASELINE and task["app"] not in STUBBED:
        app = APPS[task["app"]](material)
        loop.run_until_complete(serve(app, [_scope(material.tampered())]))
        if ex.status != 401:
            raise AssertionError(f"tampered token answered {ex.status}")
    result = measure(probe, len(tokens), task["repeats"], Gate.from_task(task))
    if ex.status != 200:
        raise AssertionError(f"requests answered {ex.status}")
    return result


def run(budget: Budget, workdir: Path, spells: QuietSpells) -> dict[str, Any]:
    """Parent side: RS256 tokens, every app in its own process, round after round;
    overheads against the baseline measured in the same round, median round reported."""
    material, _ = make_material("RS256", budget.mw_requests)
    path = workdir / "material-middleware.json"
    material.save(path)
    runs: dict[str, list[dict[str, Any]]] = {}
    plan = [(round_, app, mode) for round_ in range(budget.rounds) for app, mode in CASES]
    progress = Progress(len(plan), "middleware")
    for _, app, mode in progress.over(plan, lambda c: f"{c[1]} {c[2]}"):
        task = {
            "suite": "middleware",
            "material": str(path),
            "app": app,
            "mode": mode,
            "repeats": budget.repeats,
            "warm_requests": budget.mw_warm_requests,
            **spells.task("middleware"),
        }
        outcome = run_isolated(task)
        spells.absorb("middleware", outcome.get("quiet"))
        runs.setdefault(f"{app}:{mode}", []).append(outcome)
    return judge(runs)


def judge(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per case, the median round by its overhead over the same round's baseline."""
    results: dict[str, Any] = {}
    for key, outcomes in runs.items():
        baseline = BASELINE.get(key.split(":")[0])
        bases = runs.get(f"{baseline}:warm", [])
        times = [o.get("cpu", {}).get("median_us", 0.0) for o in outcomes]
        if baseline is None or not all("cpu" in o for o in (*bases, *outcomes)):
            results[key] = median_round(outcomes, times, "round_us")
            continue
        overheads = [t - b["cpu"]["median_us"] for t, b in zip(times, bases, strict=True)]
        results[key] = {**median_round(outcomes, overheads, "overhead_us"), "baseline": baseline}
    return results
