"""One memory case in a fresh interpreter: reads a JSON task on stdin, prints a JSON result.

The timed suites run in pyperf's worker processes instead; these suites count bytes.
"""

from __future__ import annotations

import json
import sys
import traceback
import warnings
from typing import Any


def main() -> None:
    """Dispatch the task to its suite's ``run_case``."""
    warnings.simplefilter("ignore")
    task: dict[str, Any] = json.loads(sys.stdin.read())
    suite = task["suite"]
    try:
        if suite == "memory":
            from benchmarks.memory import run_case
        elif suite == "refusals":
            from benchmarks.refusals import run_case
        else:
            raise ValueError(f"unknown suite {suite!r}")
        result = run_case(task)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
