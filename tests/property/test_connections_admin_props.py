"""Whatever is sent to the connections admin API, it answers 2xx/4xx in one shape — never a 500.

No 503 either: the store here never fails, so a 503 would be an exception the app
did not expect. And no answer ever holds a secret.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
from hypothesis import event, example, given
from hypothesis import strategies as st

from asgi_sso.connections import StaticConnections
from asgi_sso.connections.admin import ConnectionsAdminApp
from asgi_sso.connections.manage import ConnectionAdmin, connection_from_input
from asgi_sso.connections.model import CONNECTION_ID
from asgi_sso.testing import FakeClock

SECRETS = ("prop-client-secret-0123456789", "prop-scim-secret-0123456789")
ACME = {
    "id": "acme",
    "issuer": "https://idp.acme.example",
    "audience": ["api://app"],
    "client_id": "app",
    "client_secret": SECRETS[0],
    "scim_secret": SECRETS[1],
    "domains": ["acme.com"],
}
STATUSES = {200, 201, 204, 400, 404, 405, 409, 415, 422}
LOOP = asyncio.new_event_loop()
# The probe never leaves the process: every provider answers 404.
NO_NETWORK = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(404)))

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_ids = st.from_regex(CONNECTION_ID, fullmatch=True) | st.sampled_from(
    ["acme", "globex", "openapi.json"]
)
_fields: dict[str, st.SearchStrategy[Any]] = {
    "id": _ids,
    "issuer": st.sampled_from(
        [
            "https://idp.acme.example",
            "https://idp.globex.example",
            "https://login.example/{tenant}/v2.0",
            "http://127.0.0.1:9",
            "http://evil.example",
            "",
        ]
    ),
    "tenant": st.sampled_from(["t-1", "", "a/b"]) | st.none(),
    "name": st.text(max_size=30),
    "client_id": st.sampled_from(["app", ""]) | st.none(),
    "client_secret": st.sampled_from([*SECRETS, ""]) | st.none(),
    "scim_secret": st.sampled_from(SECRETS) | st.none(),
    "token_endpoint_auth": st.sampled_from(["none", "client_secret_post", "private_key_jwt", "x"]),
    "audience": st.lists(st.sampled_from(["api://app", "", "api://other"]), max_size=3),
    "algorithms": st.lists(st.sampled_from(["RS256", "ES256", "HS256", "none"]), max_size=3),
    "domains": st.lists(
        st.sampled_from(["acme.com", "ACME.COM", "globex.com", "bücher.example", "not a domain"]),
        max_size=3,
    ),
    "tiers": st.fixed_dictionaries(
        {}, optional={"default_tier": st.text(max_size=8) | st.none(), "groups": _json}
    ),
    "authorize_params": _json,
    "enabled": st.booleans() | st.sampled_from(["false", "yes"]),
    "not_before": st.floats(allow_nan=False) | st.integers(),
}
_plausible = st.fixed_dictionaries(
    {
        "id": _ids,
        "issuer": st.sampled_from(["https://idp.acme.example", "https://idp.globex.example"]),
        "audience": st.just(["api://app"]),
    },
    optional={
        "name": st.text(max_size=30),
        "domains": st.lists(
            st.sampled_from(["acme.com", "Globex.COM", "bücher.example"]), max_size=2
        ),
        "tiers": st.fixed_dictionaries({"default_tier": st.sampled_from(["pro", "free"])}),
        "enabled": st.booleans(),
        "scim_secret": st.sampled_from(SECRETS),
    },
)
_connections = st.one_of(
    _plausible,
    st.fixed_dictionaries({}, optional=_fields),
    st.dictionaries(st.text(max_size=10), _json, max_size=4),
)
_bodies = st.one_of(
    _connections.map(msgspec.json.encode),
    _json.map(msgspec.json.encode),
    st.binary(max_size=200),
)
_segment = st.one_of(
    _ids,
    st.sampled_from(["disable", "enable", "test", "..", "%00", "\x00", "é"]),
    st.text(max_size=10),
)
_routes = [
    "/",
    "",
    "/acme",
    "/acme/",
    "/acme/disable",
    "/acme/enable",
    "/acme/test",
    "/openapi.json",
]
_paths = st.one_of(
    st.sampled_from(_routes),
    st.lists(_segment, max_size=4).map(lambda parts: "/" + "/".join(parts)),
)
_methods = st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"])
# Mostly the methods that carry a body, with a JSON type: past the gates to the checks.
_writes = st.tuples(st.sampled_from(["POST", "PATCH"]), st.sampled_from(["/", "/acme"]))
_types = st.sampled_from(
    ["application/json", "application/merge-patch+json; charset=utf-8", "text/plain", ""]
)


def fresh_app() -> ConnectionsAdminApp:
    store = StaticConnections([connection_from_input(ACME)])
    return ConnectionsAdminApp(ConnectionAdmin(store, clock=FakeClock()), client=NO_NETWORK)


def call(
    method: str,
    path: str,
    content_type: str,
    body: bytes,
    chunk: int,
    app: ConnectionsAdminApp | None = None,
) -> tuple[int, bytes]:
    app = app or fresh_app()
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": index < len(pieces) - 1}
        for index, piece in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", content_type.encode())] if content_type else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    LOOP.run_until_complete(app(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    head = sent[0]
    assert all(secret.encode() not in value for secret in SECRETS for _, value in head["headers"])
    return head["status"], sent[1]["body"]


@given(st.one_of(st.tuples(_methods, _paths), _writes), _types, _bodies, st.integers(1, 64))
@example(("POST", "/"), "application/json", msgspec.json.encode({**ACME, "id": "b"}), 7)
@example(("PATCH", "/acme"), "application/json", b'{"client_secret": null}', 64)
@example(("PATCH", "/acme"), "application/json", b'{"tiers": {"groups": {"a": 1}}}', 64)
@example(("PATCH", "/acme"), "application/json", b'{"authorize_params": [1]}', 64)
@example(("POST", "/acme/test"), "", b"", 1)
@example(("GET", "/\x00"), "", b"", 1)
def test_any_request_gets_a_known_status_and_never_a_secret(
    route: tuple[str, str], content_type: str, body: bytes, chunk: int
) -> None:
    method, path = route
    status, answer = call(method, path, content_type, body, chunk)
    event(f"status {status}")
    assert status in STATUSES, (status, answer)
    assert not any(secret.encode() in answer for secret in SECRETS)
    if status == 204:
        assert answer == b""
        return
    document = msgspec.json.decode(answer)
    if status >= 400:
        assert set(document) == {"error", "error_description", "status"}
        assert document["status"] == status


@given(_connections)
@example({**ACME, "id": "b", "issuer": "https://b.example", "domains": ["B.example"]})
def test_an_accepted_connection_reads_back_as_it_was_answered(data: dict[str, Any]) -> None:
    app = fresh_app()
    body = msgspec.json.encode(data if "id" in data else {**data, "id": "new"})
    status, answer = call("POST", "/", "application/json", body, 64, app)
    event(f"status {status}")
    assert status in {201, 400, 409, 422}, answer
    if status == 201:
        created = msgspec.json.decode(answer)
        assert not set(created) & {"client_secret", "client_key", "scim_secret"}
        status, shown = call("GET", f"/{created['id']}", "", b"", 64, app)
        assert (status, msgspec.json.decode(shown)) == (200, created)
