"""Suite ``verify``: tokens per CPU-second of each candidate, per algorithm, in one run.

Every (candidate, algorithm, mode) case runs in a fresh process on the same
pre-minted tokens, once per round; ratios divide by the raw-``cryptography``
floor measured in the same round, and each case reports its median round.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.candidates import CANDIDATES, Unsupported
from benchmarks.fixtures import ALGORITHMS, Material, check_refuses, make_material
from benchmarks.harness import Budget, Progress, measure, median_round, run_isolated
from benchmarks.quiet import Gate, QuietSpells

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
    result = measure(prepared, len(tokens), task["repeats"], Gate.from_task(task))
    return {"name": module.NAME, **result}


def run(budget: Budget, workdir: Path, spells: QuietSpells) -> dict[str, Any]:
    """Parent side: mint, then run every case in its own process, round after round."""
    materials = {}
    for label in ALGORITHMS:
        material, _ = make_material(label, budget.tokens)
        path = workdir / f"material-{label}.json"
        material.save(path)
        materials[label] = path
    # Rounds go over every case in turn, so a drift in the machine's speed touches every
    # case alike; ratios are taken within a round, against the floor measured in it.
    plan = [
        (round_, label, cand, mode)
        for round_ in range(budget.rounds)
        for label in ALGORITHMS
        for cand, mode in cases()
    ]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    progress = Progress(len(plan), "verify")
    for _, label, cand, mode in progress.over(plan, lambda c: f"{c[1]} {c[2]} {c[3]}"):
        task = {
            "suite": "verify",
            "material": str(materials[label]),
            "candidate": cand,
            "mode": mode,
            "repeats": budget.repeats,
            "warm_ops": budget.warm_ops,
            **spells.task("verify"),
        }
        outcome = run_isolated(task)
        spells.absorb("verify", outcome.get("quiet"))
        runs.setdefault((label, f"{cand.rstrip('_')}:{mode}"), []).append(outcome)
    return judge(runs)


def judge(runs: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    """Per (algorithm, case), the median round by its ratio to the same round's floor."""
    results: dict[str, Any] = {}
    for (label, key), outcomes in runs.items():
        floors = runs[(label, f"{FLOOR}:cold")]
        times = [o.get("cpu", {}).get("median_us", 0.0) for o in outcomes]
        if key == f"{FLOOR}:cold" or not all("cpu" in o for o in (*floors, *outcomes)):
            # The floor's median round by time (its ratio is 1); a failed round decides.
            case = median_round(outcomes, times, "round_us")
            if key == f"{FLOOR}:cold" and "cpu" in case:
                case["ratio_to_floor"] = 1.0
        else:
            ratios = [f["cpu"]["median_us"] / t for f, t in zip(floors, times, strict=True)]
            case = median_round(outcomes, ratios, "ratio_to_floor")
        results.setdefault(label, {})[key] = case
    return results
