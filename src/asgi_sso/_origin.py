"""Same-origin proof for cookie-authenticated requests: cross-site request forgery and WebSockets.

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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from asgi_sso.errors import ConfigurationError, CrossOriginRequest
from asgi_sso.login.http import header, request_origin

__all__ = ["SAFE_METHODS", "OriginGuard", "origin_of", "origins_of"]

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
