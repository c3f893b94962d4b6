"""The protected resource: its canonical URL (RFC 8707 §2) and what it publishes (RFC 9728).

An MCP server is an OAuth resource server. Its canonical URL names it everywhere:
as ``resource`` in its metadata, as the audience its tokens must carry, and in the
``resource`` parameter clients send to the authorization server. Two spellings of
one URL must give one string, or tokens are refused (or, worse, accepted) by
accident; :func:`canonical_resource` makes that one string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import msgspec

from asgi_sso.errors import ConfigurationError

__all__ = ["WELL_KNOWN", "ProtectedResource", "canonical_resource", "metadata_path"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ONE_MIB = 1 << 20


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def canonical_resource(url: str) -> str:
    """The canonical form of a resource URL (RFC 8707 §2, the MCP authorization spec).

    Lowercase scheme and host, no default port, no fragment, the path kept but
    without a trailing slash (``https://host/mcp/`` is ``https://host/mcp``; a bare
    origin has no path). Idempotent: the canonical form of a canonical URL is itself.

    Raises:
        ConfigurationError: not an absolute ``https`` URL (``http`` only on loopback),
            or one with user information, a query or a fragment.
    """
    if not isinstance(url, str) or not url or any(ch <= " " or ch == "\x7f" for ch in url):
        raise ConfigurationError(f"resource {url!r} must be an absolute URL without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"resource {url!r} is not a valid URL: {exc}") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host:
        raise ConfigurationError(
            f"resource {url!r} must be an absolute https URL, e.g. https://mcp.example.com/mcp"
        )
    if scheme == "http" and not _loopback(host):
        raise ConfigurationError(
            f"resource {url!r} uses http: only https, or http on a loopback host (for development)"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigurationError(f"resource {url!r} must not carry user information")
    # RFC 8707 §2: no fragment; a query is allowed there but the MCP spec's canonical
    # URI has none, and a query cannot be appended to a well-known path (RFC 9728 §3.1).
    if parts.fragment or "#" in url or parts.query or "?" in url:
        raise ConfigurationError(f"resource {url!r} must have no query and no fragment")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def metadata_path(resource: str) -> str:
    """The path of the resource's metadata: the well-known prefix, then the resource's path.

    RFC 9728 §3.1: ``https://host/mcp`` publishes at
    ``https://host/.well-known/oauth-protected-resource/mcp``.
    """
    return WELL_KNOWN + urlsplit(resource).path


class ProtectedResource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """This server as an OAuth protected resource (RFC 9728), e.g. an MCP server.

    The middleware serves the metadata at ``/.well-known/oauth-protected-resource``
    and its path-suffixed form, names it in every ``401``/``403`` challenge
    (``resource_metadata``), and refuses a JSON-RPC call to a tool, resource or
    prompt listed here when the principal lacks its scopes (``403
    insufficient_scope`` with ``scope=``, so clients can step up).

    Attributes:
        resource: the canonical URL of the resource (the MCP endpoint, e.g.
            ``https://mcp.example.com/mcp``); canonicalised when built (see
            :func:`canonical_resource`).
        authorization_servers: issuer URLs clients obtain tokens from; empty: the
            middleware's exact trusted issuers.
        scopes_supported: scopes clients may request for this resource.
        resource_documentation: a page for developers about this resource.
        resource_name: a human-readable name (RFC 9728 §2).
        tool_scopes: MCP tool name → the scopes a ``tools/call`` of it needs.
        resource_scopes: MCP resource URI → the scopes a ``resources/read`` of it needs.
        prompt_scopes: MCP prompt name → the scopes a ``prompts/get`` of it needs.
        max_body_bytes: the largest JSON-RPC body read to check those scopes (413 above).
        metadata_max_age: ``Cache-Control: max-age`` of the metadata, in seconds.

    Raises:
        ConfigurationError: a resource URL that is not canonicalisable, a non-https
            authorization server or documentation URL, an empty scope or name.
    """

    resource: str
    authorization_servers: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    resource_documentation: str | None = None
    resource_name: str | None = None
    tool_scopes: Mapping[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    resource_scopes: Mapping[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    prompt_scopes: Mapping[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    max_body_bytes: int = _ONE_MIB
    metadata_max_age: int = 3600

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "resource", canonical_resource(self.resource))
        for field in ("authorization_servers", "scopes_supported"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ConfigurationError(
                    f"ProtectedResource.{field} takes a list of non-empty strings"
                )
            msgspec.structs.force_setattr(self, field, tuple(value))
        for server in self.authorization_servers:
            _check_url(server, "authorization_servers")
        if self.resource_documentation is not None:
            _check_url(self.resource_documentation, "resource_documentation")
        for field in ("tool_scopes", "resource_scopes", "prompt_scopes"):
            msgspec.structs.force_setattr(self, field, _scope_map(getattr(self, field), field))
        for field in ("max_body_bytes", "metadata_max_age"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"ProtectedResource.{field} must be an integer >= 0")
        if self.max_body_bytes < 1024:
            raise ConfigurationError("ProtectedResource.max_body_bytes must be at least 1024")

    @property
    def audience(self) -> str:
        """The audience its tokens must carry: the canonical resource URL (RFC 8707).

        Use it as ``Issuer(audience=resource.audience)``, so that a token the
        authorization server issued for another MCP server or API is refused.
        """
        return self.resource

    @property
    def metadata_url(self) -> str:
        """The URL of the resource's metadata document (RFC 9728 §3.1)."""
        parts = urlsplit(self.resource)
        return urlunsplit((parts.scheme, parts.netloc, metadata_path(self.resource), "", ""))

    @property
    def guards_calls(self) -> bool:
        """Whether some tool, resource or prompt needs scopes of its own."""
        return bool(self.tool_scopes or self.resource_scopes or self.prompt_scopes)


def _check_url(url: str, field: str) -> None:
    try:
        canonical_resource(url)
    except ConfigurationError as exc:
        raise ConfigurationError(f"ProtectedResource.{field}: {exc}") from None


def _scope_map(value: object, field: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"ProtectedResource.{field} takes a mapping, e.g. "
            "{'delete-report': ('reports:write',)}"
        )
    checked: dict[str, tuple[str, ...]] = {}
    for name, scopes in value.items():
        if isinstance(scopes, str):
            scopes = (scopes,)
        if not (isinstance(name, str) and name) or not all(
            isinstance(s, str) and s and " " not in s and '"' not in s and "\\" not in s
            for s in scopes
        ):
            raise ConfigurationError(
                f"ProtectedResource.{field} maps names to scope strings without spaces or "
                f"quotes: {name!r}"
            )
        checked[name] = tuple(scopes)
    return checked
