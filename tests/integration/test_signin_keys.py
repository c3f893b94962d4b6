"""Sign-in without shared secrets, in process: private_key_jwt, the app's JWKS, and PAR (RFC 9126).

The app (BrowserLogin) signs in at the DevIdP with a key made at test time; the
DevIdP knows only its public half, registered inline or fetched from the app's
``{prefix}/jwks.json``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
from _browser_env import APP, IDP, Env, Forward, web_client
from joserfc.jwk import ECKey, RSAKey

from _jwt import header_of
from asgi_sso._log import Throttle
from asgi_sso.config import Secret
from asgi_sso.connections import Connection
from asgi_sso.connections.directory import ConnectionDirectory
from asgi_sso.login import oidc
from asgi_sso.login.providers import Providers
from asgi_sso.sessions import MemorySessionStore
from asgi_sso.testing import ClientCertificate, FakeClock

RSA = RSAKey.generate_key(2048)
EC = ECKey.generate_key("P-256")
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _pem(key: Any) -> Secret:
    return Secret(key.as_pem(private=True))


def _registered(key: Any) -> dict[str, Any]:
    return {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}


def keyed_env(clock: FakeClock, key: Any = EC, **options: Any) -> Env:
    """The app's client ``web`` authenticates with ``key``; the IdP has only its public half."""
    options.setdefault("client", web_client(jwks=_registered(key)))
    options.setdefault("client_key", _pem(key))
    return Env(clock, client_secret=None, token_endpoint_auth="private_key_jwt", **options)


def record_forms(env: Env, path: str) -> list[tuple[dict[str, str], httpx.Headers]]:
    """Every form the app posts to the IdP's ``path``, with the request headers."""
    seen: list[tuple[dict[str, str], httpx.Headers]] = []

    async def spy(request: httpx.Request, forward: Forward) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        seen.append((form, request.headers))
        return await forward(request)

    env.overrides[path] = spy
    return seen


def _claims(assertion: str) -> dict[str, Any]:
    payload = assertion.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return result


# -- private_key_jwt for the default provider ---------------------------------------------------


async def test_the_default_provider_signs_in_and_refreshes_with_a_client_key(
    clock: FakeClock,
) -> None:
    env = keyed_env(clock, store=MemorySessionStore(clock=clock), scopes=("openid", "email"))
    forms = record_forms(env, "/token")
    assert (await env.sign_in()).status_code == 303
    assert (await env.get("/reports")).json()["sub"] == "alice"
    clock.advance(250)  # the tokens are due: refresh with a fresh assertion
    assert (await env.get("/reports")).status_code == 200
    grants = [form["grant_type"] for form, _ in forms]
    assert grants == ["authorization_code", "refresh_token"]
    for form, headers in forms:
        assert "client_secret" not in form
        assert "authorization" not in headers
        claims = _claims(form["client_assertion"])
        assert claims["aud"] == IDP + "/token"
        assert claims["iss"] == claims["sub"] == "web"
    assert len({_claims(form["client_assertion"])["jti"] for form, _ in forms}) == 2


async def test_a_key_the_idp_does_not_know_cannot_sign_in(clock: FakeClock) -> None:
    env = keyed_env(clock, client=web_client(jwks=_registered(RSA)))
    refused = await env.callback(await env.start())
    assert refused.status_code == 400
    assert "invalid_client" in refused.text
    assert not env.session_cookies()


# -- the app's public keys ----------------------------------------------------------------------


@pytest.mark.parametrize("key", [RSA, EC], ids=["rsa", "ec"])
async def test_the_jwks_holds_the_public_half_with_the_kid_assertions_name(
    clock: FakeClock, key: Any
) -> None:
    env = keyed_env(clock, key=key, client=web_client(jwks=_registered(key)))
    response = await env.get("/auth/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["content-type"] == "application/json"
    [jwk] = response.json()["keys"]
    assert not PRIVATE_MEMBERS & set(jwk)
    assert jwk["kid"] == key.thumbprint()
    assert jwk["use"] == "sig"
    # An RSA key read from PEM signs RS256 or PS256: its JWK names neither.
    assert jwk.get("alg") == (None if key is RSA else "ES256")
    forms = record_forms(env, "/token")
    await env.sign_in()
    header = forms[0][0]["client_assertion"].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["kid"] == jwk["kid"]
    head = await env.request("HEAD", "/auth/jwks.json", {})
    assert head.status_code == 200
    assert head.content == b""


async def test_no_jwks_without_a_client_key(clock: FakeClock) -> None:
    env = Env(clock)
    response = await env.get("/auth/jwks.json")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert (await env.request("POST", "/auth/jwks.json", {})).status_code == 405


async def test_the_idp_fetches_the_client_keys_from_the_app(clock: FakeClock) -> None:
    env = keyed_env(clock, client=web_client(jwks_uri=APP + "/auth/jwks.json"))
    env.idp.jwks_client = env.app
    assert (await env.sign_in()).status_code == 303
    assert env.session_cookies()
    assert "web" in env.idp.fetched_jwks


def _connection(name: str, key: Any, *, enabled: bool = True) -> Connection:
    return Connection(
        id=name,
        issuer=f"https://{name}.example",
        client_id=f"app-at-{name}",
        client_key=_pem(key),
        token_endpoint_auth="private_key_jwt",
        domains=(f"{name}.example",),
        enabled=enabled,
    )


class _Live:
    """Stands in for LiveConnections: only its current ``directory`` is read."""

    admitting = None  # never in the middle of a load

    def __init__(self, *connections: Connection) -> None:
        self.directory = ConnectionDirectory(connections)


def test_the_jwks_holds_every_enabled_connection_key_and_follows_changes(
    clock: FakeClock,
) -> None:
    env = keyed_env(clock)
    other = RSAKey.generate_key(2048)
    live = _Live(_connection("acme", RSA), _connection("off", other, enabled=False))
    providers = Providers(env.login.config, connections=live, clock=clock)  # type: ignore[arg-type]

    def kids() -> set[str]:
        document = providers.jwks()
        assert document is not None
        keys = json.loads(document)["keys"]
        assert all(not PRIVATE_MEMBERS & set(k) for k in keys)
        return {k["kid"] for k in keys}

    assert kids() == {EC.thumbprint(), RSA.thumbprint()}
    live.directory = live.directory.replaced(_connection("off", other))
    assert kids() == {EC.thumbprint(), RSA.thumbprint(), other.thumbprint()}
    live.directory = ConnectionDirectory()
    assert kids() == {EC.thumbprint()}


# -- certificate credentials (Entra ID) and published keys ------------------------------------


def _with_certificate(cert: ClientCertificate) -> Secret:
    return Secret(cert.key_pem().decode() + cert.pem)


def certificate_env(
    clock: FakeClock, registered: ClientCertificate, client_key: Secret, **options: Any
) -> Env:
    """The IdP knows the client ``web`` by ``registered`` only, as Entra ID does."""
    return Env(
        clock,
        client=web_client(certificates=(registered.pem,)),
        client_secret=None,
        client_key=client_key,
        token_endpoint_auth="private_key_jwt",
        **options,
    )


async def test_a_key_with_its_certificate_signs_in_where_the_certificate_is_registered(
    clock: FakeClock,
) -> None:
    cert = ClientCertificate("web-app", key_type="RSA")
    env = certificate_env(clock, cert, _with_certificate(cert))
    forms = record_forms(env, "/token")
    assert (await env.sign_in()).status_code == 303
    assert env.session_cookies()
    header = header_of(forms[0][0]["client_assertion"])
    assert header["x5t#S256"] == cert.thumbprint
    [jwk] = (await env.get("/auth/jwks.json")).json()["keys"]
    assert jwk["x5c"] == [base64.b64encode(cert.der).decode()]
    assert jwk["x5t#S256"] == cert.thumbprint
    assert jwk["kid"] == header["kid"]


async def test_a_key_without_its_certificate_cannot_sign_in_at_a_certificate_client(
    clock: FakeClock,
) -> None:
    cert = ClientCertificate("web-app", key_type="RSA")
    env = certificate_env(clock, cert, Secret(cert.key_pem()))
    refused = await env.callback(await env.start())
    assert refused.status_code == 400
    assert "invalid_client" in refused.text
    assert not env.session_cookies()


async def test_published_keys_follow_the_signing_key_in_the_jwks(clock: FakeClock) -> None:
    cert = ClientCertificate("next")
    old = RSAKey.generate_key(2048)
    env = keyed_env(
        clock,
        published_keys=(_with_certificate(cert), Secret(old.as_pem(private=False))),
    )
    keys = (await env.get("/auth/jwks.json")).json()["keys"]
    assert [k["kid"] for k in keys] == [
        EC.thumbprint(),
        ECKey.import_key(cert.key_pem()).thumbprint(),
        old.thumbprint(),
    ]
    assert keys[1]["x5t#S256"] == cert.thumbprint
    assert all(not PRIVATE_MEMBERS & set(k) for k in keys)
    forms = record_forms(env, "/token")
    assert (await env.sign_in()).status_code == 303
    signed_by = header_of(forms[0][0]["client_assertion"])["kid"]
    assert signed_by == EC.thumbprint()  # only the client_key signs


def test_a_connection_publishes_its_next_key_after_its_own(clock: FakeClock) -> None:
    env = keyed_env(clock)
    nxt = ECKey.generate_key("P-256")
    acme = msgspec.structs.replace(
        _connection("acme", RSA), published_keys=(nxt.as_pem(private=False).decode(),)
    )
    providers = Providers(env.login.config, connections=_Live(acme), clock=clock)  # type: ignore[arg-type]
    assert providers.problem(acme) is None
    document = providers.jwks()
    assert document is not None
    kids = [k["kid"] for k in json.loads(document)["keys"]]
    assert kids == [EC.thumbprint(), RSA.thumbprint(), nxt.thumbprint()]
    again = msgspec.structs.replace(acme, published_keys=(RSA.as_pem(private=False).decode(),))
    assert "repeat a kid" in str(providers.problem(again))


def _expired() -> ClientCertificate:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    return ClientCertificate("expired", key_type="RSA", not_after=past)


def test_an_expired_certificate_is_logged_when_the_app_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert = _expired()
    now = FakeClock(start=time.time())
    with caplog.at_level(logging.WARNING, logger="asgi_sso"):
        Env(now, client_secret=None, client_key=_with_certificate(cert),
            token_endpoint_auth="private_key_jwt")  # fmt: skip
    [record] = [r for r in caplog.records if "certificate" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "LoginConfig.client_key" in record.getMessage()
    assert "expired on" in record.getMessage()
    assert cert.thumbprint in record.getMessage()
    assert "PRIVATE" not in caplog.text


def test_a_connection_key_with_an_expired_certificate_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert = _expired()
    now = FakeClock(start=time.time())
    env = keyed_env(now)
    connection = msgspec.structs.replace(
        _connection("acme", RSA), client_key=_with_certificate(cert)
    )
    providers = Providers(env.login.config, connections=_Live(connection), clock=now)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="asgi_sso"):
        assert providers.jwks() is not None
        assert providers.connection("acme") is not None
    messages = [r.getMessage() for r in caplog.records if "certificate" in r.getMessage()]
    assert len(messages) == 1
    assert messages[0].startswith("connection 'acme': client_key: the certificate")


# -- PAR ----------------------------------------------------------------------------------------


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _authorize_location(env: Env) -> httpx.Response:
    return await env.get("/auth/login?return_to=/x")


@pytest.mark.parametrize(
    ("par", "require", "pushed"),
    [("auto", False, False), ("auto", True, True), ("always", False, True),
     ("never", False, False)],
)  # fmt: skip
async def test_par_is_used_when_asked_or_required(
    clock: FakeClock, par: str, require: bool, pushed: bool
) -> None:
    env = Env(clock, par=par, idp_options={"require_par": require})
    forms = record_forms(env, "/par")
    response = await _authorize_location(env)
    assert response.status_code == 302
    query = _query(response.headers["location"])
    if pushed:
        assert set(query) == {"client_id", "request_uri"}
        [(form, headers)] = forms
        assert {"state", "nonce", "code_challenge", "redirect_uri", "scope"} <= set(form)
        assert headers["authorization"].startswith("Basic ")
    else:
        assert "request_uri" not in query
        assert {"state", "code_challenge"} <= set(query)
        assert forms == []
    back = await env.http.get(response.headers["location"])
    assert back.status_code == 302
    assert (await env.callback(str(back.headers["location"]))).status_code == 303


async def test_never_pushing_to_a_provider_that_requires_it_is_refused_there(
    clock: FakeClock,
) -> None:
    env = Env(clock, par="never", idp_options={"require_par": True})
    response = await _authorize_location(env)
    refused = await env.http.get(response.headers["location"])
    assert refused.status_code == 400
    assert "PAR" in refused.text


async def test_par_with_private_key_jwt_names_the_par_endpoint(clock: FakeClock) -> None:
    env = keyed_env(clock, par="always")
    forms = record_forms(env, "/par")
    assert (await env.sign_in()).status_code == 303
    [(form, headers)] = forms
    assert "authorization" not in headers
    assert _claims(form["client_assertion"])["aud"] == IDP + "/par"


def _discovery(change: Callable[[dict[str, Any]], None]) -> Any:
    async def rewrite(request: httpx.Request, forward: Forward) -> httpx.Response:
        document = (await forward(request)).json()
        change(document)
        return httpx.Response(200, json=document)

    return rewrite


@pytest.mark.parametrize(
    ("par", "change"),
    [
        ("always", lambda d: d.pop("pushed_authorization_request_endpoint")),
        ("auto", lambda d: d.update(require_pushed_authorization_requests=True)
         or d.pop("pushed_authorization_request_endpoint")),
    ],
    ids=["always", "required"],
)  # fmt: skip
async def test_par_wanted_without_an_endpoint_is_a_503(
    clock: FakeClock,
    par: str,
    change: Callable[[dict[str, Any]], None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oidc, "_trouble", Throttle())  # each case logs afresh
    env = Env(clock, par=par)
    env.overrides["/.well-known/openid-configuration"] = _discovery(change)
    response = await _authorize_location(env)
    assert response.status_code == 503
    assert "pushed authorization" in response.json()["error_description"]
    assert "pushed_authorization_request_endpoint" in caplog.text
    assert not any("sso_state" in name for name in env.cookies)


async def test_a_plain_http_par_endpoint_elsewhere_is_refused(clock: FakeClock) -> None:
    env = Env(clock, par="always")
    env.overrides["/.well-known/openid-configuration"] = _discovery(
        lambda d: d.update(pushed_authorization_request_endpoint="http://evil.example/par")
    )
    response = await _authorize_location(env)
    assert response.status_code == 503, response.text
    assert "pushed_authorization_request_endpoint must be an https URL" in response.text
    assert env.idp.requests["/par"] == 0


async def _slow(request: httpx.Request, forward: Forward) -> httpx.Response:
    await asyncio.sleep(5)
    return httpx.Response(201, json={"request_uri": "urn:x"})


BAD_PAR = {
    "500": (lambda r, f: _answer(httpx.Response(500, text="oops")), 503),
    "429": (lambda r, f: _answer(httpx.Response(429)), 503),
    "invalid_client": (
        lambda r, f: _answer(httpx.Response(401, json={"error": "invalid_client"})),
        502,
    ),
    "html": (lambda r, f: _answer(httpx.Response(201, text="<html>")), 502),
    "no request_uri": (lambda r, f: _answer(httpx.Response(201, json={"expires_in": 60})), 502),
    "request_uri not a string": (
        lambda r, f: _answer(httpx.Response(201, json={"request_uri": 7})),
        502,
    ),
    "request_uri with a space": (
        lambda r, f: _answer(httpx.Response(201, json={"request_uri": "urn:a b"})),
        502,
    ),
    "request_uri too long": (
        lambda r, f: _answer(httpx.Response(201, json={"request_uri": "u" * 5000})),
        502,
    ),
    "huge body": (lambda r, f: _answer(httpx.Response(201, content=b"{" + b" " * 2_000_000)), 502),
    "odd error code": (
        lambda r, f: _answer(httpx.Response(400, json={"error": "<script>\r\n"})),
        502,
    ),
    "timeout": (_slow, 503),
}


async def _answer(response: httpx.Response) -> httpx.Response:
    return response


@pytest.mark.parametrize("case", sorted(BAD_PAR))
async def test_a_failing_par_endpoint_is_an_error_page_never_a_500(
    clock: FakeClock, case: str
) -> None:
    env = Env(clock, par="always", http_timeout=0.5)
    handler, status = BAD_PAR[case]
    env.overrides["/par"] = handler
    response = await env.get("/auth/login", accept="text/html")
    assert response.status_code == status, response.text
    assert "Sign-in failed" in response.text
    assert "<script>" not in response.text
    assert not any("sso_state" in name for name in env.cookies)


# -- the assertion's algorithm follows what the provider takes ---------------------------------


async def test_an_rsa_key_signs_ps256_at_a_provider_taking_only_ps256(clock: FakeClock) -> None:
    env = keyed_env(
        clock,
        key=RSA,
        store=MemorySessionStore(clock=clock),
        idp_options={"assertion_algorithms": ("PS256",)},
    )
    forms = record_forms(env, "/token")
    assert (await env.sign_in()).status_code == 303
    assert (await env.get("/reports")).json()["sub"] == "alice"
    clock.advance(250)  # the refresh signs PS256 too
    assert (await env.get("/reports")).status_code == 200
    assert [header_of(form["client_assertion"])["alg"] for form, _ in forms] == ["PS256"] * 2


async def test_an_rsa_key_signs_rs256_where_the_provider_takes_both(clock: FakeClock) -> None:
    env = keyed_env(clock, key=RSA)
    forms = record_forms(env, "/token")
    assert (await env.sign_in()).status_code == 303
    assert header_of(forms[0][0]["client_assertion"])["alg"] == "RS256"


async def test_ps256_with_its_certificate_signs_in_as_entra_id_asks(clock: FakeClock) -> None:
    cert = ClientCertificate("web-app", key_type="RSA")
    env = certificate_env(
        clock, cert, _with_certificate(cert), idp_options={"assertion_algorithms": ("PS256",)}
    )
    forms = record_forms(env, "/token")
    assert (await env.sign_in()).status_code == 303
    header = header_of(forms[0][0]["client_assertion"])
    assert (header["alg"], header["x5t#S256"]) == ("PS256", cert.thumbprint)


async def test_a_provider_taking_no_algorithm_the_key_signs_fails_sign_in_before_the_idp(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc, "_trouble", Throttle())
    env = keyed_env(clock, key=RSA, idp_options={"assertion_algorithms": ("ES256",)})
    response = await _authorize_location(env)
    assert response.status_code == 502, response.text
    assert "RS256" in response.json()["error_description"]
    assert "ES256" in caplog.text
    assert env.idp.requests["/authorize"] == 0
    assert not any("sso_state" in name for name in env.cookies)


async def test_a_jwk_bound_to_rs256_fails_at_a_ps256_only_provider(clock: FakeClock) -> None:
    bound = Secret(json.dumps({**RSA.as_dict(private=True), "alg": "RS256"}))
    env = keyed_env(
        clock, key=RSA, client_key=bound, idp_options={"assertion_algorithms": ("PS256",)}
    )
    response = await _authorize_location(env)
    assert response.status_code == 502
    assert env.idp.requests["/token"] == 0
