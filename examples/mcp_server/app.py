"""An MCP server (the official ``mcp`` SDK, Streamable HTTP) that signs its users in with SSO.

The MCP app knows nothing about OAuth: :class:`~asgi_sso.SSOMiddleware` in front of it is
the resource server. It publishes the protected resource metadata (RFC 9728) MCP clients
discover the authorization server from, refuses a token minted for another resource (the
audience is this server's canonical URL, RFC 8707) and refuses ``tools/call`` of a tool
whose scopes the caller lacks with ``403 insufficient_scope`` and the scope to ask for, so
the client can step up. Tools and resources read the caller from ``scope["user"]``.

In dev mode (``OIDC_ISSUER`` unset) a dev IdP runs beside it, with dynamic client
registration, so an MCP client with OAuth support connects with no setup. Alice (Acme)
may hold both scopes; Bob (Acme) and Carol (Globex) only read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

from asgi_sso import ConfigurationError, Issuer, Principal, ProtectedResource, SSOMiddleware
from asgi_sso.mcp import require_scopes
from asgi_sso.testing import DevIdP, DevUser

__all__ = [
    "ADMIN_SCOPE",
    "READ_SCOPE",
    "USERS",
    "McpExample",
    "ReportDesk",
    "Settings",
    "create_app",
]

READ_SCOPE = "reports:read"
ADMIN_SCOPE = "reports:admin"
TOOL_SCOPES = {"list_reports": (READ_SCOPE,), "delete_report": (ADMIN_SCOPE,)}
USERS = (
    DevUser(sub="alice", email="alice@acme.example", name="Alice Admin",
            scopes=(READ_SCOPE, ADMIN_SCOPE)),
    DevUser(sub="bob", email="bob@acme.example", name="Bob Builder", scopes=(READ_SCOPE,)),
    DevUser(sub="carol", email="carol@globex.example", name="Carol Chen", scopes=(READ_SCOPE,)),
)  # fmt: skip
_SEED = {
    "acme.example": ("Acme Corp", ["Q3 revenue", "Churn by region", "Pipeline"]),
    "globex.example": ("Globex", ["Reactor uptime", "Hiring plan"]),
}


@dataclass
class ReportDesk:
    """Each company's reports, keyed by the e-mail domain of its people (in memory)."""

    companies: dict[str, tuple[str, list[str]]] = field(
        default_factory=lambda: {k: (name, list(r)) for k, (name, r) in _SEED.items()}
    )

    @staticmethod
    def domain_of(caller: Principal) -> str:
        """The caller's company: the domain of their e-mail address."""
        return str(caller.claims.get("email") or "").rpartition("@")[2].lower()

    def of(self, caller: Principal) -> tuple[str, list[str]]:
        """The caller's company name and reports; a stranger's company has none."""
        domain = self.domain_of(caller)
        return self.companies.setdefault(domain, (domain or "unknown", []))


def build_mcp(desk: ReportDesk) -> MCPServer[Any]:
    """The MCP server: two tools needing different scopes and the caller's own company."""
    mcp: MCPServer[Any] = MCPServer("reports", instructions="Your company's reports.")

    @mcp.tool(description=f"List your company's reports (needs {READ_SCOPE}).")
    def list_reports(ctx: Context[Any, Any]) -> list[str]:
        return list(desk.of(require_scopes(ctx, READ_SCOPE))[1])

    @mcp.tool(description=f"Delete one of your company's reports (needs {ADMIN_SCOPE}).")
    def delete_report(title: str, ctx: Context[Any, Any]) -> str:
        caller = require_scopes(ctx, ADMIN_SCOPE)  # the middleware refused already; belt and braces
        reports = desk.of(caller)[1]
        if title not in reports:
            raise ToolError(f"no report {title!r}")
        reports.remove(title)
        return f"deleted {title!r}"

    @mcp.resource("company://{domain}", description="Your company: who you are, its reports.")
    def company(domain: str, ctx: Context[Any, Any]) -> dict[str, Any]:
        caller = require_scopes(ctx)  # the signed-in user, as the middleware verified them
        if domain.lower() != desk.domain_of(caller):  # a tenant reads only its own data
            raise ResourceNotFoundError("that is not your company")
        name, reports = desk.of(caller)
        return {
            "user": caller.identity,
            "email": caller.claims.get("email"),
            "company": name,
            "reports": reports,
            "scopes": sorted(caller.scopes),
        }

    return mcp


@dataclass(frozen=True)
class Settings:
    """What the example reads from the environment.

    Attributes:
        app_url: ``APP_URL``, where the server listens (default ``http://127.0.0.1:8000``);
            the MCP endpoint, and the protected resource, is ``<app_url>/mcp``.
        issuer: ``OIDC_ISSUER``, a real authorization server; unset: dev mode.
    """

    app_url: str = "http://127.0.0.1:8000"
    issuer: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        port = env.get("PORT", "8000")
        app_url = env.get("APP_URL") or f"http://127.0.0.1:{port}"
        return cls(app_url=app_url.rstrip("/"), issuer=env.get("OIDC_ISSUER") or None)

    @property
    def resource(self) -> str:
        """The MCP endpoint's URL: the canonical resource tokens must be minted for."""
        return self.app_url + "/mcp"


@dataclass
class McpExample:
    """The wired example: ``app`` to serve, the dev IdP (dev mode) and the report desk."""

    app: SSOMiddleware
    resource: ProtectedResource
    desk: ReportDesk
    idp: DevIdP | None


def create_app(settings: Settings, idp: DevIdP | None = None) -> McpExample:
    """Build the MCP server behind the middleware.

    Args:
        settings: the app URL and, optionally, a real issuer.
        idp: the dev IdP to trust in dev mode (default: a new one on a free loopback port).

    Raises:
        ConfigurationError: the app URL is not loopback ``http`` or ``https``.
    """
    parts = urlsplit(settings.app_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"APP_URL {settings.app_url!r} must be an http(s) URL")
    if settings.issuer is None and idp is None:
        idp = DevIdP(users=USERS)
    issuer_url = settings.issuer or (idp.issuer if idp is not None else "")
    resource = ProtectedResource(
        resource=settings.resource,
        authorization_servers=(issuer_url,),
        scopes_supported=(READ_SCOPE, ADMIN_SCOPE),
        resource_name="Company reports (asgi_sso MCP example)",
        tool_scopes=TOOL_SCOPES,
    )
    if idp is not None and settings.issuer is None:
        issuer = idp.issuer_config(audience=resource.audience)
    else:
        issuer = Issuer(issuer=issuer_url, audience=resource.audience)
    desk = ReportDesk()
    mcp_app = build_mcp(desk).streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, host=parts.hostname
    )
    app = SSOMiddleware(mcp_app, issuers=[issuer], resource=resource)
    return McpExample(app=app, resource=resource, desk=desk, idp=idp)
