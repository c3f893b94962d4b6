"""A whole sign-in without any shared secret, over real loopback sockets.

The app (SSOMiddleware under uvicorn) and the DevIdP (under uvicorn) run on two
ports. The IdP knows the app's client only by its JWKS URL, requires pushed
authorization requests, and fetches the app's public key from
``/auth/jwks.json`` to check each ``private_key_jwt`` assertion: at ``/par``
and at ``/token``; or, as Entra ID does, only by an uploaded certificate that
each assertion names by thumbprint. A browser-less client follows the redirects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
from joserfc.jwk import ECKey

from asgi_sso import LoginConfig, Secret, SSOMiddleware
from asgi_sso.testing import ClientCertificate, DevClient, DevIdP, DevUser, free_port
from asgi_sso.testing.idp.server import serve_in_thread

KEY = ECKey.generate_key("P-256")  # made at test time, never stored


async def inner(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # the middleware starts and closes its clients here
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = msgspec.json.encode({"sub": scope["user"].identity})
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _two_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:  # free_port() may hand out one port twice
        second = free_port()
    return first, second


@contextmanager
def _serve(client_key: Secret, **registration: Any) -> Iterator[tuple[str, DevIdP]]:
    # The app's client "web" at the IdP: known by its JWKS URL, or by a certificate.
    idp_port, app_port = _two_ports()
    app_url = f"http://127.0.0.1:{app_port}"
    registration = registration or {"jwks_uri": app_url + "/auth/jwks.json"}
    idp = DevIdP(
        f"http://127.0.0.1:{idp_port}",
        users=[DevUser(sub="alice", email="alice@corp.example")],
        clients=[
            DevClient(client_id="web", redirect_uris=(app_url + "/auth/callback",), **registration)
        ],
        auto_approve=True,
        require_par=True,
    )
    app = SSOMiddleware(
        inner,
        [idp.issuer_config(audience="web")],
        login=LoginConfig(
            issuer=idp.issuer,
            client_id="web",
            client_key=client_key,
            token_endpoint_auth="private_key_jwt",
            cookie_secrets=(Secret(b"c" * 32),),
            redirect_uri=app_url + "/auth/callback",
            secure_cookies=False,  # plain http on loopback
        ),
    )
    with serve_in_thread(idp, idp.issuer), serve_in_thread(app, app_url, lifespan=True):
        yield app_url, idp


@pytest.fixture
def served() -> Iterator[tuple[str, DevIdP]]:
    with _serve(Secret(KEY.as_pem(private=True))) as pair:
        yield pair


async def _sign_in(browser: httpx.AsyncClient, app_url: str, idp: DevIdP) -> None:
    start = await browser.get(app_url + "/auth/login?return_to=/me")
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert authorize.startswith(idp.issuer + "/authorize?")
    assert set(parse_qs(urlsplit(authorize).query)) == {"client_id", "request_uri"}
    approved = await browser.get(authorize)
    assert approved.status_code == 302, approved.text
    back = await browser.get(approved.headers["location"])
    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/me"
    me = await browser.get(app_url + "/me")
    assert me.status_code == 200
    assert me.json() == {"sub": "alice"}


async def test_sign_in_with_a_client_key_and_par_over_real_sockets(
    served: tuple[str, DevIdP],
) -> None:
    app_url, idp = served
    async with httpx.AsyncClient(timeout=10) as browser:
        keys = (await browser.get(app_url + "/auth/jwks.json")).json()["keys"]
        assert [key["kid"] for key in keys] == [KEY.thumbprint()]
        assert "d" not in keys[0]
        await _sign_in(browser, app_url, idp)
    assert idp.requests["/par"] == 1
    assert idp.requests["/token"] == 1
    assert len(idp.assertion_jtis) == 2  # one assertion at /par, one at /token
    assert idp.fetched_jwks["web"]["keys"][0]["kid"] == KEY.thumbprint()


async def test_sign_in_with_a_certificate_credential_over_real_sockets() -> None:
    # As at Entra ID: the IdP holds only the uploaded certificate, and each assertion
    # (at /par and at /token) must name it by thumbprint.
    cert = ClientCertificate("web", key_type="RSA")
    key_and_certificate = Secret(cert.key_pem().decode() + cert.pem)
    with _serve(key_and_certificate, certificates=(cert.pem,)) as (app_url, idp):
        async with httpx.AsyncClient(timeout=10) as browser:
            await _sign_in(browser, app_url, idp)
            [jwk] = (await browser.get(app_url + "/auth/jwks.json")).json()["keys"]
    assert jwk["x5t#S256"] == cert.thumbprint
    assert idp.requests["/token"] == 1
    assert len(idp.assertion_jtis) == 2
