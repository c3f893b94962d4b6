"""The tree tells the request path: imports flow one way, and nothing imports the middleware."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import asgi_sso

PACKAGE = Path(asgi_sso.__path__[0])

# Each top-level part of the package and its layer: a part imports only parts of a
# lower layer (extract -> verify -> identity -> scope; keys below verify).
LAYER = {
    "errors": 0,
    "principal": 1,
    "_fields": 0,
    "_log": 0,
    "config": 1,
    "_asgi": 1,
    "_redis": 1,
    "extract": 1,
    "responses": 1,
    "observe": 2,
    "mcp": 2,
    "_guards": 2,
    "keys": 3,
    "verify": 4,
    "identity": 5,
    "sessions": 5,
    "connections": 6,
    "login": 7,
    "deprovision": 7,
    "settings": 8,
    "middleware": 9,
    "fastapi": 10,
    "litestar": 10,
    "testing": 10,
    "cli": 11,
    "__init__": 12,
}
# The root re-exports the middleware; the test kit builds one for a test, as an app does.
MAY_IMPORT_MIDDLEWARE = {"__init__", "testing"}


def _part(module: str) -> str:
    rest = module.removeprefix("asgi_sso").removeprefix(".")
    return rest.split(".", 1)[0] or "__init__"


def _imports(path: Path, module: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "asgi_sso":
                # `from asgi_sso import _asgi` names a module, not the root
                yield from (f"asgi_sso.{alias.name}" for alias in node.names)
            elif node.module.startswith("asgi_sso."):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("asgi_sso."))
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{module}: use absolute imports")


def _edges() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(("asgi_sso", *parts)).removesuffix(".__init__")
        for imported in _imports(path, module):
            yield module, imported


def test_every_part_has_a_layer() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert modules | packages == set(LAYER)


def test_imports_flow_one_way() -> None:
    upward = [
        f"{module} imports {imported}"
        for module, imported in _edges()
        if _part(module) != _part(imported) and LAYER[_part(imported)] >= LAYER[_part(module)]
    ]
    assert upward == []


def test_nothing_imports_the_middleware() -> None:
    importers = {
        module
        for module, imported in _edges()
        if _part(imported) == "middleware" and _part(module) != "middleware"
    }
    assert {_part(m) for m in importers} <= MAY_IMPORT_MIDDLEWARE
