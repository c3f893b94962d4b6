"""Enterprise SSO for MCP servers: the package as the OAuth resource server.

:class:`ProtectedResource` describes the MCP server (its canonical URL, its
authorization servers, the scopes each tool, resource and prompt needs);
``SSOMiddleware(..., resource=...)`` publishes its metadata (RFC 9728), names it in
every challenge and refuses calls the principal lacks scopes for.
:func:`require_scopes` checks scopes inside a tool, from the principal the
middleware already put in the request scope (no second verification).
"""

from __future__ import annotations

from asgi_sso.mcp.resource import ProtectedResource, canonical_resource
from asgi_sso.mcp.scopes import principal_of, require_scopes, require_tier

__all__ = [
    "ProtectedResource",
    "canonical_resource",
    "principal_of",
    "require_scopes",
    "require_tier",
]
