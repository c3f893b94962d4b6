"""The connections admin API: a JSON API over :class:`ConnectionAdmin`, as a pure ASGI app.

Routes (below wherever it is mounted): ``GET /``, ``POST /``, ``GET|PATCH|DELETE
/{id}``, ``POST /{id}/disable``, ``POST /{id}/enable``, ``POST /{id}/test`` and
``GET /openapi.json``. Every answer is JSON; every refusal has the one shape
``{"error", "error_description", "status"}``.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import httpx
import msgspec

from asgi_sso._asgi import header, root_path, route_path
from asgi_sso.connections.manage import ConnectionAdmin, connection_from_input
from asgi_sso.connections.model import CONNECTION_ID
from asgi_sso.connections.openapi import ERROR_CODES, openapi_document
from asgi_sso.errors import (
    ConfigurationError,
    ConnectionChangeError,
    ServiceUnavailable,
    UnknownConnection,
)

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "ConnectionsAdminApp"]

MAX_BODY_BYTES: Final = 64 * 1024
"""Largest request body read; a connection is a few kilobytes."""
MAX_JSON_DEPTH: Final = 8
"""Deepest JSON nesting read (a connection nests three levels)."""

_Headers = list[tuple[bytes, bytes]]
_Answer = tuple[int, Any, _Headers]
_JSON_TYPES: Final = frozenset({"application/json", "application/merge-patch+json"})
_ACTIONS: Final = frozenset({"disable", "enable", "test"})
_OPENAPI: Final = "openapi.json"
_encoder = msgspec.json.Encoder()


class _Refused(Exception):
    """A request refused before any operation: answered with ``status``."""

    def __init__(self, status: int, description: str, allow: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.allow = allow


class ConnectionsAdminApp:
    """Manage connections over HTTP: list, show, add, change, disable, enable, delete, test.

    **It has no authentication or authorization of its own.** Mount it only behind
    the application's admin authentication (a route guarded by an admin scope, a
    separate internal port), never on a public path: whoever reaches it controls
    who can sign in to the application. ``POST /{id}/test`` makes the server fetch
    the connection's discovery and key set URLs.

    Secrets (``client_secret``, ``client_key``, ``scim_secret``) are accepted on
    add and change and never returned: answers carry ``Connection.public()``,
    where they are ``has_<secret>`` booleans. A change is a JSON merge patch
    (RFC 7396, see :meth:`ConnectionAdmin.update`). ``GET /openapi.json`` serves
    the OpenAPI 3.1 document (so ``openapi.json`` is refused as the id of a new
    connection). Bad input is a 400, 404, 405, 409, 415 or 422; a store
    that fails is a 503; never a 500.

    Args:
        admin: the operations, with the store, clock and announcement they use.
        client: the HTTP client for ``test``; ``None``: one is opened per test.
        max_body_bytes: larger request bodies are refused while being read.
    """

    def __init__(
        self,
        admin: ConnectionAdmin,
        *,
        client: httpx.AsyncClient | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
        self.admin = admin
        self._client = client
        self._max_body = max_body_bytes
        self._openapi = _encoder.encode(openapi_document())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one request (other scope types are ignored)."""
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._route(scope, receive)
        except _Refused as exc:
            status, body, headers = _error(exc.status, exc.description)
            if exc.allow is not None:
                headers.append((b"allow", exc.allow.encode()))
        except ConnectionChangeError as exc:
            status, body, headers = _error(exc.status, str(exc))
        except ConfigurationError as exc:
            status, body, headers = _error(422, str(exc))
        except ServiceUnavailable as exc:
            status, body, headers = _error(503, exc.description)
            headers.append((b"retry-after", str(exc.retry_after).encode()))
        except Exception as exc:
            # A store failing in a way it does not map: the type only, never its
            # message (it may quote a URL with a password, or a secret).
            status, body, headers = _error(
                503, f"the connection store failed ({type(exc).__name__})"
            )
        payload = (
            b"" if body is None else body if isinstance(body, bytes) else _encoder.encode(body)
        )
        headers.append((b"cache-control", b"no-store"))
        headers.append((b"content-length", str(len(payload)).encode()))
        if body is not None:
            headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _route(self, scope: Any, receive: Any) -> _Answer:
        path = route_path(scope)
        method = scope.get("method", "GET")
        parts = [part for part in path.split("/") if part]
        if not parts:
            _allow(method, "GET, POST")
            if method == "GET":
                listed = [c.public() for c in await self.admin.list()]
                return 200, {"connections": listed}, []
            created = connection_from_input(await self._read(scope, receive))
            if created.id == _OPENAPI:
                raise ConnectionChangeError(f"the id {_OPENAPI!r} names this API's own document")
            await self.admin.add(created)
            location = quote(f"{root_path(scope)}{path.rstrip('/')}/{created.id}")
            return 201, created.public(), [(b"location", location.encode("ascii"))]
        if parts == [_OPENAPI] and method == "GET":
            return 200, self._openapi, []
        connection_id = parts[0]
        if len(parts) == 1:
            _allow(method, "GET, PATCH, DELETE")
        elif len(parts) == 2 and parts[1] in _ACTIONS:
            _allow(method, "POST")
        else:
            raise _Refused(404, "no such resource")
        if CONNECTION_ID.fullmatch(connection_id) is None:
            raise UnknownConnection(f"no connection {connection_id[:80]!r}")
        if len(parts) == 2:
            return await self._action(parts[1], connection_id)
        if method == "GET":
            return 200, (await self.admin.show(connection_id)).public(), []
        if method == "DELETE":
            await self.admin.delete(connection_id)
            return 204, None, []
        changes = await self._read(scope, receive)
        return 200, (await self.admin.update(connection_id, changes)).public(), []

    async def _action(self, action: str, connection_id: str) -> _Answer:
        if action == "disable":
            return 200, (await self.admin.disable(connection_id)).public(), []
        if action == "enable":
            return 200, (await self.admin.enable(connection_id)).public(), []
        connection = await self.admin.show(connection_id)
        if self._client is not None:
            report = await self.admin.test(connection, self._client)
        else:
            timeout = self.admin.limits.fetch_timeout
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                report = await self.admin.test(connection, client)
        return 200, msgspec.to_builtins(report), []

    async def _read(self, scope: Any, receive: Any) -> dict[str, Any]:
        """The request's JSON object: bounded, strict UTF-8, text a store can keep."""
        media = (header(scope, b"content-type") or "").partition(";")[0].strip().lower()
        if media not in _JSON_TYPES:
            raise _Refused(415, "send the body as application/json")
        raw = await _read_body(receive, header(scope, b"content-length"), self._max_body)
        if _depth(raw) > MAX_JSON_DEPTH:
            raise _Refused(400, "the JSON is nested too deeply")
        try:
            data = msgspec.json.decode(raw)
        except Exception:  # DecodeError, and whatever else a hostile body may cause
            raise _Refused(400, "the body is not valid UTF-8 JSON") from None
        if not isinstance(data, dict):
            raise _Refused(400, "the body must be a JSON object")
        _check_text(data)
        return data


def _allow(method: str, allowed: str) -> None:
    if method not in allowed.split(", "):
        raise _Refused(405, f"use {allowed.replace(', ', ' or ')} here", allow=allowed)


async def _read_body(receive: Any, declared: str | None, limit: int) -> bytes:
    too_large = f"the request body is larger than {limit} bytes"
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise _Refused(400, "the Content-Length is malformed")
        if int(declared) > limit:
            raise _Refused(400, too_large)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the client went away")
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            raise _Refused(400, too_large)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting outside strings, counted before decoding."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _check_text(value: Any) -> None:
    # No store keeps NUL in text (PostgreSQL refuses it): a 400 here, not a failed
    # write later. (msgspec already refuses lone surrogates.) Depth is bounded above.
    if isinstance(value, str):
        if "\x00" in value:
            raise _Refused(400, "text may not hold NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def _error(status: int, description: str) -> tuple[int, dict[str, Any], _Headers]:
    body = {
        "error": ERROR_CODES.get(status, "invalid_request"),
        "error_description": description,
        "status": status,
    }
    return status, body, []
