"""Run Python in a subprocess as if some distributions were not installed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# A meta path finder placed first refuses the named top-level packages (and their
# submodules) exactly as an interpreter without them would: ModuleNotFoundError.
_PRELUDE = """
import importlib.abc, sys

class _Without(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in {missing!r}:
            raise ModuleNotFoundError(f"No module named {{fullname!r}}", name=fullname)
        return None

sys.meta_path.insert(0, _Without())
"""


def python_without(
    missing: Iterable[str], code: str, *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` in a fresh interpreter where ``missing`` cannot import."""
    prelude = _PRELUDE.format(missing=sorted(set(missing)))
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
