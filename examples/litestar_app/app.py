"""Shotter: a screenshot-style API on Litestar, bearer or DPoP tokens, limits by tier.

Callers are machines of customer companies holding access tokens from one of
several trusted issuers: a broker (one issuer, the company in a
``connection_id`` claim) and an Entra-style templated issuer
(``http://host/{tenant}/v2.0``, one tenant per company). IdP groups map to the
``free``/``pro``/``enterprise`` tiers, with a default tier per company. Both issuers
accept DPoP-bound tokens too (``Issuer(dpop="allow")``); the broker's ``acme-dpop-bot``
gets nothing else.

``create_app()`` builds everything; ``app`` (this module's attribute, built on
first access) reads the environment, see the README.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException, TooManyRequestsException
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody

from asgi_sso import (
    Clock,
    ConnectionTiers,
    IdentityConfig,
    Issuer,
    PathRules,
    Principal,
    PriorityTierMapper,
    SSOMiddleware,
    SystemClock,
)
from asgi_sso.litestar import (
    SECURITY_COMPONENTS,
    SECURITY_REQUIREMENT,
    current_user,
    require_scopes,
    require_tier,
)
from asgi_sso.testing import DevClient, DevIdP, DevUser, free_port
from examples._devkit import OidcSettings, in_process_client, serving
from examples.litestar_app.plans import LIMITS, TIER_SCOPES, TIERS, RateLimiter, TierLimits

__all__ = ["AUDIENCE", "CONTOSO_TENANT", "DPOP_BOT", "DevIdPs", "Shotter", "create_app"]

AUDIENCE = "api://shotter"
DPOP_BOT = "acme-dpop-bot"
"""A service account registered ``dpop_bound``: its tokens are DPoP-bound (RFC 9449)."""
CONTOSO_TENANT = "7d1c0b7a-3f2e-4c8b-9a51-0c6f2d4e8b13"
User = NamedDependency[Principal]
"""A handler parameter ``user: User`` receives the principal (``Provide(current_user)``)."""
GROUPS = {"screenshot-pro": "pro", "screenshot-enterprise": "enterprise"}
DEV_CONNECTIONS = {
    "broker:acme": ConnectionTiers(default_tier="free", groups=GROUPS),
    f"entra:{CONTOSO_TENANT}": ConnectionTiers(default_tier="pro", groups=GROUPS),
}
"""Acme's contract is Free (groups buy more); Contoso's whole tenant is on Pro.

Connection ids name their issuer, so a broker connection and an Entra tenant never meet.
"""


class DevIdPs:
    """The embedded providers: a broker for Acme and an Entra-style tenant for Contoso.

    Each service account is a client (``client_credentials``) whose ``sub`` is its
    client id; the matching :class:`DevUser` gives it its groups and company.
    :data:`DPOP_BOT` must send a DPoP proof for each token.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.broker = DevIdP(clock=clock)
        port = free_port()
        self.entra = DevIdP(f"http://127.0.0.1:{port}/{CONTOSO_TENANT}/v2.0", clock=clock)
        for sub, groups in (
            ("acme-free-bot", ()),
            ("acme-pro-bot", ("screenshot-pro",)),
            ("acme-enterprise-bot", ("screenshot-enterprise",)),
        ):
            self._service(self.broker, DevUser(sub=sub, groups=groups, connection_id="acme"))
        bot = DevUser(sub=DPOP_BOT, groups=("screenshot-pro",), connection_id="acme")
        self._service(self.broker, bot, dpop_bound=True)
        self._service(self.entra, DevUser(sub="contoso-pipeline", tenant=CONTOSO_TENANT))

    @staticmethod
    def _service(idp: DevIdP, user: DevUser, *, dpop_bound: bool = False) -> None:
        idp.add_user(user)
        idp.add_client(
            DevClient(
                client_id=user.sub,
                client_secret=secrets.token_urlsafe(24),
                audience=AUDIENCE,
                grant_types=("client_credentials",),
                dpop_bound=dpop_bound,
            )
        )

    @property
    def all(self) -> tuple[DevIdP, DevIdP]:
        """Both providers."""
        return (self.broker, self.entra)

    def issuers(self) -> list[Issuer]:
        """The trusted issuers: the broker exactly, the Entra-style one as a template."""
        return [
            self.broker.issuer_config(
                audience=AUDIENCE,
                connection_claim="connection_id",
                connection="broker:{tenant}",
                dpop="allow",  # Bearer or DPoP; a DPoP-bound token only with its proofs
            ),
            Issuer(
                issuer=f"{self.entra.origin}/{{tenant}}/v2.0",
                audience=AUDIENCE,
                jwks_uri=self.entra.jwks_uri,
                tenants=frozenset({CONTOSO_TENANT}),
                connection="entra:{tenant}",
                algorithms=(self.entra.algorithm,),
                dpop="allow",
            ),
        ]

    def banner(self, api: str) -> list[str]:
        """How to get a token for each service account and call ``api`` (the API's URL)."""
        lines = []
        for idp in self.all:
            lines.append(f"  issuer {idp.issuer}")
            for client in idp.clients.values():
                if not client.dpop_bound:
                    lines.append(
                        f"    curl -s -u {client.client_id}:{client.client_secret} "
                        f"-d grant_type=client_credentials {idp.url('/token')}"
                    )
        lines.append(f"    curl -s -H 'Authorization: Bearer <access_token>' {api}/v1/plan")
        return [*lines, *self.dpop_banner(api)]

    def dpop_banner(self, api: str) -> list[str]:
        """The shell lines getting :data:`DPOP_BOT` a DPoP-bound token and calling ``api``."""
        secret = self.broker.clients[DPOP_BOT].client_secret
        env = DPOP_BOT.upper().replace("-", "_") + "_SECRET"
        key = f"{DPOP_BOT}.jwk"
        proof = f'asgi-sso dpop-proof --key {key} --method GET --url {api}/v1/plan --token "$T"'
        return [
            f"  DPoP service account {DPOP_BOT} (a new proof per request; see the README):",
            f"    export {env}={secret}",
            f"    T=$(asgi-sso token --client {DPOP_BOT} --secret-env {env} "
            f"--issuer {self.broker.issuer} --dpop --save-dpop-key {key})",
            f'    curl -s -H "Authorization: DPoP $T" -H "DPoP: $({proof})" {api}/v1/plan',
        ]


class ScreenshotRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A screenshot to take."""

    url: str
    width: int = 1280
    height: int = 800
    format: str = "png"


class BatchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Several screenshots at once (Pro and up)."""

    items: list[ScreenshotRequest]


class Shotter:
    """Everything ``create_app`` built, for the server and for tests.

    Attributes:
        app: the ASGI app (``SSOMiddleware`` around Litestar).
        idps: the embedded providers (dev mode only).
        banner: what the server prints when it starts.
        limiter: the per-caller rate limiter.
    """

    def __init__(
        self,
        *,
        issuers: Sequence[Issuer],
        connections: Mapping[str, ConnectionTiers],
        idps: DevIdPs | None,
        clock: Clock | None,
        banner: Sequence[str],
    ) -> None:
        self.idps = idps
        self.banner = list(banner)
        self.limiter = RateLimiter(clock or SystemClock())
        mapper = PriorityTierMapper(
            tiers=TIERS,
            scopes=TIER_SCOPES,
            connections=connections,
            default_connection=ConnectionTiers(default_tier="free", groups=GROUPS),
        )
        self.app = SSOMiddleware(
            _api(self, banner),
            issuers=issuers,
            paths=PathRules(public=["/health", "/schema/*"]),
            identity=IdentityConfig(tier_mapper=mapper),
            http_client=in_process_client(idps.all) if idps is not None else None,
            clock=clock,
        )

    def admit(self, user: Principal, requests: Sequence[ScreenshotRequest]) -> TierLimits:
        """Check ``requests`` against the caller's tier and rate; return the tier's limits.

        Raises:
            PermissionDeniedException: a size or format beyond the tier.
            TooManyRequestsException: the caller's per-minute budget is spent.
        """
        limits = LIMITS.get(user.tier or "free", LIMITS["free"])
        for item in requests:
            if item.width > limits.max_width or item.height > limits.max_height:
                raise PermissionDeniedException(
                    f"the {user.tier} tier allows up to {limits.max_width}x{limits.max_height}"
                )
            if item.format not in limits.formats:
                raise PermissionDeniedException(
                    f"the {user.tier} tier allows the formats {', '.join(limits.formats)}"
                )
        wait = self.limiter.take(
            f"{user.connection}\x00{user.identity}", limits.per_minute, len(requests)
        )
        if wait is not None:
            raise TooManyRequestsException(
                f"the {user.tier} tier allows {limits.per_minute} screenshots per minute",
                headers={"Retry-After": str(int(wait))},
            )
        return limits


def _job(user: Principal, item: ScreenshotRequest) -> dict[str, Any]:
    return {
        "id": secrets.token_hex(8),
        "status": "queued",
        "url": item.url,
        "width": item.width,
        "height": item.height,
        "format": item.format,
        "tier": user.tier,
    }


def _api(shotter: Shotter, banner: Sequence[str]) -> Litestar:
    user = {"user": Provide(current_user, sync_to_thread=False)}

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/v1/plan", dependencies=user)
    async def plan(user: User) -> dict[str, Any]:
        """The caller's tier, scopes and limits."""
        limits = LIMITS.get(user.tier or "free", LIMITS["free"])
        return {
            "connection": user.connection,
            "tier": user.tier,
            "scopes": sorted(user.scopes),
            "limits": msgspec.to_builtins(limits),
        }

    @post("/v1/screenshots", dependencies=user, guards=[require_scopes("screenshots:create")])
    async def screenshot(data: JSONBody[ScreenshotRequest], user: User) -> dict[str, Any]:
        """Queue one screenshot within the tier's size, format and rate limits."""
        shotter.admit(user, [data])
        return _job(user, data)

    @post("/v1/screenshots/batch", dependencies=user, guards=[require_scopes("screenshots:batch")])
    async def batch(data: JSONBody[BatchRequest], user: User) -> dict[str, Any]:
        """Queue several screenshots (Pro and up)."""
        limits = LIMITS.get(user.tier or "free", LIMITS["free"])
        if len(data.items) > limits.max_batch:
            raise PermissionDeniedException(
                f"the {user.tier} tier allows batches of {limits.max_batch}"
            )
        shotter.admit(user, data.items)
        return {"jobs": [_job(user, item) for item in data.items]}

    # The tier mapper's own order decides "enterprise or higher": no ranking to repeat.
    @get("/v1/usage/export", dependencies=user, guards=[require_tier("enterprise")])
    async def usage_export(user: User) -> dict[str, Any]:
        """Usage export (Enterprise only)."""
        return {"connection": user.connection, "rows": []}

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        with serving(shotter.idps.all if shotter.idps is not None else (), banner):
            yield

    return Litestar(
        route_handlers=[health, plan, screenshot, batch, usage_export],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Shotter",
            version="1.0.0",
            components=SECURITY_COMPONENTS,
            security=SECURITY_REQUIREMENT,
        ),
    )


def create_app(
    oidc: OidcSettings | None = None,
    *,
    clock: Clock | None = None,
    idps: DevIdPs | None = None,
    port: int = 8000,
) -> Shotter:
    """Build the example.

    Args:
        oidc: a real provider; ``None`` reads ``OIDC_*`` from the environment and,
            when unset, runs the embedded dev IdPs.
        clock: the clock of the middleware, the rate limiter and the dev IdPs.
        idps: dev IdPs to use instead of new ones.
        port: the port the API is served on (for the start-up message).
    """
    oidc = oidc or OidcSettings.from_env()
    head = [f"Shotter (Litestar) on http://127.0.0.1:{port} - bearer or DPoP tokens"]
    if oidc is not None:
        issuer = oidc.api_issuer()
        return Shotter(
            issuers=[issuer],
            connections={},
            idps=None,
            clock=clock,
            banner=[*head, f"  trusting {oidc.issuer} (audience {oidc.audience})"],
        )
    idps = idps or DevIdPs(clock)
    banner = [
        *head,
        "  Embedded dev IdPs (development only). Get a token, then call the API:",
        *idps.banner(f"http://127.0.0.1:{port}"),
    ]
    return Shotter(
        issuers=idps.issuers(), connections=DEV_CONNECTIONS, idps=idps, clock=clock, banner=banner
    )


_app: SSOMiddleware | None = None


def __getattr__(name: str) -> Any:
    """Build ``app`` from the environment on first access (``uvicorn ...app:app``)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app(port=int(os.environ.get("PORT", "8000"))).app
    return _app
