"""Path matching built once at start-up: exact paths in a set, anchored prefixes.

``"/health"`` matches only ``/health`` (and ``/health/``); ``"/static/*"`` matches
``/static`` and everything below it. Never ``/admin/health-report``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from asgi_sso.errors import ConfigurationError

__all__ = ["PathMatcher", "ScopeRules"]


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
        """The scopes a request to ``path`` needs (empty: none)."""
        for matcher, scopes in self._rules:
            if matcher.matches(path):
                return scopes
        return ()
