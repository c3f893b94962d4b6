"""The compiled build: which modules it compiles, and that the loaded build is the expected one."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import asgi_sso
from asgi_sso._compiled import HOT_MODULES, compiled_modules

ROOT = Path(__file__).resolve().parents[2]


def test_hot_modules_are_the_ones_the_build_compiles() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]["include"]
    built = {path.removeprefix("src/").removesuffix(".py").replace("/", ".") for path in include}
    assert built == set(HOT_MODULES)


def test_the_loaded_build_is_whole_and_the_expected_one() -> None:
    compiled = compiled_modules()
    # A partial build (some modules compiled, others not) is a broken install.
    assert compiled in ((), HOT_MODULES)
    assert asgi_sso.compiled_modules() == compiled
    # ./scripts/test runs the suite once per build and says which one it expects.
    expected = os.environ.get("ASGI_SSO_BUILD")
    if expected == "compiled":
        assert compiled == HOT_MODULES
    elif expected == "pure":
        assert compiled == ()
