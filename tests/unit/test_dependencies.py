"""Dependencies match imports: the core needs exactly the core dependencies, no extra.

The core is what ``import asgi_sso`` reaches, found by walking the package's imports
(AST), not by a list of files: it survives modules moving between subpackages.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import asgi_sso
from _without import python_without

PACKAGE = Path(asgi_sso.__file__).parent
PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
SELF = "asgi-sso"


def _normal(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()  # PEP 503


def _requirements(specs: list[str]) -> list[Requirement]:
    return [r for r in map(Requirement, specs) if _normal(r.name) != SELF]


CORE = _requirements(PYPROJECT["dependencies"])
EXTRAS = {name: _requirements(specs) for name, specs in PYPROJECT["optional-dependencies"].items()}


def _import_names() -> dict[str, set[str]]:
    """Distribution (normalised) -> the top-level names it installs."""
    out: dict[str, set[str]] = {}
    for top, dists in metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(_normal(dist), set()).add(top)
    return out


IMPORT_NAMES = _import_names()


def _provided(requirements: list[Requirement]) -> set[str]:
    return {top for r in requirements for top in IMPORT_NAMES.get(_normal(r.name), ())}


CORE_NAMES = _provided(CORE)
EXTRA_NAMES = _provided([r for reqs in EXTRAS.values() for r in reqs])


@dataclass(frozen=True)
class Import:
    """One import statement's target, and when it runs."""

    target: str  # absolute dotted module
    names: tuple[str, ...]  # what ``from target import ...`` takes (maybe submodules)
    when: str  # "eager" (module level), "lazy" (in a function), "guarded", "typing"


def _catches_import_error(node: ast.Try) -> bool:
    caught = " ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
    return "ImportError" in caught or "ModuleNotFoundError" in caught


def _block(stmts: list[ast.stmt], package: str, when: str) -> Iterator[Import]:
    return _imports(ast.Module(stmts, []), package, when)


def _imports(node: ast.AST, package: str, when: str = "eager") -> Iterator[Import]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from (Import(alias.name, (), when) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:
                parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            yield Import(base, tuple(a.name for a in child.names), when)
        elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from _block(child.body, package, "typing")
            yield from _block(child.orelse, package, when)
        elif isinstance(child, ast.Try) and _catches_import_error(child) and when != "typing":
            yield from _block(child.body, package, "guarded")
            for handler in child.handlers:
                yield from _block(handler.body, package, when)
            yield from _block([*child.orelse, *child.finalbody], package, when)
        else:
            inner = "lazy" if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else when
            yield from _imports(child, package, inner if when == "eager" else when)


def _walk_package() -> dict[str, list[Import]]:
    modules: dict[str, list[Import]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("asgi_sso", *path.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        package = name if is_package else name.rpartition(".")[0]
        modules[name] = list(_imports(ast.parse(path.read_text(encoding="utf-8")), package))
    return modules


MODULES = _walk_package()


def _first_party_targets(imp: Import) -> set[str]:
    """The package modules an import runs: the target, its parents, submodules it names."""
    found = {f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in MODULES}
    parts = imp.target.split(".")
    found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return found & MODULES.keys()


def closure(root: str, follow: frozenset[str]) -> set[str]:
    """Every package module that importing ``root`` can run, following imports of ``follow``."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parents run first
        for imp in MODULES[name]:
            if imp.when in follow and imp.target.partition(".")[0] == "asgi_sso":
                todo.extend(_first_party_targets(imp))
    return seen


def third_party(names: set[str], when: frozenset[str]) -> dict[str, set[str]]:
    """Top-level third-party name -> the modules among ``names`` importing it ``when``."""
    found: dict[str, set[str]] = {}
    for name in names:
        for imp in MODULES[name]:
            top = imp.target.partition(".")[0]
            if imp.when in when and top not in {"", "asgi_sso", *sys.stdlib_module_names}:
                found.setdefault(top, set()).add(name)
    return found


RUNS = frozenset({"eager", "lazy"})
CORE_MODULES = closure("asgi_sso", RUNS)


def test_the_walk_finds_the_core_and_leaves_out_the_extras() -> None:
    assert {"asgi_sso", "asgi_sso.middleware", "asgi_sso.errors"} <= CORE_MODULES
    outside = set(MODULES) - CORE_MODULES
    assert any(name.startswith("asgi_sso.testing") for name in outside)
    assert {"asgi_sso.cli", "asgi_sso.fastapi", "asgi_sso.litestar"} <= outside
    assert any("sql" in name.split(".")[-1] for name in outside)
    assert any("redis" in name for name in outside)


def test_every_third_party_import_of_the_core_is_a_core_dependency() -> None:
    imported = third_party(CORE_MODULES, RUNS)
    stray = {top: sorted(mods) for top, mods in imported.items() if top not in CORE_NAMES}
    assert not stray, f"the core imports these without a core dependency: {stray}"


def test_every_core_dependency_is_imported_by_the_core() -> None:
    imported = set(third_party(CORE_MODULES, RUNS))
    unused = [str(r) for r in CORE if not IMPORT_NAMES.get(_normal(r.name), set()) & imported]
    assert not unused, f"core dependencies the core never imports (move to an extra): {unused}"


def test_guarded_imports_name_a_declared_extra() -> None:
    guarded = third_party(set(MODULES), frozenset({"guarded"}))
    assert "prometheus_client" in guarded  # the walk sees imports inside try/except ImportError
    undeclared = {top: sorted(m) for top, m in guarded.items() if top not in EXTRA_NAMES}
    assert not undeclared, f"guarded imports no extra installs: {undeclared}"


def test_every_third_party_import_in_the_package_is_declared() -> None:
    every = frozenset({"eager", "lazy", "guarded", "typing"})
    imported = third_party(set(MODULES), every)
    undeclared = {t: sorted(m) for t, m in imported.items() if t not in CORE_NAMES | EXTRA_NAMES}
    assert not undeclared, f"imported but in no dependency table: {undeclared}"


def _entry_point_module(value: str) -> str:
    return value.partition(":")[0].strip()


@pytest.mark.parametrize(
    ("entry_point", "allowed"),
    [
        (_entry_point_module(PYPROJECT["scripts"]["asgi-sso"]), set()),
        # pytest loads the plugin wherever the package is installed, with or without extras.
        (_entry_point_module(PYPROJECT["entry-points"]["pytest11"]["asgi_sso"]), {"pytest"}),
    ],
)
def test_entry_points_load_with_the_core_only(entry_point: str, allowed: set[str]) -> None:
    imported = third_party(closure(entry_point, frozenset({"eager"})), frozenset({"eager"}))
    stray = {top: sorted(m) for top, m in imported.items() if top not in CORE_NAMES | allowed}
    assert not stray, f"{entry_point} needs an extra to load: {stray}"


def _every_requirement() -> Iterator[Requirement]:
    yield from CORE
    for reqs in EXTRAS.values():
        yield from reqs


@pytest.mark.parametrize("requirement", sorted({str(r) for r in _every_requirement()}))
def test_each_requirement_has_a_lower_bound_the_tested_version_meets(requirement: str) -> None:
    req = Requirement(requirement)
    assert any(spec.operator == ">=" for spec in req.specifier), f"{req} has no lower bound"
    installed = Version(metadata.version(req.name))
    assert req.specifier.contains(installed, prereleases=True), f"{req} excludes {installed}"


def _installed_with(dists: list[str]) -> set[str]:
    """The top-level names of ``dists`` and of everything they require, recursively."""
    seen: set[str] = set()
    todo = [_normal(d) for d in dists]
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        for spec in metadata.requires(dist) or ():
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_normal(req.name))
    return {top for dist in seen for top in IMPORT_NAMES.get(dist, ())}


def test_the_package_imports_and_the_cli_runs_without_any_extra(tmp_path: Path) -> None:
    code = """
import asgi_sso, asgi_sso.cli
from asgi_sso.testing import pytest_plugin
print(asgi_sso.cli.main(["verify", "not-a-token", "--issuer", "https://idp.example"]))
print(asgi_sso.cli.main(["jwks", "idp.example"]))
"""
    # Everything the extras install is missing, save pytest (to import the plugin).
    missing = EXTRA_NAMES - _installed_with([*(r.name for r in CORE), "pytest"])
    assert {"starlette", "uvicorn", "sqlalchemy", "redis", "prometheus_client"} <= missing
    done = python_without(missing, code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2"]  # bad input, answered without a traceback
    assert "Traceback" not in done.stderr


def test_the_test_kit_names_the_extra_it_misses_on_first_use(tmp_path: Path) -> None:
    code = """
import asgi_sso.testing
from asgi_sso.testing import FakeClock, generate_key  # core only
try:
    from asgi_sso.testing import DevIdP
except ModuleNotFoundError as exc:
    print(exc.name, exc)
"""
    done = python_without({"starlette"}, code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "starlette asgi_sso.testing.DevIdP needs the testing extra (starlette is not "
        "installed): pip install 'asgi-sso[testing]'"
    )


def test_the_connections_import_without_sql_and_name_the_extra_on_first_use(
    tmp_path: Path,
) -> None:
    code = """
import asgi_sso.connections as c
print(sorted(set(c.__all__) - set(vars(c))))
try:
    c.SQLConnections
except ModuleNotFoundError as exc:
    print(exc.name, exc)
"""
    done = python_without({"sqlalchemy"}, code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['SQLConnections']",
        "sqlalchemy asgi_sso.connections.SQLConnections needs the sql extra (sqlalchemy is "
        "not installed): pip install 'asgi-sso[sql]'",
    ]


def test_the_sql_connection_store_is_outside_the_core() -> None:
    assert "asgi_sso.connections" in MODULES
    assert "asgi_sso.connections.sql" not in closure("asgi_sso.connections", RUNS)
    import asgi_sso.connections as connections
    from asgi_sso.connections.sql import SQLConnections

    assert connections.SQLConnections is SQLConnections
    assert "SQLConnections" in dir(connections)


def test_the_test_kit_exports_resolve() -> None:
    import asgi_sso.testing as kit

    assert set(kit._HOMES) == set(kit.__all__)
    for name in kit.__all__:
        assert getattr(kit, name) is getattr(__import__(kit._HOMES[name], fromlist=["_"]), name)
    assert set(kit.__all__) <= set(dir(kit))
