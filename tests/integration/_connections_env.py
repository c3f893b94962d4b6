"""Three companies, each with its own DevIdP, signing in to one app through SSOMiddleware.

Each IdP has a loopback issuer (``http://127.0.0.1:<port>``); it is reached in
process, or, with ``served=True``, through a real uvicorn server on that port.

``acme`` authenticates its client with ``client_secret_basic``, ``globex`` with
``client_secret_post`` and ``initech`` with ``private_key_jwt`` (a key made at
test time, its public half registered at initech's IdP). The IdPs run in process
behind one ``httpx.AsyncClient`` that records every request the app sends them.
Each IdP knows a ``user1`` (the same ``sub`` at all three) and a ``boss``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec

from asgi_sso import Backends, Issuer, LoginConfig, Secret, SSOMiddleware
from asgi_sso.connections import Connection, StaticConnections
from asgi_sso.observe.events import Event
from asgi_sso.sessions import SessionStore
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock, free_port
from asgi_sso.testing.tokens import generate_key, public_jwk

APP = "http://app.test"
CALLBACK = APP + "/auth/callback"
NAMES = ("acme", "globex", "initech")
AUTH = {"acme": "client_secret_basic", "globex": "client_secret_post", "initech": "private_key_jwt"}
COOKIE_KEY = Secret(b"c" * 32)


async def inner(scope: Any, receive: Any, send: Any) -> None:
    user = scope["user"]
    body = msgspec.json.encode(
        {"sub": user.identity, "tenant": user.tenant, "issuer": user.issuer,
         "email": user.claims.get("email"), "session_id": user.session_id}
    )  # fmt: skip
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_TAKEN: set[int] = set()


def _distinct_port() -> int:
    # free_port() may hand out the same port twice in a row; two companies must differ.
    while True:
        port = free_port()
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port


class Company:
    """One customer: its IdP, this app's client there, and the connection naming both."""

    def __init__(self, name: str, clock: FakeClock) -> None:
        self.name = name
        self.domain = f"{name}.test"
        self.secret = f"{name}-client-secret-0123456789"
        self.method = AUTH.get(name, "client_secret_basic")
        self.key = generate_key("RS256") if self.method == "private_key_jwt" else None
        self.client_id = f"app-at-{name}"
        self.idp = DevIdP(
            f"http://127.0.0.1:{_distinct_port()}",  # loopback, served in process or for real
            users=[
                DevUser(sub="user1", email=f"user1@{self.domain}", name=f"User One of {name}"),
                DevUser(sub=f"boss-{name}", email=f"boss@{self.domain}"),
            ],
            clients=[self.client()],
            clock=clock,
            auto_approve=True,
        )

    def client(self) -> DevClient:
        keyed = self.key is not None
        return DevClient(
            client_id=self.client_id,
            client_secret=None if keyed else self.secret,
            # The app names its PEM key by the RFC 7638 thumbprint it publishes.
            jwks=(
                {"keys": [{**public_jwk(self.key), "kid": self.key.thumbprint()}]}
                if self.key is not None
                else None
            ),
            redirect_uris=(CALLBACK,),
            post_logout_redirect_uris=(APP + "/bye",),
            backchannel_logout_uri=APP + "/auth/backchannel-logout",
        )

    def connection(self, **changes: Any) -> Connection:
        method = self.method
        fields: dict[str, Any] = {
            "id": self.name,
            "name": self.name.title(),
            "issuer": self.idp.issuer,
            "client_id": self.client_id,
            "token_endpoint_auth": method,
            "domains": (self.domain,),
        }
        if self.key is not None:
            fields["client_key"] = Secret(self.key.as_pem(private=True))
        else:
            fields["client_secret"] = Secret(self.secret)
        fields.update(changes)
        return Connection(**fields)


class Site:
    """The app behind SSOMiddleware with the three companies' connections.

    Args:
        clock: shared by the app and the IdPs.
        store: the server-side session store, or ``None`` for cookie-only sessions.
        default: also a default provider (``home``) set in ``LoginConfig.issuer``.
        connections: makes each company's connection (default: as it is).
        served: reach the IdPs over the network (the caller serves them).
        login: other ``LoginConfig`` fields.
    """

    def __init__(
        self,
        clock: FakeClock,
        store: SessionStore | None = None,
        *,
        default: bool = False,
        connections: Callable[[Company], Connection] | None = None,
        served: bool = False,
        **login: Any,
    ) -> None:
        self.clock = clock
        self.companies = {name: Company(name, clock) for name in NAMES}
        self.home = Company("home", clock) if default else None
        idps = [c.idp for c in self.companies.values()] + ([self.home.idp] if self.home else [])
        self.sent: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            self.sent.append(request)

        if served:  # the caller runs each IdP's serve(): real sockets on 127.0.0.1
            self.http = httpx.AsyncClient(event_hooks={"request": [record]})
        else:
            first, *rest = idps
            self.http = first.http_client(
                mounts={idp.origin: httpx.ASGITransport(app=idp) for idp in rest},
                event_hooks={"request": [record]},
            )
        make = connections or (lambda company: company.connection())
        self.store = StaticConnections([make(c) for c in self.companies.values()])
        issuers: list[Issuer] = []
        if self.home is not None:
            issuers.append(self.home.idp.issuer_config(audience="api://home"))
            login.setdefault("issuer", self.home.idp.issuer)
            login.setdefault("client_id", self.home.client_id)
            login.setdefault("client_secret", Secret(self.home.secret))
        self.events: list[Event] = []
        self.sessions = store
        self._issuers = issuers
        self._login = LoginConfig(cookie_secrets=(COOKIE_KEY,), secure_cookies=False, **login)
        self.app = self.worker()
        self.browsers: list[Browser] = []

    def worker(self) -> SSOMiddleware:
        """A worker of the app: its own snapshot and caches; the stores are shared."""
        return SSOMiddleware(
            inner,
            self._issuers,
            connections=self.store,
            login=self._login,
            backends=Backends(sessions=self.sessions),
            http_client=self.http,
            clock=self.clock,
            event_sinks=[self.events.append],
        )

    def __getitem__(self, name: str) -> Company:
        return self.companies[name]

    def browser(self, app: SSOMiddleware | None = None) -> Browser:
        browser = Browser(self, app)
        self.browsers.append(browser)
        return browser

    async def change(self, connection_id: str, /, **changes: Any) -> None:
        """Update a connection in the store and load the new snapshot (as a poll would)."""
        current = await self.store.get(connection_id)
        assert current is not None
        await self.store.update(msgspec.structs.replace(current, **changes))
        await self.reload()

    async def reload(self, app: SSOMiddleware | None = None) -> None:
        """Load the store's connections into a worker (as its poll would)."""
        app = app or self.app
        assert app.connections is not None
        await app.startup(warm=False)
        await app.connections.reload()

    def connection(self, name: str) -> Connection:
        assert self.app.connections is not None
        found = self.app.connections.directory.get(name)
        assert found is not None
        return found

    def token_requests(self, name: str) -> list[dict[str, str]]:
        """The form bodies the app POSTed to a company's token endpoint."""
        url = self.companies[name].idp.url("/token")
        return [
            dict(parse_qsl(request.content.decode()))
            for request in self.sent
            if str(request.url) == url
        ]

    async def backchannel(self, token: str) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=APP
        ) as idp_side:
            return await idp_side.post("/auth/backchannel-logout", data={"logout_token": token})

    async def aclose(self) -> None:
        for browser in self.browsers:
            await browser.web.aclose()
        await self.app.shutdown()
        await self.http.aclose()


class Browser:
    """A browser with its own cookies, going back and forth between the app and the IdPs."""

    def __init__(self, site: Site, app: SSOMiddleware | None = None) -> None:
        self.site = site
        transport = httpx.ASGITransport(app=app or site.app)
        self.web = httpx.AsyncClient(transport=transport, base_url=APP)

    async def login(self, accept: str = "text/html", **query: str) -> httpx.Response:
        return await self.web.get("/auth/login", params=query, headers={"accept": accept})

    async def authorize(self, **query: str) -> str:
        """Start a sign-in and let the IdP answer; return the callback URL (path and query)."""
        start = await self.login(**query)
        assert start.status_code == 302, start.text
        back = await self.site.http.get(start.headers["location"])
        assert back.status_code == 302, back.text
        location = str(back.headers["location"])
        assert location.startswith(CALLBACK + "?"), location
        return location.removeprefix(APP)

    async def callback(self, path: str) -> httpx.Response:
        return await self.web.get(path, headers={"accept": "text/html"})

    async def sign_in(self, **query: str) -> httpx.Response:
        landed = await self.callback(await self.authorize(**query))
        assert landed.status_code == 303, landed.text
        return landed

    async def me(self) -> httpx.Response:
        return await self.web.get("/me", headers={"accept": "application/json"})

    def session_cookies(self) -> dict[str, str]:
        return {k: v for k, v in self.web.cookies.items() if k.startswith("sso_session")}


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
