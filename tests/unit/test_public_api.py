from __future__ import annotations

import ast
import inspect
from pathlib import Path

import asgi_sso


def test_all_is_sorted_and_complete() -> None:
    assert asgi_sso.__all__ == sorted(asgi_sso.__all__)
    for name in asgi_sso.__all__:
        assert hasattr(asgi_sso, name), name


def test_init_only_re_exports() -> None:
    tree = ast.parse(Path(asgi_sso.__file__).read_text())
    for node in tree.body:
        assert isinstance(node, ast.ImportFrom | ast.Assign | ast.Expr), ast.dump(node)[:80]


def test_public_classes_and_functions_have_docstrings() -> None:
    for name in asgi_sso.__all__:
        obj = getattr(asgi_sso, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"
