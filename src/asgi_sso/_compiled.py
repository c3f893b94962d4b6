"""Which hot-path modules of this installation run compiled (mypyc) and which as source.

A normal build (``pip install asgi-sso``, ``pip install -e .``) compiles the modules of
:data:`HOT_MODULES` to C extensions; a build with ``HATCH_BUILD_NO_HOOKS=true``, or
on a machine without a C compiler, runs them as Python. Both behave alike (the test
suite runs on both); the compiled build verifies a cold token faster.
"""

from __future__ import annotations

import importlib
from typing import Final

__all__ = ["HOT_MODULES", "compiled_modules"]

HOT_MODULES: Final = (
    "asgi_sso.verify.jws",
    "asgi_sso.verify.issuer_keys",
    "asgi_sso.verify.claims",
    "asgi_sso.verify.issuers",
)
"""The modules the wheel build compiles (``pyproject.toml`` names the same files)."""


def compiled_modules() -> tuple[str, ...]:
    """The modules of :data:`HOT_MODULES` loaded from a compiled extension.

    Empty on a pure-Python install. For diagnostics and benchmark reports.
    """
    return tuple(
        name
        for name in HOT_MODULES
        if not str(getattr(importlib.import_module(name), "__file__", "")).endswith(".py")
    )
