"""The sign-in provider must be one exact trusted issuer, or the middleware refuses to start."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso import Issuer, LoginConfig, Secret, SSOMiddleware
from asgi_sso.connections import Connection
from asgi_sso.errors import ConfigurationError

SIGN_IN = "https://login.example/acme/v2.0"


async def inner(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")


def login() -> LoginConfig:
    return LoginConfig(
        issuer=SIGN_IN,
        client_id="web-client",
        client_secret=Secret("web-client-secret-web-client-secret"),
        cookie_secrets=(Secret(b"k" * 32),),
    )


@pytest.mark.parametrize(
    "issuer",
    [
        # A template matching the sign-in issuer: its ID tokens would open the API
        # (the Issuer never learns the client id), and every sign-in would fail.
        Issuer(
            issuer="https://login.example/{tenant}/v2.0",
            audience="web-client",
            jwks_uri="https://login.example/{tenant}/keys",
        ),
        Issuer(issuer="https://other.example", audience="web-client"),
    ],
)
def test_a_sign_in_issuer_that_is_not_an_exact_trusted_issuer_is_refused(issuer: Issuer) -> None:
    with pytest.raises(ConfigurationError, match=r"LoginConfig\.issuer"):
        SSOMiddleware(inner, issuers=[issuer], login=login())


def test_sign_in_without_a_default_provider_needs_connections() -> None:
    bare = LoginConfig(cookie_secrets=(Secret(b"k" * 32),))
    api = Issuer(issuer="https://api-idp.example", audience="api://x")
    with pytest.raises(ConfigurationError, match=r"connections=\.\.\..*LoginConfig\.issuer"):
        SSOMiddleware(inner, issuers=[api], login=bare)
    acme = Connection(
        id="acme",
        issuer="https://acme.example",
        client_id="app",
        client_secret=Secret("app-secret"),
        domains=("acme.test",),
    )
    app = SSOMiddleware(inner, connections=[acme], login=bare)
    assert app.login is not None
    assert app.login.providers.default is None
    assert app.backchannel is not None
    assert app.backchannel.config.issuer is None
