"""Shared ASGI/HTTP helpers: read a request, tell where it came from, match its path.

Every concern that reads a request (sign-in, SCIM, the middleware) uses these;
none borrows another concern's helpers. All are functions of the ASGI scope, or
objects built once at start-up whose checks are set and dict look-ups.

* Request readers: headers, cookies, the query string, ``root_path`` and the
  route path below it, the origin the browser addressed.
* Same-origin proof for cookie-authenticated requests (:class:`OriginGuard`).
* Path rules, built once at start-up: exact paths in a set, anchored prefixes.

``"/health"`` matches only ``/health`` (and ``/health/``); ``"/static/*"`` matches
``/static`` and everything below it. Never ``/admin/health-report``. Rules are
matched against the path the wrapped framework routes (:class:`RoutePaths`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from asgi_sso.errors import ConfigurationError, CrossOriginRequest

__all__ = [
    "SAFE_METHODS",
    "OriginGuard",
    "PathMatcher",
    "RoutePaths",
    "ScopeRules",
    "ambiguous",
    "check_root_path",
    "client_ip",
    "framework_of",
    "header",
    "origin_of",
    "origins_of",
    "parse_cookies",
    "query_params",
    "request_origin",
    "root_path",
    "route_path",
    "spelled_root_path",
    "spelled_route_path",
    "wants_html",
]

_MAX_QUERY = 8192


def header(scope: Any, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower-case), decoded as latin-1."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def parse_cookies(scope: Any) -> dict[str, str]:
    """Every cookie of the request; the first occurrence of a name wins."""
    cookies: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        if key != b"cookie":
            continue
        for part in bytes(value).decode("latin-1").split(";"):
            name, sep, val = part.strip().partition("=")
            if sep and name and name not in cookies:
                cookies[name] = val.strip().strip('"')
    return cookies


def query_params(scope: Any) -> dict[str, list[str]] | None:
    """The query string as name → values; ``None`` when it is too long or undecodable."""
    raw = bytes(scope.get("query_string", b""))
    if len(raw) > _MAX_QUERY:
        return None
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


# RFC 9110 §7.2: Host is uri-host [":" port]. A value with a path, a query or
# userinfo in it would let the client choose the URL its request is taken to have.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?")


def request_origin(scope: Any) -> str:
    """``scheme://host`` of the request as the browser addressed it.

    The ``Host`` header when it is a host and an optional port; otherwise (absent or
    malformed) the address the server reports.
    """
    scheme = scope.get("scheme") or "http"
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host = header(scope, b"host")
    if not host or not _HOST.fullmatch(host):
        host = _server_host(scope.get("server"))
    return f"{scheme}://{host}"


def _server_host(server: Any) -> str:
    if not server or not isinstance(server[0], str) or not isinstance(server[1], int):
        return "localhost"  # no address, or a Unix socket
    name = f"[{server[0]}]" if ":" in server[0] else server[0]
    return f"{name}:{server[1]}"


def client_ip(scope: Any) -> str | None:
    """The peer address of the request, when the server reports one (for audit events)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def root_path(scope: Any) -> str:
    """The ASGI ``root_path`` (where the app is mounted) without a trailing ``/``, or ``""``."""
    root = scope.get("root_path") or ""
    return root.rstrip("/") if isinstance(root, str) else ""


def route_path(scope: Any) -> str:
    """The request path below ``root_path``.

    Servers differ: some put the mount point in ``path`` as well (the ASGI spec's
    reading since uvicorn 0.26 and Starlette 0.33), others leave it out. Both work.
    """
    path: str = scope.get("path", "/")
    root = root_path(scope)
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


# RFC 3986 §3.3: the characters a path segment may hold unescaped, and "/".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def spelled_root_path(scope: Any) -> str:
    """:func:`root_path` percent-escaped as a URL path."""
    return quote(root_path(scope), safe=_PATH_SAFE, errors="replace")


def spelled_route_path(scope: Any) -> str:
    """:func:`route_path` as the client spelled it, percent-escapes kept.

    The server decodes ``path``, so ``/a%2Fb`` and ``/a/b`` look alike there; the
    request line's ``raw_path`` tells them apart. Without a ``raw_path`` that decodes
    to the route (with or without the mount point), the decoded path is re-escaped.
    """
    route = route_path(scope)
    raw = _raw_path(scope)
    if raw is not None:
        decoded = _unquoted(raw)
        if decoded == route:
            return raw
        root = root_path(scope)
        if root and decoded == root + route:
            cut = _after_prefix(raw, root)
            if cut is not None:
                return raw[cut:] or "/"
    return quote(route, safe=_PATH_SAFE, errors="replace")


# RFC 3986 §3.3 path characters and "%". A raw path with anything else (a "#" a
# server kept, a space, a non-ASCII byte) is not used: a URL parser would cut or
# read it otherwise than the server routed it.
_RAW_PATH = re.compile(rb"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")


def _raw_path(scope: Any) -> str | None:
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return None
    path = raw.split(b"?", 1)[0]  # some servers and clients keep the query in it
    return path.decode("ascii") if _RAW_PATH.fullmatch(path) else None


def _unquoted(path: str) -> str | None:
    try:
        return unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None


def _after_prefix(raw: str, root: str) -> int | None:
    # Where the mount point ends in the escaped path: after as many segments as it has.
    end = 0
    for _ in range(root.count("/")):
        end = raw.find("/", end + 1)
        if end < 0:
            end = len(raw)
            break
    return end if _unquoted(raw[:end]) == root else None


def wants_html(scope: Any) -> bool:
    """Whether the client accepts HTML (a browser navigation rather than an API call)."""
    accept = header(scope, b"accept") or ""
    return "text/html" in accept.lower()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""RFC 9110 §9.2.1: methods that must not change state; every other method is checked."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The serialized origin (RFC 6454 §6.2) of an http(s) URL or origin, or ``None``.

    Lower-cased scheme and host, default port dropped, so ``https://App.example:443``
    and ``https://app.example`` compare equal.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a port out of range, an unclosed IPv6 bracket
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origins_of(urls: Iterable[str | None]) -> tuple[str, ...]:
    """The origins of those ``urls`` that are http(s) URLs (e.g. a configured redirect URI)."""
    found = (origin_of(url) for url in urls if url is not None)
    return tuple(origin for origin in found if origin is not None)


class OriginGuard:
    """Decides whether a request shows the app's own origin (or an allowed one).

    A browser attaches cookies to requests that other sites' pages make, so a
    cookie alone does not show that the app's own pages sent a request. An unsafe
    request (RFC 9110 §9.2.1) or a WebSocket handshake (RFC 6455 §10.2: servers
    check ``Origin``; the handshake is not subject to CORS) authenticated by a
    cookie must therefore show the app's origin. Bearer tokens are never attached
    by the browser on its own and need no such proof.

    The rule, in order (first match decides):

    1. ``Origin: null`` (sandboxed page, opaque or cross-site redirect) - refused.
    2. ``Sec-Fetch-Site: same-origin`` - allowed: browsers set it and no page can
       (a forbidden header name, Fetch Metadata), and it holds behind proxies that
       rewrite ``Host``.
    3. ``Origin`` present - allowed only if it is the request's own origin or a
       configured allowed origin.
    4. ``Sec-Fetch-Site`` present (``same-site``, ``cross-site``, ``none``) without
       ``Origin`` - refused: the browser says another site sent it.
    5. ``Referer`` (from browsers older than both headers) - its origin must be the
       app's or an allowed one.
    6. Nothing - refused.

    Args:
        allowed: further origins (``https://admin.example.com``) whose pages may send
            cookie-authenticated requests; the request's own origin is always allowed.
        enabled: ``False`` turns :meth:`check` into a no-op (the logout route's
            :meth:`allows` stays on).
    """

    __slots__ = ("_allowed", "enabled")

    def __init__(self, allowed: Iterable[str] = (), *, enabled: bool = True) -> None:
        origins: set[str] = set()
        for value in allowed:
            origin = origin_of(value)
            if origin is None or urlsplit(value).path not in ("", "/") or "@" in value:
                raise ConfigurationError(
                    f"allowed origin {value!r} must be scheme://host[:port] (http or https)"
                )
            origins.add(origin)
        self._allowed = frozenset(origins)
        self.enabled = enabled

    def allows(self, scope: Any) -> bool:
        """Whether the request comes from the app's own pages or an allowed origin."""
        origin = header(scope, b"origin")
        if origin is not None and origin.strip().lower() == "null":
            return False
        site = header(scope, b"sec-fetch-site")
        if site is not None and site.strip().lower() == "same-origin":
            return True
        if origin is not None:
            return self._trusted(scope, origin)
        if site is not None:
            return False
        referer = header(scope, b"referer")
        return bool(referer) and self._trusted(scope, referer or "")

    def check(self, scope: Any) -> None:
        """Refuse a cookie-authenticated WebSocket or unsafe request from another origin.

        Raises:
            CrossOriginRequest: the check is on, the request is a WebSocket handshake or
                uses an unsafe method, and :meth:`allows` is false.
        """
        if not self.enabled:
            return
        if scope["type"] == "http" and scope.get("method") in SAFE_METHODS:
            return
        if not self.allows(scope):
            raise CrossOriginRequest()

    def _trusted(self, scope: Any, url: str) -> bool:
        origin = origin_of(url)
        if origin is None:
            return False
        return origin in self._allowed or origin == origin_of(request_origin(scope))


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
