"""The official ``mcp`` client signs in to the example MCP server through the dev IdP.

Both run for real under uvicorn on loopback ports. The client's own OAuth support
(``OAuthClientProvider``) does everything an MCP client does: it finds the authorization
server from the ``401``'s ``resource_metadata`` (RFC 9728), registers itself (RFC 7591),
signs in with PKCE asking for a token for this resource (RFC 8707), and steps up when a
tool answers ``403 insufficient_scope``. Only the person at the sign-in page is played
by the test: it opens the authorization URL with ``login_hint`` and hands the redirect's
code back, as a browser and a loopback callback would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.shared.exceptions import MCPError

from asgi_sso.testing import DevIdP, free_port
from asgi_sso.testing.idp.server import serve_in_thread
from examples.mcp_server.app import (
    ADMIN_SCOPE,
    READ_SCOPE,
    USERS,
    McpExample,
    Settings,
    create_app,
)

pytestmark = pytest.mark.slow
CALLBACK = "http://127.0.0.1:33418/callback"  # never listened on: the test reads the redirect


@dataclass
class Memory:
    """The client's token storage (the SDK's ``TokenStorage`` protocol), in memory."""

    tokens: OAuthToken | None = None
    client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class Person:
    """Who signs in at the dev IdP when the client sends them there; what the wire saw."""

    login: str
    storage: Memory = field(default_factory=Memory)
    authorize_urls: list[str] = field(default_factory=list)
    responses: list[tuple[str, int, str]] = field(default_factory=list)

    async def open_browser(self, url: str) -> None:
        self.authorize_urls.append(url)

    async def come_back(self) -> AuthorizationCodeResult:
        async with httpx.AsyncClient() as browser:
            page = await browser.get(f"{self.authorize_urls[-1]}&login_hint={self.login}")
        assert page.status_code == 302, page.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(page.headers["location"]).query).items()}
        assert "error" not in query, query
        return AuthorizationCodeResult(code=query["code"], state=query["state"], iss=query["iss"])

    async def saw(self, response: httpx2.Response) -> None:
        challenge = response.headers.get("www-authenticate", "")
        self.responses.append((str(response.request.url), response.status_code, challenge))


@pytest.fixture(scope="module")
def served() -> Iterator[McpExample]:
    idp = DevIdP(users=USERS)
    settings = Settings(app_url=f"http://127.0.0.1:{free_port()}")
    example = create_app(settings, idp=idp)
    with idp.serve(), serve_in_thread(example.app, settings.app_url, lifespan=True):
        yield example


@asynccontextmanager
async def connect(example: McpExample, person: Person) -> AsyncIterator[Client]:
    provider = OAuthClientProvider(
        server_url=example.resource.resource,
        client_metadata=OAuthClientMetadata(
            client_name="asgi_sso test", redirect_uris=[CALLBACK], token_endpoint_auth_method="none"
        ),  # type: ignore[arg-type]
        storage=person.storage,
        redirect_handler=person.open_browser,
        callback_handler=person.come_back,
    )
    http = httpx2.AsyncClient(auth=provider, event_hooks={"response": [person.saw]}, timeout=30)
    async with (
        http,
        Client(streamable_http_client(example.resource.resource, http_client=http)) as c,
    ):
        yield c


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def text_of(result: Any) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


async def test_a_reader_lists_and_calls_but_is_refused_the_admin_tool(served: McpExample) -> None:
    bob = Person("bob")
    async with connect(served, bob) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        listed = await client.call_tool("list_reports")
        company = await client.read_resource("company://acme.example")
        with pytest.raises(MCPError, match="not your company"):
            await client.read_resource("company://globex.example")
        with pytest.raises(MCPError, match="error response"):  # the HTTP 403, surfaced
            await client.call_tool("delete_report", {"title": "Pipeline"})
    assert {"list_reports", "delete_report"} <= names
    assert not listed.is_error
    assert "Q3 revenue" in text_of(listed)
    mine = json.loads(company.contents[0].text)  # type: ignore[union-attr]
    assert (mine["user"], mine["company"]) == ("bob", "Acme Corp")
    assert READ_SCOPE in mine["scopes"]
    assert ADMIN_SCOPE not in mine["scopes"]
    # The first request was challenged with where the metadata is (RFC 9728 §5.1) ...
    first = next(r for r in bob.responses if r[0] == served.resource.resource)
    assert first[1] == 401
    assert "resource_metadata=" in first[2]
    # ... registered itself as a public client, asked for a token for this resource with
    # PKCE, and got one whose audience is this resource ...
    asked = parse_qs(urlsplit(bob.authorize_urls[0]).query)
    assert asked["resource"] == [served.resource.resource]
    assert asked["code_challenge_method"] == ["S256"]
    registered = served.idp.clients[asked["client_id"][0]] if served.idp else None
    assert registered is not None
    assert registered.is_public
    assert any(r[0].endswith("/register") and r[1] == 201 for r in bob.responses)
    assert bob.storage.tokens is not None
    assert claims_of(bob.storage.tokens.access_token)["aud"] == served.resource.resource
    # ... and the admin tool answered 403 insufficient_scope naming the scope to step up to.
    step_ups = [r for r in bob.responses if r[1] == 403]
    assert step_ups, bob.responses
    assert 'error="insufficient_scope"' in step_ups[0][2]
    assert ADMIN_SCOPE in step_ups[0][2].partition("scope=")[2]
    assert "resource_metadata=" in step_ups[0][2]
    # The client stepped up (asked for the admin scope too); the IdP would not grant it to Bob.
    assert len(bob.authorize_urls) == 2
    assert ADMIN_SCOPE in parse_qs(urlsplit(bob.authorize_urls[1]).query)["scope"][0].split()
    assert "Pipeline" in served.desk.companies["acme.example"][1]


async def test_an_admin_calls_the_admin_tool(served: McpExample) -> None:
    alice = Person("alice")
    async with connect(served, alice) as client:
        deleted = await client.call_tool("delete_report", {"title": "Churn by region"})
    assert not deleted.is_error, text_of(deleted)
    assert "Churn by region" not in served.desk.companies["acme.example"][1]
    assert not [r for r in alice.responses if r[1] == 403]


async def test_a_token_minted_for_another_resource_is_refused(served: McpExample) -> None:
    assert served.idp is not None
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    other = served.idp.issue_token(
        "bob", audience=served.resource.resource + "-other", scopes=[READ_SCOPE]
    )
    right = served.idp.issue_token("bob", audience=served.resource.resource, scopes=[READ_SCOPE])
    async with httpx.AsyncClient() as http:
        refused = await http.post(
            served.resource.resource,
            json=call,
            headers={**headers, "authorization": f"Bearer {other}"},
        )
        accepted = await http.post(
            served.resource.resource,
            json=call,
            headers={**headers, "authorization": f"Bearer {right}"},
        )
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "resource_metadata=" in refused.headers["www-authenticate"]
    assert accepted.status_code == 200, accepted.text
