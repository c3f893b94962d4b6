"""Scopes per MCP tool, resource and prompt, checked on the JSON-RPC body before the app.

The MCP server reads the JSON-RPC request from the POST body; the scopes a call
needs depend on the method and its ``params`` (``tools/call`` → ``name``,
``resources/read`` → ``uri``, ``prompts/get`` → ``name``). The body is read
(bounded), checked, and handed to the app unchanged.

A parser that reads a body differently from the MCP server's is a way around the
check, so doubt costs scopes: a body this module cannot read although it might
name a guarded method, a duplicate member, or a guarded call whose name is not a
string requires every scope any guarded call of that kind needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from asgi_sso._asgi import ambiguous, root_path
from asgi_sso.errors import CredentialsMissing, InsufficientScope, PayloadTooLarge
from asgi_sso.mcp.resource import ProtectedResource
from asgi_sso.principal import AnonymousPrincipal, Principal

__all__ = ["CallGuard", "required_scopes"]

# method -> (params member naming the target, ProtectedResource field)
_GUARDED = {
    "tools/call": ("name", "tool_scopes"),
    "resources/read": ("uri", "resource_scopes"),
    "prompts/get": ("name", "prompt_scopes"),
}


class _Duplicate(ValueError):
    """A JSON object names one member twice: parsers disagree on which one wins."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Duplicate
    return result


def _ignore_number(_text: str) -> int:
    # Numbers never decide scopes; not converting them avoids Python's int-size limit
    # (a 5000-digit number would make this parser fail where the app's succeeds).
    return 0


_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_int=_ignore_number, parse_float=_ignore_number
)


def required_scopes(body: bytes, resource: ProtectedResource) -> tuple[str, ...]:
    """The scopes the JSON-RPC request (or batch) in ``body`` needs, in order, no repeats.

    Never raises: anything unreadable yields the scopes doubt costs (see the module).
    """
    maps = {method: getattr(resource, field) for method, (_, field) in _GUARDED.items()}
    try:
        message = _decoder.decode(body.decode("utf-8"))
    except _Duplicate:
        return _union(m for m in maps.values() if m)
    except (ValueError, RecursionError):
        # Not JSON to us: the app answers it with a JSON-RPC parse error, unless a more
        # lenient parser might still find a guarded call in it.
        if b"\\" in body or any(method.encode() in body for method in _GUARDED):
            return _union(m for m in maps.values() if m)
        return ()
    needed: list[str] = []
    for call in message if isinstance(message, list) else [message]:
        for scope in _call_scopes(call, maps):
            if scope not in needed:
                needed.append(scope)
    return tuple(needed)


def _call_scopes(call: Any, maps: dict[str, dict[str, tuple[str, ...]]]) -> Iterator[str]:
    if not isinstance(call, dict):
        return
    method = call.get("method")
    if method not in _GUARDED or not maps[method]:
        return
    member = _GUARDED[method][0]
    params = call.get("params")
    target = params.get(member) if isinstance(params, dict) else None
    if not isinstance(target, str):
        yield from _union([maps[method]])
        return
    yield from maps[method].get(target, ())


def _union(maps: Any) -> tuple[str, ...]:
    needed: list[str] = []
    for mapping in maps:
        for scopes in mapping.values():
            needed.extend(s for s in scopes if s not in needed)
    return tuple(needed)


class CallGuard:
    """Checks the scopes of JSON-RPC calls POSTed to the resource, then replays the body.

    Args:
        resource: the protected resource with its tool, resource and prompt scopes.
    """

    def __init__(self, resource: ProtectedResource) -> None:
        self.resource = resource
        self._path = urlsplit(resource.resource).path or "/"
        self._limit = resource.max_body_bytes

    def applies(self, scope: Any) -> bool:
        """Whether the request is a JSON POST to a path the resource covers."""
        if scope["type"] != "http" or scope.get("method") != "POST":
            return False
        if not _json_or_untyped(scope):
            return False
        path = scope.get("path") or "/"
        if ambiguous(path):
            return True  # may be resolved to the resource further on: check it
        root = root_path(scope)
        return any(self._covers(p) for p in (path, root + path))

    def _covers(self, path: str) -> bool:
        base = self._path
        return base == "/" or path == base or path.startswith(base + "/")

    async def check(self, receive: Any, principal: Principal | AnonymousPrincipal) -> Any:
        """Read the body, refuse a call the principal may not make, else replay it.

        Returns:
            the ``receive`` the app must use: it yields the body read here, then
            whatever the client sends next (e.g. ``http.disconnect``).

        Raises:
            PayloadTooLarge: the body exceeds ``max_body_bytes`` (413).
            CredentialsMissing: an anonymous caller (a public path, optional mode) makes
                a call that needs scopes (401).
            InsufficientScope: a call needs scopes the principal lacks (403).
        """
        chunks: list[bytes] = []
        size = 0
        ended: Any = None
        while True:
            message = await receive()
            if message.get("type") != "http.request":
                ended = message  # the client went away: replay that too
                break
            chunk = message.get("body") or b""
            size += len(chunk)
            if size > self._limit:
                raise PayloadTooLarge(f"the JSON-RPC request exceeds {self._limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if ended is None:
            needed = required_scopes(body, self.resource)
            missing = tuple(s for s in needed if s not in principal.scopes)
            if missing and not principal.is_authenticated:
                raise CredentialsMissing()  # 401: sign in first (then step up if need be)
            if missing:
                raise InsufficientScope(
                    f"this call requires the scope(s): {' '.join(missing)}", scopes=needed
                )
        return _replay(body, ended, receive)


def _json_or_untyped(scope: Any) -> bool:
    # A server lenient about the content type must not skip the check: a body
    # without one, or with any JSON-ish one, is checked.
    types = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-type"]
    return not types or any(b"json" in v.lower() for v in types)


def _replay(body: bytes, ended: Any, receive: Any) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            if ended is not None and not body:
                return ended
            return {"type": "http.request", "body": body, "more_body": ended is not None}
        if ended is not None:
            return ended
        return await receive()

    return replay
