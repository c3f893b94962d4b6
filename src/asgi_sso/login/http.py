"""The HTTP words of the sign-in routes: read cookies and queries; write cookies, pages, redirects.

Pure ASGI: reads the scope, awaits ``send``. Nothing here knows OIDC.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

__all__ = [
    "Headers",
    "clear_cookie",
    "header",
    "parse_cookies",
    "query_params",
    "request_origin",
    "root_path",
    "route_path",
    "send_page",
    "send_redirect",
    "set_cookie",
    "wants_html",
]

Headers = list[tuple[bytes, bytes]]

_NO_STORE = (b"cache-control", b"no-store")
_encoder = msgspec.json.Encoder()
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


def request_origin(scope: Any) -> str:
    """``scheme://host`` of the request as the browser addressed it."""
    scheme = scope.get("scheme") or "http"
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host = header(scope, b"host")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    return f"{scheme}://{host}"


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


def wants_html(scope: Any) -> bool:
    """Whether the client accepts HTML (a browser navigation rather than an API call)."""
    accept = header(scope, b"accept") or ""
    return "text/html" in accept.lower()


def set_cookie(
    name: str, value: str, *, path: str, max_age: int, secure: bool
) -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header: HttpOnly, SameSite=Lax, Secure unless opted out."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max(max_age, 0)}", "HttpOnly"]
    if secure:
        parts.append("Secure")
    parts.append("SameSite=Lax")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


def clear_cookie(name: str, *, path: str, secure: bool) -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header that deletes cookie ``name``."""
    return set_cookie(name, "", path=path, max_age=0, secure=secure)


async def send_redirect(
    send: Any, location: str, headers: Iterable[tuple[bytes, bytes]] = (), *, status: int = 303
) -> None:
    """Redirect (never cached)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"location", location.encode("latin-1")),
                _NO_STORE,
                (b"content-length", b"0"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def send_page(
    scope: Any,
    send: Any,
    status: int,
    error: str,
    description: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """An error page: HTML for browsers, JSON otherwise; ``description`` is escaped."""
    if wants_html(scope):
        title = html.escape(error)
        body = (
            "<!doctype html><html><head><meta charset=utf-8><title>Sign-in failed</title></head>"
            f"<body><h1>Sign-in failed</h1><p><strong>{title}</strong></p>"
            f"<p>{html.escape(description)}</p></body></html>"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = _encoder.encode({"error": error, "error_description": description})
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                _NO_STORE,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
