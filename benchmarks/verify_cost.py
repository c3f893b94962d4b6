"""Suite ``verify``: tokens per second of each candidate, per algorithm, on pyperf.

The parent mints one material file per algorithm and checks every case once
(a tampered token must be refused); ``python -m benchmarks.verify_cost`` is the
pyperf script that times them, each case in pyperf's own worker processes. A loop
is one token: cold cases go through the pre-minted tokens with a fresh candidate
(set up untimed) for every pass, so no timed token was seen before; warm asks
asgi_sso's verified-token cache for the same token every loop. Ratios divide the
floor's mean time per token by the case's, both measured in the same run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyperf

from benchmarks.candidates import CANDIDATES, Unsupported
from benchmarks.fixtures import ALGORITHMS, Material, check_refuses, make_material
from benchmarks.harness import Budget, failure, read_pyperf, run_pyperf, suite_runner

FLOOR = "raw_crypto:cold"


def cases() -> list[tuple[str, str]]:
    """(candidate module, mode) pairs in report order."""
    out = [(name, "cold") for name in CANDIDATES]
    out.insert(CANDIDATES.index("asgi_sso_") + 1, ("asgi_sso_", "warm"))
    return out


def key(candidate: str, mode: str) -> str:
    """The report's name of a case, e.g. ``asgi_sso:cold``."""
    return f"{candidate.rstrip('_')}:{mode}"


def _candidate(material: Material, candidate: str, mode: str) -> Callable[[Sequence[str]], object]:
    """The candidate's batch verifier, with keys fetched and caches primed (untimed)."""
    module = importlib.import_module(f"benchmarks.candidates.{candidate}")
    batch: Callable[[Sequence[str]], object] = module.setup(material, mode)
    batch(material.warmup[:1])  # warm: the token now cached
    return batch


def time_func(material: Material, candidate: str, mode: str) -> Callable[[int], float]:
    """pyperf's ``time_func(loops)``: seconds spent verifying ``loops`` tokens."""
    warm: list[Callable[[Sequence[str]], object]] = []

    def timed(loops: int) -> float:
        if mode == "warm":
            if not warm:  # one cache per worker process, primed once
                warm.append(_candidate(material, candidate, mode))
            tokens = [material.warmup[0]] * loops
            started = pyperf.perf_counter()
            warm[0](tokens)
            return pyperf.perf_counter() - started
        total, size = 0.0, len(material.tokens)
        for start in range(0, loops, size):
            batch = _candidate(material, candidate, mode)  # fresh: nothing seen before
            chunk = material.tokens[: min(size, loops - start)]
            started = pyperf.perf_counter()
            batch(chunk)
            total += pyperf.perf_counter() - started
        return total

    return timed


def main() -> None:
    """The pyperf script: ``--case "RS256 asgi_sso_:cold"`` for each case to time."""
    runner, args = suite_runner("benchmarks.verify_cost")
    materials: dict[str, Material] = {}
    for case in args.case:
        label, _, spec = case.partition(" ")
        candidate, _, mode = spec.partition(":")
        if label not in materials:
            materials[label] = Material.load(Path(args.material_dir) / f"material-{label}.json")
        runner.bench_time_func(case, time_func(materials[label], candidate, mode))


def check(material: Material, candidate: str, mode: str) -> dict[str, Any]:
    """Parent side, before timing: the candidate's name, or why the case cannot run."""
    module = importlib.import_module(f"benchmarks.candidates.{candidate}")
    try:
        check_refuses(module.setup(material, mode), material)
        _candidate(material, candidate, mode)(material.tokens[:1])
    except Unsupported as exc:
        return {"name": module.NAME, "unsupported": str(exc)}
    except Exception as exc:
        return {"name": module.NAME, **failure(exc)}
    return {"name": module.NAME}


def run(budget: Budget, workdir: Path) -> tuple[dict[str, Any], Path]:
    """Parent side: mint, check every case, time them on pyperf, judge against the floor."""
    results: dict[str, dict[str, Any]] = {}
    ready: list[str] = []
    for label in ALGORITHMS:
        material, _ = make_material(label, budget.tokens)
        material.save(workdir / f"material-{label}.json")
        for candidate, mode in cases():
            results.setdefault(label, {})[key(candidate, mode)] = outcome = check(
                material, candidate, mode
            )
            if set(outcome) == {"name"}:
                ready.append(f"{label} {candidate}:{mode}")
    path = run_pyperf("benchmarks.verify_cost", workdir, ready, budget.pyperf)
    return judge(results, ready, read_pyperf(path)), path


def judge(
    results: dict[str, dict[str, Any]], ready: list[str], timed: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Merge pyperf's figures into ``results``; each case's ratio to its floor's mean."""
    for case in ready:
        label, _, spec = case.partition(" ")
        candidate, _, mode = spec.partition(":")
        figures = timed.get(case, {"error": "pyperf produced no values (see its output)"})
        results[label][key(candidate, mode)].update(figures)
    for row in results.values():
        floor = row.get(FLOOR, {}).get("mean_us")
        for case in row.values():
            if floor and case.get("mean_us"):
                case["ratio_to_floor"] = floor / case["mean_us"]
    return results


if __name__ == "__main__":
    main()
