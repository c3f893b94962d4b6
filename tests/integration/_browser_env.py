"""The in-process browser harness: an ASGI app around BrowserLogin, a DevIdP and a cookie jar.

Shared by the browser-flow, refresh and root_path tests. ``overrides`` lets a
test answer or rewrite one IdP endpoint (``/token``, ``/userinfo``) itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import msgspec

from asgi_sso.config import Secret
from asgi_sso.errors import AuthError
from asgi_sso.identity.revocation import RevocationBus
from asgi_sso.login import BrowserLogin, LoginConfig
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.sessions import SessionStore
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock
from asgi_sso.verify import TokenVerifier

Forward = Callable[[httpx.Request], Awaitable[httpx.Response]]
Override = Callable[[httpx.Request, Forward], Awaitable[httpx.Response]]

APP = "https://app.example"
IDP = "https://idp.example"
CLIENT_SECRET = "web-client-secret-for-tests"
KEY_OLD = Secret(b"o" * 32)
KEY_NEW = Secret(b"n" * 32)


def web_client(**fields: Any) -> DevClient:
    """The app's client ``web`` at the DevIdP, with ``fields`` (a secret, or keys)."""
    return DevClient(
        client_id="web",
        redirect_uris=(APP + "/auth/callback", APP + "/app/auth/callback"),
        post_logout_redirect_uris=(APP + "/bye",),
        **fields,
    )


class Env:
    """An app, a DevIdP and a cookie-keeping browser between them."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        store: SessionStore | None = None,
        secrets: tuple[Secret, ...] = (KEY_NEW,),
        user: DevUser | None = None,
        root_path: str = "",
        root_in_path: bool = True,
        issuer: dict[str, Any] | None = None,
        client: DevClient | None = None,
        idp_options: dict[str, Any] | None = None,
        **login: Any,
    ) -> None:
        self.clock = clock
        self.root_path = root_path
        self.root_in_path = root_in_path
        self.idp = DevIdP(
            IDP,
            users=[user or DevUser(sub="alice", email="alice@corp.example", groups=("admins",))],
            clients=[client or web_client(client_secret=CLIENT_SECRET)],
            auto_approve=True,
            clock=clock,
            **(idp_options or {}),
        )
        self.overrides: dict[str, Override] = {}
        idp_transport = httpx.ASGITransport(app=self.idp)

        async def forward(request: httpx.Request) -> httpx.Response:
            response = await idp_transport.handle_async_request(request)
            await response.aread()
            return response

        async def handle(request: httpx.Request) -> httpx.Response:
            override = self.overrides.get(request.url.path)
            if override is not None:
                return await override(request, forward)
            return await forward(request)

        self.http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        self.verifier = TokenVerifier(
            [self.idp.issuer_config(**(issuer or {}))], client=self.http, clock=clock
        )
        self.events: list[Event] = []
        self.revocations = RevocationBus()
        self.store = store
        self.login = self.make_login(secrets, **login)
        self.cookies: dict[str, str] = {}
        self.seen: list[dict[str, Any]] = []
        transport = httpx.ASGITransport(app=self.mounted, root_path=root_path)
        self.app = httpx.AsyncClient(transport=transport, base_url=APP)

    def make_login(self, secrets: tuple[Secret, ...], **login: Any) -> BrowserLogin:
        settings: dict[str, Any] = {
            "issuer": IDP,
            "client_id": "web",
            "client_secret": Secret(CLIENT_SECRET),
            "cookie_secrets": secrets,
            **login,
        }
        config = LoginConfig(**settings)
        return BrowserLogin(
            config,
            verifier=self.verifier,
            client=self.http,
            session_store=self.store,
            clock=self.clock,
            emitter=Emitter([self.events.append]),
            revocations=self.revocations,
            on_signin=None,
        )

    async def mounted(self, scope: Any, receive: Any, send: Any) -> None:
        """The app as a server mounting it at ``root_path`` calls it (either convention)."""
        if self.root_path and not self.root_in_path:
            assert scope["path"].startswith(self.root_path)
            scope = {**scope, "path": scope["path"][len(self.root_path) :] or "/"}
        await self.asgi(scope, receive, send)

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        login = self.login
        if login.handles(scope):
            await login.handle(scope, receive, send)
            return
        try:
            result = await login.authenticate(scope)
        except AuthError as exc:
            await _json(send, 401, {"error": exc.description}, getattr(exc, "headers", []))
            return
        if result is None:
            if login.wants_redirect(scope):
                await login.redirect_to_login(scope, send)
            else:
                await _json(send, 401, {"error": "no session"})
            return
        inner = login.strip_cookies(scope)
        cookie = next((v.decode() for k, v in inner["headers"] if k == b"cookie"), None)
        user = result.principal
        self.seen.append(
            {"sub": user.identity, "claims": dict(user.claims), "cookie": cookie,
             "session_id": user.session_id}
        )  # fmt: skip
        await _json(send, 200, {"sub": user.identity, "path": scope["path"]}, result.headers)

    async def get(self, url: str, **headers: str) -> httpx.Response:
        return await self.request("GET", url, headers)

    async def request(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        if self.cookies:
            headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **headers}
        response = await self.app.request(method, url, headers=headers)
        self.app.cookies.clear()  # this class is the only cookie jar
        for line in response.headers.get_list("set-cookie"):
            pair, *attrs = line.split("; ")
            name, _, value = pair.partition("=")
            if "Max-Age=0" in attrs:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    async def start(self, return_to: str = "/reports?q=1") -> str:
        """Begin a sign-in; return the IdP's redirect back to the app (the callback URL)."""
        login = self.root_path + "/auth/login?"
        response = await self.get(login + urlencode({"return_to": return_to}))
        assert response.status_code == 302
        authorize = response.headers["location"]
        assert authorize.startswith(IDP + "/authorize?")
        back = await self.http.get(authorize)
        assert back.status_code == 302, back.text
        return str(back.headers["location"])

    async def callback(self, url: str) -> httpx.Response:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == APP
        return await self.get(parts.path + "?" + parts.query)

    async def sign_in(self, return_to: str = "/reports?q=1") -> httpx.Response:
        return await self.callback(await self.start(return_to))

    def session_cookies(self) -> dict[str, str]:
        names = ("__Host-sso_session", "__Secure-sso_session")
        return {k: v for k, v in self.cookies.items() if k.startswith(names)}


async def _json(send: Any, status: int, body: Any, headers: Any = ()) -> None:
    raw = msgspec.json.encode(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": raw})
