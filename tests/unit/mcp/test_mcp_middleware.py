"""The middleware as an MCP server's resource server: metadata, challenges, per-tool scopes."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asgi_sso import ConfigurationError, PathRules, ProtectedResource, SSOMiddleware
from asgi_sso.testing import DevIdP, DevUser

RESOURCE = "http://127.0.0.1:8000/mcp"
METADATA = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"


class Echo:
    """An ASGI app that answers with the body it read, as the MCP server would see it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        if scope["type"] == "http":
            while True:
                message = await receive()
                self.messages.append(message)
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body or b"{}"})


@pytest.fixture
def idp() -> DevIdP:
    return DevIdP("http://idp.test", users=[DevUser(sub="alice", email="alice@acme.test")])


@pytest.fixture
async def idp_http(idp: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    client = idp.http_client()
    yield client
    await client.aclose()


def protected(**kw: Any) -> ProtectedResource:
    return ProtectedResource(
        resource=RESOURCE,
        scopes_supported=("mcp:read", "mcp:admin"),
        tool_scopes={"delete": ("mcp:admin",), "lookup": ("mcp:read",)},
        **kw,
    )


def wrap(idp: DevIdP, http: httpx.AsyncClient, app: Any = None, **kw: Any) -> SSOMiddleware:
    resource = kw.pop("resource", None) or protected()
    return SSOMiddleware(
        app or Echo(),
        [idp.issuer_config(audience=resource.audience)],
        http_client=http,
        resource=resource,
        **kw,
    )


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
    )


def call(name: str, ident: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": name}}


def bearer(idp: DevIdP, *scopes: str, audience: str = RESOURCE) -> dict[str, str]:
    token = idp.issue_token("alice", audience=audience, scopes=list(scopes))
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


# -- metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp",
                                  "/.well-known/oauth-protected-resource"])  # fmt: skip
async def test_metadata_is_public_and_cacheable(
    idp: DevIdP, idp_http: httpx.AsyncClient, path: str
) -> None:
    async with client_for(wrap(idp, idp_http)) as c:
        r = await c.get(path)
    assert r.status_code == 200
    assert r.json() == {
        "resource": RESOURCE,
        "authorization_servers": ["http://idp.test"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:read", "mcp:admin"],
    }
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert r.headers["content-type"] == "application/json"


async def test_metadata_names_configured_servers_and_documentation(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    resource = protected(
        authorization_servers=("https://login.example.com/tenant/v2.0",),
        resource_documentation="https://docs.example.com/mcp",
    )
    async with client_for(wrap(idp, idp_http, resource=resource)) as c:
        document = (await c.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert document["authorization_servers"] == ["https://login.example.com/tenant/v2.0"]
    assert document["resource_documentation"] == "https://docs.example.com/mcp"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_metadata_refuses_other_methods(
    idp: DevIdP, idp_http: httpx.AsyncClient, method: str
) -> None:
    async with client_for(wrap(idp, idp_http)) as c:
        r = await c.request(method, "/.well-known/oauth-protected-resource/mcp")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert r.json()["status"] == 405


async def test_metadata_head_and_options(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    async with client_for(wrap(idp, idp_http)) as c:
        head = await c.head("/.well-known/oauth-protected-resource/mcp")
        options = await c.options("/.well-known/oauth-protected-resource/mcp")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert options.status_code == 204
    assert options.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "raw",
    [
        b"/.well-known/oauth-protected-resource/mcp/",
        b"/.well-known/oauth-protected-resource//mcp",
        b"/.well-known/oauth-protected-resource%2Fmcp",
        b"/.well-known/oauth-protected-resource/%2E/mcp",
        b"/.well-known/oauth-protected-resource/./mcp",
        b"/.well-known/oauth-protected-resource/../oauth-protected-resource/mcp",
        b"/.well-known/oauth-protected-resource/mcpx",
        b"/.well-known/oauth-protected-resourcejunk",
        b"/.well-known/oauth-protected-resource/mcp%00",
        b"/.well-known/oauth-protected-resource/other",
        b"/.well-known//oauth-protected-resource/mcp",
    ],
)
async def test_metadata_path_tricks_are_404_not_500(
    idp: DevIdP, idp_http: httpx.AsyncClient, raw: bytes
) -> None:
    app = Echo()
    middleware = wrap(idp, idp_http, app)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    from urllib.parse import unquote_to_bytes

    scope = {
        "type": "http", "method": "GET", "path": unquote_to_bytes(raw).decode("latin-1"),
        "raw_path": raw, "root_path": "", "query_string": b"", "headers": [],
    }  # fmt: skip
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 404
    assert json.loads(sent[1]["body"])["error"] == "not_found"
    assert app.bodies == []


async def test_metadata_under_a_root_path(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    resource = ProtectedResource(resource="http://127.0.0.1:8000/api/mcp")
    middleware = SSOMiddleware(
        Echo(), [idp.issuer_config(audience=resource.audience)], http_client=idp_http,
        resource=resource,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=middleware, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        r = await c.get("/.well-known/oauth-protected-resource/api/mcp")
        denied = await c.post("/api/mcp", json=call("x"))
    assert r.status_code == 200
    assert r.json()["resource"] == "http://127.0.0.1:8000/api/mcp"
    expected = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/api/mcp"
    assert f'resource_metadata="{expected}"' in denied.headers["www-authenticate"]


# -- challenges ----------------------------------------------------------------------------


async def test_401_without_a_token_names_the_metadata(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    async with client_for(wrap(idp, idp_http)) as c:
        r = await c.post("/mcp", json=call("lookup"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer realm="api", resource_metadata="{METADATA}"'


async def test_token_for_another_resource_is_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = Echo()
    async with client_for(wrap(idp, idp_http, app)) as c:
        for other in ("http://127.0.0.1:9000/mcp", "http://127.0.0.1:8000/mcp/", "api://other"):
            r = await c.post(
                "/mcp", json=call("lookup"), headers=bearer(idp, "mcp:read", audience=other)
            )
            assert r.status_code == 401
            challenge = r.headers["www-authenticate"]
            assert 'error="invalid_token"' in challenge
            assert f'resource_metadata="{METADATA}"' in challenge
    assert app.bodies == []


async def test_path_scope_rule_403_carries_scope_and_metadata(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    middleware = wrap(idp, idp_http, paths=PathRules(scope_rules={"/admin": ["admin"]}))
    async with client_for(middleware) as c:
        r = await c.get("/admin", headers=bearer(idp, "mcp:read"))
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="admin"' in challenge
    assert f'resource_metadata="{METADATA}"' in challenge


# -- per-tool scopes -----------------------------------------------------------------------


async def test_tool_call_with_the_scope_reaches_the_app_with_the_exact_body(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = Echo()
    body = json.dumps(call("lookup")).encode()
    async with client_for(wrap(idp, idp_http, app)) as c:
        r = await c.post("/mcp", content=body, headers=bearer(idp, "mcp:read"))
    assert r.status_code == 200
    assert app.bodies == [body]


async def test_tool_call_without_the_scope_is_403_before_the_app(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = Echo()
    async with client_for(wrap(idp, idp_http, app)) as c:
        r = await c.post("/mcp", json=call("delete"), headers=bearer(idp, "mcp:read"))
    assert r.status_code == 403
    assert r.headers["www-authenticate"] == (
        'Bearer realm="api", resource_metadata="' + METADATA + '", error="insufficient_scope", '
        'error_description="this call requires the scope(s): mcp:admin", scope="mcp:admin"'
    )
    assert r.json()["error"] == "insufficient_scope"
    assert app.bodies == []


async def test_every_call_in_a_batch_is_checked(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    app = Echo()
    batch = [call("lookup", 1), {"jsonrpc": "2.0", "method": "notifications/x"}, call("delete", 2)]
    async with client_for(wrap(idp, idp_http, app)) as c:
        refused = await c.post("/mcp", json=batch, headers=bearer(idp, "mcp:read"))
        allowed = await c.post("/mcp", json=batch, headers=bearer(idp, "mcp:read", "mcp:admin"))
    assert refused.status_code == 403
    assert 'scope="mcp:read mcp:admin"' in refused.headers["www-authenticate"]
    assert allowed.status_code == 200
    assert len(app.bodies) == 1


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[]", b"null", b'"tools"', b"[" * 100_000, b'{"method": 1}',
     b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', b"\xff\xfe garbage"],
)  # fmt: skip
async def test_unreadable_or_unguarded_bodies_reach_the_app_unchanged(
    idp: DevIdP, idp_http: httpx.AsyncClient, body: bytes
) -> None:
    app = Echo()
    async with client_for(wrap(idp, idp_http, app)) as c:
        r = await c.post("/mcp", content=body, headers=bearer(idp))
    assert r.status_code == 200
    assert app.bodies == [body]


@pytest.mark.parametrize(
    "body",
    [
        # A body only a lenient parser reads, or members read two ways: doubt costs scopes.
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup","name":"delete"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete"},}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"del\\u0065te"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["delete"]}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call"}',
        b'{"jsonrpc":"2.0","id":'
        + b"9" * 5000
        + b',"method":"tools/call","params":{"name":"delete"}}',
    ],
)
async def test_doubtful_tool_calls_need_every_tool_scope(
    idp: DevIdP, idp_http: httpx.AsyncClient, body: bytes
) -> None:
    app = Echo()
    async with client_for(wrap(idp, idp_http, app)) as c:
        refused = await c.post("/mcp", content=body, headers=bearer(idp, "mcp:read"))
        allowed = await c.post("/mcp", content=body, headers=bearer(idp, "mcp:read", "mcp:admin"))
    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert app.bodies == [body]


async def test_huge_body_is_413_with_the_one_error_shape(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = Echo()
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup","x":"'
        + (b"a" * (1 << 20))
        + b'"}}'
    )
    async with client_for(wrap(idp, idp_http, app)) as c:
        r = await c.post("/mcp", content=body, headers=bearer(idp, "mcp:read", "mcp:admin"))
    assert r.status_code == 413
    assert r.json() == {
        "error": "invalid_request",
        "error_description": f"the JSON-RPC request exceeds {1 << 20} bytes",
        "status": 413,
    }
    assert "www-authenticate" not in r.headers
    assert app.bodies == []


async def test_chunked_body_is_replayed_exactly(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    app = Echo()
    middleware = wrap(idp, idp_http, app)
    body = json.dumps(call("lookup")).encode()
    chunks = [body[:7], b"", body[7:20], body[20:]]
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]  # fmt: skip
    incoming.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in bearer(idp, "mcp:read").items()]
    scope = {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp",
             "root_path": "", "query_string": b"", "headers": headers}  # fmt: skip
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 200
    assert app.bodies == [body]
    assert app.messages == [{"type": "http.request", "body": body, "more_body": False}]
    assert incoming == [{"type": "http.disconnect"}]  # what comes next is the app's to read


async def test_non_json_posts_and_other_paths_are_not_read(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = Echo()
    body = json.dumps(call("delete")).encode()
    headers = bearer(idp, "mcp:read")
    async with client_for(wrap(idp, idp_http, app)) as c:
        other_path = await c.post("/upload", content=body, headers=headers)
        form = await c.post("/mcp", content=body, headers={**headers, "Content-Type": "text/plain"})
    assert other_path.status_code == 200
    assert form.status_code == 200


async def test_untyped_and_ambiguous_paths_are_checked(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    body = json.dumps(call("delete")).encode()
    headers = bearer(idp, "mcp:read")
    del headers["Content-Type"]
    async with client_for(wrap(idp, idp_http)) as c:
        untyped = await c.post("/mcp", content=body, headers=headers)
        dotted = await c.post(
            "/x/../mcp", content=body, headers={**headers, "Content-Type": "application/json"}
        )
    assert untyped.status_code == 403
    assert dotted.status_code == 403


def test_a_resource_needs_an_authorization_server(idp: DevIdP) -> None:
    template = idp.issuer_config(audience=RESOURCE)
    with pytest.raises(ConfigurationError, match="authorization_servers"):
        SSOMiddleware(Echo(), [], connections=[], resource=protected())
    assert template.issuer == "http://idp.test"


def test_resource_must_be_a_protected_resource(idp: DevIdP) -> None:
    with pytest.raises(ConfigurationError, match="ProtectedResource"):
        SSOMiddleware(Echo(), [idp.issuer_config(audience=RESOURCE)], resource=RESOURCE)  # type: ignore[arg-type]


async def test_the_principal_never_carries_the_raw_token(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # Token passthrough (MCP spec): what the app gets to pass on is claims, not the token.
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["user"])
        await Echo()(scope, receive, send)

    headers = bearer(idp, "mcp:read")
    token = headers["Authorization"].split()[1]
    async with client_for(wrap(idp, idp_http, app)) as c:
        assert (await c.post("/mcp", json=call("lookup"), headers=headers)).status_code == 200
    principal = seen[0]
    values = [
        getattr(principal, name, None) for name in dir(principal) if not name.startswith("__")
    ]
    assert not any(token in str(value) for value in values if not callable(value))
    assert token not in repr(principal)


async def test_websocket_denials_are_unchanged(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    middleware = wrap(idp, idp_http)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/mcp", "raw_path": b"/mcp", "root_path": "",
             "query_string": b"", "headers": []}  # fmt: skip
    await middleware(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "authentication required"}]


async def test_a_disconnect_while_reading_the_body_reaches_the_app(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = Echo()
    middleware = wrap(idp, idp_http, app)
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"jsonrpc":', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in bearer(idp, "mcp:read").items()]
    scope = {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp",
             "root_path": "", "query_string": b"", "headers": headers}  # fmt: skip
    await middleware(scope, receive, send)
    assert app.messages == [
        {"type": "http.request", "body": b'{"jsonrpc":', "more_body": True},
        {"type": "http.disconnect"},
    ]


@pytest.mark.parametrize(
    "paths", [PathRules(public=["/mcp"]), PathRules(optional=True)], ids=["public", "optional"]
)
async def test_guarded_calls_stay_guarded_on_public_and_optional_paths(
    idp: DevIdP, idp_http: httpx.AsyncClient, paths: PathRules
) -> None:
    app = Echo()
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with client_for(wrap(idp, idp_http, app, paths=paths)) as c:
        anonymous_list = await c.post("/mcp", json=listing)
        anonymous_call = await c.post("/mcp", json=call("delete"))
        weak_call = await c.post("/mcp", json=call("delete"), headers=bearer(idp, "mcp:read"))
    assert anonymous_list.status_code == 200
    assert anonymous_call.status_code == 401  # sign in first; the client then steps up
    assert f'resource_metadata="{METADATA}"' in anonymous_call.headers["www-authenticate"]
    assert weak_call.status_code == 403
    assert len(app.bodies) == 1


def test_an_audience_other_than_the_resource_is_logged(
    idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_sso"):
        SSOMiddleware(Echo(), [idp.issuer_config(audience="api://x")], resource=protected())
        SSOMiddleware(Echo(), [idp.issuer_config(audience=RESOURCE)], resource=protected())
    warnings = [r.getMessage() for r in caplog.records if "resource's own URL" in r.getMessage()]
    assert warnings == [
        f"no Issuer accepts the resource's own URL {RESOURCE!r} as audience: tokens issued "
        "for this resource (RFC 8707) would be refused; use Issuer(audience=resource.audience)"
    ]
