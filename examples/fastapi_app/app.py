"""Acme Analytics: a B2B SaaS app on FastAPI whose customers sign in through their own IdP.

* ``/`` — home page with "Sign in with SSO" (public).
* ``/dashboard`` — the signed-in user, their company (connection) and tier.
* ``/me`` — the same as JSON, for a session cookie or a bearer token alike.
* ``/admin/users`` — admins only: the provisioned users of the admin's own company.
* ``/auth/*`` — sign-in, callback, logout and back-channel logout (served by the middleware).
* ``/scim/v2/Users`` — SCIM deprovisioning, one bearer secret per company.

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
    TierDecision,
    UserStore,
)
from asgi_sso.fastapi import CurrentUser, require_scopes
from asgi_sso.identity.stores.sql import SQLUserStore
from asgi_sso.testing import DevClient, DevIdP, DevUser
from examples._devkit import (
    OidcSettings,
    cookie_security,
    in_process_client,
    serving,
    session_secret,
    user_lines,
)
from examples.fastapi_app import pages

__all__ = ["ADMIN_SCOPE", "DEV_USERS", "Example", "Settings", "create_app"]

ADMIN_SCOPE = "users:admin"
TIERS = ("enterprise", "pro", "free")
TIER_SCOPES = {
    "free": ("dashboards:read",),
    "pro": ("dashboards:read", "dashboards:write"),
    "enterprise": ("dashboards:read", "dashboards:write", "audit:read"),
}
DEV_CLIENT_ID = "acme-analytics"
DEV_AUDIENCE = "api://acme-analytics"
DEV_USERS = (
    DevUser(sub="alice", email="alice@acme.example", name="Alice Admin",
            groups=("admins", "staff"), connection_id="acme"),
    DevUser(sub="bob", email="bob@acme.example", name="Bob Member",
            groups=("staff",), connection_id="acme"),
    DevUser(sub="carol", email="carol@globex.example", name="Carol Admin",
            groups=("admins",), connection_id="globex"),
    DevUser(sub="dave", email="dave@globex.example", name="Dave Analyst",
            groups=("analytics-pro",), connection_id="globex"),
)  # fmt: skip
"""Two companies: Acme buys Enterprise for everyone; at Globex only ``analytics-pro`` gets Pro."""
DEV_CONNECTION = "broker:{tenant}"
"""The dev IdP acts as a broker: its ``connection_id`` claim fills ``{tenant}``."""
DEV_CONNECTIONS = {
    "broker:acme": ConnectionTiers(default_tier="enterprise"),
    "broker:globex": ConnectionTiers(default_tier="free", groups={"analytics-pro": "pro"}),
}


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


class AdminGroupMapper:
    """A custom tier mapper: the default mapping, plus ``users:admin`` for the admin group."""

    def __init__(self, base: PriorityTierMapper, admin_group: str) -> None:
        self.base = base
        self.admin_group = admin_group

    def map(self, principal: Principal) -> TierDecision:
        """Decide the tier, then grant the admin scope to members of the admin group."""
        decision = self.base.map(principal)
        if self.admin_group not in decision.roles:
            return decision
        return msgspec.structs.replace(decision, scopes=decision.scopes | {ADMIN_SCOPE})


class Example:
    """Everything ``create_app`` built, for the server and for tests.

    Attributes:
        app: the ASGI app (``SSOMiddleware`` around FastAPI).
        api: the FastAPI app inside.
        idp: the embedded dev IdP (dev mode only).
        user_store: where users are provisioned.
        scim_tokens: connection → SCIM bearer secret.
        settings: the settings used.
        clock: the injected clock, if any.
    """

    def __init__(
        self,
        settings: Settings,
        idp: DevIdP | None,
        user_store: UserStore,
        scim_tokens: dict[str, Secret],
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.idp = idp
        self.user_store = user_store
        self.scim_tokens = scim_tokens
        self.api = _build_api(self)
        self.app: SSOMiddleware = _protect(self)

    def banner(self) -> list[str]:
        """What to print at start-up: where to go and who can sign in."""
        lines = [f"Acme Analytics (FastAPI) on {self.settings.app_url}"]
        if self.idp is None:
            assert self.settings.oidc is not None
            return [*lines, f"  signing in through {self.settings.oidc.issuer}"]
        lines += [
            f"  Open {self.settings.app_url}/ and click 'Sign in with SSO'.",
            f"  Embedded dev IdP: {self.idp.issuer} (development only; pick a user to sign in)",
            "  Test users:",
            *user_lines(self.idp),
            "  SCIM (deprovisioning) bearer secrets, per company:",
            *(
                f"    {conn}: {token.reveal_str()}  ->  {self.settings.app_url}/scim/v2/Users"
                for conn, token in self.scim_tokens.items()
            ),
        ]
        return lines


def dev_idp(app_url: str, clock: Clock | None = None) -> DevIdP:
    """The embedded dev IdP with the two demo companies and this app registered as a client."""
    client = DevClient(
        client_id=DEV_CLIENT_ID,
        client_secret=secrets.token_urlsafe(24),
        redirect_uris=(app_url + "/auth/callback",),
        post_logout_redirect_uris=(app_url + "/",),
        backchannel_logout_uri=app_url + "/auth/backchannel-logout",
        audience=DEV_AUDIENCE,
        grant_types=("authorization_code", "refresh_token", "client_credentials"),
    )
    return DevIdP(users=DEV_USERS, clients=[client], clock=clock)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    idp: DevIdP | None = None,
    user_store: UserStore | None = None,
) -> Example:
    """Build the example.

    Args:
        settings: the settings; default ``Settings.from_env()``.
        clock: the clock of the middleware, the store and the dev IdP (tests inject one).
        idp: a dev IdP to use instead of a new one (dev mode).
        user_store: a user store instead of the SQLite/``DATABASE_URL`` one.
    """
    settings = settings or Settings.from_env()
    cookie_security(settings.app_url, dev_mode=settings.oidc is None)
    if settings.oidc is None:
        idp = idp or dev_idp(settings.app_url, clock)
        scim_tokens = {conn: Secret(secrets.token_urlsafe(24)) for conn in DEV_CONNECTIONS}
    else:
        idp = None
        scim_tokens = {settings.oidc.issuer: settings.scim_token} if settings.scim_token else {}
    store = user_store or SQLUserStore(_database_url(settings), clock=clock)
    return Example(settings, idp, store, scim_tokens, clock)


def _database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    folder = Path(settings.data_dir or Path(tempfile.gettempdir()) / "asgi-sso-examples")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{folder / 'fastapi-users.sqlite3'}"


def _protect(example: Example) -> SSOMiddleware:
    settings, idp = example.settings, example.idp
    secure = cookie_security(settings.app_url, dev_mode=idp is not None)
    if idp is not None:
        client = idp.clients[DEV_CLIENT_ID]
        issuer = idp.issuer_config(
            audience=DEV_AUDIENCE,
            client_id=DEV_CLIENT_ID,
            connection_claim="connection_id",
            connection=DEV_CONNECTION,
        )
        login = LoginConfig(
            issuer=idp.issuer,
            client_id=DEV_CLIENT_ID,
            client_secret=Secret(client.client_secret or ""),
            redirect_uri=settings.app_url + "/auth/callback",
            post_logout_redirect_uri=settings.app_url + "/",
            cookie_secrets=(settings.session_secret,),
            secure_cookies=secure,
            default_return_to="/dashboard",
        )
        connections = DEV_CONNECTIONS
        http_client = in_process_client([idp])
    else:
        oidc = settings.oidc
        assert oidc is not None
        if oidc.client_id is None:
            raise ConfigurationError("OIDC_CLIENT_ID is required for browser sign-in")
        issuer = oidc.api_issuer()
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
        connections = {}
        http_client = None
    mapper = PriorityTierMapper(
        tiers=TIERS,
        scopes=TIER_SCOPES,
        connections=connections,
        default_connection=ConnectionTiers(
            default_tier="free",
            groups={"analytics-pro": "pro", "analytics-enterprise": "enterprise"},
        ),
    )
    return SSOMiddleware(
        example.api,
        issuers=[issuer],
        paths=PathRules(public=["/", "/docs/*", "/openapi.json", "/favicon.ico", "/healthz"]),
        login=login,
        identity=IdentityConfig(
            tier_mapper=AdminGroupMapper(mapper, settings.admin_group),
            user_store=example.user_store,
        ),
        scim=ScimConfig(tokens=example.scim_tokens) if example.scim_tokens else None,
        http_client=http_client,
        clock=example.clock,
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _build_api(example: Example) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        with serving([example.idp] if example.idp else [], example.banner()):
            yield

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
    async def home() -> str:
        return pages.home_page()

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
            "connection": user.tenant,
            "tier": user.tier,
            "scopes": sorted(user.scopes),
            "user_id": user.user_id,
            "via": user.source,
        }

    @api.get("/admin/users", response_model=None)
    async def admin_users(request: Request, user: Principal = admin) -> Any:
        """The provisioned users of the admin's own company (never another's)."""
        page = await example.user_store.list(user.tenant, limit=200)
        users = [u for u in page.users if not u.deleted]
        if _wants_html(request):
            return HTMLResponse(pages.admin_page(user, users))
        return {
            "connection": user.tenant,
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
