"""DevIdP speaks what MCP clients need: RFC 8414 metadata, RFC 7591 registration, RFC 8707."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from asgi_sso.testing import DevIdP, DevUser, FakeClock
from asgi_sso.testing.idp.registration import MAX_CLIENTS
from asgi_sso.testing.tokens import b64url

ISSUER = "http://dev-idp.test"
LOOPBACK_CB = "http://127.0.0.1:33418/callback"
RESOURCE = "http://127.0.0.1:8000/mcp"
BOB = DevUser(sub="bob", email="bob@example.com", scopes=("reports:read",))


@pytest.fixture
def idp() -> DevIdP:
    return DevIdP(ISSUER, users=[BOB, DevUser(sub="alice")], clock=FakeClock())


@pytest.fixture
async def http(idp: DevIdP) -> Any:
    async with idp.http_client() as client:
        yield client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def claims_of(token: str) -> dict[str, Any]:
    import base64
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def query_of(response: httpx.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


async def register(http: httpx.AsyncClient, **metadata: Any) -> httpx.Response:
    body = {"redirect_uris": [LOOPBACK_CB], **metadata}
    return await http.post(f"{ISSUER}/register", json=body)


async def authorize(
    http: httpx.AsyncClient, client_id: str, challenge: str, **extra: str
) -> httpx.Response:
    params = {"client_id": client_id, "redirect_uri": LOOPBACK_CB, "response_type": "code",
              "state": "st", "code_challenge": challenge, "code_challenge_method": "S256",
              "login_hint": "bob", **extra}  # fmt: skip
    return await http.get(f"{ISSUER}/authorize", params=params)


async def token(
    http: httpx.AsyncClient, client_id: str, code: str, verifier: str, **extra: str
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": LOOPBACK_CB,
            "code_verifier": verifier, "client_id": client_id, **extra}  # fmt: skip
    return await http.post(f"{ISSUER}/token", data=form)


async def new_client(http: httpx.AsyncClient) -> str:
    response = await register(http)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


# -- RFC 8414 -------------------------------------------------------------------------------


async def test_authorization_server_metadata_is_the_discovery_document(http: Any) -> None:
    oauth = (await http.get(f"{ISSUER}/.well-known/oauth-authorization-server")).json()
    oidc = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    assert oauth == oidc
    assert oauth["issuer"] == ISSUER
    assert oauth["registration_endpoint"] == f"{ISSUER}/register"
    assert oauth["code_challenge_methods_supported"] == ["S256"]
    assert "none" in oauth["token_endpoint_auth_methods_supported"]


async def test_metadata_of_an_issuer_with_a_path_sits_where_rfc_8414_puts_it() -> None:
    idp = DevIdP("http://dev-idp.test/tenant-a")
    async with idp.http_client() as http:
        inserted = await http.get(
            "http://dev-idp.test/.well-known/oauth-authorization-server/tenant-a"
        )
        appended = await http.get(f"{idp.issuer}/.well-known/oauth-authorization-server")
    assert inserted.status_code == 200
    assert inserted.json()["issuer"] == "http://dev-idp.test/tenant-a"
    assert appended.json() == inserted.json()


# -- RFC 7591 -------------------------------------------------------------------------------


async def test_a_public_client_registers_and_signs_in_with_pkce(http: Any, idp: DevIdP) -> None:
    response = await register(http, client_name="Claude", token_endpoint_auth_method="none")
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    info = response.json()
    assert info["token_endpoint_auth_method"] == "none"
    assert info["redirect_uris"] == [LOOPBACK_CB]
    assert info["grant_types"] == ["authorization_code", "refresh_token"]
    assert info["client_name"] == "Claude"
    assert "client_secret" not in info
    assert idp.clients[info["client_id"]].is_public
    verifier, challenge = pkce()
    code = query_of(await authorize(http, info["client_id"], challenge, scope="openid"))["code"]
    issued = await token(http, info["client_id"], code, verifier)
    assert issued.status_code == 200, issued.text
    assert claims_of(issued.json()["access_token"])["client_id"] == info["client_id"]


async def test_registered_clients_get_distinct_ids(http: Any) -> None:
    assert await new_client(http) != await new_client(http)


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/cb",  # plain http off the loopback interface
        "http://127.0.0.1:3000/cb#frag",
        "https:///no-host",
        "ftp://127.0.0.1/cb",
        "not a uri",
        "http://127.0.0.1:99999/cb",
        "http://[::1/cb",
        "",
    ],
)
async def test_bad_redirect_uris_are_refused_with_invalid_redirect_uri(http: Any, uri: str) -> None:
    response = await http.post(f"{ISSUER}/register", json={"redirect_uris": [uri]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"
    assert response.json()["error_description"]


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:3000/cb", "http://localhost/cb", "http://[::1]:8/cb", "https://a.b/c"]
)
async def test_loopback_http_and_any_https_redirect_uris_register(http: Any, uri: str) -> None:
    response = await http.post(f"{ISSUER}/register", json={"redirect_uris": [uri]})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": LOOPBACK_CB}, "invalid_redirect_uri"),
        ({"redirect_uris": [LOOPBACK_CB] * 11}, "invalid_redirect_uri"),
        ({"redirect_uris": [LOOPBACK_CB], "token_endpoint_auth_method": "client_secret_basic"},
         "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK_CB], "grant_types": ["client_credentials"]},
         "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK_CB], "grant_types": ["refresh_token"]},
         "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK_CB], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK_CB], "client_name": 7}, "invalid_client_metadata"),
        ([LOOPBACK_CB], "invalid_client_metadata"),
    ],
)  # fmt: skip
async def test_bad_client_metadata_is_refused_per_rfc_7591(
    http: Any, body: Any, error: str
) -> None:
    response = await http.post(f"{ISSUER}/register", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_registration_bodies_must_be_bounded_json(http: Any) -> None:
    big = {"redirect_uris": [LOOPBACK_CB], "software_id": "x" * 20_000}
    too_big = await http.post(f"{ISSUER}/register", json=big)
    form = await http.post(f"{ISSUER}/register", data={"redirect_uris": LOOPBACK_CB})
    broken = await http.post(
        f"{ISSUER}/register", content=b"{", headers={"content-type": "application/json"}
    )
    get = await http.get(f"{ISSUER}/register")
    assert [r.status_code for r in (too_big, form, broken, get)] == [400, 400, 400, 405]
    assert {r.json()["error"] for r in (too_big, form, broken)} == {"invalid_client_metadata"}


async def test_registrations_stop_at_the_bound(http: Any, idp: DevIdP) -> None:
    from asgi_sso.testing import DevClient

    for n in range(MAX_CLIENTS - len(idp.clients)):
        idp.add_client(DevClient(client_id=f"c{n}"))
    response = await register(http)
    assert response.status_code == 400
    assert len(idp.clients) == MAX_CLIENTS


# -- RFC 8707 -------------------------------------------------------------------------------


async def test_the_resource_becomes_the_access_token_audience(http: Any) -> None:
    client_id = await new_client(http)
    verifier, challenge = pkce()
    reply = await authorize(http, client_id, challenge, resource=RESOURCE, scope="reports:read")
    code = query_of(reply)["code"]
    issued = await token(http, client_id, code, verifier, resource=RESOURCE)
    body = issued.json()
    assert claims_of(body["access_token"])["aud"] == RESOURCE
    assert "id_token" not in body  # plain OAuth 2.0: no openid asked
    refreshed = await http.post(
        f"{ISSUER}/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
              "client_id": client_id},
    )  # fmt: skip
    assert claims_of(refreshed.json()["access_token"])["aud"] == RESOURCE


async def test_a_token_request_for_another_resource_is_invalid_target(http: Any) -> None:
    client_id = await new_client(http)
    verifier, challenge = pkce()
    code = query_of(await authorize(http, client_id, challenge, resource=RESOURCE))["code"]
    issued = await token(http, client_id, code, verifier, resource="http://127.0.0.1:9/other")
    assert issued.status_code == 400
    assert issued.json()["error"] == "invalid_target"


@pytest.mark.parametrize(
    "resource", ["relative/path", "http://127.0.0.1:8000/mcp#frag", "", "http://a b", "1http://x"]
)
async def test_bad_resources_are_refused_with_invalid_target(http: Any, resource: str) -> None:
    client_id = await new_client(http)
    _, challenge = pkce()
    reply = await authorize(http, client_id, challenge, resource=resource)
    assert reply.status_code == 302
    assert query_of(reply)["error"] == "invalid_target"
    assert query_of(reply)["state"] == "st"


async def test_several_resources_are_refused_with_invalid_target(http: Any) -> None:
    client_id = await new_client(http)
    _, challenge = pkce()
    url = f"{ISSUER}/authorize?client_id={client_id}&resource=urn:a&resource=urn:b"
    response = await http.get(url + f"&code_challenge={challenge}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def test_client_credentials_honour_a_valid_resource_only(idp: DevIdP, http: Any) -> None:
    from asgi_sso.testing import DevClient

    service = DevClient(client_id="svc", client_secret="pw", grant_types=("client_credentials",))
    idp.add_client(service)
    form = {"grant_type": "client_credentials", "resource": "urn:reports"}
    good = await http.post(f"{ISSUER}/token", data=form, auth=("svc", "pw"))
    bad = await http.post(f"{ISSUER}/token", data={**form, "resource": "x#y"}, auth=("svc", "pw"))
    assert claims_of(good.json()["access_token"])["aud"] == "urn:reports"
    assert bad.json()["error"] == "invalid_target"


# -- scopes a user may hold ----------------------------------------------------------------


async def test_a_user_is_granted_only_the_scopes_they_may_hold(http: Any) -> None:
    client_id = await new_client(http)
    verifier, challenge = pkce()
    asked = "reports:read reports:admin offline_access"
    reply = await authorize(http, client_id, challenge, resource=RESOURCE, scope=asked)
    issued = await token(http, client_id, query_of(reply)["code"], verifier)
    body = issued.json()
    assert body["scope"] == "reports:read offline_access"  # RFC 6749 §3.3: the narrower grant
    assert claims_of(body["access_token"])["scope"] == "reports:read offline_access"


async def test_a_request_for_nothing_the_user_may_hold_is_access_denied(http: Any) -> None:
    client_id = await new_client(http)
    _, challenge = pkce()
    reply = await authorize(http, client_id, challenge, resource=RESOURCE, scope="reports:admin")
    assert query_of(reply)["error"] == "access_denied"


async def test_a_user_without_a_scope_list_is_granted_what_is_asked(http: Any) -> None:
    client_id = await new_client(http)
    verifier, challenge = pkce()
    reply = await authorize(
        http, client_id, challenge, resource=RESOURCE, scope="reports:admin", login_hint="alice"
    )
    issued = await token(http, client_id, query_of(reply)["code"], verifier)
    assert issued.json()["scope"] == "reports:admin"
