"""Serve the Protected Resource Metadata document (RFC 9728 §3).

Public and cacheable: it holds no secret and clients fetch it before they have a
token. Only the exact well-known paths are answered; any other path under the
well-known prefix (``//``, an encoded slash, a dot segment, trailing junk) gets a
plain 404, so no spelling reaches the app or the authentication path by surprise.
"""

from __future__ import annotations

from typing import Any

import msgspec

from asgi_sso._asgi import root_path
from asgi_sso.mcp.resource import WELL_KNOWN, ProtectedResource, metadata_path
from asgi_sso.responses import error_document

__all__ = ["MetadataEndpoint"]

_ALLOW = b"GET, HEAD, OPTIONS"
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", _ALLOW),
    (b"access-control-allow-headers", b"mcp-protocol-version"),
]


class MetadataEndpoint:
    """Answers requests for a resource's metadata document.

    Args:
        resource: the protected resource.
        authorization_servers: the issuer URLs to publish when the resource names none.
    """

    def __init__(self, resource: ProtectedResource, authorization_servers: tuple[str, ...]) -> None:
        document: dict[str, Any] = {
            "resource": resource.resource,
            "authorization_servers": list(resource.authorization_servers or authorization_servers),
            "bearer_methods_supported": ["header"],
        }
        if resource.scopes_supported:
            document["scopes_supported"] = list(resource.scopes_supported)
        if resource.resource_documentation is not None:
            document["resource_documentation"] = resource.resource_documentation
        if resource.resource_name is not None:
            document["resource_name"] = resource.resource_name
        self.document = document
        self._body = msgspec.json.encode(document)
        path = metadata_path(resource.resource)
        self._paths = frozenset({WELL_KNOWN, path})
        self._cache = f"public, max-age={resource.metadata_max_age}".encode()

    def claims(self, scope: Any) -> bool:
        """Whether the request's path is under the well-known prefix (served here)."""
        path = scope.get("path")
        # Hot path: one substring test for every request that is not for the metadata.
        if scope["type"] != "http" or not isinstance(path, str) or ".well-known" not in path:
            return False
        return any(_under(spelling) for spelling in _spellings(scope))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve the document, or 404 / 405 with the one error shape."""
        if not self._exact(scope):
            await _send(send, 404, _error("not_found", "no such metadata document", 404), [])
            return
        method = scope.get("method", "GET")
        if method == "OPTIONS":
            await _send(send, 204, b"", [*_CORS, (b"allow", _ALLOW)])
            return
        if method not in ("GET", "HEAD"):
            body = _error("method_not_allowed", "the metadata is read with GET", 405)
            await _send(send, 405, body, [(b"allow", _ALLOW)])
            return
        headers = [(b"cache-control", self._cache), *_CORS]
        await _send(send, 200, self._body, headers, head=method == "HEAD")

    def _exact(self, scope: Any) -> bool:
        # Percent-encoded spellings (%2F, %2E) decode to the same ASGI path: the raw
        # path, when the server gives it, must be the plain one as well.
        raw = scope.get("raw_path")
        if raw is not None and not isinstance(raw, bytes):
            return False
        sent = None if raw is None else raw.split(b"?", 1)[0]
        root = root_path(scope)
        for path in _spellings(scope):
            if path in self._paths and sent in (None, path.encode(), (root + path).encode()):
                return True
        return False


def _spellings(scope: Any) -> tuple[str, ...]:
    # The URL path with and without the mount point (servers disagree on whether
    # ``path`` includes ``root_path``).
    path = scope.get("path")
    if not isinstance(path, str):
        return ()
    root = root_path(scope)
    if root and path.startswith(root + "/"):
        return (path, path[len(root) :])
    return (path, root + path) if root else (path,)


def _under(path: str) -> bool:
    # Also `/.well-known//oauth-protected-resource`, `/./.well-known/...`: a trick, a 404.
    squeezed = "/" + "/".join(s for s in path.split("/") if s and s != ".")
    return squeezed.startswith(WELL_KNOWN) or path.startswith(WELL_KNOWN)


def _error(error: str, description: str, status: int) -> bytes:
    return error_document(error, description, status)


async def _send(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, head: bool = False
) -> None:
    content_type = [(b"content-type", b"application/json")] if body else []
    length = [(b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*content_type, *length, *headers],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})
