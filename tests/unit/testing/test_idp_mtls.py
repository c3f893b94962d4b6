"""The dev IdP's token endpoint issues certificate-bound tokens (RFC 8705 §3, §4)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
from starlette.types import Receive, Scope, Send

from _jwt import claims_of
from asgi_sso import CertificateHeader
from asgi_sso.testing import ClientCertificate, DevClient, DevIdP, DevUser, DPoPClient, FakeClock
from asgi_sso.testing.tokens import b64url

ISSUER = "http://idp.test"
TOKEN_URL = f"{ISSUER}/token"
CALLBACK = "http://127.0.0.1:8000/callback"
API = "api://orders"
PROXY = "127.0.0.1"  # httpx's ASGITransport reports this peer
CLIENTS = [
    DevClient(client_id="svc", client_secret="svc-secret", audience=API,
              grant_types=("client_credentials",)),
    DevClient(client_id="bound", client_secret="bound-secret", audience=API,
              grant_types=("client_credentials",), certificate_bound=True),
    DevClient(client_id="web", client_secret="web-secret", redirect_uris=(CALLBACK,),
              audience=API, certificate_bound=True),
    DevClient(client_id="spa", redirect_uris=(CALLBACK,), audience=API, certificate_bound=True),
]  # fmt: skip


@pytest.fixture(scope="module")
def cert() -> ClientCertificate:
    return ClientCertificate("alice-laptop")


@pytest.fixture(scope="module")
def other() -> ClientCertificate:
    return ClientCertificate("mallory")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    header = CertificateHeader(trusted_proxies=(PROXY,))
    return DevIdP(
        ISSUER,
        users=[DevUser(sub="alice")],
        clients=CLIENTS,
        clock=clock,
        client_cert_header=header,
    )


@pytest.fixture
async def http(idp: DevIdP) -> Any:
    async with idp.http_client() as client:
        yield client


def with_cert(cert: ClientCertificate | None) -> dict[str, str]:
    return {} if cert is None else {"Client-Cert": cert.rfc9440()}


async def service_token(
    http: httpx.AsyncClient, cert: ClientCertificate | None, client: str = "bound", **headers: str
) -> httpx.Response:
    return await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        auth=(client, f"{client}-secret"),
        headers={**with_cert(cert), **headers},
    )


def refused(response: httpx.Response, error: str = "invalid_request") -> str:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.json()
    description: str = response.json()["error_description"]
    return description


# -- client credentials ---------------------------------------------------------------------


async def test_a_certificate_bound_client_gets_its_certificates_thumbprint(
    http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    reply = await service_token(http, cert)
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "Bearer"  # RFC 8705 §3: still a bearer scheme
    expected = b64url(hashlib.sha256(cert.der).digest())
    assert claims_of(reply.json()["access_token"])["cnf"] == {"x5t#S256": expected}


async def test_a_certificate_bound_client_without_a_certificate_is_refused(
    http: httpx.AsyncClient,
) -> None:
    assert "client certificate" in refused(await service_token(http, None))


async def test_another_clients_certificate_is_not_bound(
    http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    # RFC 8705 §3.4: binding is what a client registers for; a stray certificate on the
    # connection does not change the tokens of a client that never asked for it.
    reply = await service_token(http, cert, "svc")
    assert reply.status_code == 200, reply.text
    assert "cnf" not in claims_of(reply.json()["access_token"])


async def test_the_header_from_an_untrusted_peer_is_refused(
    idp: DevIdP, cert: ClientCertificate
) -> None:
    transport = httpx.ASGITransport(app=idp, client=("192.0.2.7", 4000))
    async with httpx.AsyncClient(transport=transport) as outsider:
        says = refused(await service_token(outsider, cert))
        plain = await service_token(outsider, cert, "svc")
    assert "trusted proxy" in says
    assert plain.status_code == 200  # not read at all for a client that is not bound
    assert "cnf" not in claims_of(plain.json()["access_token"])


@pytest.mark.parametrize(
    "value", [":bm90IGEgY2VydA==:", "garbage", ":" + "A" * 40_000 + ":", ":%%%:", "::"]
)
async def test_a_malformed_certificate_is_a_400(http: httpx.AsyncClient, value: str) -> None:
    reply = await service_token(http, None, **{"Client-Cert": value})
    assert "client certificate" in refused(reply)


async def test_the_header_twice_is_a_400(http: httpx.AsyncClient, cert: ClientCertificate) -> None:
    headers = httpx.Headers([("Client-Cert", cert.rfc9440()), ("Client-Cert", cert.rfc9440())])
    reply = await http.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, auth=("bound", "bound-secret"),
        headers=headers,
    )  # fmt: skip
    assert "more than one" in refused(reply)


async def test_an_idp_without_a_header_reads_the_tls_extension_only(
    clock: FakeClock, cert: ClientCertificate
) -> None:
    idp = DevIdP(ISSUER, clients=CLIENTS, clock=clock)

    async def tls(scope: Scope, receive: Receive, send: Send) -> None:
        await idp({**scope, "extensions": {"tls": cert.tls_extension()}}, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=tls)) as over_tls:
        bound = await service_token(over_tls, None)
    async with idp.http_client() as plain:
        header_only = await service_token(plain, cert)
    assert claims_of(bound.json()["access_token"])["cnf"] == {"x5t#S256": cert.thumbprint}
    assert "client certificate" in refused(header_only)


async def test_a_token_bound_by_dpop_and_certificate_carries_both(
    http: httpx.AsyncClient, cert: ClientCertificate, clock: FakeClock
) -> None:
    key = DPoPClient(clock=clock)
    reply = await service_token(http, cert, DPoP=key.proof("POST", TOKEN_URL))
    assert reply.json()["token_type"] == "DPoP"
    cnf = claims_of(reply.json()["access_token"])["cnf"]
    assert cnf == {"jkt": key.jkt, "x5t#S256": cert.thumbprint}


async def test_discovery_advertises_certificate_bound_tokens(http: httpx.AsyncClient) -> None:
    doc = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    assert doc["tls_client_certificate_bound_access_tokens"] is True  # RFC 8705 §3.3


# -- introspection (RFC 8705 §3.2) ----------------------------------------------------------


async def introspect(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    reply = await http.post(
        f"{ISSUER}/introspect", data={"token": token}, auth=("svc", "svc-secret")
    )
    body: dict[str, Any] = reply.json()
    return body


async def test_introspection_names_the_certificate_of_jwt_and_opaque_tokens(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    jwt = (await service_token(http, cert)).json()["access_token"]
    opaque = idp.issue_opaque_token("alice", audience=API, claims=cert.cnf())
    for token in (jwt, opaque):
        answer = await introspect(http, token)
        assert answer["active"] is True
        assert answer["cnf"] == {"x5t#S256": cert.thumbprint}
        assert answer["token_type"] == "Bearer"  # only cnf.jkt makes a DPoP token


# -- userinfo: the IdP's own resource checks the binding ------------------------------------


async def test_userinfo_takes_a_bound_token_only_with_its_certificate(
    http: httpx.AsyncClient, cert: ClientCertificate, other: ClientCertificate
) -> None:
    body = await signed_in(http, "web", cert)
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    ok = await http.get(f"{ISSUER}/userinfo", headers={**bearer, **with_cert(cert)})
    stolen = await http.get(f"{ISSUER}/userinfo", headers={**bearer, **with_cert(other)})
    bare = await http.get(f"{ISSUER}/userinfo", headers=bearer)
    assert (ok.status_code, ok.json()["sub"]) == (200, "alice")
    for reply in (stolen, bare):
        assert reply.status_code == 401
        assert 'error="invalid_token"' in reply.headers["www-authenticate"]


# -- authorization code and refresh (RFC 8705 §4) -------------------------------------------


async def sign_in(http: httpx.AsyncClient, client_id: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    params = {"client_id": client_id, "redirect_uri": CALLBACK, "response_type": "code",
              "scope": "openid offline_access", "code_challenge_method": "S256",
              "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
              "login": "alice"}  # fmt: skip
    reply = await http.post(f"{ISSUER}/authorize", data=params)
    query = {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["location"]).query).items()}
    return query["code"], verifier


async def token_request(
    http: httpx.AsyncClient, client_id: str, form: dict[str, str], cert: ClientCertificate | None
) -> httpx.Response:
    form = {**form, "client_id": client_id}
    if client_id == "web":
        form["client_secret"] = "web-secret"
    return await http.post(TOKEN_URL, data=form, headers=with_cert(cert))


async def signed_in(
    http: httpx.AsyncClient, client_id: str, cert: ClientCertificate | None
) -> dict[str, Any]:
    code, verifier = await sign_in(http, client_id)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier}  # fmt: skip
    reply = await token_request(http, client_id, form, cert)
    body: dict[str, Any] = reply.json()
    return body


async def refresh(
    http: httpx.AsyncClient, client_id: str, token: str, cert: ClientCertificate | None
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return await token_request(http, client_id, form, cert)


async def test_the_code_grant_binds_the_access_token(
    http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    body = await signed_in(http, "spa", cert)
    assert claims_of(body["access_token"])["cnf"] == {"x5t#S256": cert.thumbprint}
    assert "cnf" not in claims_of(body["id_token"])  # only the access token is bound
    assert (await signed_in(http, "spa", None))["error"] == "invalid_request"


async def test_a_public_clients_refresh_needs_the_same_certificate(
    http: httpx.AsyncClient, cert: ClientCertificate, other: ClientCertificate
) -> None:
    rt = (await signed_in(http, "spa", cert))["refresh_token"]
    assert "another client certificate" in refused(
        await refresh(http, "spa", rt, other), "invalid_grant"
    )
    rt = (await signed_in(http, "spa", cert))["refresh_token"]
    again = await refresh(http, "spa", rt, cert)
    assert again.status_code == 200, again.text
    assert claims_of(again.json()["access_token"])["cnf"] == {"x5t#S256": cert.thumbprint}


async def test_a_confidential_client_may_refresh_with_a_renewed_certificate(
    http: httpx.AsyncClient, cert: ClientCertificate, other: ClientCertificate
) -> None:
    # Its refresh token is bound by its authentication; the new access token follows the
    # certificate it presents now (a certificate is rotated without a new sign-in).
    rt = (await signed_in(http, "web", cert))["refresh_token"]
    renewed = await refresh(http, "web", rt, other)
    assert renewed.status_code == 200, renewed.text
    assert claims_of(renewed.json()["access_token"])["cnf"] == {"x5t#S256": other.thumbprint}


# -- /dev/token ------------------------------------------------------------------------------


async def test_dev_token_binds_a_certificate_bound_clients_token(
    http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    form = {"user": "alice", "client_id": "web"}
    bound = await http.post(f"{ISSUER}/dev/token", data=form, headers=with_cert(cert))
    missing = await http.post(f"{ISSUER}/dev/token", data=form)
    assert claims_of(bound.json()["access_token"])["cnf"] == {"x5t#S256": cert.thumbprint}
    assert "client certificate" in refused(missing)


# -- configuration ---------------------------------------------------------------------------


def test_certificate_bound_is_a_client_setting_in_the_config_file() -> None:
    raw = b'{"client_id": "job", "client_secret": "s", "certificate_bound": true}'
    assert msgspec.json.decode(raw, type=DevClient).certificate_bound
    assert not DevClient(client_id="x").certificate_bound


async def test_the_documented_example_gets_a_bound_token() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "sender-constrained.md").read_text()
    section = doc.split("### Testing certificate-bound tokens with the dev IdP", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "sender-constrained.md", "exec"), namespace)
    token = await namespace["job_token"]()
    assert claims_of(token)["cnf"] == {"x5t#S256": namespace["cert"].thumbprint}
