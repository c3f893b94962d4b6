"""Every error body the package sends has one JSON shape: error, error_description, status.

A 503 says ``temporarily_unavailable``; a 401 without credentials says
``unauthorized`` in its body while its challenge carries no error code (RFC 6750
§3.1). SCIM alone keeps its own error schema, as RFC 7644 §3.12 requires.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest

import asgi_sso
from asgi_sso import (
    IdentityConfig,
    LoginConfig,
    MemoryUserStore,
    PathRules,
    ScimConfig,
    Secret,
    SSOMiddleware,
)
from asgi_sso.connections import Connection
from asgi_sso.errors import (
    AuthError,
    CredentialsMissing,
    ServiceUnavailable,
    StoreUnavailable,
)
from asgi_sso.responses import challenge_header, error_body, send_http_error
from asgi_sso.testing import DevClient, DevIdP, DevUser

SHAPE = {"error", "error_description", "status"}


def _all_errors() -> Iterator[type[AuthError]]:
    # Every AuthError of the package, wherever it is defined (login, sessions…).
    for module in pkgutil.walk_packages(asgi_sso.__path__, "asgi_sso."):
        if module.name.startswith(("asgi_sso.testing", "asgi_sso.fastapi", "asgi_sso.litestar")):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an extra that is not installed
            continue
    seen: set[type[AuthError]] = set()
    todo = [AuthError]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo.extend(cls.__subclasses__())
    yield from sorted(seen, key=lambda c: (c.__module__, c.__name__))


ERRORS = list(_all_errors())


def test_the_tree_is_found_whole() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert {"CredentialsMissing", "KeysUnavailable", "StoreUnavailable", "ProviderError",
            "SignInError", "SessionInvalid", "CrossOriginRequest"} <= names  # fmt: skip


def _instance(cls: type[AuthError]) -> AuthError:
    required = [
        p for p in inspect.signature(cls).parameters.values()
        if p.default is p.empty and p.kind is not p.VAR_KEYWORD and p.kind is not p.VAR_POSITIONAL
    ]  # fmt: skip
    return cls(*["x"] * len(required))


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
async def test_every_refusal_has_the_one_shape(cls: type[AuthError]) -> None:
    error = _instance(cls)
    body = msgspec.json.decode(error_body(error))
    assert set(body) == SHAPE
    assert body["status"] == error.status
    assert body["error_description"] == error.description
    assert isinstance(body["error"], str)
    assert body["error"]
    if error.status == 503:
        assert body["error"] == "temporarily_unavailable"
    elif error.error is not None:
        assert body["error"] == error.error  # the RFC 6750 code, as in the challenge
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await send_http_error(send, error, "api")
    assert sent[0]["status"] == error.status
    assert msgspec.json.decode(sent[1]["body"]) == body


def test_no_credentials_says_unauthorized_with_a_bare_challenge() -> None:
    body = msgspec.json.decode(error_body(CredentialsMissing()))
    assert body == {"error": "unauthorized", "error_description": "authentication required",
                    "status": 401}  # fmt: skip
    assert challenge_header(CredentialsMissing(), "api") == b'Bearer realm="api"'


def test_a_503_is_temporarily_unavailable_not_unauthorized() -> None:
    for error in (ServiceUnavailable(), StoreUnavailable()):
        assert msgspec.json.decode(error_body(error))["error"] == "temporarily_unavailable"


# -- every path that answers an error, end to end ------------------------------------------

APP = "https://app.example"
AUD = "api://shape"


class FlakyUsers(MemoryUserStore):
    """A user store that can be taken down."""

    down = False

    async def get_or_provision(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreUnavailable()
        return await super().get_or_provision(*args, **kwargs)


class Site:
    def __init__(self) -> None:
        self.idp = DevIdP(
            "https://idp.example",
            users=[DevUser(sub="alice", email="alice@corp.example")],
            clients=[DevClient(client_id="web", client_secret="web-secret",
                               redirect_uris=(APP + "/auth/callback",))],
        )  # fmt: skip
        self.http = self.idp.http_client()
        self.users = FlakyUsers()

        async def inner(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.sso = SSOMiddleware(
            inner,
            [self.idp.issuer_config(audience=AUD)],
            connections=[Connection(id="acme", issuer="https://acme.example", audience=("a",))],
            paths=PathRules(scope_rules={"/admin": ["admin"]}),
            login=LoginConfig(
                issuer=self.idp.issuer,
                client_id="web",
                client_secret=Secret("web-secret"),
                cookie_secrets=(Secret(b"k" * 32),),
                redirect_uri=APP + "/auth/callback",
            ),
            identity=IdentityConfig(user_store=self.users, cache_ttl=0),
            scim=ScimConfig(tokens={self.idp.issuer: Secret("scim-secret-0123456789")}),
            http_client=self.http,
        )
        self.admin = self.sso.connections_admin()

    def client(self, app: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP)

    def token(self) -> str:
        return self.idp.issue_token("alice", client_id="web", audience=AUD)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    async with site.http:
        await site.sso.startup()
        yield site
        await site.sso.shutdown()


def assert_shape(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == SHAPE, body
    assert body["status"] == status
    assert body["error"] == error


JSON = {"accept": "application/json"}


async def test_api_refusals(site: Site) -> None:
    async with site.client(site.sso) as client:
        assert_shape(await client.get("/data", headers=JSON), 401, "unauthorized")
        bad = {"authorization": "Bearer not.a.token", **JSON}
        assert_shape(await client.get("/data", headers=bad), 401, "invalid_token")
        bearer = {"authorization": f"Bearer {site.token()}", **JSON}
        assert_shape(await client.get("/admin", headers=bearer), 403, "insufficient_scope")
        two = [("authorization", "Bearer a.b.c"), ("authorization", "Bearer d.e.f")]
        assert_shape(await client.get("/data", headers=two), 400, "invalid_request")
        site.users.down = True
        assert_shape(await client.get("/data", headers=bearer), 503, "temporarily_unavailable")


async def test_sign_in_pages_answer_json_clients_in_the_one_shape(site: Site) -> None:
    async with site.client(site.sso) as client:
        assert_shape(await client.put("/auth/login", headers=JSON), 405, "method_not_allowed")
        cross = {"origin": "https://evil.example", **JSON}
        assert_shape(await client.post("/auth/logout", headers=cross), 403, "forbidden")
        assert_shape(await client.get("/auth/callback", headers=JSON), 400, "invalid_request")


async def test_an_identity_provider_that_is_down_is_temporarily_unavailable() -> None:
    site = Site()  # not started: nothing fetched yet
    async with site.http, site.client(site.sso) as client:
        bearer = {"authorization": f"Bearer {site.token()}", **JSON}
        with site.idp.outage():
            keys = await client.get("/data", headers=bearer)
            sign_in = await client.get("/auth/login", headers=JSON)
        await site.sso.shutdown()
    assert_shape(keys, 503, "temporarily_unavailable")
    assert "retry-after" in keys.headers
    assert_shape(sign_in, 503, "temporarily_unavailable")


async def test_back_channel_logout_answers_in_the_one_shape(site: Site) -> None:
    async with site.client(site.sso) as client:
        response = await client.post("/auth/backchannel-logout", data={"x": "y"})
        assert_shape(response, 400, "invalid_request")


async def test_the_admin_api_answers_in_the_one_shape(site: Site) -> None:
    async with site.client(site.admin) as client:
        assert_shape(await client.get("/nobody"), 404, "not_found")
        assert_shape(await client.post("/", json={"id": "x"}), 422, "invalid_connection")
        assert_shape(await client.post("/", content=b"{", headers={"content-type":
                                                                  "application/json"}),
                     400, "invalid_request")  # fmt: skip


async def test_scim_keeps_its_own_error_schema(site: Site) -> None:
    # RFC 7644 §3.12: SCIM clients (Entra ID, Okta) read schemas/detail/status.
    async with site.client(site.sso) as client:
        response = await client.get(
            "/scim/v2/Users/nobody", headers={"authorization": "Bearer scim-secret-0123456789"}
        )
    assert response.status_code == 404
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "404"
