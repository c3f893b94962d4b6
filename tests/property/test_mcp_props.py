"""Resource URLs and JSON-RPC bodies from anywhere.

Canonicalisation is idempotent, and spellings of one URL (case of scheme and host,
a default port, a trailing slash) give one string; anything else is a
ConfigurationError, never another exception. The scopes a JSON-RPC body needs are
computed for any bytes without raising, and a guarded call is never let through
cheaper than its tool's scopes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote_to_bytes

from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso import ConfigurationError, ProtectedResource, SSOMiddleware
from asgi_sso.mcp import canonical_resource
from asgi_sso.mcp.calls import required_scopes
from asgi_sso.testing import DevIdP, DevUser

_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
_hosts = st.lists(_label, min_size=1, max_size=3).map(".".join) | st.sampled_from(
    ["127.0.0.1", "localhost", "[::1]"]
)
_segments = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789-._~%", min_size=1, max_size=10)
_paths = st.lists(_segments, max_size=4).map(lambda s: "".join("/" + x for x in s))


@st.composite
def resource_urls(draw: st.DrawFn) -> tuple[str, str]:
    """A canonical https URL and another spelling of it."""
    host = draw(_hosts)
    port = draw(st.none() | st.integers(1, 65535))
    path = draw(_paths)
    if path.rstrip("/") == "" or path.endswith("/"):
        path = path.rstrip("/")
    netloc = host if port in (None, 443) else f"{host}:{port}"
    canonical = f"https://{netloc}{path}"
    scheme = draw(st.sampled_from(["https", "HTTPS", "Https"]))
    spelled_host = draw(st.sampled_from([host, host.upper()]))
    spelled_port = {None: "", 443: draw(st.sampled_from(["", ":443"]))}.get(port, f":{port}")
    slash = draw(st.sampled_from(["", "/"]))
    return canonical, f"{scheme}://{spelled_host}{spelled_port}{path}{slash}"


@given(resource_urls())
@example(("https://mcp.example.com", "HTTPS://MCP.Example.COM:443/"))
@example(("https://mcp.example.com/Server/mcp", "https://mcp.example.com/Server/mcp/"))
@example(("https://[::1]:8443/mcp", "https://[::1]:8443/mcp/"))
def test_spellings_of_one_url_are_one_canonical_string(pair: tuple[str, str]) -> None:
    canonical, spelled = pair
    assert canonical_resource(spelled) == canonical
    assert canonical_resource(canonical) == canonical
    assert canonical_resource(canonical_resource(spelled)) == canonical_resource(spelled)


@given(st.text(max_size=60))
@example("https://user:pw@mcp.example.com/mcp")
@example("https://mcp.example.com/mcp#frag")
@example("https://mcp.example.com/mcp?x=1")
@example("http://mcp.example.com/mcp")
@example("https://mcp.example.com:99999/mcp")
@example("https://[::1/mcp")
@example("mcp.example.com/mcp")
def test_any_text_is_canonical_or_a_configuration_error(text: str) -> None:
    try:
        canonical = canonical_resource(text)
    except ConfigurationError:
        return
    assert canonical_resource(canonical) == canonical
    assert canonical.startswith(("https://", "http://"))
    assert "#" not in canonical
    assert "?" not in canonical
    assert not canonical.endswith("/")


RESOURCE = ProtectedResource(
    resource="https://mcp.example.com/mcp",
    tool_scopes={"delete": ("admin",), "lookup": ("read",)},
    resource_scopes={"file:///secret": ("secret",)},
    prompt_scopes={"p": ("prompts",)},
)
ALL = {"admin", "read", "secret", "prompts"}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
_calls = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(),
        "method": st.sampled_from(["tools/call", "tools/list", "resources/read", "prompts/get"]),
        "params": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["delete", "lookup", "other"]) | _json,
                "uri": st.sampled_from(["file:///secret", "file:///x"]) | _json,
            },
        )
        | _json,
    }
)


@given(st.binary(max_size=200))
@example(b"[" * 50_000)
@example(b'{"method":"tools/call","params":{"name":"delete"}')
@example(b"\xef\xbb\xbf{}")
def test_any_bytes_give_scopes_without_raising(body: bytes) -> None:
    assert set(required_scopes(body, RESOURCE)) <= ALL


@given(st.lists(_calls, min_size=1, max_size=4), st.booleans())
def test_a_guarded_call_always_needs_at_least_its_own_scopes(
    calls: list[dict[str, object]], batch: bool
) -> None:
    body = json.dumps(calls if batch or len(calls) > 1 else calls[0]).encode()
    needed = set(required_scopes(body, RESOURCE))
    for call in calls:
        params = call["params"]
        target = params if isinstance(params, dict) else {}
        if call["method"] == "tools/call":
            name = target.get("name")
            expected = (
                RESOURCE.tool_scopes.get(name, ()) if isinstance(name, str) else ("admin", "read")
            )
        elif call["method"] == "resources/read":
            uri = target.get("uri")
            expected = (
                RESOURCE.resource_scopes.get(uri, ()) if isinstance(uri, str) else ("secret",)
            )
        elif call["method"] == "prompts/get":
            name = target.get("name")
            expected = (
                RESOURCE.prompt_scopes.get(name, ()) if isinstance(name, str) else ("prompts",)
            )
        else:
            expected = ()
        assert set(expected) <= needed


_IDP = DevIdP("http://idp.test", users=[DevUser(sub="alice")])
_LOOP = asyncio.new_event_loop()
_MIDDLEWARE = SSOMiddleware(
    lambda scope, receive, send: _ok(send),
    [_IDP.issuer_config(audience="http://127.0.0.1:8000/mcp")],
    http_client=_IDP.http_client(),
    resource=ProtectedResource(resource="http://127.0.0.1:8000/mcp", tool_scopes={"t": ("x",)}),
)


async def _ok(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


async def _status(method: str, raw: bytes) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": unquote_to_bytes(raw).decode("latin-1"),
             "raw_path": raw, "root_path": "", "query_string": b"", "headers": []}  # fmt: skip
    await _MIDDLEWARE(scope, receive, send)
    return int(sent[0]["status"])


@given(
    st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "PUT", "get", "X"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30),
)
@example("GET", "/mcp")
@example("GET", "%2Fmcp")
@example("GET", "/../../etc/passwd")
def test_any_path_under_the_well_known_prefix_is_answered_never_500(
    method: str, suffix: str
) -> None:
    raw = ("/.well-known/oauth-protected-resource" + suffix).encode()
    status = _LOOP.run_until_complete(_status(method, raw))
    exact = suffix in ("", "/mcp")
    if not exact:
        assert status in (404, 401, 400)  # a trick is a 404; a path elsewhere needs a token
    elif method in ("GET", "HEAD"):
        assert status == 200
    elif method == "OPTIONS":
        assert status == 204
    else:
        assert status == 405
