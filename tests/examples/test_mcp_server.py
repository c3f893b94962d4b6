"""The MCP example's wiring: settings, the protected resource it publishes, its banner.

The example end to end, with the official MCP client, is tests/integration/test_mcp_client.py.
"""

from __future__ import annotations

import httpx
import pytest

from asgi_sso import ConfigurationError
from asgi_sso.testing import DevIdP
from examples.mcp_server.__main__ import banner
from examples.mcp_server.app import ADMIN_SCOPE, READ_SCOPE, USERS, Settings, create_app

APP = "http://127.0.0.1:8123"


def test_settings_put_the_resource_at_the_mcp_endpoint() -> None:
    assert Settings.from_env({}).resource == "http://127.0.0.1:8000/mcp"
    assert Settings.from_env({"PORT": "9000"}).resource == "http://127.0.0.1:9000/mcp"
    settings = Settings.from_env(
        {"APP_URL": "https://mcp.example.com/", "OIDC_ISSUER": "https://i"}
    )
    assert (settings.resource, settings.issuer) == ("https://mcp.example.com/mcp", "https://i")


def test_an_app_url_that_is_not_http_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match="APP_URL"):
        create_app(Settings(app_url="ftp://127.0.0.1"), idp=DevIdP(users=USERS))


async def test_the_metadata_names_the_dev_idp_and_both_scopes() -> None:
    idp = DevIdP(users=USERS)
    example = create_app(Settings(app_url=APP), idp=idp)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=example.app), base_url=APP
    ) as http:
        metadata = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        anonymous = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert metadata["resource"] == f"{APP}/mcp"
    assert metadata["authorization_servers"] == [idp.issuer]
    assert metadata["scopes_supported"] == [READ_SCOPE, ADMIN_SCOPE]
    assert anonymous.status_code == 401
    assert "resource_metadata=" in anonymous.headers["www-authenticate"]


def test_the_banner_says_where_to_connect_and_what_each_tool_needs() -> None:
    lines = "\n".join(banner(f"{APP}/mcp", "http://127.0.0.1:9", ["  bob"]))
    assert f"{APP}/mcp" in lines
    assert f"{APP}/.well-known/oauth-protected-resource/mcp" in lines
    assert "http://127.0.0.1:9" in lines
    assert f"delete_report needs {ADMIN_SCOPE}" in lines
