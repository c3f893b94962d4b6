"""Sign-in for many connections: home-realm discovery, one callback for all, each IdP's own client.

Three companies, each with a DevIdP of its own (see ``_connections_env``), sign in
to one app through SSOMiddleware, found by email, domain or connection id.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from _connections_env import APP, NAMES, Site, query_of

from asgi_sso.connections import Connection
from asgi_sso.login import DiscoveryPage
from asgi_sso.login.discovery import NOT_SET_UP
from asgi_sso.sessions import MemorySessionStore
from asgi_sso.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["cookie", "memory"])
async def site(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Site]:
    built = Site(clock, MemorySessionStore(clock=clock) if request.param == "memory" else None)
    yield built
    await built.aclose()


# -- sign-in by email, domain and id ---------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_sign_in_by_email_lands_a_session_of_that_companys_connection(
    site: Site, name: str
) -> None:
    company = site[name]
    browser = site.browser()
    start = await browser.login(email=f"user1@{company.domain}", return_to="/reports")
    assert start.status_code == 302
    assert start.headers["location"].startswith(company.idp.url("/authorize?"))
    authorize = query_of(start.headers["location"])
    assert authorize["client_id"] == company.client_id
    assert authorize["code_challenge_method"] == "S256"
    assert len(authorize["state"]) >= 32
    assert len(authorize["nonce"]) >= 32
    landed = await browser.callback(
        str((await site.http.get(start.headers["location"])).headers["location"]).removeprefix(APP)
    )
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == "/reports"
    me = (await browser.me()).json()
    assert me["tenant"] == name
    assert me["issuer"] == company.idp.issuer
    assert me["sub"] == "user1"
    assert me["email"] == f"user1@{company.domain}"
    if site.sessions is not None:
        record = await site.sessions.get(me["session_id"])
        assert record is not None
        assert (record.connection, record.issuer, record.client_id) == (
            name, company.idp.issuer, company.client_id
        )  # fmt: skip
    # The code went to that company's token endpoint only, with its own credentials.
    for other in NAMES:
        assert bool(site.token_requests(other)) == (other == name)
    [form] = site.token_requests(name)
    request = next(r for r in site.sent if str(r.url) == company.idp.url("/token"))
    if company.method == "client_secret_basic":
        assert request.headers["authorization"].startswith("Basic ")
        assert "client_secret" not in form
    elif company.method == "client_secret_post":
        assert form["client_secret"] == company.secret
        assert "authorization" not in request.headers
    else:
        assert form["client_assertion_type"].endswith(":jwt-bearer")
        assert form["client_assertion"].count(".") == 2
        assert "client_secret" not in form
        assert "authorization" not in request.headers


@pytest.mark.parametrize("kind", ["domain", "connection", "email-in-capitals"])
async def test_sign_in_by_domain_or_connection_id(site: Site, kind: str) -> None:
    query = {
        "domain": {"domain": "GLOBEX.test."},
        "connection": {"connection": "globex"},
        "email-in-capitals": {"email": "  User1@Globex.TEST "},
    }[kind]
    browser = site.browser()
    await browser.sign_in(**query)
    assert (await browser.me()).json()["tenant"] == "globex"


async def test_the_email_reaches_the_idp_as_login_hint(site: Site) -> None:
    idp = site["acme"].idp
    idp.auto_approve = False  # the IdP now signs in only the user it is told about
    browser = site.browser()
    start = await browser.login(email="boss@acme.test")
    assert query_of(start.headers["location"])["login_hint"] == "boss@acme.test"
    back = await site.http.get(start.headers["location"])
    assert back.status_code == 302  # no sign-in page: the hint named the user
    await browser.callback(str(back.headers["location"]).removeprefix(APP))
    assert (await browser.me()).json()["sub"] == "boss-acme"
    by_id = await site.browser().login(connection="acme")
    assert "login_hint" not in query_of(by_id.headers["location"])


async def test_users_of_three_companies_are_signed_in_side_by_side(site: Site) -> None:
    browsers = {name: site.browser() for name in NAMES}
    for name, browser in browsers.items():
        await browser.sign_in(email=f"user1@{site[name].domain}")
    for name, browser in browsers.items():
        me = (await browser.me()).json()
        assert (me["sub"], me["tenant"]) == ("user1", name)  # one sub, three users


# -- the discovery page ------------------------------------------------------------------


class Page(HTMLParser):
    """The parts of an HTML page the checks read; tags must balance."""

    VOID = frozenset({"meta", "input", "br", "link", "img", "hr"})

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = ""
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        assert self.open == [], f"unclosed: {self.open}"

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1:] == [tag], f"</{tag}> closes {self.open}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def check_accessible_form(page: Page, *, return_to: str | None) -> dict[str, str | None]:
    """The built-in page's promises; returns the email input's attributes."""
    assert page.doctype.lower() == "doctype html"
    [root] = page.all("html")
    assert root.get("lang")
    assert {"charset": "utf-8"} in page.all("meta")
    assert page.all("title")
    [form] = page.all("form")
    assert form["method"] == "get"
    assert form["action"] == "/auth/login"
    [label] = page.all("label")
    inputs = {attrs.get("name"): attrs for attrs in page.all("input")}
    email = inputs["email"]
    assert label["for"] == email["id"]
    assert (email["type"], email["autocomplete"]) == ("email", "email")
    assert "required" in email
    assert len(page.all("button")) == 1
    assert page.all("button")[0].get("type") == "submit"
    assert not page.all("script")
    assert all(not k.startswith("on") for _, attrs in page.tags for k in attrs)
    ids = [attrs["id"] for _, attrs in page.tags if "id" in attrs]
    assert len(ids) == len(set(ids))
    if return_to is None:
        assert "return_to" not in inputs
    else:
        assert inputs["return_to"] == {"type": "hidden", "name": "return_to", "value": return_to}
    return email


async def test_without_a_default_provider_login_asks_for_the_work_email(site: Site) -> None:
    response = await site.browser().login(return_to="/reports?q=1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = Page(response.text)
    email = check_accessible_form(page, return_to="/reports?q=1")
    assert email["value"] == ""
    assert "Sign in with your work email" in "".join(page.text)
    assert not any(attrs.get("role") == "alert" for _, attrs in page.tags)


async def test_the_page_form_submits_to_a_sign_in(site: Site) -> None:
    # What the browser does with the form: GET the same URL with email and return_to.
    browser = site.browser()
    page = Page((await browser.login(return_to="/after")).text)
    [form] = page.all("form")
    hidden = {a["name"]: a["value"] for a in page.all("input") if a.get("type") == "hidden"}
    query = urlencode({"email": "user1@initech.test", **hidden})
    start = await browser.web.get(f"{form['action']}?{query}", headers={"accept": "text/html"})
    assert start.status_code == 302
    back = await site.http.get(start.headers["location"])
    landed = await browser.callback(str(back.headers["location"]).removeprefix(APP))
    assert landed.headers["location"] == "/after"
    assert (await browser.me()).json()["tenant"] == "initech"


async def _unknown(site: Site, accept: str = "text/html") -> list[tuple[str, httpx.Response]]:
    # Unknown, disabled and bearer-only domains and ids, and unreadable values.
    await site.store.add(
        Connection(
            id="bearer-only",
            issuer="https://idp.bearer.example",
            audience=("api://bearer",),
            domains=("bearer.test",),
        )
    )
    await site.change("globex", enabled=False, not_before=site.clock.time())
    asked = [
        {"email": "someone@unknown.test"},
        {"email": "user1@globex.test"},
        {"email": "user1@bearer.test"},
        {"email": "not-an-email"},
        {"email": "user1@"},
        {"email": "x" * 400 + "@acme.test"},
        {"domain": "unknown.test"},
        {"domain": "globex.test"},
        {"domain": "bearer.test"},
        {"domain": "!!"},
        {"connection": "nope"},
        {"connection": "globex"},
        {"connection": "bearer-only"},
        {"connection": "acme" * 40},
    ]
    browser = site.browser()
    return [(q.get("email", ""), await browser.login(accept=accept, **q)) for q in asked]


async def test_unknown_disabled_and_bearer_only_all_get_the_identical_404_page(
    site: Site,
) -> None:
    answers = await _unknown(site)
    shown = []
    for email, response in answers:
        assert response.status_code == 404, response.text
        page = Page(response.text)
        value = check_accessible_form(page, return_to=None)["value"]
        # The address typed is shown again when it is a plain one; nothing else differs.
        assert value in (email, "")
        body = response.text.replace(f'value="{html.escape(email)}"', 'value=""')
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        shown.append((body, headers))
        assert NOT_SET_UP in "".join(page.text)
        assert [a for _, a in page.tags if a.get("role") == "alert"]
    assert all(item == shown[0] for item in shown)


async def test_json_clients_get_one_json_error_for_every_unknown_value(site: Site) -> None:
    answers = await _unknown(site, accept="application/json")
    bodies = {response.content for _, response in answers}
    assert len(bodies) == 1
    for _, response in answers:
        assert response.status_code == 404
        assert response.json() == {
            "error": "unknown_connection",
            "error_description": NOT_SET_UP,
            "status": 404,
        }
    bare = await site.browser().login(accept="application/json")
    assert bare.status_code == 400
    assert bare.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "query",
    [
        "email=a%40acme.test&email=b%40acme.test",
        "email=a%40acme.test&domain=acme.test",
        "return_to=%2Fa&return_to=%2Fb",
        "email=%FF%FE",
        "email=" + "%00" * 3,
        "",
    ],
)
async def test_malformed_discovery_queries_get_the_page_with_a_4xx(site: Site, query: str) -> None:
    browser = site.browser()
    response = await browser.web.get("/auth/login?" + query, headers={"accept": "text/html"})
    if not query:
        assert response.status_code == 200
    else:
        assert response.status_code in (400, 404), response.text
        assert [a for _, a in Page(response.text).tags if a.get("role") == "alert"]
    check_accessible_form(Page(response.text), return_to=None)


async def test_hostile_email_and_return_to_are_escaped(site: Site) -> None:
    email = '"><svg/onload=alert(1)>@evil.test'
    return_to = '/x"><script>alert(1)</script>'
    response = await site.browser().login(email=email, return_to=return_to)
    assert response.status_code == 404
    assert "<svg" not in response.text
    assert "<script" not in response.text
    assert "alert(1)" in response.text  # shown, as text
    page = Page(response.text)
    assert check_accessible_form(page, return_to=return_to)["value"] == email
    assert not page.all("svg")
    assert not page.all("script")


async def test_a_custom_discovery_page_renders_what_the_app_wants(clock: FakeClock) -> None:
    seen: list[DiscoveryPage] = []

    def render(page: DiscoveryPage) -> str:
        seen.append(page)
        error = html.escape(page.error or "")
        return f"<!DOCTYPE html><html lang=fr><title>Connexion</title><p>{error}</p></html>"

    site = Site(clock, discovery_page=render)
    try:
        browser = site.browser()
        first = await browser.login(return_to="/r")
        assert first.status_code == 200
        assert "Connexion" in first.text
        missing = await browser.login(email="someone@unknown.test", return_to="/r")
        assert missing.status_code == 404
        assert html.escape(NOT_SET_UP) in missing.text
        assert seen == [
            DiscoveryPage(action="/auth/login", return_to="/r"),
            DiscoveryPage(
                action="/auth/login", return_to="/r", email="someone@unknown.test", error=NOT_SET_UP
            ),
        ]
        assert missing.headers["content-security-policy"] == "frame-ancestors 'none'"
        found = await browser.login(email="user1@acme.test")
        assert found.status_code == 302  # a known domain never shows the page
        assert len(seen) == 2
    finally:
        await site.aclose()


async def test_a_default_provider_serves_plain_login_and_connections_serve_their_domains(
    clock: FakeClock,
) -> None:
    site = Site(clock, MemorySessionStore(clock=clock), default=True)
    try:
        assert site.home is not None
        home, acme = site.browser(), site.browser()
        start = await home.login()
        assert start.headers["location"].startswith(site.home.idp.url("/authorize?"))
        await home.sign_in()
        await acme.sign_in(email="user1@acme.test")
        assert (await home.me()).json()["tenant"] == site.home.idp.issuer
        assert (await acme.me()).json()["tenant"] == "acme"
        unknown = await site.browser().login(email="x@unknown.test")
        assert unknown.status_code == 404  # an explicit ask never falls back
    finally:
        await site.aclose()


# -- the callback: one URL, the flow's own provider ----------------------------------------


def _replace(path: str, **changes: str) -> str:
    query = {**query_of(path), **changes}
    return "/auth/callback?" + urlencode(query)


async def test_an_rfc_9207_iss_of_another_connection_is_refused(site: Site) -> None:
    browser = site.browser()
    callback = await browser.authorize(email="user1@acme.test")
    refused = await browser.callback(_replace(callback, iss=site["globex"].idp.issuer))
    assert refused.status_code == 400
    assert "another issuer" in refused.text
    assert not browser.session_cookies()
    assert site.token_requests("acme") == []
    assert site.token_requests("globex") == []


async def test_a_flow_started_at_a_cannot_be_finished_with_bs_answer(site: Site) -> None:
    browser = site.browser()
    at_a = query_of(await browser.authorize(email="user1@acme.test"))
    at_b = query_of(await browser.authorize(email="user1@globex.test"))
    # A's state with B's code and B's iss: the iss is not A's.
    forged = await browser.callback(_replace("/", **{**at_b, "state": at_a["state"]}))
    assert forged.status_code == 400
    assert "another issuer" in forged.text
    # A's state with B's code under A's iss: A's token endpoint does not know the code.
    at_a = query_of(await browser.authorize(email="user1@acme.test"))
    swapped = await browser.callback(_replace("/", **{**at_a, "code": at_b["code"]}))
    assert swapped.status_code == 400
    assert "invalid_grant" in swapped.text
    assert site.token_requests("globex") == []  # B's code never went to B with A's flow
    assert not browser.session_cookies()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda now: {"enabled": False, "not_before": now}, id="disabled"),
        pytest.param(lambda now: {"not_before": now}, id="disabled-and-re-enabled"),
        pytest.param(lambda now: {"client_id": "another-client"}, id="another-client"),
    ],
)
async def test_a_connection_changed_between_login_and_callback_fails_the_callback(
    site: Site, change: Any
) -> None:
    browser = site.browser()
    callback = await browser.authorize(email="user1@acme.test")
    site.clock.advance(1)
    await site.change("acme", **change(site.clock.time()))
    refused = await browser.callback(callback)
    assert refused.status_code == 400
    assert "please sign in again" in refused.text
    assert "Traceback" not in refused.text
    assert not browser.session_cookies()
    assert site.token_requests("acme") == []  # refused before the code was redeemed


async def test_a_connection_removed_from_the_snapshot_signs_nobody_in(site: Site) -> None:
    await site.browser().sign_in(email="user1@initech.test")
    await site.store.delete("initech")
    await site.reload()
    response = await site.browser().login(email="user1@initech.test")
    assert response.status_code == 404
