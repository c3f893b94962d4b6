"""The HTTP words of the sign-in routes: write cookies, error pages and redirects.

Pure ASGI: awaits ``send``. Nothing here knows OIDC; reading the request is
:mod:`asgi_sso._asgi`'s job.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from asgi_sso._asgi import wants_html
from asgi_sso.responses import error_document

__all__ = [
    "Headers",
    "clear_cookie",
    "send_page",
    "send_redirect",
    "set_cookie",
]

Headers = list[tuple[bytes, bytes]]

_NO_STORE = (b"cache-control", b"no-store")


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
    """An error page: HTML for browsers, else the one JSON error shape
    (``error``, ``error_description``, ``status``); ``description`` is escaped."""
    if wants_html(scope):
        title = html.escape(error)
        body = (
            "<!doctype html><html><head><meta charset=utf-8><title>Sign-in failed</title></head>"
            f"<body><h1>Sign-in failed</h1><p><strong>{title}</strong></p>"
            f"<p>{html.escape(description)}</p></body></html>"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = error_document(error, description, status)
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
