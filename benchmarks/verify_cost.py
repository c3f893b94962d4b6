"""Suite ``verify``: tokens per CPU-second of each candidate, per algorithm, in one run.

Every (candidate, algorithm, mode) case runs in a fresh process on the same
pre-minted tokens; ratios divide by the raw-``cryptography`` floor measured in
the same run.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.candidates import CANDIDATES, Unsupported
from benchmarks.fixtures import ALGORITHMS, Material, check_refuses, make_material
from benchmarks.harness import Budget, Progress, measure, run_isolated

FLOOR = "raw_crypto"


def cases() -> list[tuple[str, str]]:
    """(candidate module, mode) pairs in report order."""
    out = [(name, "cold") for name in CANDIDATES]
    out.insert(CANDIDATES.index("asgi_sso_") + 1, ("asgi_sso_", "warm"))
    return out


def run_case(task: dict[str, Any]) -> dict[str, Any]:
    """Worker side: measure one candidate on one algorithm."""
    material = Material.load(task["material"])
    module = importlib.import_module(f"benchmarks.candidates.{task['candidate']}")
    mode: str = task["mode"]
    try:
        module.setup(material, mode)
    except Unsupported as exc:
        return {"name": module.NAME, "unsupported": str(exc)}
    tokens: Sequence[str]
    tokens = [material.warmup[0]] * task["warm_ops"] if mode == "warm" else material.tokens

    def prepared() -> Any:
        batch = module.setup(material, mode)
        batch(material.warmup[:1])  # keys fetched, caches primed (warm: the token cached)
        return lambda: batch(tokens)

    check_refuses(module.setup(material, mode), material)
    result = measure(prepared, len(tokens), task["repeats"])
    return {"name": module.NAME, **result}


def run(budget: Budget, workdir: Path) -> dict[str, Any]:
    """Parent side: mint, then run every case in its own process."""
    results: dict[str, Any] = {}
    materials = {}
    for label in ALGORITHMS:
        material, _ = make_material(label, budget.tokens)
        path = workdir / f"material-{label}.json"
        material.save(path)
        materials[label] = path
    plan = [(label, cand, mode) for label in ALGORITHMS for cand, mode in cases()]
    progress = Progress(len(plan), "verify")
    for label, cand, mode in progress.over(plan, lambda c: f"{c[0]} {c[1]} {c[2]}"):
        task = {
            "suite": "verify",
            "material": str(materials[label]),
            "candidate": cand,
            "mode": mode,
            "repeats": budget.repeats,
            "warm_ops": budget.warm_ops,
        }
        results.setdefault(label, {})[f"{cand.rstrip('_')}:{mode}"] = run_isolated(task)
    for row in results.values():
        floor = row.get(f"{FLOOR}:cold", {}).get("cpu", {}).get("median_us")
        for case in row.values():
            if floor and "cpu" in case:
                case["ratio_to_floor"] = floor / case["cpu"]["median_us"]
    return results
