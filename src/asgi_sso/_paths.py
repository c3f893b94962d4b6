"""Path matching built once at start-up: exact paths in a set, anchored prefixes.

``"/health"`` matches only ``/health`` (and ``/health/``); ``"/static/*"`` matches
``/static`` and everything below it. Never ``/admin/health-report``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from asgi_sso.errors import ConfigurationError

__all__ = ["PathMatcher", "ScopeRules", "ambiguous"]


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
