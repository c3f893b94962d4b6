"""LoginConfig refuses settings that would leak sessions, unless the user opts out."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso.config import Secret
from asgi_sso.errors import ConfigurationError
from asgi_sso.login.config import LoginConfig

COOKIE_KEY = Secret(b"k" * 32)


def login(**changes: Any) -> LoginConfig:
    settings: dict[str, Any] = {
        "issuer": "https://idp.example",
        "client_id": "web",
        "client_secret": Secret("web-secret"),
        "cookie_secrets": (COOKIE_KEY,),
    }
    return LoginConfig(**{**settings, **changes})


def test_secure_cookies_with_a_plain_http_redirect_are_refused() -> None:
    # Browsers never send a Secure cookie back over http: sign-in would loop forever.
    with pytest.raises(ConfigurationError, match="set secure_cookies=False for http://localhost"):
        login(redirect_uri="http://localhost:8000/auth/callback")


def test_plain_http_on_localhost_with_insecure_cookies_needs_no_switch() -> None:
    config = login(redirect_uri="http://localhost:8000/auth/callback", secure_cookies=False)
    assert config.unsafe_choices == ()
    config = login(redirect_uri="http://127.0.0.1:8000/cb", secure_cookies=False,
                   post_logout_redirect_uri="http://127.0.0.1:8000/")  # fmt: skip
    assert config.unsafe_choices == ()


@pytest.mark.parametrize(
    "changes",
    [
        {"redirect_uri": "http://app.lan:8000/auth/callback", "secure_cookies": False},
        {"post_logout_redirect_uri": "http://app.example.com/"},
        {"redirect_uri": "https://app.example.com/auth/callback", "secure_cookies": False},
    ],
)
def test_what_would_cross_the_network_in_clear_is_refused_unless_allowed(
    changes: dict[str, Any],
) -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_http=True"):
        login(**changes)
    allowed = login(allow_insecure_http=True, **changes)
    assert allowed.unsafe_choices
    assert all("allow_insecure_http=True" in choice for choice in allowed.unsafe_choices)


def test_https_needs_no_switch_and_the_switch_alone_says_nothing() -> None:
    assert login(redirect_uri="https://app.example.com/cb").unsafe_choices == ()
    assert login(allow_insecure_http=True).unsafe_choices == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scopes": "openid email"}, r"LoginConfig.scopes takes a list of str, got a single str"),
        ({"cookie_secrets": "k" * 32}, r"LoginConfig.cookie_secrets takes a list of Secret"),
        ({"cookie_secrets": ["k" * 32]}, r"an entry that is a str: wrap it, Secret\(\.\.\.\)"),
        ({"client_secret": {"value": "s"}}, r"LoginConfig.client_secret takes a Secret or None"),
        ({"client_secret": "web-secret"}, r"got a str: wrap it, Secret\(\.\.\.\)"),
        ({"secure_cookies": "false"}, r"LoginConfig.secure_cookies takes a bool, got a str"),
        ({"token_endpoint_auth": "basic"}, r"LoginConfig.token_endpoint_auth takes one of"),
        ({"extra_authorize_params": {"prompt": 1}}, r"extra_authorize_params takes a mapping"),
        ({"discovery_page": "<html>"}, r"LoginConfig.discovery_page takes a callable or None"),
        ({"session_lifetime": "8h"}, r"LoginConfig.session_lifetime takes a float"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        login(**changes)
    assert "web-secret" not in str(caught.value)
    assert "k" * 32 not in str(caught.value)
