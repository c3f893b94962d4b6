"""The dev IdP: pushed authorization requests (RFC 9126), keys by URL, hostile variants."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from asgi_sso.config import Introspection, Issuer, Secret
from asgi_sso.errors import ServiceUnavailable
from asgi_sso.login.client_auth import ASSERTION_TYPE, ClientAuth, load_client_key
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock
from asgi_sso.testing.tokens import generate_key, mint, public_jwk
from asgi_sso.verify import TokenVerifier

ISSUER = "http://par-idp.test"
PAR = ISSUER + "/par"
CALLBACK = "https://rp.example/cb"
KEY = generate_key("ES256", kid="app-key")
STRANGER = generate_key("ES256", kid="app-key")  # same kid, another key
SECRET = "confidential-secret-0123456789"


def _clients() -> list[DevClient]:
    return [
        DevClient(client_id="keyed", jwks={"keys": [public_jwk(KEY)]}, redirect_uris=(CALLBACK,)),
        DevClient(client_id="shared", client_secret=SECRET, redirect_uris=(CALLBACK,)),
        DevClient(client_id="public", redirect_uris=(CALLBACK,)),
        DevClient(
            client_id="by-url",
            jwks_uri="http://rp.example/jwks.json",
            redirect_uris=(CALLBACK,),
        ),
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def env(clock: FakeClock) -> AsyncIterator[tuple[DevIdP, httpx.AsyncClient]]:
    idp = DevIdP(
        ISSUER,
        users=[DevUser(sub="ann")],
        clients=_clients(),
        clock=clock,
        auto_approve=True,
        require_par=True,
    )
    async with idp.http_client() as http:
        yield idp, http


def _auth(clock: FakeClock) -> ClientAuth:
    key = load_client_key(json.dumps(KEY.as_dict(private=True)))
    return ClientAuth(client_id="keyed", method="private_key_jwt", key=key, clock=clock)


def _request(client_id: str = "keyed") -> dict[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid",
        "state": "s-1",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }


async def _push(http: httpx.AsyncClient, form: dict[str, str], **headers: str) -> httpx.Response:
    return await http.post(PAR, data=form, headers=headers)


async def _pushed_uri(http: httpx.AsyncClient, clock: FakeClock) -> str:
    form = _request()
    _auth(clock).apply(form, endpoint=PAR)
    response = await _push(http, form)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["expires_in"] == 60
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert response.headers["cache-control"] == "no-store"
    return str(body["request_uri"])


async def _authorize(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get(ISSUER + "/authorize", params=params)


async def test_discovery_advertises_par_and_client_key_methods(
    env: tuple[DevIdP, httpx.AsyncClient],
) -> None:
    _, http = env
    doc = (await http.get(ISSUER + "/.well-known/openid-configuration")).json()
    assert doc["pushed_authorization_request_endpoint"] == PAR
    assert doc["require_pushed_authorization_requests"] is True
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in doc["introspection_endpoint_auth_methods_supported"]


async def test_a_pushed_request_signs_in_once(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = env
    uri = await _pushed_uri(http, clock)
    approved = await _authorize(http, client_id="keyed", request_uri=uri)
    assert approved.status_code == 302
    query = parse_qs(urlsplit(approved.headers["location"]).query)
    assert query["state"] == ["s-1"]
    assert query["code"]
    reused = await _authorize(http, client_id="keyed", request_uri=uri)
    assert reused.status_code == 400
    assert "unknown, used or expired" in reused.text


async def test_a_plain_request_is_refused_when_par_is_required(
    env: tuple[DevIdP, httpx.AsyncClient],
) -> None:
    _, http = env
    refused = await _authorize(http, **_request())
    assert refused.status_code == 400
    assert "only by PAR" in refused.text
    assert "location" not in refused.headers


async def test_an_expired_request_uri_is_refused(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = env
    uri = await _pushed_uri(http, clock)
    clock.advance(61)
    assert (await _authorize(http, client_id="keyed", request_uri=uri)).status_code == 400


async def test_a_request_uri_of_another_client_is_refused_and_used_up(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = env
    uri = await _pushed_uri(http, clock)
    stolen = await _authorize(http, client_id="shared", request_uri=uri)
    assert stolen.status_code == 400
    assert "another client" in stolen.text
    assert (await _authorize(http, client_id="keyed", request_uri=uri)).status_code == 400


async def test_an_unknown_request_uri_is_refused(env: tuple[DevIdP, httpx.AsyncClient]) -> None:
    _, http = env
    made_up = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(32)
    assert (await _authorize(http, client_id="keyed", request_uri=made_up)).status_code == 400


async def test_the_sign_in_page_keeps_a_pushed_request_pushed(clock: FakeClock) -> None:
    idp = DevIdP(ISSUER, users=[DevUser(sub="ann")], clients=_clients(), clock=clock,
                 require_par=True)  # fmt: skip
    async with idp.http_client() as http:
        uri = await _pushed_uri(http, clock)
        page = await _authorize(http, client_id="keyed", request_uri=uri)
        assert page.status_code == 200
        assert uri not in page.text  # used up; the page carries a fresh one
        [fresh] = [u for u in idp.pushed if u in page.text]
        posted = await http.post(
            ISSUER + "/authorize", data={"client_id": "keyed", "request_uri": fresh, "login": "ann"}
        )
        assert posted.status_code == 302
        assert "code=" in posted.headers["location"]


async def test_a_shared_secret_client_and_a_public_client_may_push(
    env: tuple[DevIdP, httpx.AsyncClient],
) -> None:
    _, http = env
    basic = base64.b64encode(f"shared:{SECRET}".encode()).decode()
    shared = await _push(http, _request("shared"), authorization="Basic " + basic)
    assert shared.status_code == 201
    assert (await _push(http, _request("public"))).status_code == 201


def _assertion(clock: FakeClock, key: Any = KEY, **changes: Any) -> dict[str, str]:
    now = int(clock.time())
    claims = {"iss": "keyed", "sub": "keyed", "aud": PAR, "jti": uuid.uuid4().hex,
              "iat": now, "exp": now + 60, **changes}  # fmt: skip
    token = mint({k: v for k, v in claims.items() if v is not None}, key)
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}


HOSTILE = {
    "no client authentication": lambda c: {},
    "a wrong secret": lambda c: {"client_secret": "guess"},
    "an assertion for another audience": lambda c: _assertion(c, aud="https://rp.example"),
    "an expired assertion": lambda c: _assertion(c, exp=int(c.time()) - 1),
    "an assertion signed by another key": lambda c: _assertion(c, STRANGER),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_a_push_without_valid_client_authentication_is_refused(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock, case: str
) -> None:
    idp, http = env
    refused = await _push(http, {**_request("keyed"), **HOSTILE[case](clock)})
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    assert idp.pushed == {}


async def test_a_replayed_assertion_is_refused(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = env
    once = _assertion(clock)
    assert (await _push(http, {**_request(), **once})).status_code == 201
    assert (await _push(http, {**_request(), **once})).status_code == 401


@pytest.mark.parametrize("aud", [ISSUER, ISSUER + "/token", PAR])
async def test_rfc_9126_audiences_are_accepted_at_par(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock, aud: str
) -> None:
    _, http = env
    assert (await _push(http, {**_request(), **_assertion(clock, aud=aud)})).status_code == 201


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"request_uri": "urn:x"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
async def test_a_bad_pushed_request_is_refused_as_authorize_would(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock, change: dict[str, str], error: str
) -> None:
    idp, http = env
    form = {**_request(), **change}
    _auth(clock).apply(form, endpoint=PAR)
    refused = await _push(http, form)
    assert refused.status_code == 400
    assert refused.json()["error"] == error
    assert idp.pushed == {}


async def test_par_takes_post_only(env: tuple[DevIdP, httpx.AsyncClient]) -> None:
    _, http = env
    assert (await http.get(PAR)).status_code == 405


# -- keys by URL --------------------------------------------------------------------------------


def _serving(body: Any, status: int = 200) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "http://rp.example/jwks.json"
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _by_url_form(clock: FakeClock) -> dict[str, str]:
    key = load_client_key(json.dumps(KEY.as_dict(private=True)))
    auth = ClientAuth(client_id="by-url", method="private_key_jwt", key=key, clock=clock)
    form = _request("by-url")
    auth.apply(form, endpoint=PAR)
    return form


@pytest.mark.parametrize(
    ("served", "status", "outcome"),
    [
        ({"keys": [public_jwk(KEY)]}, 200, 201),
        ({"keys": [public_jwk(STRANGER)]}, 200, 401),
        ({"keys": [KEY.as_dict(private=True)]}, 200, 401),
        ({"keys": [public_jwk(KEY)]}, 500, 401),
        (b"not json", 200, 401),
        (b"[" * 100_000, 200, 401),
        ({"keys": []}, 200, 401),
    ],
    ids=["its-keys", "other-keys", "private-keys", "500", "garbage", "huge", "empty"],
)
async def test_a_client_registered_by_jwks_uri_is_checked_against_what_it_serves(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock, served: Any, status: int, outcome: int
) -> None:
    idp, http = env
    idp.jwks_client = _serving(served, status)
    response = await _push(http, _by_url_form(clock))
    assert response.status_code == outcome, response.text
    await idp.jwks_client.aclose()


async def test_a_client_registered_by_jwks_uri_may_not_use_a_secret(
    env: tuple[DevIdP, httpx.AsyncClient],
) -> None:
    _, http = env
    basic = base64.b64encode(b"by-url:anything").decode()
    refused = await _push(http, _request("by-url"), authorization="Basic " + basic)
    assert refused.status_code == 401
    assert "private_key_jwt" in refused.json()["error_description"]
    with pytest.raises(Exception, match="not a secret"):
        DevClient(client_id="c", client_secret="s", jwks_uri="https://rp.example/jwks")
    with pytest.raises(Exception, match="one of jwks, jwks_uri"):
        DevClient(client_id="c", jwks={"keys": [public_jwk(KEY)]}, jwks_uri="https://rp/j")


# -- introspection with a client key ------------------------------------------------------------


def _introspecting(http: httpx.AsyncClient, clock: FakeClock, key: Any) -> TokenVerifier:
    config = Introspection(client_id="keyed", client_key=Secret(key.as_pem(private=True)))
    issuer = Issuer(issuer=ISSUER, audience="api", introspection=config, allow_insecure_http=True)
    return TokenVerifier([issuer], client=http, clock=clock)


async def test_introspection_authenticates_with_a_client_key(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    idp, http = env
    idp.add_client(
        DevClient(client_id="keyed", jwks={"keys": [{**public_jwk(KEY), "kid": KEY.thumbprint()}]})
    )
    token = idp.issue_opaque_token("ann", audience="api")
    verified = await _introspecting(http, clock, KEY).verify(token)
    assert verified.subject == "ann"
    assert idp.requests["/introspect"] == 1
    assert idp.assertion_jtis  # the IdP checked the assertion (and keeps its jti)


async def test_introspection_with_a_key_the_idp_does_not_know_is_a_503(
    env: tuple[DevIdP, httpx.AsyncClient], clock: FakeClock
) -> None:
    idp, http = env
    token = idp.issue_opaque_token("ann", audience="api")
    with pytest.raises(ServiceUnavailable, match="HTTP 401"):
        await _introspecting(http, clock, STRANGER).verify(token)
