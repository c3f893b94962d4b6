"""The dev IdP authenticates clients by ``private_key_jwt`` (RFC 7523 §2.2/§3) and refuses bad ones.

The good assertions come from the RP side's own :class:`ClientAuth`, so this also
checks that what asgi_sso sends is what the spec asks for.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from asgi_sso.errors import ConfigurationError
from asgi_sso.login.client_auth import ASSERTION_TYPE, ClientAuth, load_client_key
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock
from asgi_sso.testing.tokens import (
    alg_none,
    generate_key,
    hs256_with_public_key,
    mint,
    public_jwk,
    tamper_signature,
)

ISSUER = "http://keys-idp.test"
TOKEN = ISSUER + "/token"
RSA = generate_key("RS256", kid="rsa-1")
EC = generate_key("ES256", kid="ec-1")
OTHER = generate_key("RS256", kid="rsa-1")  # same kid, another key


def _client(client_id: str, key: Any) -> DevClient:
    # A PEM names no key id: the app's assertion names the key's RFC 7638 thumbprint.
    by_thumbprint = {**public_jwk(key), "kid": key.thumbprint()}
    return DevClient(
        client_id=client_id,
        jwks={"keys": [public_jwk(key), by_thumbprint]},
        redirect_uris=("https://rp.example/cb",),
        grant_types=("authorization_code", "client_credentials"),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def env(clock: FakeClock) -> AsyncIterator[tuple[DevIdP, httpx.AsyncClient]]:
    idp = DevIdP(
        ISSUER,
        users=[DevUser(sub="ann")],
        clients=[_client("rsa-client", RSA), _client("ec-client", EC)],
        clock=clock,
        auto_approve=True,
    )
    async with idp.http_client() as http:
        yield idp, http


def _auth(client_id: str, key: Any, clock: FakeClock, *, jwk: bool = False) -> ClientAuth:
    text = json.dumps(key.as_dict(private=True)) if jwk else key.as_pem(private=True).decode()
    return ClientAuth(
        client_id=client_id, method="private_key_jwt", key=load_client_key(text), clock=clock
    )


async def _token(http: httpx.AsyncClient, form: dict[str, str], **headers: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", **form}
    return await http.post(TOKEN, data=form, headers=headers)


def _assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}


def _claims(clock: FakeClock, **changes: Any) -> dict[str, Any]:
    now = int(clock.time())
    claims = {"iss": "rsa-client", "sub": "rsa-client", "aud": TOKEN,
              "jti": uuid.uuid4().hex, "iat": now, "exp": now + 60, **changes}  # fmt: skip
    return {k: v for k, v in claims.items() if v is not None}


async def test_discovery_advertises_private_key_jwt(
    env: tuple[DevIdP, httpx.AsyncClient],
) -> None:
    _, http = env
    doc = (await http.get(ISSUER + "/.well-known/openid-configuration")).json()
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS256", "PS256", "ES256"]
    assert doc["introspection_endpoint_auth_signing_alg_values_supported"] == [
        "RS256",
        "PS256",
        "ES256",
    ]


def _pss_client(client_id: str, key: Any) -> DevClient:
    # Registered without alg, as the app publishes a PEM key: it verifies RS256 and PS256.
    jwk = {k: v for k, v in public_jwk(key).items() if k != "alg"}
    return DevClient(client_id=client_id, jwks={"keys": [{**jwk, "kid": key.thumbprint()}]},
                     grant_types=("client_credentials",))  # fmt: skip


async def test_a_ps256_assertion_authenticates(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    idp, http = env
    idp.add_client(_pss_client("pss-client", RSA))
    auth = _auth("pss-client", RSA, clock).accepting(["PS256"])
    assert auth is not None
    form: dict[str, str] = {}
    auth.apply(form, endpoint=TOKEN)
    head = form["client_assertion"].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(head + "=="))["alg"] == "PS256"
    response = await _token(http, form)
    assert response.status_code == 200, response.text


async def test_an_idp_taking_only_ps256_advertises_it_and_refuses_rs256(clock: FakeClock) -> None:
    idp = DevIdP(ISSUER, clients=[_pss_client("pss-client", RSA)], clock=clock,
                 assertion_algorithms=("PS256",))  # fmt: skip
    async with idp.http_client() as http:
        doc = (await http.get(ISSUER + "/.well-known/openid-configuration")).json()
        assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["PS256"]
        rs256: dict[str, str] = {}
        _auth("pss-client", RSA, clock).apply(rs256, endpoint=TOKEN)
        refused = await _token(http, rs256)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_client"
        assert "PS256" in refused.json()["error_description"]
        ps256: dict[str, str] = {}
        auth = _auth("pss-client", RSA, clock).accepting(doc[
            "token_endpoint_auth_signing_alg_values_supported"])  # fmt: skip
        assert auth is not None
        auth.apply(ps256, endpoint=TOKEN)
        assert (await _token(http, ps256)).status_code == 200


@pytest.mark.parametrize("algorithms", [(), ("none",), ("HS256",), ("RS256", "EdDSA")])
def test_the_dev_idp_takes_only_assertion_algorithms_it_verifies(
    algorithms: tuple[str, ...],
) -> None:
    with pytest.raises(ConfigurationError, match="assertion_algorithms"):
        DevIdP(ISSUER, assertion_algorithms=algorithms)


@pytest.mark.parametrize(
    ("client_id", "key", "jwk"),
    [("rsa-client", RSA, False), ("ec-client", EC, False), ("ec-client", EC, True)],
    ids=["rsa-pem", "ec-pem", "ec-jwk"],
)
async def test_an_assertion_from_client_auth_authenticates(
    env: tuple[DevIdP, httpx.AsyncClient],
    clock: FakeClock,
    client_id: str,
    key: Any,
    jwk: bool,
) -> None:
    _, http = env
    auth = _auth(client_id, key, clock, jwk=jwk)
    form: dict[str, str] = {}
    assert auth.apply(form, endpoint=TOKEN) == {}
    assert form["client_id"] == client_id
    assert form["client_assertion_type"] == ASSERTION_TYPE
    response = await _token(http, form)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def test_client_auth_assertion_claims_follow_rfc_7523(clock: FakeClock) -> None:
    auth = _auth("rsa-client", RSA, clock)
    token = auth.assertion(TOKEN)
    head, payload, _ = token.split(".")

    def decode(segment: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=="))
        return result

    header, claims = decode(head), decode(payload)
    assert header["alg"] == "RS256"
    assert header["kid"] == RSA.thumbprint()  # a PEM names no key id: its thumbprint
    assert claims["iss"] == claims["sub"] == "rsa-client"
    assert claims["aud"] == TOKEN
    assert claims["iat"] == int(clock.time())
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert len(claims["jti"]) >= 16
    assert auth.assertion(TOKEN) != token  # a fresh jti every time
    secret_part = str(RSA.as_dict(private=True)["d"])[:16]
    for shown in (repr(auth), repr(load_client_key(json.dumps(RSA.as_dict(private=True))))):
        assert secret_part not in shown
        assert "PRIVATE" not in shown


async def test_a_client_assertion_is_single_use(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = env
    assertion = _auth("rsa-client", RSA, clock).assertion(TOKEN)
    assert (await _token(http, _assertion_form(assertion))).status_code == 200
    replay = await _token(http, _assertion_form(assertion))
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    assert "already used" in replay.json()["error_description"]


BAD = {
    "another audience": lambda c: mint(_claims(c, aud=ISSUER), RSA),
    "expired": lambda c: mint(_claims(c, exp=int(c.time()) - 1), RSA),
    "no exp": lambda c: mint(_claims(c, exp=None), RSA),
    "lives too long": lambda c: mint(_claims(c, exp=int(c.time()) + 3600), RSA),
    "no jti": lambda c: mint(_claims(c, jti=None), RSA),
    "iss of another client": lambda c: mint(_claims(c, iss="ec-client"), RSA),
    "sub of another client": lambda c: mint(_claims(c, sub="ec-client"), RSA),
    "another key with the same kid": lambda c: mint(_claims(c), OTHER),
    "another client's key": lambda c: mint(_claims(c), EC),
    "PS256 with a key registered for RS256": lambda c: _pss(_claims(c), RSA),
    "alg none": lambda c: alg_none(_claims(c)),
    "HS256 keyed with the public key": lambda c: hs256_with_public_key(_claims(c), RSA),
    "tampered signature": lambda c: tamper_signature(mint(_claims(c), RSA)),
    "not a JWT": lambda c: "not.a.jwt",
    "empty": lambda c: "",
}


def _pss(claims: dict[str, Any], key: Any) -> str:
    # The client registered rsa-1 with "alg": "RS256": a PS256 signature of it is refused.
    unbound = RSAKey.import_key({k: v for k, v in key.as_dict(private=True).items() if k != "alg"})
    header = {"alg": "PS256", "typ": "JWT", "kid": "rsa-1"}
    return jwt.encode(header, claims, unbound, algorithms=["PS256"])


@pytest.mark.parametrize("case", sorted(BAD))
async def test_a_bad_assertion_is_invalid_client(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock, case: str
) -> None:
    _, http = env
    response = await _token(http, _assertion_form(BAD[case](clock), client_id="rsa-client"))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


async def test_the_assertion_type_must_be_jwt_bearer(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = env
    form = _assertion_form(mint(_claims(clock), RSA))
    form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    assert (await _token(http, form)).status_code == 401


async def test_a_client_with_keys_cannot_use_a_secret_or_nothing_or_two_methods(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = env
    bare = await _token(http, {"client_id": "rsa-client"})
    assert bare.status_code == 401
    basic = await _token(http, {}, authorization="Basic cnNhLWNsaWVudDp4")  # rsa-client:x
    assert basic.status_code == 401
    both = await _token(
        http, _assertion_form(mint(_claims(clock), RSA)), authorization="Basic cnNhLWNsaWVudDp4"
    )
    assert both.status_code == 400
    assert both.json()["error"] == "invalid_request"


def test_dev_client_keys_are_public_and_exclusive_with_a_secret() -> None:
    with pytest.raises(ConfigurationError, match="public"):
        DevClient(client_id="c", jwks={"keys": [RSA.as_dict(private=True)]})
    with pytest.raises(ConfigurationError, match="not a secret"):
        DevClient(client_id="c", client_secret="s", jwks={"keys": [public_jwk(RSA)]})
    with pytest.raises(ConfigurationError, match="JWK Set"):
        DevClient(client_id="c", jwks={"keys": []})
    assert not DevClient(client_id="c", jwks={"keys": [public_jwk(RSA)]}).is_public
