"""ProtectedResource validated when built; scope checks inside a tool."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso import ConfigurationError, InsufficientScope, Principal, ProtectedResource
from asgi_sso.mcp import canonical_resource, principal_of, require_scopes, require_tier
from asgi_sso.principal import ANONYMOUS


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("https://MCP.Example.com/mcp/", "https://mcp.example.com/mcp"),
        ("HTTPS://mcp.example.com:443", "https://mcp.example.com"),
        ("https://mcp.example.com/", "https://mcp.example.com"),
        ("https://mcp.example.com:8443/Server/MCP", "https://mcp.example.com:8443/Server/MCP"),
        ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp"),
        ("http://localhost:80/mcp", "http://localhost/mcp"),
        ("http://[::1]:8000/mcp", "http://[::1]:8000/mcp"),
    ],
)
def test_canonical_resource(given: str, canonical: str) -> None:
    assert canonical_resource(given) == canonical
    assert ProtectedResource(resource=given).audience == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "mcp.example.com/mcp",
        "https://mcp.example.com/mcp#x",
        "https://mcp.example.com/mcp?tenant=a",
        "http://mcp.example.com/mcp",
        "https://user@mcp.example.com/mcp",
        "ftp://mcp.example.com",
        "https://mcp.example.com:0x1/mcp",
        "https://mcp example.com/",
        "",
    ],
)
def test_bad_resource_urls_fail_when_built(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="resource"):
        ProtectedResource(resource=bad)


def test_metadata_url_is_the_path_suffixed_well_known_url() -> None:
    resource = ProtectedResource(resource="https://mcp.example.com/a/mcp/")
    assert resource.metadata_url == (
        "https://mcp.example.com/.well-known/oauth-protected-resource/a/mcp"
    )
    root = ProtectedResource(resource="https://mcp.example.com")
    assert root.metadata_url == "https://mcp.example.com/.well-known/oauth-protected-resource"


@pytest.mark.parametrize(
    "kw",
    [
        {"authorization_servers": "https://idp.example.com"},
        {"authorization_servers": ("http://idp.example.com",)},
        {"scopes_supported": ("",)},
        {"resource_documentation": "javascript:alert(1)"},
        {"tool_scopes": {"x": ("two words",)}},
        {"tool_scopes": {"": ("a",)}},
        {"tool_scopes": [("x", "a")]},
        {"prompt_scopes": {"x": ('a"b',)}},
        {"max_body_bytes": 10},
        {"metadata_max_age": -1},
        {"max_body_bytes": True},
    ],
)
def test_bad_settings_fail_when_built(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="ProtectedResource"):
        ProtectedResource(resource="https://mcp.example.com/mcp", **kw)


def test_a_single_scope_string_is_one_scope() -> None:
    resource = ProtectedResource(resource="https://m.example.com", tool_scopes={"t": "admin"})  # type: ignore[dict-item]
    assert resource.tool_scopes == {"t": ("admin",)}
    assert resource.guards_calls


def _principal(*scopes: str) -> Principal:
    return Principal(
        identity="alice",
        payload=b"{}",
        issuer="https://idp",
        connection="https://idp",
        scopes=frozenset(scopes),
    )


class _Request:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope


class _Context:
    # The shape of the MCP SDK's Context: ctx.request_context.request is the HTTP request.
    def __init__(self, request: Any) -> None:
        self.request_context = type("RC", (), {"request": request})()


def test_require_scopes_reads_the_principal_from_a_scope_request_or_context() -> None:
    alice = _principal("read", "write")
    scope = {"type": "http", "user": alice}
    for source in (scope, _Request(scope), _Context(_Request(scope)), alice):
        assert principal_of(source) is alice
        assert require_scopes(source, "read") is alice
        with pytest.raises(InsufficientScope) as refused:
            require_scopes(source, "read", "admin")
        assert refused.value.scopes == ("read", "admin")
        assert "admin" in refused.value.description


class _ContextOutsideARequest:
    @property
    def request_context(self) -> Any:
        raise ValueError("Context is not available outside of a request")


@pytest.mark.parametrize(
    "source", [None, {}, {"user": "alice"}, _Context(None), object(), _ContextOutsideARequest()]
)
def test_no_principal_is_a_refusal(source: Any) -> None:
    with pytest.raises(InsufficientScope, match="SSOMiddleware"):
        require_scopes(source, "read")


def test_anonymous_never_passes_even_with_no_scopes() -> None:
    with pytest.raises(InsufficientScope):
        require_scopes({"user": ANONYMOUS})


def test_require_tier_admits_the_tier_and_higher_ones_by_the_mappers_order() -> None:
    ranks = {"enterprise": 3, "pro": 2, "free": 1}

    def at(tier: str | None) -> Principal:
        return Principal(
            identity="u", claims={}, issuer="i", connection="c", tier=tier, tier_ranks=ranks
        )

    for tier in ("pro", "enterprise"):
        user = at(tier)
        assert require_tier(_Context(_Request({"user": user})), "pro") is user
    for tier in ("free", None):
        with pytest.raises(InsufficientScope, match="'pro' tier"):
            require_tier({"user": at(tier)}, "pro")
    with pytest.raises(InsufficientScope):
        require_tier({"user": ANONYMOUS}, "free")
    with pytest.raises(ConfigurationError, match="gold"):
        require_tier({"user": at("pro")}, "gold")  # a misspelt tier refuses no one silently
