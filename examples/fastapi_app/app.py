"""Acme Analytics: a B2B SaaS app on FastAPI whose customers sign in through their own IdP.

Each customer company is a *connection* (its own identity provider, found by the
email domain at sign-in), kept in a SQL store that can change while the app runs:
in dev mode two companies (Acme, Globex) each get an embedded dev IdP, and the
banner shows how to add a third with ``asgi-sso connections add``.

* ``/`` — home page (public): "Signed in as …", or "Sign in with SSO".
* ``/dashboard`` — the signed-in user, their company (connection) and tier.
* ``/me`` — the same as JSON, for a session cookie or a bearer token alike.
* ``/admin/users`` — admins only: the provisioned users of the admin's own company.
* ``/auth/*`` — sign-in, callback, logout and back-channel logout (served by the middleware).
* ``/scim/v2/Users`` — SCIM deprovisioning, one bearer secret per company.
* ``/docs`` — the API docs, whose "Authorize" signs in at a company's IdP (public).

``create_app()`` builds everything from :class:`Settings`; ``app`` (this module's
attribute, built on first access) uses the environment, see the README.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from asgi_sso import (
    Clock,
    ConfigurationError,
    ConnectionTiers,
    IdentityConfig,
    LoginConfig,
    PathRules,
    Principal,
    PriorityTierMapper,
    ScimConfig,
    Secret,
    SSOMiddleware,
    UserStore,
)
from asgi_sso.connections import Connection
from asgi_sso.connections.sql import SQLConnections
from asgi_sso.fastapi import (
    CurrentUser,
    DocsSignIn,
    OptionalUser,
    configure_docs,
    require_scopes,
)
from asgi_sso.identity.stores.sql import SQLUserStore
from asgi_sso.testing import DevClient, DevIdP, DevUser, free_port
from examples._devkit import (
    OidcSettings,
    cookie_security,
    in_process_client,
    serving,
    session_secret,
    user_lines,
)
from examples.fastapi_app import pages

__all__ = ["ADMIN_SCOPE", "COMPANIES", "Company", "Example", "Settings", "create_app"]

ADMIN_SCOPE = "users:admin"
TIERS = ("enterprise", "pro", "free")
TIER_SCOPES = {
    "free": ("dashboards:read",),
    "pro": ("dashboards:read", "dashboards:write"),
    "enterprise": ("dashboards:read", "dashboards:write", "audit:read"),
}
DEV_CLIENT_ID = "acme-analytics"
DEV_AUDIENCE = "api://acme-analytics"
DOCS_CLIENT_ID = "acme-analytics-docs"
"""The public client "Authorize" in ``/docs`` signs in with (PKCE, no secret)."""
DOCS_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


class Company(msgspec.Struct, frozen=True, kw_only=True):
    """A demo customer: its connection id, name, email domain, users and contract."""

    id: str
    name: str
    domain: str
    users: tuple[DevUser, ...]
    tiers: ConnectionTiers


def _users(domain: str, *people: tuple[str, str, tuple[str, ...]]) -> tuple[DevUser, ...]:
    return tuple(
        DevUser(sub=sub, email=f"{sub}@{domain}", name=name, groups=groups)
        for sub, name, groups in people
    )


COMPANIES = (
    Company(
        id="acme",
        name="Acme Corp",
        domain="acme.example",
        users=_users(
            "acme.example",
            ("alice", "Alice Admin", ("admins", "staff")),
            ("bob", "Bob Member", ("staff",)),
        ),
        tiers=ConnectionTiers(default_tier="enterprise"),
    ),
    Company(
        id="globex",
        name="Globex",
        domain="globex.example",
        users=_users(
            "globex.example",
            ("carol", "Carol Admin", ("admins",)),
            ("dave", "Dave Analyst", ("analytics-pro",)),
        ),
        tiers=ConnectionTiers(default_tier="free", groups={"analytics-pro": "pro"}),
    ),
)
"""Acme buys Enterprise for everyone; at Globex the default is Free, ``analytics-pro`` gets Pro."""
THIRD_COMPANY = Company(
    id="initech",
    name="Initech",
    domain="initech.example",
    users=_users("initech.example", ("erin", "Erin Admin", ("admins",))),
    tiers=ConnectionTiers(default_tier="pro"),
)
"""The company the banner shows how to add while the app runs."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The example's settings (``Settings.from_env()`` reads them from the environment).

    Attributes:
        app_url: ``APP_URL``, where the app is reached (default ``http://127.0.0.1:8000``).
        oidc: the real provider (``OIDC_*``); ``None`` runs the embedded dev IdP.
        database_url: ``DATABASE_URL``, a SQLAlchemy async URL (SQLite or PostgreSQL).
        data_dir: ``DATA_DIR``, where the default SQLite file lives.
        session_secret: ``SESSION_SECRET``, the cookie key (random when unset).
        scim_token: ``SCIM_TOKEN``, the SCIM bearer secret for a real provider's connection.
        admin_group: ``ADMIN_GROUP``, the IdP group whose members administer their company.
    """

    session_secret: Secret
    app_url: str = "http://127.0.0.1:8000"
    oidc: OidcSettings | None = None
    database_url: str | None = None
    data_dir: str | None = None
    scim_token: Secret | None = None
    admin_group: str = "admins"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        scim = env.get("SCIM_TOKEN", "")
        return cls(
            session_secret=session_secret(env),
            app_url=env.get("APP_URL", "http://127.0.0.1:8000").rstrip("/"),
            oidc=OidcSettings.from_env(env),
            database_url=env.get("DATABASE_URL") or None,
            data_dir=env.get("DATA_DIR") or None,
            scim_token=Secret(scim) if scim else None,
            admin_group=env.get("ADMIN_GROUP", "admins"),
        )


class Example:
    """Everything ``create_app`` built, for the server and for tests.

    Attributes:
        app: the ASGI app (``SSOMiddleware`` around FastAPI).
        api: the FastAPI app inside.
        idps: the embedded dev IdPs, one per company (dev mode only).
        user_store: where users are provisioned.
        connections: the connection store (dev mode), shared with ``asgi-sso connections``.
        connections_url: the store's URL, for the command line.
        app_secret: the secret sealing the connections' stored secrets (dev mode).
        docs_paths: the API documentation's paths, public.
        settings: the settings used.
        clock: the injected clock, if any.
    """

    def __init__(
        self,
        settings: Settings,
        user_store: UserStore,
        *,
        idps: dict[str, DevIdP] | None = None,
        connections_url: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.idps = idps or {}
        self.user_store = user_store
        self.connections_url = connections_url
        self.app_secret = Secret(secrets.token_urlsafe(32))
        self.client_secret = secrets.token_urlsafe(24)
        self.third_port = free_port()
        self.connections: SQLConnections | None = None
        # Reaches the embedded IdPs in process, and any other (a third company's) over TCP.
        self.http_client = in_process_client(list(self.idps.values())) if self.idps else None
        if connections_url is not None:
            self.connections = DemoConnections(
                connections_url, secrets=[self.app_secret], seeds=self.seeds(), clock=clock
            )
        self.api = _build_api(self)
        self.docs_paths = _configure_docs(self)
        self.app: SSOMiddleware = _protect(self)

    def seeds(self) -> list[Connection]:
        """The two demo companies' connections, each trusting its own dev IdP."""
        return [self.connection(c, self.idps[c.id].issuer) for c in COMPANIES]

    def connection(self, company: Company, issuer: str) -> Connection:
        """The connection of ``company`` whose IdP is at ``issuer``."""
        return Connection(
            id=company.id,
            name=company.name,
            issuer=issuer,
            client_id=DEV_CLIENT_ID,
            client_secret=Secret(self.client_secret),
            audience=(DEV_AUDIENCE,),
            domains=(company.domain,),
            tiers=company.tiers,
            scim_secret=Secret(f"scim-{company.id}-{self.client_secret}"),
        )

    def banner(self) -> list[str]:
        """What to print at start-up: where to go, who can sign in, how to add a company."""
        url = self.settings.app_url
        lines = [f"Acme Analytics (FastAPI) on {url}"]
        if not self.idps:
            assert self.settings.oidc is not None
            return [*lines, f"  signing in through {self.settings.oidc.issuer}"]
        lines += [
            f"  Open {url}/ , click 'Sign in with SSO' and give a work email below.",
            "  Companies (connections), each with its own embedded dev IdP (development only):",
        ]
        for company in COMPANIES:
            idp = self.idps[company.id]
            lines.append(
                f"    {company.id:<8} {company.name:<10} @{company.domain:<16} {idp.issuer}"
            )
            lines += user_lines(idp)
        acme = self.idps[COMPANIES[0].id]
        lines += [
            f"  API docs: {url}/docs  ('Authorize' signs in at a company's dev IdP), or curl:",
            f'    curl -H "Authorization: Bearer $(.venv/bin/asgi-sso token --user alice '
            f'--issuer {acme.issuer})" {url}/me',
            "  SCIM (deprovisioning) bearer secrets, per company:",
            *(
                f"    {c.id}: scim-{c.id}-{self.client_secret}  ->  {url}/scim/v2/Users"
                for c in COMPANIES
            ),
            *self.third_company_steps(),
        ]
        return lines

    def third_company_steps(self) -> list[str]:
        """The shell commands that add (and disable) a third company while the app runs."""
        company, port = THIRD_COMPANY, self.third_port
        user = company.users[0]
        store = f"--store {self.connections_url} --secret-env APP_SECRET"
        return [
            f"  Add a third company, {company.name}, while the app runs (no restart):",
            f"    export APP_SECRET={self.app_secret.reveal_str()} "
            f"CLIENT_SECRET={self.client_secret}",
            f"    .venv/bin/asgi-sso dev-idp --port {port} "
            f"--user {user.sub}:{user.email}:{','.join(user.groups)} --client-id {DEV_CLIENT_ID} "
            f"--client-secret $CLIENT_SECRET --redirect-uri {self.settings.app_url}/auth/callback "
            f"--audience {DEV_AUDIENCE} &",
            f"    .venv/bin/asgi-sso connections add {store} --id {company.id} "
            f"--name {company.name} --issuer http://127.0.0.1:{port} --client-id {DEV_CLIENT_ID} "
            f"--client-secret-env CLIENT_SECRET --audience {DEV_AUDIENCE} "
            f"--domain {company.domain} --default-tier pro",
            f"    then sign in as {user.email}; cut the company off with:",
            f"    .venv/bin/asgi-sso connections disable {store} {company.id}",
        ]


class DemoConnections(SQLConnections):
    """The dev-mode connection store: a fresh SQLite file with the demo companies in it."""

    def __init__(self, url: str, *, seeds: list[Connection], **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._seeds = seeds

    async def start(self) -> None:
        """Create the tables, then add the demo companies that are not there yet."""
        await super().start()
        for connection in self._seeds:
            if await self.get(connection.id) is None:
                await self.add(connection)


def dev_idp(company: Company, app_url: str, clock: Clock | None = None) -> DevIdP:
    """A dev IdP for ``company`` with this app and its API docs registered as clients."""
    docs = DevClient(
        client_id=DOCS_CLIENT_ID,
        redirect_uris=(app_url + "/docs/oauth2-redirect",),
        audience=DEV_AUDIENCE,
    )
    return DevIdP(users=company.users, clients=[dev_client(app_url, ""), docs], clock=clock)


def dev_client(app_url: str, secret: str) -> DevClient:
    """This app's client registration at a dev IdP."""
    return DevClient(
        client_id=DEV_CLIENT_ID,
        client_secret=secret,
        redirect_uris=(app_url + "/auth/callback",),
        post_logout_redirect_uris=(app_url + "/",),
        backchannel_logout_uri=app_url + "/auth/backchannel-logout",
        audience=DEV_AUDIENCE,
        grant_types=("authorization_code", "refresh_token", "client_credentials"),
    )


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    user_store: UserStore | None = None,
) -> Example:
    """Build the example.

    Args:
        settings: the settings; default ``Settings.from_env()``.
        clock: the clock of the middleware, the stores and the dev IdPs (tests inject one).
        user_store: a user store instead of the SQLite/``DATABASE_URL`` one.
    """
    settings = settings or Settings.from_env()
    cookie_security(settings.app_url, dev_mode=settings.oidc is None)
    store = user_store or SQLUserStore(_database_url(settings, "fastapi-users"), clock=clock)
    if settings.oidc is not None:
        return Example(settings, store, clock=clock)
    idps = {c.id: dev_idp(c, settings.app_url, clock) for c in COMPANIES}
    # A new file per run: the dev IdPs' ports and the sealing secret are new each time.
    url = _database_url(settings, f"fastapi-connections-{secrets.token_hex(4)}")
    example = Example(settings, store, idps=idps, connections_url=url, clock=clock)
    for idp in idps.values():
        idp.add_client(dev_client(settings.app_url, example.client_secret))
    return example


def _database_url(settings: Settings, name: str) -> str:
    if settings.database_url and name == "fastapi-users":
        return settings.database_url
    folder = Path(settings.data_dir or Path(tempfile.gettempdir()) / "asgi-sso-examples")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{folder / name}.sqlite3"


def _mapper(admin_group: str) -> PriorityTierMapper:
    return PriorityTierMapper(
        tiers=TIERS,
        scopes=TIER_SCOPES,
        default_connection=ConnectionTiers(
            default_tier="free",
            groups={"analytics-pro": "pro", "analytics-enterprise": "enterprise"},
        ),
        group_scopes={admin_group: [ADMIN_SCOPE]},
    )


def _protect(example: Example) -> SSOMiddleware:
    settings = example.settings
    secure = cookie_security(settings.app_url, dev_mode=bool(example.idps))
    public = ["/", *example.docs_paths, "/favicon.ico", "/healthz"]
    identity = IdentityConfig(
        tier_mapper=_mapper(settings.admin_group), user_store=example.user_store
    )
    if example.connections is not None:
        return SSOMiddleware(
            example.api,
            connections=example.connections,
            paths=PathRules(public=public),
            login=LoginConfig(
                redirect_uri=settings.app_url + "/auth/callback",
                post_logout_redirect_uri=settings.app_url + "/",
                cookie_secrets=(settings.session_secret,),
                secure_cookies=secure,
                default_return_to="/dashboard",
            ),
            identity=identity,
            scim=ScimConfig(),  # each connection brings its own SCIM secret
            http_client=example.http_client,
            clock=example.clock,
        )
    oidc = settings.oidc
    assert oidc is not None
    if oidc.client_id is None:
        raise ConfigurationError("OIDC_CLIENT_ID is required for browser sign-in")
    login = LoginConfig(
        issuer=oidc.issuer,
        client_id=oidc.client_id,
        client_secret=oidc.client_secret,
        token_endpoint_auth="client_secret_basic" if oidc.client_secret else "none",
        redirect_uri=oidc.redirect_uri or settings.app_url + "/auth/callback",
        cookie_secrets=(settings.session_secret,),
        secure_cookies=secure,
        default_return_to="/dashboard",
    )
    scim = ScimConfig(tokens={oidc.issuer: settings.scim_token}) if settings.scim_token else None
    return SSOMiddleware(
        example.api,
        issuers=[oidc.api_issuer()],
        paths=PathRules(public=public),
        login=login,
        identity=identity,
        scim=scim,
        clock=example.clock,
    )


def _configure_docs(example: Example) -> tuple[str, ...]:
    """Make "Authorize" in ``/docs`` sign in: at each company's dev IdP, or at OIDC_ISSUER."""
    oidc = example.settings.oidc
    if oidc is not None:
        if oidc.docs_client_id is None:
            return DOCS_PATHS  # pasting a bearer token in /docs still works
        sign_in = DocsSignIn(
            issuer=oidc.issuer, client_id=oidc.docs_client_id, scopes=oidc.docs_scopes
        )
        return configure_docs(example.api, sign_in)
    paths: tuple[str, ...] = ()
    for company in COMPANIES:
        sign_in = DocsSignIn(
            issuer=example.idps[company.id].issuer,
            client_id=DOCS_CLIENT_ID,
            scopes=("openid", "profile", "email"),
            scheme_name=f"{company.name} sign-in",
        )
        paths = configure_docs(
            example.api, sign_in, http_client=example.http_client, clock=example.clock
        )
    return paths


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _build_api(example: Example) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        with serving(list(example.idps.values()), example.banner()):
            yield
        if example.http_client is not None:
            await example.http_client.aclose()

    api = FastAPI(title="Acme Analytics", lifespan=lifespan)
    admin = Depends(require_scopes(ADMIN_SCOPE))

    @api.exception_handler(StarletteHTTPException)
    async def refusal(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if _wants_html(request):
            body = pages.error_page(exc.status_code, str(exc.detail))
            return HTMLResponse(body, exc.status_code, headers=headers)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(user: OptionalUser) -> str:
        """Public, and it knows who is signed in (session cookie or bearer token)."""
        return pages.home_page(user)

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/dashboard", response_class=HTMLResponse)
    async def dashboard(user: CurrentUser) -> str:
        """The signed-in user's dashboard (a browser without a session is sent to sign in)."""
        return pages.dashboard_page(user)

    @api.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        """Who is calling: works with a session cookie or a bearer token."""
        return {
            "sub": user.identity,
            "email": user.email,
            "name": user.display_name,
            "connection": user.connection,
            "tier": user.tier,
            "scopes": sorted(user.scopes),
            "user_id": user.user_id,
            "via": user.source,
        }

    @api.get("/admin/users", response_model=None)
    async def admin_users(request: Request, user: Principal = admin) -> Any:
        """The provisioned users of the admin's own company (never another's)."""
        page = await example.user_store.list(user.connection, limit=200)
        users = [u for u in page.users if not u.deleted]
        if _wants_html(request):
            return HTMLResponse(pages.admin_page(user, users))
        return {
            "connection": user.connection,
            "users": [
                {
                    "id": u.id,
                    "sub": u.subject,
                    "email": u.profile.email,
                    "name": u.profile.name,
                    "tier": u.profile.tier,
                    "active": u.active,
                }
                for u in users
            ],
        }

    return api


_app: SSOMiddleware | None = None


def __getattr__(name: str) -> Any:
    """Build ``app`` from the environment on first access (``uvicorn ...app:app``)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app().app
    return _app
