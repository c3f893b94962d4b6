"""No request escapes its rules: the route path the middleware checks decides like the framework's.

The oracles are the frameworks' own routing functions (Starlette's
``get_route_path``, Litestar's root split and ``normalize_path``).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from litestar.utils.path import normalize_path
from starlette._utils import get_route_path

from asgi_sso._asgi import PathMatcher, RoutePaths, ScopeRules, ambiguous

PUBLIC = PathMatcher(["/health", "/static/*", "/api"])
RULES = ScopeRules({"/admin/*": ["admin"], "/api/*": ["api"], "/static/admin/*": ["admin"]})


def decide(path: str) -> tuple[bool, tuple[str, ...]]:
    return PUBLIC.matches(path) and not ambiguous(path), RULES.required(path)


def starlette_routes(path: str, root: str) -> str:
    return get_route_path({"path": path, "root_path": root}) or "/"


def litestar_routes(path: str, root: str) -> str:
    return normalize_path(path.split(root, maxsplit=1)[-1])


ORACLES: dict[str, Any] = {
    "starlette": (starlette_routes,),
    "litestar": (litestar_routes,),
    "unknown": (starlette_routes, litestar_routes),
}
_segment = st.sampled_from(["api", "admin", "static", "health", "x", "apix", "", "..", "."])
paths = st.lists(_segment, max_size=6).map(lambda s: "/" + "/".join(s))
roots = st.lists(_segment.filter(bool), min_size=1, max_size=2).map(lambda s: "/" + "/".join(s))


@pytest.mark.parametrize("framework", ["starlette", "litestar", "unknown"])
@given(path=paths, root=roots)
@example(path="/static/api/admin/users", root="/api")
@example(path="/apiadmin/x", root="/api")
@example(path="/api", root="/api")
def test_no_path_escapes_its_scope_rule(framework: str, path: str, root: str) -> None:
    for app_root in (None, root):
        routes = RoutePaths(framework, app_root, decide)
        scope = {"path": path, "root_path": root if app_root is None else "/elsewhere"}
        checked = routes.route(scope)
        if checked is None:
            continue  # refused with a 400
        for oracle in ORACLES[framework]:
            assert decide(checked) == decide(oracle(path, root)), (checked, oracle.__name__)
