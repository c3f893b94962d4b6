"""Over any Origin, Sec-Fetch-Site and Referer values and methods: cookies need the origin.

A cookie-authenticated request (the session cookie, or a JWT in a configured
cookie) is answered 200 exactly when the method is safe or the headers show the
app's own or an allowed origin, else 403; a bearer request is always answered 200.
Never a 500.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso import CredentialSources, LoginConfig, Secret, SSOMiddleware
from asgi_sso._asgi import origin_of
from asgi_sso.testing import DevClient, DevIdP, DevUser

APP = "http://app.test"
ALLOWED = "https://admin.example"
OWN = {APP, ALLOWED}
SAFE = {"GET", "HEAD", "OPTIONS", "TRACE"}
IDP = DevIdP(
    "http://idp.test",
    users=[DevUser(sub="alice")],
    clients=[DevClient(client_id="web", client_secret="web-secret-web-secret",
                       redirect_uris=(APP + "/auth/callback",))],
    auto_approve=True,
)  # fmt: skip
LOOP = asyncio.new_event_loop()


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["user"].source.encode()})


SSO = SSOMiddleware(
    ok,
    [IDP.issuer_config(audience=("web", "api://props"))],
    http_client=IDP.http_client(),
    sources=CredentialSources(cookie_names=["access_token"], allowed_origins=[ALLOWED]),
    login=LoginConfig(issuer=IDP.issuer, client_id="web",
                      client_secret=Secret("web-secret-web-secret"),
                      cookie_secrets=(Secret(b"k" * 32),), secure_cookies=False),
)  # fmt: skip


async def _sign_in() -> str:
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=SSO), base_url=APP) as web,
        IDP.http_client(base_url=IDP.issuer) as at_idp,
    ):
        start = await web.get("/auth/login")
        back = await at_idp.get(start.headers["location"])
        await web.get(back.headers["location"].removeprefix(APP))
        return "; ".join(f"{k}={v}" for k, v in web.cookies.items() if k.startswith("sso_session"))


TOKEN = IDP.issue_token("alice", audience="api://props", expires_in=10**8)
CREDENTIALS = {
    "session": (b"cookie", LOOP.run_until_complete(_sign_in()).encode()),
    "cookie": (b"cookie", b"access_token=" + TOKEN.encode()),
    "header": (b"authorization", b"Bearer " + TOKEN.encode()),
}


def call(method: str, credential: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "scheme": "http", "path": "/x", "root_path": "",
             "query_string": b"", "headers": [(b"host", b"app.test"), CREDENTIALS[credential],
                                              *headers]}  # fmt: skip
    LOOP.run_until_complete(SSO(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def expected(method: str, origin: str | None, site: str | None, referer: str | None) -> bool:
    """The rule, written out once more: does a cookie-authenticated request pass?"""
    if method in SAFE:
        return True
    if origin is not None and origin.strip().lower() == "null":
        return False
    if site is not None and site.strip().lower() == "same-origin":
        return True
    if origin is not None:
        return origin_of(origin) in OWN
    if site is not None:
        return False
    return bool(referer) and origin_of(referer or "") in OWN


_latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
_origins = st.one_of(
    st.none(),
    st.sampled_from(
        [
            APP,
            "HTTP://APP.TEST:80",
            ALLOWED,
            "https://evil.example",
            "null",
            "NULL",
            "http://app.test.evil.example",
            "http://app.test:8080",
            "https://app.test",
            "http://[::1",
            "http://app.test:99999",
            "",
        ]
    ),
    _latin1,
)
_sites = st.one_of(
    st.none(), st.sampled_from(["same-origin", "same-site", "cross-site", "none"]), _latin1
)
_referers = st.one_of(
    st.none(), st.sampled_from([APP + "/page", "https://evil.example/?" + APP, "http://[::1"]),
    _latin1,
)  # fmt: skip
_methods = st.sampled_from(["GET", "HEAD", "OPTIONS", "TRACE", "POST", "PUT", "PATCH", "DELETE",
                            "PROPFIND", "post"])  # fmt: skip


@given(_methods, _origins, _sites, _referers, st.sampled_from(sorted(CREDENTIALS)))
@example("POST", None, None, None, "session")
@example("DELETE", "null", "same-origin", None, "cookie")
@example("PUT", None, None, "http://[::1", "session")
@example("PATCH", APP, "cross-site", None, "session")
def test_cookies_need_the_origin_and_bearers_do_not(
    method: str, origin: str | None, site: str | None, referer: str | None, credential: str
) -> None:
    headers = [
        (name, value.encode("latin-1"))
        for name, value in ((b"origin", origin), (b"sec-fetch-site", site), (b"referer", referer))
        if value is not None
    ]
    status, body = call(method, credential, headers)
    if credential == "header" or expected(method, origin, site, referer):
        assert (status, body) == (200, credential.encode()), body
    else:
        assert status == 403, body
        assert b"must come from this app's origin" in body
