"""Render refusals: RFC 6750 challenges, JSON bodies, WebSocket denials.

Every refusal is built from an :class:`~asgi_sso.errors.AuthError`; the body is
JSON (``error``, ``error_description``, ``status``) and the
``WWW-Authenticate`` header follows RFC 6750 §3. Every other JSON error the
package sends (sign-in pages asked for JSON, back-channel logout, the connections
admin API) has the same shape, built by :func:`error_document`; only SCIM keeps
its own (RFC 7644 §3.12).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from asgi_sso.errors import AuthError, InsufficientScope, InvalidDPoPProof, ServiceUnavailable

__all__ = [
    "challenge_header",
    "dpop_challenge",
    "error_body",
    "error_code",
    "error_document",
    "quoted_string",
    "send_http_error",
    "send_websocket_denial",
]

Headers = list[tuple[bytes, bytes]]

_encoder = msgspec.json.Encoder()
_NO_STORE = (b"cache-control", b"no-store")
_JSON = (b"content-type", b"application/json")


def quoted_string(value: str) -> str:
    """``value`` made to fit an RFC 6750 §3 quoted string (%x20-21 / %x23-5B / %x5D-7E).

    Any other character (a quote, a backslash, a control or non-ASCII character)
    becomes ``'``, so client-controlled text can never break a challenge header.
    """
    return "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "'" for ch in value)


def challenge_header(
    error: AuthError, realm: str, resource_metadata: str | None = None
) -> bytes | None:
    """The ``WWW-Authenticate`` value for ``error``, or ``None`` for a 503 or a 413.

    ``resource_metadata`` (RFC 9728 §5.1) names the protected resource's metadata
    URL, where a client learns which authorization server to ask.
    """
    if isinstance(error, ServiceUnavailable) or error.status == 413:
        return None
    parts = [f'Bearer realm="{quoted_string(realm)}"']
    if resource_metadata is not None:
        parts.append(f'resource_metadata="{quoted_string(resource_metadata)}"')
    # A proof's error is the DPoP scheme's (RFC 9449 §7.1), not a Bearer one.
    if error.error is not None and not isinstance(error, InvalidDPoPProof):
        parts.append(f'error="{error.error}"')
        parts.append(f'error_description="{quoted_string(error.description)}"')
    if isinstance(error, InsufficientScope) and error.scopes:
        parts.append(f'scope="{quoted_string(" ".join(error.scopes))}"')
    return ", ".join(parts).encode("latin-1")


def dpop_challenge(error: AuthError, algorithms: Iterable[str]) -> bytes | None:
    """The ``WWW-Authenticate: DPoP`` value for ``error`` (RFC 9449 §7.1), or ``None``.

    Sent beside the Bearer challenge when DPoP is enabled, for a 401 or 403: it
    names the proof algorithms accepted, and the error when there is one.
    """
    if isinstance(error, ServiceUnavailable) or error.status not in (401, 403):
        return None
    parts = [f'DPoP algs="{" ".join(algorithms)}"']
    if error.error is not None:
        parts.append(f'error="{error.error}"')
        parts.append(f'error_description="{quoted_string(error.description)}"')
    return ", ".join(parts).encode("latin-1")


def error_code(error: AuthError) -> str:
    """The ``error`` of a refusal's JSON body.

    The RFC 6750 §3.1 code when there is one; ``temporarily_unavailable`` for a 503
    (RFC 6749 §4.1.2.1); ``unauthorized`` for a 401 without one (no credentials: the
    challenge itself then carries no code, RFC 6750 §3.1); else ``server_error``.
    """
    if isinstance(error, ServiceUnavailable) or error.status == 503:
        return "temporarily_unavailable"
    if error.error is not None:
        return error.error
    return "unauthorized" if error.status == 401 else "server_error"


def error_document(error: str, description: str, status: int) -> bytes:
    """The one JSON error shape: ``{"error", "error_description", "status"}``."""
    return _encoder.encode({"error": error, "error_description": description, "status": status})


def error_body(error: AuthError) -> bytes:
    """The JSON body of a refusal."""
    return error_document(error_code(error), error.description, error.status)


def error_headers(
    error: AuthError,
    realm: str,
    body: bytes,
    extra: Iterable[tuple[bytes, bytes]] = (),
    resource_metadata: str | None = None,
) -> Headers:
    """Headers of a refusal: content type, length, no-store, challenge or ``Retry-After``."""
    headers: Headers = [_JSON, (b"content-length", str(len(body)).encode()), _NO_STORE]
    challenge = challenge_header(error, realm, resource_metadata)
    if challenge is not None:
        headers.append((b"www-authenticate", challenge))
    if isinstance(error, ServiceUnavailable):
        headers.append((b"retry-after", str(error.retry_after).encode()))
    headers.extend(extra)
    return headers


async def send_http_error(
    send: Any,
    error: AuthError,
    realm: str,
    extra: Iterable[tuple[bytes, bytes]] = (),
    resource_metadata: str | None = None,
) -> None:
    """Answer an HTTP request with the refusal for ``error``.

    ``resource_metadata``: the protected resource's metadata URL, named in the
    challenge of a 401 or 403 (RFC 9728 §5.1).
    """
    body = error_body(error)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": error_headers(error, realm, body, extra, resource_metadata),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_websocket_denial(
    scope: Any, receive: Any, send: Any, error: AuthError, realm: str
) -> None:
    """Refuse a WebSocket before accepting it.

    Uses the ASGI WebSocket Denial Response extension where the server offers it,
    so the client sees the real status; otherwise closes with 1008 (policy violation).
    """
    message = await receive()  # websocket.connect
    if message.get("type") != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        body = error_body(error)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": error.status,
                "headers": error_headers(error, realm, body),
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": error.description[:120]})
