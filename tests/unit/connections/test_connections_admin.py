"""The connections admin API through httpx: every route, every refusal, never a secret."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from _certs import bad_version
from asgi_sso.connections import Connection, StaticConnections
from asgi_sso.connections.admin import ConnectionsAdminApp
from asgi_sso.connections.manage import ConnectionAdmin, connection_from_input
from asgi_sso.errors import StoreUnavailable
from asgi_sso.testing import ClientCertificate, DevIdP, FakeClock, free_port

CLIENT_SECRET = "client-secret-0123456789abcdef"
SCIM_SECRET = "scim-secret-0123456789abcdef"
NEW_SECRET = "rotated-secret-0123456789abcdef"
SECRETS = (CLIENT_SECRET, SCIM_SECRET, NEW_SECRET)
JSON = {"content-type": "application/json"}


def acme_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "acme",
        "name": "Acme",
        "issuer": "https://idp.acme.example",
        "audience": ["api://app"],
        "client_id": "app",
        "client_secret": CLIENT_SECRET,
        "scim_secret": SCIM_SECRET,
        "domains": ["acme.com"],
    }
    data.update(changes)
    if "scim_secret" not in changes and data["id"] != "acme":
        data["scim_secret"] = f"{data['id']}-{SCIM_SECRET}"  # one SCIM secret per connection
    return data


class Api:
    """An httpx client on the app that checks every answer's shape and secrecy."""

    def __init__(self, app: Any, root_path: str = "") -> None:
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://admin" + root_path)
        self.announced: list[str] = []

    async def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, path, **kwargs)
        text = response.text + json.dumps(dict(response.headers))
        assert not any(secret in text for secret in SECRETS), text
        assert response.headers["cache-control"] == "no-store"
        if response.status_code >= 400 and method != "HEAD":
            body = response.json()
            assert set(body) == {"error", "error_description", "status"}
            assert body["status"] == response.status_code
        return response


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[Api]:
    idp = DevIdP()
    announced: list[str] = []

    async def announce(connection_id: str) -> None:
        announced.append(connection_id)

    store = StaticConnections([connection_from_input(acme_data())])
    admin = ConnectionAdmin(store, clock=clock, announce=announce)
    async with idp.http_client() as client:
        caller = Api(ConnectionsAdminApp(admin, client=client))
        caller.announced = announced
        yield caller
        await caller.http.aclose()


async def test_list_returns_public_connections(api: Api) -> None:
    response = await api("GET", "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    (listed,) = response.json()["connections"]
    assert listed["id"] == "acme"
    assert listed["has_client_secret"] is True
    assert "client_secret" not in listed


async def test_add_answers_201_with_location_and_announces(api: Api) -> None:
    data = acme_data(
        id="globex",
        issuer="https://idp.globex.example",
        domains=["Globex.COM"],
    )
    response = await api("POST", "/", json=data)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/globex"
    body = response.json()
    assert body["domains"] == ["globex.com"]
    assert (body["has_client_secret"], body["has_scim_secret"]) == (True, True)
    assert api.announced == ["globex"]
    assert (await api("GET", "/globex")).json() == body


async def test_location_includes_the_mount_point(clock: FakeClock) -> None:
    app = ConnectionsAdminApp(ConnectionAdmin(StaticConnections(), clock=clock))
    api = Api(app, root_path="/admin/connections")
    response = await api("POST", "/", json=acme_data())
    assert response.headers["location"] == "/admin/connections/acme"
    await api.http.aclose()


async def test_show_returns_one_or_404(api: Api) -> None:
    assert (await api("GET", "/acme")).json()["name"] == "Acme"
    missing = await api("GET", "/globex")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert (await api("GET", "/NOT%20AN%20ID")).status_code == 404


async def test_patch_merges_and_never_echoes_a_new_secret(api: Api) -> None:
    changes = {"name": "Acme Corp", "client_secret": NEW_SECRET, "tiers": {"default_tier": "pro"}}
    response = await api(
        "PATCH",
        "/acme",
        content=json.dumps(changes),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["tiers"]["default_tier"]) == ("Acme Corp", "pro")
    assert body["domains"] == ["acme.com"]
    assert api.announced == ["acme"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/", acme_data(), 409, "conflict"),
        ("POST", "/", acme_data(id="b", domains=[]), 409, "conflict"),  # same issuer
        ("POST", "/", acme_data(id="b", issuer="ftp://x"), 422, "invalid_connection"),
        ("POST", "/", {"id": "b"}, 422, "invalid_connection"),
        (
            "POST",
            "/",
            acme_data(id="b", issuer="https://b.example", colour="red"),
            422,
            "invalid_connection",
        ),
        (
            "POST",
            "/",
            acme_data(id="openapi.json", issuer="https://o.example", domains=[]),
            422,
            "invalid_connection",
        ),
        ("PATCH", "/acme", {"id": "other"}, 422, "invalid_connection"),
        ("PATCH", "/acme", {"algorithms": ["HS256"]}, 422, "invalid_connection"),
        ("PATCH", "/acme", {"enabled": "maybe"}, 422, "invalid_connection"),
        ("PATCH", "/nope", {"name": "x"}, 404, "not_found"),
    ],
)
async def test_refused_changes_have_their_status(
    api: Api, method: str, path: str, body: dict[str, Any], status: int, error: str
) -> None:
    response = await api(method, path, json=body)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert api.announced == []


async def test_a_published_key_with_an_unreadable_certificate_is_422(api: Api) -> None:
    cert = ClientCertificate("bad-version")
    x5c = [base64.b64encode(bad_version(cert.der)).decode()]
    public = {**ECKey.import_key(cert.key_pem()).as_dict(private=False), "x5c": x5c}
    signing = {"client_id": "b", "client_secret": None, "token_endpoint_auth": "private_key_jwt",
               "client_key": ClientCertificate().key_pem().decode()}  # fmt: skip
    body = acme_data(id="b", issuer="https://b.example", domains=[], **signing,
                     published_keys=[json.dumps(public)])  # fmt: skip
    response = await api("POST", "/", json=body)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_connection")
    assert "published_keys[0]" in response.json()["error_description"]


async def test_a_bearer_only_connection_with_published_keys_is_422(api: Api) -> None:
    private = ClientCertificate().key_pem().decode()
    body = {"id": "b", "issuer": "https://b.example", "audience": ["api://app"],
            "published_keys": [private]}  # fmt: skip
    response = await api("POST", "/", json=body)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_connection")
    assert "published_keys go with client_key" in response.json()["error_description"]
    assert "PRIVATE KEY" not in response.text
    assert (await api("GET", "/b")).status_code == 404


async def test_patch_conflicting_with_another_connection_is_409(api: Api) -> None:
    other = acme_data(id="globex", issuer="https://g.example", domains=["globex.com"])
    assert (await api("POST", "/", json=other)).status_code == 201
    response = await api("PATCH", "/acme", json={"domains": ["globex.com"]})
    assert response.status_code == 409
    assert "globex.com" in response.json()["error_description"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"", "not valid UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b'{"name": "a\\u0000b"}', "NUL"),
        (b'{"name": "\\ud800"}', "not valid UTF-8 JSON"),  # a lone surrogate
        (b"[" * 50 + b"]" * 50, "nested too deeply"),
        (b'{"name": "' + b"x" * (70 * 1024) + b'"}', "larger than 65536 bytes"),
    ],
)
async def test_malformed_bodies_are_400(api: Api, content: bytes, words: str) -> None:
    for method, path in (("POST", "/"), ("PATCH", "/acme")):
        response = await api(method, path, content=content, headers=JSON)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert words in response.json()["error_description"]


async def test_a_streamed_body_is_cut_off_at_the_limit(clock: FakeClock) -> None:
    app = ConnectionsAdminApp(ConnectionAdmin(StaticConnections(), clock=clock), max_body_bytes=100)
    chunks = [{"type": "http.request", "body": b" " * 60, "more_body": True}] * 1000
    received: list[int] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return chunks[len(received) - 1]

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert len(received) == 2  # refused as soon as it passed the limit


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_json_is_415(api: Api, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await api("POST", "/", content=json.dumps(acme_data(id="b")), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/", "GET, POST"),
        ("DELETE", "/", "GET, POST"),
        ("POST", "/acme", "GET, PATCH, DELETE"),
        ("PUT", "/acme", "GET, PATCH, DELETE"),
        ("GET", "/acme/disable", "POST"),
        ("DELETE", "/acme/test", "POST"),
        ("HEAD", "/acme", "GET, PATCH, DELETE"),
    ],
)
async def test_a_wrong_method_is_405_with_allow(
    api: Api, method: str, path: str, allow: str
) -> None:
    response = await api(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert response.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/acme/rename", "/acme/disable/now", "/a/b/c"])
async def test_unknown_paths_are_404(api: Api, path: str) -> None:
    response = await api("POST", path)
    assert response.status_code == 404


async def test_disable_then_enable(api: Api, clock: FakeClock) -> None:
    disabled = await api("POST", "/acme/disable")
    assert disabled.status_code == 200
    assert (disabled.json()["enabled"], disabled.json()["not_before"]) == (False, clock.time())
    enabled = await api("POST", "/acme/enable")
    assert enabled.json()["enabled"] is True
    assert enabled.json()["not_before"] == clock.time()
    assert api.announced == ["acme", "acme"]
    assert (await api("POST", "/nope/disable")).status_code == 404


async def test_delete_answers_204_then_404(api: Api) -> None:
    response = await api("DELETE", "/acme")
    assert (response.status_code, response.content) == (204, b"")
    assert "content-type" not in response.headers
    assert (await api("DELETE", "/acme")).status_code == 404
    assert (await api("GET", "/")).json() == {"connections": []}


async def test_test_reports_the_probe_even_when_checks_fail(api: Api) -> None:
    down = acme_data(id="down", issuer=f"https://127.0.0.1:{free_port()}", domains=[])
    assert (await api("POST", "/", json=down)).status_code == 201
    response = await api("POST", "/down/test")
    assert response.status_code == 200
    report = response.json()
    assert (report["connection"], report["ok"]) == ("down", False)
    assert report["checks"][0]["name"] == "discovery"
    assert "unreachable" in report["checks"][0]["detail"]
    assert (await api("POST", "/nope/test")).status_code == 404


async def test_test_against_a_working_idp_passes(clock: FakeClock) -> None:
    idp = DevIdP()
    data = acme_data(issuer=idp.issuer)
    admin = ConnectionAdmin(StaticConnections([connection_from_input(data)]), clock=clock)
    async with idp.http_client() as client:
        api = Api(ConnectionsAdminApp(admin, client=client))
        report = (await api("POST", "/acme/test")).json()
        await api.http.aclose()
    assert report["ok"] is True, report


async def test_test_without_a_client_opens_its_own(clock: FakeClock) -> None:
    data = acme_data(issuer=f"http://127.0.0.1:{free_port()}")
    admin = ConnectionAdmin(StaticConnections([connection_from_input(data)]), clock=clock)
    api = Api(ConnectionsAdminApp(admin))
    report = (await api("POST", "/acme/test")).json()
    await api.http.aclose()
    assert report["ok"] is False
    assert "unreachable" in report["checks"][0]["detail"]


class BrokenStore(StaticConnections):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def load(self) -> tuple[str, list[Connection]]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (StoreUnavailable(), "store is unavailable"),
        (RuntimeError(f"postgresql://user:{CLIENT_SECRET}@db"), "failed (RuntimeError)"),
    ],
)
async def test_a_failing_store_is_503_without_its_message(
    clock: FakeClock, error: Exception, words: str
) -> None:
    api = Api(ConnectionsAdminApp(ConnectionAdmin(BrokenStore(error), clock=clock)))
    response = await api("GET", "/")
    await api.http.aclose()
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert words in response.json()["error_description"]


async def test_openapi_document_lists_every_route_with_resolvable_schemas(api: Api) -> None:
    response = await api("GET", "/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "no authentication of its own" in document["info"]["description"]
    operations = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("/", "get"),
        ("/", "post"),
        ("/{id}", "get"),
        ("/{id}", "patch"),
        ("/{id}", "delete"),
        ("/{id}/disable", "post"),
        ("/{id}/enable", "post"),
        ("/{id}/test", "post"),
        ("/openapi.json", "get"),
    }
    refs = _refs(document)
    assert refs
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref
    schemas = document["components"]["schemas"]
    public = schemas["ConnectionPublic"]["properties"]
    assert "client_secret" not in public
    assert public["has_client_secret"] == {"type": "boolean", "readOnly": True}
    assert schemas["Connection"]["properties"]["client_secret"]["anyOf"][0]["writeOnly"] is True
    errors = document["paths"]["/"]["post"]["responses"]
    assert set(errors) == {"201", "400", "409", "415", "422", "503"}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_other_scope_types_are_ignored(clock: FakeClock) -> None:
    app = ConnectionsAdminApp(ConnectionAdmin(StaticConnections(), clock=clock))
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("not read")

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent == []
