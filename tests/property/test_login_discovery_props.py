"""Whatever query reaches ``/auth/login`` or ``/auth/callback``: a 2xx/3xx/4xx, never a 500.

``/auth/login`` picks exactly the enabled connection owning the email, domain or
id asked for, or answers the page (200 without a question, 404 for every value
naming nothing usable, 400 for an unreadable query) with nothing of the input
turned into markup. ``/auth/callback`` refuses every forged answer, with or
without a real pending sign-in behind it.
"""

from __future__ import annotations

import asyncio
import unicodedata
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asgi_sso import LoginConfig, Secret, SSOMiddleware
from asgi_sso.connections import Connection, domain_of, normalize_domain
from asgi_sso.login import DiscoveryPage
from asgi_sso.login.discovery import NOT_SET_UP, render_page
from asgi_sso.testing import DevClient, DevIdP, DevUser
from asgi_sso.testing.strategies import hostile_return_to

APP = "http://app.test"
SECRET = "client-secret-for-property-tests"


def _idp(domain: str) -> DevIdP:
    redirect_uris = (APP + "/auth/callback",)
    client = DevClient(client_id="app", client_secret=SECRET, redirect_uris=redirect_uris)
    return DevIdP(None, users=[DevUser(sub="u", email=f"u@{domain}")], clients=[client],
                  auto_approve=True)  # fmt: skip


ACME, GLOBEX = _idp("acme.test"), _idp("globex.test")
CONNECTIONS = [
    Connection(id="acme", issuer=ACME.issuer, client_id="app", client_secret=Secret(SECRET),
               domains=("acme.test",)),
    Connection(id="globex", issuer=GLOBEX.issuer, client_id="app", client_secret=Secret(SECRET),
               domains=("globex.test", "xn--bcher-kva.example")),
    Connection(id="off", issuer="https://idp.off.example", client_id="app",
               client_secret=Secret(SECRET), domains=("off.test",), enabled=False),
    Connection(id="api-only", issuer="https://idp.api.example", audience=("api://x",),
               domains=("api.test",)),
]  # fmt: skip
SIGNS_IN = {c.id: c for c in CONNECTIONS if c.enabled and c.client_id is not None}
AUTHORIZE = {ACME.url("/authorize"): "acme", GLOBEX.url("/authorize"): "globex"}


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


HTTP = ACME.http_client(mounts={GLOBEX.origin: httpx.ASGITransport(app=GLOBEX)})
SITE = SSOMiddleware(
    ok,
    connections=CONNECTIONS,
    login=LoginConfig(cookie_secrets=(Secret(b"p" * 32),), secure_cookies=False),
    http_client=HTTP,
    prefetch=False,
)
LOOP = asyncio.new_event_loop()


class Response(msgspec.Struct):
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


def call(path: str, query: bytes, accept: str, cookie: str = "") -> Response:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"app.test"), (b"accept", accept.encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {"type": "http", "method": "GET", "path": path, "scheme": "http",
             "headers": headers, "query_string": query, "client": ("127.0.0.1", 1)}  # fmt: skip
    LOOP.run_until_complete(SITE(scope, receive, send))
    head = [(k.decode(), v.decode("latin-1")) for k, v in sent[0]["headers"]]
    return Response(sent[0]["status"], head, b"".join(m.get("body", b"") for m in sent[1:]))


class Tags(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


PAGE_TAGS = {"html", "head", "meta", "title", "body", "main", "h1", "p", "form", "label", "input",
             "button", "strong"}  # fmt: skip


def check_page(response: Response) -> None:
    """An HTML answer holds only the page's own elements: nothing asked became markup."""
    if (response.header("content-type") or "").startswith("text/html"):
        tags = Tags(response.body.decode()).tags
        assert set(tags) <= PAGE_TAGS, tags
        assert tags.count("input") <= 2
        assert tags.count("form") <= 1
    else:
        body = msgspec.json.decode(response.body)
        assert set(body) == {"error", "error_description", "status"}
        assert body["status"] == response.status


def owner(name: str, value: str) -> str | None:
    """The oracle: which enabled sign-in connection a single question names."""
    if name == "connection":
        return value if value in SIGNS_IN else None
    if name == "email":
        text = value.strip()
        if any(c.isspace() or unicodedata.category(c)[0] == "C" for c in text):
            return None
        domain = domain_of(text)
    else:
        domain = normalize_domain(value) if value else None
    return next((c.id for c in SIGNS_IN.values() if domain in c.domains), None)


KEYS = st.sampled_from(["email", "domain", "connection", "return_to", "other"])
VALUES = st.one_of(
    st.sampled_from(["u@acme.test", " U@ACME.TEST ", "x@Globex.Test.", "x@bücher.example",
                     "acme", "globex", "off", "api-only", "acme.test", "off.test", "api.test",
                     "x@off.test", "x@api.test", "a b@acme.test", "@acme.test", ""]),
    st.text(max_size=40),
    hostile_return_to(),
)  # fmt: skip
QUERIES = st.one_of(
    st.lists(st.tuples(KEYS, VALUES), max_size=4).map(lambda pairs: urlencode(pairs).encode()),
    st.binary(max_size=200),
)
ACCEPTS = st.sampled_from(["text/html", "application/json", "*/*", ""])


@settings(max_examples=300, deadline=None)
@given(query=QUERIES, accept=ACCEPTS)
@example(query=b"email=%22%3E%3Cscript%3Ealert(1)%3C/script%3E%40x.test", accept="text/html")
@example(query=b"return_to=/%22%3E%3Cimg%20src=x%3E&domain=nope.test", accept="text/html")
@example(query=b"email=" + b"a" * 8000, accept="text/html")
@example(query=b"email=%ff", accept="application/json")
@example(query=b"connection=acme&connection=acme", accept="text/html")
def test_login_picks_the_owner_or_answers_the_page(query: bytes, accept: str) -> None:
    response = call("/auth/login", query, accept)
    assert response.status in (200, 302, 400, 404), response
    try:
        pairs = parse_qsl(query.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        pairs = None
    asked = [(k, v) for k, v in pairs or [] if k in ("email", "domain", "connection")]
    repeated = pairs is not None and len({k for k, _ in pairs if k == "return_to"}) < len(
        [k for k, _ in pairs if k == "return_to"]
    )
    if response.status == 302:
        location = response.header("location") or ""
        chosen = AUTHORIZE[location.partition("?")[0]]
        assert len(asked) == 1
        assert not repeated
        assert owner(*asked[0]) == chosen
        hint = parse_qs(urlsplit(location).query).get("login_hint")
        assert hint == ([asked[0][1].strip()] if asked[0][0] == "email" else None)
        return
    check_page(response)
    if response.status == 404:
        assert len(asked) == 1
        assert owner(*asked[0]) is None
        assert NOT_SET_UP.encode() in response.body or b"unknown_connection" in response.body
    elif response.status == 200:
        assert not asked  # the page, asking
    elif pairs is not None and len(asked) == 1 and not repeated:
        assert asked[0][0] == "email"  # only an empty email is a 400 on its own
        assert asked[0][1].strip() == ""


def _pending() -> tuple[str, dict[str, str]]:
    """A real pending sign-in at acme: its state cookie and the IdP's answer."""
    start = call("/auth/login", b"connection=acme", "text/html")
    cookie = (start.header("set-cookie") or "").split(";")[0]
    answer = LOOP.run_until_complete(HTTP.get(start.header("location") or ""))
    return cookie, dict(parse_qsl(urlsplit(answer.headers["location"]).query))


CALLBACK_VALUES = st.one_of(
    st.text(max_size=60), st.sampled_from([ACME.issuer, GLOBEX.issuer, "access_denied"])
)


@settings(max_examples=120, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from(["state", "code", "iss", "error", "error_description", "x"]),
            CALLBACK_VALUES,
        ),
        max_size=5,
    ),
    raw=st.none() | st.binary(max_size=200),
    pending=st.booleans(),
    keep=st.sets(st.sampled_from(["state", "code", "iss"])),
    accept=ACCEPTS,
)
@example(pairs=[("iss", GLOBEX.issuer)], raw=None, pending=True, keep={"state", "code"},
         accept="text/html")  # fmt: skip
@example(pairs=[("code", "forged")], raw=None, pending=True, keep={"state", "iss"},
         accept="text/html")  # fmt: skip
def test_a_forged_callback_is_refused_and_never_a_500(
    pairs: list[tuple[str, str]],
    raw: bytes | None,
    pending: bool,
    keep: set[str],
    accept: str,
) -> None:
    cookie, answer = _pending() if pending else ("", {})
    real = {k: v for k, v in answer.items() if k in keep}
    query = raw if raw is not None else urlencode([*real.items(), *pairs]).encode()
    response = call("/auth/callback", query, accept, cookie)
    if response.status == 303:  # only the IdP's own answer, whole and once, signs in
        sent = parse_qs(query.decode(), keep_blank_values=True)
        assert pending
        assert all(sent.get(k) == [answer[k]] for k in ("state", "code", "iss"))
        assert "error" not in sent
        return
    assert response.status in (400, 502, 503), response
    check_page(response)
    assert not any(
        v.startswith("sso_session=") and "Max-Age=0" not in v
        for k, v in response.headers
        if k == "set-cookie"
    )


class Fields(HTMLParser):
    """The values a rendered page gives back to a browser."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.alert: list[str] = []
        self._in_alert = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        named = dict(attrs)
        self.attrs[str(named.get("name") or named.get("id") or tag)] = named
        self._in_alert = named.get("role") == "alert"

    def handle_data(self, data: str) -> None:
        if self._in_alert:
            self.alert.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_alert = False


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(action=TEXT, return_to=st.none() | TEXT, email=TEXT, error=st.none() | TEXT.filter(bool))
@example(action="/a\r\nb", return_to='/"><script>', email="<x>&amp;'", error="a\rb</p><p>")
def test_the_built_in_page_gives_every_value_back_as_text(
    action: str, return_to: str | None, email: str, error: str | None
) -> None:
    page = DiscoveryPage(action=action, return_to=return_to, email=email, error=error)
    fields = Fields(render_page(page))
    expected = ["html", "head", "meta", "meta", "title", "body", "main", "h1"]
    expected += ["p"] if error else []
    expected += ["form", "label", "input"] + (["input"] if return_to else []) + ["button"]
    assert fields.tags == expected

    assert fields.attrs["form"]["action"] == action
    assert fields.attrs["email"]["value"] == email
    if return_to:
        assert fields.attrs["return_to"]["value"] == return_to
    if error:
        assert "".join(fields.alert) == error
