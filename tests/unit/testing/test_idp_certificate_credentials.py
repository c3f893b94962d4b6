"""The dev IdP takes certificate credentials the way Entra ID does.

A client registered with ``DevClient(certificates=...)`` authenticates with
``private_key_jwt`` and must name one of its certificates in the assertion header
by ``x5t#S256`` or ``x5t``; the assertion verifies with that certificate's key.
The good assertions come from the RP side's own :class:`ClientAuth`; keys and
certificates are made at test time.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, RSAKey

from _certs import bad_version, pem_of
from asgi_sso.errors import ConfigurationError
from asgi_sso.login.client_auth import ASSERTION_TYPE, ClientAuth, load_client_key
from asgi_sso.testing import ClientCertificate, DevClient, DevIdP, FakeClock
from asgi_sso.testing.tokens import mint

ISSUER = "http://entra-like.test"
TOKEN = ISSUER + "/token"
CURRENT = ClientCertificate("app-2026", key_type="RSA")
NEXT = ClientCertificate("app-2027")  # two uploaded certificates: a rotation
STRANGER = ClientCertificate("stranger", key_type="RSA")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sha1(cert: ClientCertificate) -> str:
    return _b64url(hashlib.sha1(cert.der).digest())


def _signing_key(cert: ClientCertificate) -> RSAKey | ECKey:
    kind = RSAKey if cert is not NEXT else ECKey
    return kind.import_key(cert.key_pem())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    idp = DevIdP(
        ISSUER,
        clients=[
            DevClient(
                client_id="app",
                certificates=(CURRENT.pem, NEXT.pem),
                grant_types=("client_credentials",),
            )
        ],
        clock=clock,
    )
    async with idp.http_client() as client:
        yield client


def _auth(text: str, clock: FakeClock) -> ClientAuth:
    return ClientAuth(
        client_id="app", method="private_key_jwt", key=load_client_key(text), clock=clock
    )


async def _token(http: httpx.AsyncClient, assertion: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": "app",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    return await http.post(TOKEN, data=form)


def _claims(clock: FakeClock) -> dict[str, Any]:
    now = int(clock.time())
    return {"iss": "app", "sub": "app", "aud": TOKEN, "jti": uuid.uuid4().hex, "iat": now,
            "exp": now + 60}  # fmt: skip


@pytest.mark.parametrize("cert", [CURRENT, NEXT], ids=["rsa", "ec"])
async def test_an_assertion_naming_a_registered_certificate_authenticates(
    http: httpx.AsyncClient, clock: FakeClock, cert: ClientCertificate
) -> None:
    auth = _auth(cert.key_pem().decode() + cert.pem, clock)
    response = await _token(http, auth.assertion(TOKEN))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [{"x5t#S256": CURRENT.thumbprint}, {"x5t": _sha1(CURRENT)}],
    ids=["x5t#S256-alone", "x5t-alone"],
)
async def test_either_thumbprint_alone_names_the_certificate(
    http: httpx.AsyncClient, clock: FakeClock, headers: dict[str, str]
) -> None:
    assertion = mint(_claims(clock), _signing_key(CURRENT), kid="", headers=headers)
    response = await _token(http, assertion)
    assert response.status_code == 200, response.text


BAD_HEADERS = {
    "no thumbprint": {},
    "wrong x5t#S256": {"x5t#S256": STRANGER.thumbprint},
    "wrong x5t": {"x5t": _sha1(STRANGER)},
    "right x5t#S256, wrong x5t": {"x5t#S256": CURRENT.thumbprint, "x5t": _sha1(STRANGER)},
    "x5t#S256 and x5t of two certificates": {"x5t#S256": CURRENT.thumbprint, "x5t": _sha1(NEXT)},
    "another registered certificate": {"x5t#S256": NEXT.thumbprint},
    "not a string": {"x5t#S256": ["x"]},
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
async def test_an_assertion_not_naming_its_certificate_is_invalid_client(
    http: httpx.AsyncClient, clock: FakeClock, case: str
) -> None:
    # Signed with CURRENT's key: only a header naming CURRENT may pass.
    assertion = mint(_claims(clock), _signing_key(CURRENT), kid="", headers=BAD_HEADERS[case])
    response = await _token(http, assertion)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


async def test_a_key_without_its_certificate_is_refused_by_a_certificate_client(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    response = await _token(http, _auth(CURRENT.key_pem().decode(), clock).assertion(TOKEN))
    assert response.status_code == 401
    assert "x5t#S256" in response.json()["error_description"]
    stranger = _auth(STRANGER.key_pem().decode() + STRANGER.pem, clock).assertion(TOKEN)
    refused = await _token(http, stranger)
    assert refused.status_code == 401
    assert "names no certificate" in refused.json()["error_description"]


def test_dev_client_certificates_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="PEM certificates"):
        DevClient(client_id="c", certificates=("not a certificate",))
    with pytest.raises(ConfigurationError, match="a tuple"):
        DevClient(client_id="c", certificates=CURRENT.pem)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="PEM certificates"):
        DevClient(client_id="c", certificates=(pem_of(bad_version(CURRENT.der)),))
    p384 = ECKey.generate_key("P-384")
    with pytest.raises(ConfigurationError, match="one of jwks"):
        DevClient(client_id="c", certificates=(CURRENT.pem,), jwks={"keys": [p384.as_dict()]})
    with pytest.raises(ConfigurationError, match="not a secret"):
        DevClient(client_id="c", client_secret="s", certificates=(CURRENT.pem,))
    client = DevClient(client_id="c", certificates=(CURRENT.pem,))
    assert client.uses_keys
    assert not client.is_public


async def test_a_certificate_outside_its_validity_is_invalid_client(clock: FakeClock) -> None:
    # As Entra ID does, by the IdP's own clock: an expired upload no longer authenticates.
    end = datetime.datetime.fromtimestamp(clock.time() + 3600, datetime.UTC)
    cert = ClientCertificate("short-lived", not_after=end)
    client = DevClient(client_id="app", certificates=(cert.pem,),
                       grant_types=("client_credentials",))  # fmt: skip
    async with DevIdP(ISSUER, clients=[client], clock=clock).http_client() as http:
        auth = _auth(cert.key_pem().decode() + cert.pem, clock)
        assert (await _token(http, auth.assertion(TOKEN))).status_code == 200
        clock.advance(7200)
        expired = await _token(http, auth.assertion(TOKEN))
        assert (expired.status_code, expired.json()["error"]) == (401, "invalid_client")
        assert "expired" in expired.json()["error_description"]
        clock.now = clock.time() - 7200 - 3 * 86400
        early = await _token(http, auth.assertion(TOKEN))
        assert (early.status_code, early.json()["error"]) == (401, "invalid_client")
        assert "not yet valid" in early.json()["error_description"]


def test_a_certificate_made_now_is_valid_at_the_fake_clocks_start() -> None:
    # Tests pair ClientCertificate() with FakeClock(): the dev IdP checks the dates.
    start = datetime.datetime.fromtimestamp(FakeClock().time(), datetime.UTC)
    certificate = ClientCertificate().certificate
    assert certificate.not_valid_before_utc <= start < certificate.not_valid_after_utc
