"""A public landing page knows who is signed in through the browser session, and never refuses.

Through SSOMiddleware with browser sign-in at a DevIdP: the session cookie's user
is greeted on a public page; a cookie that fails for any reason (tampered,
expired, idle, revoked, its store down, sent cross-site with an unsafe method)
leaves the page anonymous with a 200. Reading a session on a public page never
writes it: no refresh at the provider, no sliding cookie a shared cache could keep.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from asgi_sso import (
    Backends,
    LoginConfig,
    MemorySessionStore,
    PathRules,
    Revocation,
    Secret,
    SessionRecord,
    SSOMiddleware,
    StoreUnavailable,
)
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock

APP = "http://app.test"
EVIL = "https://evil.example"
SECRET = "web-secret-web-secret"


async def page(request: Request) -> HTMLResponse:
    user = request.user
    who = f"Signed in as {user.display_name} ({user.source})" if user.is_authenticated else ""
    return HTMLResponse(f"<p id=who>{who or 'Sign in'}</p>")


inner = Starlette(routes=[Route("/{path:path}", page, methods=["GET", "POST", "PUT", "DELETE"])])


class FlakySessions(MemorySessionStore):
    """A server-side session store that can go down."""

    down = False

    async def get(self, session_id: str) -> SessionRecord | None:
        if self.down:
            raise StoreUnavailable("the session store is down")
        return await super().get(session_id)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    client = DevClient(client_id="web", client_secret=SECRET,
                       redirect_uris=(APP + "/auth/callback",))  # fmt: skip
    user = DevUser(sub="alice", email="alice@acme.test", name="Alice Smith")
    return DevIdP("http://idp.test", users=[user], clients=[client], auto_approve=True, clock=clock)


def build(
    idp: DevIdP,
    clock: FakeClock,
    *,
    store: MemorySessionStore | None = None,
    paths: PathRules | None = None,
) -> SSOMiddleware:
    login = LoginConfig(
        issuer=idp.issuer,
        client_id="web",
        client_secret=Secret(SECRET),
        cookie_secrets=(Secret(b"k" * 32),),
        secure_cookies=False,
    )
    return SSOMiddleware(
        inner,
        [idp.issuer_config(audience="api://test")],
        http_client=idp.http_client(),
        login=login,
        paths=paths or PathRules(public=["/", "/about"]),
        backends=Backends(sessions=store),
        clock=clock,
    )


async def sign_in(sso: SSOMiddleware, idp: DevIdP) -> str:
    """Sign in; return the ``Cookie`` header the browser then sends."""
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=sso), base_url=APP) as web,
        idp.http_client(base_url=idp.issuer) as at_idp,
    ):
        start = await web.get("/auth/login")
        back = await at_idp.get(start.headers["location"])
        landed = await web.get(back.headers["location"].removeprefix(APP))
        assert landed.status_code == 303, landed.text
        return "; ".join(f"{k}={v}" for k, v in web.cookies.items() if k.startswith("sso_session"))


async def visit(
    sso: SSOMiddleware, path: str = "/", *, method: str = "GET", **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sso), base_url=APP) as web:
        return await web.request(method, path, headers=headers)


def anonymous(response: httpx.Response) -> bool:
    return response.status_code == 200 and "<p id=who>Sign in</p>" in response.text


def cleared(response: httpx.Response) -> bool:
    lines = response.headers.get_list("set-cookie")
    return bool(lines) and all("Max-Age=0" in line for line in lines)


@pytest.mark.parametrize("server_side", [False, True], ids=["cookie", "memory"])
async def test_the_landing_page_greets_the_signed_in_user(
    idp: DevIdP, clock: FakeClock, server_side: bool
) -> None:
    sso = build(idp, clock, store=MemorySessionStore(clock=clock) if server_side else None)
    cookie = await sign_in(sso, idp)
    home = await visit(sso, cookie=cookie)
    assert home.status_code == 200
    assert "Signed in as Alice Smith (session)" in home.text
    assert "set-cookie" not in home.headers
    assert anonymous(await visit(sso))
    assert (await visit(sso, "/private")).status_code == 401


@pytest.mark.parametrize("server_side", [False, True], ids=["cookie", "memory"])
@pytest.mark.parametrize("defect", ["tampered", "expired", "idle", "revoked"])
async def test_a_session_that_fails_leaves_a_public_page_anonymous_and_is_cleared(
    idp: DevIdP, clock: FakeClock, server_side: bool, defect: str
) -> None:
    sso = build(idp, clock, store=MemorySessionStore(clock=clock) if server_side else None)
    cookie = await sign_in(sso, idp)
    if defect == "tampered":
        name, _, value = cookie.partition("=")
        cookie = f"{name}={value[:-6]}AAAAAA"
    elif defect == "expired":
        for _ in range(9):  # active all along (no idle timeout), past the 8 h lifetime
            clock.advance(3500)
            await visit(sso, "/private", cookie=cookie)
    elif defect == "idle":
        clock.advance(3601)
    else:
        revocation = Revocation(kind="user", connection=idp.issuer, subject="alice")
        await sso.revocations.publish(revocation)
    home = await visit(sso, cookie=cookie)
    assert anonymous(home), home.text
    assert "www-authenticate" not in home.headers
    assert cleared(home)


async def test_a_session_store_outage_leaves_public_pages_anonymous(
    idp: DevIdP, clock: FakeClock
) -> None:
    store = FlakySessions(clock=clock)
    sso = build(idp, clock, store=store)
    cookie = await sign_in(sso, idp)
    store.down = True
    home = await visit(sso, cookie=cookie)
    assert anonymous(home)
    assert "set-cookie" not in home.headers  # the session may well be fine
    assert (await visit(sso, "/private", cookie=cookie)).status_code == 503
    store.down = False
    assert "Signed in as Alice Smith" in (await visit(sso, cookie=cookie)).text


async def test_a_public_page_never_slides_the_cookie_session(idp: DevIdP, clock: FakeClock) -> None:
    # A public response may sit in a shared cache: it must carry no live session.
    sso = build(idp, clock)
    cookie = await sign_in(sso, idp)
    clock.advance(120)  # past touch_interval: a protected page slides the session
    home = await visit(sso, cookie=cookie)
    assert "Signed in as Alice Smith" in home.text
    assert "set-cookie" not in home.headers
    private = await visit(sso, "/private", cookie=cookie)
    assert private.status_code == 200
    assert any("Max-Age=0" not in line for line in private.headers.get_list("set-cookie"))


async def test_a_public_page_never_refreshes_a_session_at_the_provider(
    idp: DevIdP, clock: FakeClock
) -> None:
    store = MemorySessionStore(clock=clock)
    sso = build(idp, clock, store=store)
    cookie = await sign_in(sso, idp)
    exchanged = idp.requests["/token"]
    clock.advance(250)  # the session's tokens are due for refresh (300 s, 60 s early)
    assert "Signed in as Alice Smith" in (await visit(sso, cookie=cookie)).text
    assert idp.requests["/token"] == exchanged
    assert (await visit(sso, "/private", cookie=cookie)).status_code == 200
    assert idp.requests["/token"] == exchanged + 1


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_a_cross_site_unsafe_request_with_the_session_runs_anonymous_on_a_public_path(
    idp: DevIdP, clock: FakeClock, method: str
) -> None:
    sso = build(idp, clock)
    cookie = await sign_in(sso, idp)
    for proof in ({"origin": EVIL}, {"sec-fetch-site": "cross-site"}, {}):
        forged = await visit(sso, method=method, cookie=cookie, **proof)
        assert anonymous(forged), (proof, forged.text)
        assert "set-cookie" not in forged.headers  # the session itself is fine
    own = await visit(sso, method=method, cookie=cookie, origin=APP)
    assert "Signed in as Alice Smith" in own.text


async def test_optional_mode_still_sends_browsers_to_sign_in_for_protected_pages(
    idp: DevIdP, clock: FakeClock
) -> None:
    paths = PathRules(optional=True, scope_rules={"/admin/*": ["admin"]})
    sso = build(idp, clock, paths=paths)
    html = {"accept": "text/html", "sec-fetch-mode": "navigate"}
    admin = await visit(sso, "/admin/users?page=2", **html)
    assert admin.status_code == 302
    assert admin.headers["location"] == "/auth/login?return_to=%2Fadmin%2Fusers%3Fpage%3D2"
    api = await visit(sso, "/admin/users", accept="application/json")
    assert api.status_code == 401
    assert api.headers["www-authenticate"] == 'Bearer realm="api"'
    assert anonymous(await visit(sso, "/reports", **html))  # no rule: anonymous welcome
    cookie = await sign_in(sso, idp)
    assert (await visit(sso, "/admin/users", cookie=cookie, **html)).status_code == 403
    assert "Signed in as Alice Smith" in (await visit(sso, "/reports", cookie=cookie)).text
