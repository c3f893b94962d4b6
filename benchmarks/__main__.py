"""The runner: ``python -m benchmarks [SUITE|all] [--quick] [--out DIR]``.

Suites: verify, middleware, e2e, memory, refusals.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import e2e, memory, middleware_cost, refusals, report, verify_cost
from benchmarks.harness import Budget
from benchmarks.quiet import CALIBRATION, QuietSpells

SUITES = {
    "verify": verify_cost.run,
    "middleware": middleware_cost.run,
    "e2e": e2e.run,
    "memory": memory.run,
    "refusals": refusals.run,
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", nargs="?", default="all", choices=[*SUITES, "all"])
    parser.add_argument("--quick", action="store_true", help="a small budget (well under a minute)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    parser.add_argument("--tokens", type=int, help="override: cold tokens / requests per repeat")
    parser.add_argument("--repeats", type=int, help="override: repeats per case")
    parser.add_argument("--rounds", type=int, help="override: verify/middleware rounds")
    parser.add_argument("--duration", type=float, help="override: seconds of wrk per e2e case")
    parser.add_argument("--memory-tokens", type=int, help="override: tokens in the memory test")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="override: seconds each suite may wait for quiet spells (0: never wait)",
    )
    return parser.parse_args(argv)


def budget_from(args: argparse.Namespace) -> Budget:
    """The budget chosen by ``--quick`` and the overrides."""
    budget = Budget.quick() if args.quick else Budget()
    changes: dict[str, Any] = {}
    if args.tokens:
        changes.update(tokens=args.tokens, mw_requests=args.tokens, e2e_tokens=args.tokens * 5,
                       warm_ops=args.tokens * 10, mw_warm_requests=args.tokens * 10)  # fmt: skip
    if args.repeats:
        changes.update(repeats=args.repeats, e2e_repeats=args.repeats)
    if args.rounds:
        changes["rounds"] = args.rounds
    if args.duration:
        changes["duration"] = args.duration
    if args.memory_tokens:
        changes["memory_tokens"] = args.memory_tokens
    if args.quiet_wait is not None:
        changes["quiet_wait"] = args.quiet_wait
    return dataclasses.replace(budget, **changes)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites, merge into ``OUT/results.json``, write the report."""
    args = parse(argv)
    budget = budget_from(args)
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    previous = args.out / "results.json"
    results: dict[str, Any] = {}
    if args.suite != "all" and previous.exists():
        results = json.loads(previous.read_text())
    results["machine"] = report.machine()
    results["budget_name"] = "quick" if args.quick else "full"
    results["budget"] = dataclasses.asdict(budget)
    started = time.perf_counter()
    spells = QuietSpells(budget.quiet_wait, min(CALIBRATION, budget.quiet_wait))
    with tempfile.TemporaryDirectory(prefix="asgi-sso-bench-") as tmp:
        for suite in suites:
            results[suite] = SUITES[suite](budget, Path(tmp), spells)
    quiet = spells.summary()
    if args.suite != "all" and "quiet" in results:
        quiet["suites"] = {**results["quiet"].get("suites", {}), **quiet["suites"]}
    results["quiet"] = quiet
    results["seconds"] = round(time.perf_counter() - started, 1)
    for path in report.write(results, args.out):
        print(f"wrote {path}", file=sys.stderr)
    print(report.markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
