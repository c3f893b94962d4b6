"""The runner: ``python -m benchmarks [SUITE|all] [--quick] [--out DIR]``.

Suites: verify, middleware, connections, dpop, e2e, memory, refusals. ``verify``,
``middleware``, ``connections`` and ``dpop`` run on pyperf; their pyperf JSON files are kept in
``OUT/pyperf/`` for ``python -m pyperf compare_to``.

One suite run alone merges into ``OUT/results.json``: the other suites' figures and the
machine of their run stay; ``runs`` says when, on what budget, each suite was measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    connections_cost,
    dpop_cost,
    e2e,
    memory,
    middleware_cost,
    refusals,
    report,
    verify_cost,
)
from benchmarks.harness import Budget, keep_pyperf

PYPERF_SUITES: dict[str, Callable[[Budget, Path], tuple[dict[str, Any], Path]]] = {
    "verify": verify_cost.run,
    "middleware": middleware_cost.run,
    "connections": connections_cost.run,
    "dpop": dpop_cost.run,
}
OTHER_SUITES: dict[str, Callable[[Budget, Path], dict[str, Any]]] = {
    "e2e": e2e.run,
    "memory": memory.run,
    "refusals": refusals.run,
}
SUITES = [*PYPERF_SUITES, *OTHER_SUITES]
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", nargs="?", default="all", choices=[*SUITES, "all"])
    parser.add_argument("--quick", action="store_true", help="a small budget (a few minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    parser.add_argument("--tokens", type=int, help="override: cold tokens per fresh verifier/app")
    parser.add_argument(
        "--pyperf",
        help='override: pyperf options, e.g. "--rigorous" or "--debug-single-value"',
    )
    parser.add_argument("--duration", type=float, help="override: seconds of wrk per e2e run")
    parser.add_argument("--memory-tokens", type=int, help="override: tokens in the memory test")
    return parser.parse_args(argv)


def budget_from(args: argparse.Namespace) -> Budget:
    """The budget chosen by ``--quick`` and the overrides."""
    budget = Budget.quick() if args.quick else Budget()
    changes: dict[str, Any] = {}
    if args.tokens:
        changes.update(tokens=args.tokens, mw_requests=args.tokens, e2e_tokens=args.tokens * 5)
    if args.pyperf is not None:
        changes["pyperf"] = tuple(shlex.split(args.pyperf))
    if args.duration:
        changes["duration"] = args.duration
    if args.memory_tokens:
        changes["memory_tokens"] = args.memory_tokens
    return dataclasses.replace(budget, **changes)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites, merge into ``OUT/results.json``, write the report."""
    args = parse(argv)
    budget = budget_from(args)
    suites = SUITES if args.suite == "all" else [args.suite]
    previous = args.out / "results.json"
    results: dict[str, Any] = {}
    if args.suite != "all" and previous.exists():
        results = json.loads(previous.read_text())
    machine = report.machine()
    run_of = {
        "budget_name": "quick" if args.quick else "full",
        "budget": dataclasses.asdict(budget),
    }
    if "machine" not in results:  # the header names the run of the suites measured together
        results.update(machine=machine, **run_of)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="asgi-sso-bench-") as tmp:
        for suite in suites:
            began = time.perf_counter()
            if suite in PYPERF_SUITES:
                results[suite], raw = PYPERF_SUITES[suite](budget, Path(tmp))
                results.setdefault("pyperf_files", {})[suite] = keep_pyperf(raw, args.out, suite)
            else:
                results[suite] = OTHER_SUITES[suite](budget, Path(tmp))
            seconds = round(time.perf_counter() - began, 1)
            results.setdefault("runs", {})[suite] = {
                **run_of,
                "machine": machine,
                "seconds": seconds,
            }
    if args.suite == "all" or "seconds" not in results:
        results["seconds"] = round(time.perf_counter() - started, 1)
    for path in report.write(results, args.out):
        print(f"wrote {path}", file=sys.stderr)
    print(report.markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
