"""The same-origin rule for cookie-authenticated requests, logout included."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso._asgi import OriginGuard, origin_of, origins_of
from asgi_sso.errors import ConfigurationError, CrossOriginRequest

APP = "https://app.example"


def scope(method: str = "POST", kind: str = "http", **headers: str) -> dict[str, Any]:
    raw = [(b"host", b"app.example")]
    raw += [(k.replace("_", "-").encode(), v.encode("latin-1")) for k, v in headers.items()]
    return {"type": kind, "method": method, "scheme": "https", "headers": raw}


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"origin": APP}, True),
        ({"origin": "https://APP.example:443"}, True),
        ({"origin": "https://admin.example"}, True),  # configured
        ({"origin": "https://evil.example"}, False),
        ({"origin": "http://app.example"}, False),  # another scheme is another origin
        ({"origin": "https://app.example:8443"}, False),
        ({"origin": "https://app.example.evil.example"}, False),
        ({"origin": "null"}, False),
        ({"origin": "null", "sec_fetch_site": "same-origin"}, False),
        ({"sec_fetch_site": "same-origin"}, True),
        ({"sec_fetch_site": "same-origin", "origin": "https://proxy-view.example"}, True),
        ({"sec_fetch_site": "same-site"}, False),
        ({"sec_fetch_site": "cross-site"}, False),
        ({"sec_fetch_site": "none"}, False),
        ({"sec_fetch_site": "same-site", "origin": "https://admin.example"}, True),
        ({"sec_fetch_site": "cross-site", "origin": "https://evil.example"}, False),
        ({"referer": APP + "/page?x=1"}, True),
        ({"referer": "https://evil.example/" + APP}, False),
        ({"referer": "http://[::1"}, False),  # unparsable: refused, not a 500
        ({"referer": "https://app.example:99999/"}, False),
        ({"sec_fetch_site": "cross-site", "referer": APP + "/"}, False),
        ({}, False),
    ],
)
def test_the_rule(headers: dict[str, str], allowed: bool) -> None:
    guard = OriginGuard(["https://admin.example"])
    assert guard.allows(scope(**headers)) is allowed
    if allowed:
        guard.check(scope(**headers))
    else:
        with pytest.raises(CrossOriginRequest) as caught:
            guard.check(scope(**headers))
        assert caught.value.status == 403
        assert "origin" in caught.value.description


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_are_not_checked(method: str) -> None:
    OriginGuard().check(scope(method, origin="https://evil.example"))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "get"])
def test_every_other_method_is_checked(method: str) -> None:
    with pytest.raises(CrossOriginRequest):
        OriginGuard().check(scope(method, origin="https://evil.example"))


def test_a_websocket_handshake_is_checked_though_it_is_a_get() -> None:
    guard = OriginGuard()
    ws = {**scope(kind="websocket", origin="https://evil.example"), "scheme": "wss"}
    del ws["method"]
    with pytest.raises(CrossOriginRequest):
        guard.check(ws)
    guard.check({**ws, "headers": [(b"host", b"app.example"), (b"origin", APP.encode())]})


def test_the_switch_turns_the_check_off_but_not_the_rule() -> None:
    guard = OriginGuard(enabled=False)
    guard.check(scope(origin="https://evil.example"))
    assert not guard.allows(scope(origin="https://evil.example"))


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://App.Example:443/cb", "https://app.example"),
        ("http://app.example:80", "http://app.example"),
        ("http://app.example:8080/x", "http://app.example:8080"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
        ("ftp://app.example", None),
        ("null", None),
        ("https://", None),
        ("http://[::1", None),
        ("https://app.example:99999", None),
    ],
)
def test_origin_of_serializes_like_browsers(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_origins_of_skips_what_is_not_an_http_url() -> None:
    assert origins_of([None, "https://app.example/auth/callback", "junk"]) == (APP,)


@pytest.mark.parametrize(
    "value", ["app.example", "https://app.example/path", "ftp://x", "https://u:p@app.example", ""]
)
def test_bad_allowed_origins_fail_when_built(value: str) -> None:
    with pytest.raises(ConfigurationError):
        OriginGuard([value])
