"""Path matching built once at start-up: exact paths in a set, anchored prefixes.

``"/health"`` matches only ``/health`` (and ``/health/``); ``"/static/*"`` matches
``/static`` and everything below it. Never ``/admin/health-report``. Rules are
matched against the path the wrapped framework routes (:class:`RoutePaths`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from asgi_sso.errors import ConfigurationError

__all__ = [
    "PathMatcher",
    "RoutePaths",
    "ScopeRules",
    "ambiguous",
    "check_root_path",
    "framework_of",
]


def ambiguous(path: str) -> bool:
    """Whether a proxy or app might read ``path`` as another path.

    ASGI paths arrive percent-decoded and unnormalized: ``/static/../admin`` (sent
    as ``%2E%2E``) or ``//admin`` may be resolved to ``/admin`` further on.
    """
    if "//" in path:
        return True
    if "/." not in path:
        return False
    return any(segment in (".", "..") for segment in path.split("/"))


def _resolve(path: str) -> str:
    """``path`` with ``.``/``..`` segments resolved and empty segments dropped (RFC 3986 §5.2.4)."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    return "/" + "/".join(kept)


def _split(patterns: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    exact: set[str] = set()
    prefixes: list[str] = []
    for pattern in patterns:
        if not pattern.startswith("/"):
            raise ConfigurationError(f"path pattern {pattern!r} must start with '/'")
        if pattern.endswith("/*"):
            base = pattern[:-2]
            exact.add(base or "/")
            prefixes.append(base + "/")
        elif "*" in pattern:
            raise ConfigurationError(
                f"path pattern {pattern!r}: '*' is only allowed as a final '/*' segment"
            )
        else:
            exact.add(pattern)
            if pattern != "/":
                exact.add(pattern.rstrip("/") if pattern.endswith("/") else pattern + "/")
    return frozenset(exact), tuple(prefixes)


class PathMatcher:
    """Does a path fall under one of the configured patterns?"""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._exact, self._prefixes = _split(patterns)

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def matches(self, path: str) -> bool:
        """Whether ``path`` is one of the exact paths or under one of the prefixes."""
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))


class ScopeRules:
    """Scopes required by path; the longest matching pattern decides."""

    __slots__ = ("_rules",)

    def __init__(self, rules: Mapping[str, Sequence[str]]) -> None:
        ordered = sorted(rules.items(), key=lambda item: len(item[0]), reverse=True)
        self._rules = tuple((PathMatcher([pattern]), tuple(scopes)) for pattern, scopes in ordered)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def required(self, path: str) -> tuple[str, ...]:
        """The scopes a request to ``path`` needs (empty: none).

        An :func:`ambiguous` path needs the scopes of its raw and its resolved form.
        """
        scopes = self._required(path)
        if ambiguous(path):
            resolved = self._required(_resolve(path))
            scopes = scopes + tuple(s for s in resolved if s not in scopes)
        return scopes

    def _required(self, path: str) -> tuple[str, ...]:
        for matcher, scopes in self._rules:
            if matcher.matches(path):
                return scopes
        return ()


def _starlette_route(path: str, root: str) -> str:
    # starlette._utils.get_route_path (Starlette >= 0.33, FastAPI, the ASGI spec):
    # the root is cut off only when it ends at a segment boundary.
    if not path.startswith(root):
        return path
    if len(path) == len(root):
        return "/"
    return path[len(root) :] if path[len(root)] == "/" else path


_SLASHES = re.compile(r"//+")


def _litestar_route(path: str, root: str) -> str:
    # litestar._asgi.asgi_router: split at the first occurrence of the root
    # *anywhere* in the path, then normalize (one leading slash, none trailing).
    rest = path.split(root, 1)[-1].strip("/")
    return _SLASHES.sub("/", "/" + rest)


Reading = Callable[[str, str], str]
_READINGS: dict[str, tuple[Reading, ...]] = {
    "starlette": (_starlette_route,),
    "litestar": (_litestar_route,),
    # An unknown framework may read the root either way: both must agree.
    "unknown": (_starlette_route, _litestar_route),
}
_MAX_WRAPPERS = 16


def framework_of(app: Any) -> tuple[str, str | None]:
    """The routing convention of ``app`` and the ``root_path`` it applies itself.

    Looks through ``.app`` wrappers (Starlette-style middleware) for a Starlette,
    FastAPI or Litestar application; only modules already imported are consulted.
    FastAPI's ``root_path`` replaces the server's ``scope["root_path"]``.
    """
    starlette = sys.modules.get("starlette.applications")
    routing = sys.modules.get("starlette.routing")
    fastapi = sys.modules.get("fastapi.applications")
    litestar = sys.modules.get("litestar.app")
    for _ in range(_MAX_WRAPPERS):
        if fastapi is not None and isinstance(app, fastapi.FastAPI):
            root = app.root_path
            return "starlette", root if isinstance(root, str) and root else None
        if (starlette is not None and isinstance(app, starlette.Starlette)) or (
            routing is not None and isinstance(app, routing.Router)
        ):
            return "starlette", None
        if litestar is not None and isinstance(app, litestar.Litestar):
            return "litestar", None
        app = getattr(app, "app", None)
        if app is None:
            break
    return "unknown", None


def check_root_path(root: str) -> str:
    """Validate a configured ``root_path``: ``""`` or ``/segment(/segment)*``."""
    if root and (not root.startswith("/") or root.endswith("/") or "//" in root or "*" in root):
        raise ConfigurationError(
            f"root_path {root!r} must start with '/' and end without one (e.g. '/api')"
        )
    return root


class RoutePaths:
    """The path the wrapped framework routes, given the ASGI ``path`` and ``root_path``.

    Args:
        framework: the routing convention (:func:`framework_of`).
        app_root: the ``root_path`` the framework applies itself, replacing the
            server's (``FastAPI(root_path=...)``); ``None`` when it applies the server's.
        decides: the rule decision for a route path (public? which scopes?): two
            readings of one request may differ only where the decision is the same.
    """

    __slots__ = ("_app_root", "_decides", "_readings")

    def __init__(
        self, framework: str, app_root: str | None, decides: Callable[[str], object]
    ) -> None:
        self._readings = _READINGS[framework]
        self._app_root = app_root
        self._decides = decides

    @property
    def fixed_root(self) -> bool:
        """Whether the framework applies a ``root_path`` of its own."""
        return self._app_root is not None

    def route(self, scope: Any) -> str | None:
        """The route path of the request; ``None`` when it cannot be told unambiguously."""
        path = scope["path"]
        root = self._app_root if self._app_root is not None else scope.get("root_path")
        if not root:
            return path  # type: ignore[no-any-return]
        if not isinstance(root, str) or not isinstance(path, str):
            return None
        first, *others = (reading(path, root) for reading in self._readings)
        for other in others:
            if other != first and self._decides(other) != self._decides(first):
                return None
        return first
