"""DevIdP behaves as OIDC Core / Discovery / RP-Initiated and Back-Channel Logout say."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from _jwt import header_of
from asgi_sso.config import Issuer
from asgi_sso.errors import ConfigurationError
from asgi_sso.testing import (
    BACKCHANNEL_LOGOUT_EVENT,
    DevClient,
    DevIdP,
    DevUser,
    FakeClock,
    free_port,
)
from asgi_sso.testing.tokens import b64url, tamper_signature

ISSUER = "http://dev-idp.test"
CB = "https://rp.example/cb"
SECRET = "s3cret-for-tests"


ALICE = DevUser(
    sub="alice", email="alice@example.com", name="Alice", groups=("admins",), tenant="t1",
    connection_id="conn_1", extra_claims={"department": "eng"},
)  # fmt: skip
RP = DevClient(
    client_id="rp",
    client_secret=SECRET,
    redirect_uris=(CB,),
    post_logout_redirect_uris=("https://rp.example/bye",),
    backchannel_logout_uri="https://rp.example/bcl",
    audience="api://rp",
    grant_types=("authorization_code", "refresh_token", "client_credentials"),
    scopes=("read",),
)
SPA = DevClient(client_id="spa", redirect_uris=("http://localhost:5173/cb",))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    return DevIdP(ISSUER, users=[ALICE, DevUser(sub="bob")], clients=[RP, SPA], clock=clock)


@pytest.fixture
async def http(idp: DevIdP) -> Any:
    async with idp.http_client() as client:
        yield client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def auth_params(challenge: str, **extra: str) -> dict[str, str]:
    return {
        "client_id": "rp", "redirect_uri": CB, "response_type": "code",
        "scope": "openid email profile", "state": "st-1", "nonce": "nonce-1",
        "code_challenge": challenge, "code_challenge_method": "S256", **extra,
    }  # fmt: skip


def query_of(response: httpx.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def get_code(
    http: httpx.AsyncClient, challenge: str, login: str = "alice", **extra: str
) -> str:
    params = auth_params(challenge, **extra)
    response = await http.post(f"{ISSUER}/authorize", data={**params, "login": login})
    assert response.status_code == 302
    query = query_of(response)
    assert query["state"] == "st-1"
    assert query["iss"] == ISSUER
    return query["code"]


async def redeem(
    http: httpx.AsyncClient, code: str, verifier: str, client_id: str = "rp", **extra: str
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB,
            "code_verifier": verifier, **extra}  # fmt: skip
    return await http.post(f"{ISSUER}/token", data=form, auth=(client_id, SECRET))


async def code_flow(
    http: httpx.AsyncClient, client_id: str = "rp", **params: str
) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = await get_code(http, challenge, client_id=client_id, **params)
    response = await redeem(http, code, verifier, client_id)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def test_discovery_names_the_exact_issuer_and_absolute_endpoints(http: Any) -> None:
    response = await http.get(f"{ISSUER}/.well-known/openid-configuration")
    doc = response.json()
    assert doc["issuer"] == ISSUER
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "end_session_endpoint"):  # fmt: skip
        assert doc[name].startswith(ISSUER + "/")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["backchannel_logout_supported"] is True
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}  # fmt: skip
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


async def test_issuer_with_a_path_serves_endpoints_under_it(clock: FakeClock) -> None:
    idp = DevIdP("http://dev-idp.test/realms/acme", clock=clock)
    async with idp.http_client() as http:
        doc = (await http.get(idp.discovery_url)).json()
        assert doc["issuer"] == "http://dev-idp.test/realms/acme"
        assert doc["jwks_uri"] == "http://dev-idp.test/realms/acme/jwks"
        assert (await http.get(doc["jwks_uri"])).status_code == 200
        assert (await http.get("http://dev-idp.test/jwks")).status_code == 404


async def test_jwks_publishes_public_keys_only_with_cache_headers(http: Any) -> None:
    response = await http.get(f"{ISSUER}/jwks")
    assert "max-age" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert {key["kty"], key["alg"], key["use"]} == {"RSA", "RS256", "sig"}
    assert key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


@pytest.mark.parametrize(("algorithm", "kty"), [("ES256", "EC"), ("Ed25519", "OKP")])
async def test_other_algorithms_sign_tokens_joserfc_verifies(algorithm: str, kty: str) -> None:
    idp = DevIdP(ISSUER, algorithm=algorithm, users=[ALICE])
    async with idp.http_client() as http:
        jwks = (await http.get(idp.jwks_uri)).json()
    assert jwks["keys"][0]["kty"] == kty
    token = idp.issue_token("alice", audience="api")
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[algorithm])
    assert decoded.claims["sub"] == "alice"
    assert decoded.header["typ"] == "at+jwt"


async def test_unknown_client_gets_an_error_page_not_a_redirect(http: Any) -> None:
    _, challenge = pkce()
    response = await http.get(f"{ISSUER}/authorize", params=auth_params(challenge, client_id="x"))
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "uri", [CB + "/", CB + "?x=1", "https://rp.example/CB", "https://evil.example/cb", ""]
)
async def test_redirect_uri_must_match_exactly(http: Any, uri: str) -> None:
    _, challenge = pkce()
    params = auth_params(challenge, redirect_uri=uri)
    response = await http.get(f"{ISSUER}/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "email"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
    ],
)
async def test_bad_authorization_requests_redirect_with_error_state_and_iss(
    http: Any, change: dict[str, str], error: str
) -> None:
    _, challenge = pkce()
    response = await http.get(f"{ISSUER}/authorize", params=auth_params(challenge, **change))
    assert response.status_code == 302
    query = query_of(response)
    assert query["error"] == error
    assert query["state"] == "st-1"
    assert query["iss"] == ISSUER
    assert "code" not in query


async def test_sign_in_page_lists_users_and_escapes_parameters(http: Any) -> None:
    _, challenge = pkce()
    params = auth_params(challenge, state='"><script>alert(1)</script>')
    response = await http.get(f"{ISSUER}/authorize", params=params)
    assert response.status_code == 200
    assert "Alice" in response.text
    assert 'value="bob"' in response.text
    assert "<script>alert" not in response.text
    assert response.headers["x-frame-options"] == "DENY"


async def test_login_hint_and_auto_approve_skip_the_page(idp: DevIdP, http: Any) -> None:
    _, challenge = pkce()
    hinted = await http.get(
        f"{ISSUER}/authorize", params=auth_params(challenge, login_hint="alice@example.com")
    )
    assert hinted.status_code == 302
    assert idp.codes[query_of(hinted)["code"]].sub == "alice"
    idp.auto_approve = True
    approved = await http.get(f"{ISSUER}/authorize", params=auth_params(challenge))
    assert idp.codes[query_of(approved)["code"]].sub == "alice"


async def test_typed_identity_becomes_an_ad_hoc_user(idp: DevIdP, http: Any) -> None:
    _, challenge = pkce()
    code = await get_code(http, challenge, login="carol@example.com")
    assert idp.codes[code].sub == "carol@example.com"
    assert idp.users["carol@example.com"].email == "carol@example.com"


async def test_code_flow_returns_oidc_id_token_and_rfc9068_access_token(http: Any) -> None:
    body = await code_flow(http)
    assert body["token_type"] == "Bearer"
    id_claims = claims_of(body["id_token"])
    assert id_claims["iss"] == ISSUER
    assert id_claims["aud"] == "rp"
    assert id_claims["azp"] == "rp"
    assert id_claims["nonce"] == "nonce-1"
    assert id_claims["sub"] == "alice"
    assert id_claims["auth_time"] == 1_700_000_000
    assert id_claims["sid"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert id_claims["at_hash"] == b64url(digest[:16])
    assert header_of(body["access_token"])["typ"] == "at+jwt"
    at = claims_of(body["access_token"])
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"):
        assert claim in at
    assert at["aud"] == "api://rp"
    assert at["groups"] == ["admins"]
    assert at["tid"] == "t1"
    assert at["connection_id"] == "conn_1"
    assert at["department"] == "eng"
    assert at["exp"] - at["iat"] == 300


async def test_client_secret_post_and_public_clients_authenticate(http: Any) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB,
            "code_verifier": verifier, "client_id": "rp", "client_secret": SECRET}  # fmt: skip
    assert (await http.post(f"{ISSUER}/token", data=form)).status_code == 200
    params = {**auth_params(challenge), "client_id": "spa", "redirect_uri": SPA.redirect_uris[0]}
    page = await http.post(f"{ISSUER}/authorize", data={**params, "login": "bob"})
    form = {"grant_type": "authorization_code", "code": query_of(page)["code"], "client_id": "spa",
            "redirect_uri": SPA.redirect_uris[0], "code_verifier": verifier}  # fmt: skip
    response = await http.post(f"{ISSUER}/token", data=form)
    assert response.status_code == 200
    assert "refresh_token" in response.json()


async def test_codes_are_one_time(http: Any) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, challenge)
    assert (await redeem(http, code, verifier)).status_code == 200
    again = await redeem(http, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "extra",
    [
        {"code_verifier": "x" * 43},
        {"code_verifier": ""},
        {"redirect_uri": "https://rp.example/other"},
        {"code": "made-up"},
    ],
)
async def test_wrong_verifier_redirect_or_code_is_invalid_grant(http: Any, extra: Any) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, challenge)
    response = await redeem(http, extra.pop("code", code), extra.pop("code_verifier", verifier),
                            **extra)  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_expired_code_is_refused(clock: FakeClock, http: Any) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, challenge)
    clock.advance(61)
    assert (await redeem(http, code, verifier)).json()["error"] == "invalid_grant"


async def test_bad_client_authentication_is_401_with_basic_challenge(http: Any) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB,
            "code_verifier": verifier}  # fmt: skip
    response = await http.post(f"{ISSUER}/token", data=form, auth=("rp", "wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert SECRET not in response.text
    garbage = await http.post(
        f"{ISSUER}/token", data=form, headers={"Authorization": "Basic !!!not-base64"}
    )
    assert garbage.status_code == 401


async def test_token_endpoint_rejects_malformed_requests(http: Any) -> None:
    assert (await http.get(f"{ISSUER}/token")).status_code == 405
    repeated = await http.post(
        f"{ISSUER}/token",
        content="grant_type=client_credentials&grant_type=refresh_token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("rp", SECRET),
    )
    assert repeated.json()["error"] == "invalid_request"
    as_json = await http.post(f"{ISSUER}/token", json={"grant_type": "x"}, auth=("rp", SECRET))
    assert as_json.json()["error"] == "invalid_request"
    unknown = await http.post(f"{ISSUER}/token", data={"grant_type": "password"},
                              auth=("rp", SECRET))  # fmt: skip
    assert unknown.json()["error"] == "unsupported_grant_type"
    form = {"grant_type": "client_credentials", "client_id": "spa"}
    spa = await http.post(f"{ISSUER}/token", data=form)
    assert spa.json()["error"] == "unauthorized_client"


async def test_refresh_tokens_rotate_and_cannot_widen_scope(http: Any) -> None:
    first = (await code_flow(http))["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": first}
    second = await http.post(f"{ISSUER}/token", data=form, auth=("rp", SECRET))
    assert second.status_code == 200
    body = second.json()
    assert body["refresh_token"] != first
    assert "nonce" not in claims_of(body["id_token"])
    reused = await http.post(f"{ISSUER}/token", data=form, auth=("rp", SECRET))
    assert reused.json()["error"] == "invalid_grant"
    wider = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
             "scope": "openid admin"}  # fmt: skip
    assert (await http.post(f"{ISSUER}/token", data=wider, auth=("rp", SECRET))).json()[
        "error"
    ] == "invalid_scope"


@pytest.mark.parametrize(
    ("extra", "aud"),
    [({}, "api://rp"), ({"audience": "api://orders"}, "api://orders"),
     ({"resource": "https://orders.example"}, "https://orders.example")],
)  # fmt: skip
async def test_client_credentials_issue_at_jwt_for_the_requested_audience(
    http: Any, extra: dict[str, str], aud: str
) -> None:
    form = {"grant_type": "client_credentials", **extra}
    response = await http.post(f"{ISSUER}/token", data=form, auth=("rp", SECRET))
    body = response.json()
    assert "refresh_token" not in body
    assert header_of(body["access_token"])["typ"] == "at+jwt"
    claims = claims_of(body["access_token"])
    assert claims["aud"] == aud
    assert claims["sub"] == claims["client_id"] == "rp"
    assert claims["scope"] == "read"


async def test_userinfo_returns_the_profile_for_a_valid_access_token(http: Any) -> None:
    access = (await code_flow(http))["access_token"]
    response = await http.get(f"{ISSUER}/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert response.json() == {"sub": "alice", **ALICE.profile()}


async def test_userinfo_refuses_bad_tokens(idp: DevIdP, clock: FakeClock, http: Any) -> None:
    access = (await code_flow(http))["access_token"]
    url = f"{ISSUER}/userinfo"
    missing = await http.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for bad in (tamper_signature(access), "a.b.c", idp.tokens.unknown_kid(sub="alice")):
        response = await http.get(url, headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    no_openid = idp.issue_token("alice", scopes=["read"])
    response = await http.get(url, headers={"Authorization": f"Bearer {no_openid}"})
    assert response.status_code == 403
    clock.advance(301)
    response = await http.get(url, headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 401


async def test_end_session_redirects_only_to_registered_uris(idp: DevIdP, http: Any) -> None:
    id_token = (await code_flow(http))["id_token"]
    sid = claims_of(id_token)["sid"]
    assert sid in idp.sessions
    evil = {"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example/"}
    bad = await http.get(f"{ISSUER}/end_session", params=evil)
    assert bad.status_code == 400
    assert "location" not in bad.headers
    forged = await http.get(f"{ISSUER}/end_session",
                            params={"id_token_hint": tamper_signature(id_token)})  # fmt: skip
    assert forged.status_code == 400
    good = await http.get(f"{ISSUER}/end_session", params={
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://rp.example/bye",
        "state": "s9"})  # fmt: skip
    assert good.status_code == 302
    assert good.headers["location"] == "https://rp.example/bye?state=s9"
    assert sid not in idp.sessions
    page = await http.get(f"{ISSUER}/end_session")
    assert page.status_code == 200
    assert "signed out" in page.text


async def test_logout_token_follows_backchannel_logout_spec(idp: DevIdP, clock: FakeClock) -> None:
    token = idp.logout_token("rp", sub="alice", sid="sid-1")
    assert header_of(token)["typ"] == "logout+jwt"
    claims = claims_of(token)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "rp"
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert claims["iat"] == int(clock.now)
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["jti"]
    assert "nonce" not in claims
    assert (claims["sub"], claims["sid"]) == ("alice", "sid-1")
    with pytest.raises(ConfigurationError):
        idp.logout_token("rp")


async def test_send_backchannel_logout_posts_the_token_form_encoded(idp: DevIdP) -> None:
    received: list[httpx.Request] = []

    def rp(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(rp)) as client:
        response = await idp.send_backchannel_logout("rp", sid="sid-1", http_client=client)
    assert response.status_code == 200
    (request,) = received
    assert str(request.url) == "https://rp.example/bcl"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode())
    assert claims_of(form["logout_token"][0])["sid"] == "sid-1"
    with pytest.raises(ConfigurationError):
        await idp.send_backchannel_logout("spa", sub="bob", http_client=client)


async def test_rotated_key_stays_published_for_the_grace_period(
    idp: DevIdP, clock: FakeClock, http: Any
) -> None:
    old = header_of(idp.issue_token("alice"))["kid"]
    new = idp.rotate_keys()
    assert header_of(idp.issue_token("alice"))["kid"] == new != old
    kids = [k["kid"] for k in (await http.get(idp.jwks_uri)).json()["keys"]]
    assert kids == [old, new]
    clock.advance(3601)
    kids = [k["kid"] for k in (await http.get(idp.jwks_uri)).json()["keys"]]
    assert kids == [new]


async def test_outage_and_slow_jwks(idp: DevIdP, http: Any) -> None:
    with idp.outage():
        for url in (idp.jwks_uri, idp.discovery_url):
            response = await http.get(url)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
    assert (await http.get(idp.jwks_uri)).status_code == 200
    with idp.slow_jwks(30), pytest.raises(TimeoutError):
        await asyncio.wait_for(http.get(idp.jwks_uri), timeout=0.05)
    assert idp.requests["/jwks"] == 3


def test_issuer_config_trusts_this_idp_by_discovery(idp: DevIdP) -> None:
    config = idp.issuer_config(audience="api://rp", leeway=5)
    assert isinstance(config, Issuer)
    assert (config.issuer, config.audience, config.jwks_uri) == (ISSUER, "api://rp", None)
    assert config.algorithms == ("RS256",)
    assert config.leeway == 5


def test_issue_token_carries_the_user_profile_and_overrides(idp: DevIdP) -> None:
    token = idp.issue_token("alice", scopes=["read", "write"], groups=["g"],
                            claims={"tid": None, "x": 1}, expires_in=-10)  # fmt: skip
    claims = claims_of(token)
    assert claims["scope"] == "read write"
    assert claims["groups"] == ["g"]
    assert "tid" not in claims
    assert claims["x"] == 1
    assert claims["exp"] < claims["iat"]


def test_configuration_is_validated_and_secrets_hidden() -> None:
    assert SECRET not in repr(RP)
    with pytest.raises(ConfigurationError):
        DevClient(client_id="x", grant_types=("password",))
    with pytest.raises(ConfigurationError):
        DevClient(client_id="x", grant_types=("client_credentials",))
    with pytest.raises(ConfigurationError):
        DevIdP("ftp://x")
    with pytest.raises(ConfigurationError), DevIdP("http://dev-idp.test").serve():
        pass


async def test_serve_listens_on_loopback(idp: DevIdP) -> None:
    local = DevIdP(users=[ALICE])
    assert local.issuer.startswith("http://127.0.0.1:")
    with local.serve() as url:
        async with httpx.AsyncClient(timeout=5) as client:
            doc = (await client.get(url + "/.well-known/openid-configuration")).json()
    assert doc["issuer"] == local.issuer


async def test_es256_idp_also_signs_rs256_id_tokens_for_clients_that_ask(clock: FakeClock) -> None:
    legacy = DevClient(client_id="legacy", client_secret=SECRET, redirect_uris=(CB,),
                       id_token_signed_response_alg="RS256")  # fmt: skip
    idp = DevIdP(ISSUER, algorithm="ES256", users=[ALICE], clients=[RP, legacy], clock=clock)
    async with idp.http_client() as http:
        doc = (await http.get(idp.discovery_url)).json()
        assert doc["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]  # Discovery §3
        keys = KeySet.import_key_set((await http.get(idp.jwks_uri)).json())
        assert sorted(key.key_type for key in keys.keys) == ["EC", "RSA"]
        for client_id, alg in (("rp", "ES256"), ("legacy", "RS256")):
            body = await code_flow(http, client_id)
            decoded = jwt.decode(body["id_token"], keys, algorithms=[alg])
            assert (decoded.header["alg"], decoded.claims["aud"]) == (alg, client_id)
            assert header_of(body["access_token"])["alg"] == "ES256"
    with pytest.raises(ConfigurationError, match="PS256"):
        idp.add_client(DevClient(client_id="x", id_token_signed_response_alg="PS256"))


@pytest.mark.parametrize(
    ("scope", "released", "withheld"),
    [
        ("openid", set(), {"email", "email_verified", "name"}),
        ("openid email", {"email", "email_verified"}, {"name"}),
        ("openid profile", {"name"}, {"email", "email_verified"}),
        ("openid profile email", {"email", "email_verified", "name"}, set()),
    ],
)
async def test_id_token_and_userinfo_release_claims_by_scope(
    http: Any, scope: str, released: set[str], withheld: set[str]
) -> None:
    body = await code_flow(http, scope=scope)
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    userinfo = (await http.get(f"{ISSUER}/userinfo", headers=auth)).json()
    always = {"groups", "tid", "connection_id", "department"}  # enterprise claims, any scope
    for claims in (claims_of(body["id_token"]), userinfo):
        assert released | always <= set(claims)
        assert not withheld & set(claims)
    assert {"email", "name", "groups"} <= set(claims_of(body["access_token"]))  # APIs see all


async def test_refreshed_id_token_keeps_the_original_sign_in(clock: FakeClock, http: Any) -> None:
    first = await code_flow(http)
    clock.advance(120)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = (await http.post(f"{ISSUER}/token", data=form, auth=("rp", SECRET))).json()
    before, after = claims_of(first["id_token"]), claims_of(second["id_token"])
    for name in ("iss", "sub", "aud", "azp", "sid", "auth_time"):  # OIDC Core §12.2
        assert after[name] == before[name], name
    assert after["iat"] == before["iat"] + 120
    assert before["nonce"] == "nonce-1"
    assert "nonce" not in after


async def test_end_session_sends_backchannel_logout_to_the_sessions_clients(
    clock: FakeClock,
) -> None:
    posted: list[httpx.Request] = []

    def rps(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        if request.url.host == "down.example":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200)

    down = DevClient(client_id="down", client_secret=SECRET, redirect_uris=(CB,),
                     backchannel_logout_uri="https://down.example/bcl")  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.MockTransport(rps)) as rp_http:
        idp = DevIdP(ISSUER, users=[ALICE], clients=[RP, SPA, down], clock=clock,
                     backchannel_client=rp_http)  # fmt: skip
        async with idp.http_client() as http:
            hints = [(await code_flow(http, client_id))["id_token"] for client_id in ("rp", "down")]
            out = await http.get(f"{ISSUER}/end_session", params={"id_token_hint": hints[0]})
            assert out.status_code == 200
            (request,) = posted
            assert str(request.url) == "https://rp.example/bcl"
            logout = claims_of(parse_qs(request.content.decode())["logout_token"][0])
            assert (logout["sub"], logout["sid"]) == ("alice", claims_of(hints[0])["sid"])
            await http.get(f"{ISSUER}/end_session", params={"id_token_hint": hints[1]})
            assert idp.backchannel_deliveries == [("rp", 200), ("down", None)]
            again = await http.get(f"{ISSUER}/end_session", params={"id_token_hint": hints[0]})
            assert again.status_code == 200
    assert len(posted) == 2  # an ended session is not announced twice


async def test_without_a_backchannel_client_end_session_sends_nothing(
    idp: DevIdP, http: Any
) -> None:
    hint = (await code_flow(http))["id_token"]
    await http.get(f"{ISSUER}/end_session", params={"id_token_hint": hint})
    assert idp.backchannel_deliveries == []
    assert idp.session_clients == {}


async def test_post_logout_redirect_without_state_has_no_bare_question_mark(http: Any) -> None:
    hint = (await code_flow(http))["id_token"]
    params = {"id_token_hint": hint, "post_logout_redirect_uri": "https://rp.example/bye"}
    response = await http.get(f"{ISSUER}/end_session", params=params)
    assert response.headers["location"] == "https://rp.example/bye"


def test_free_port_is_public_and_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
