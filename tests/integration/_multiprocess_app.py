"""The app each uvicorn process of the multi-process tests serves.

Everything shared comes from the environment, exactly as in a deployment:
``ASGI_SSO_REDIS_URL``, ``ASGI_SSO_DATABASE_URL`` and ``ASGI_SSO_REDIS_PREFIX``
through :func:`asgi_sso.settings.from_env`; the test adds the IdP issuer, the
connection and the secrets (``MP_*``), which every process must share.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import Issuer, LoginConfig, PathRules, ScimConfig, Secret, SSOMiddleware
from asgi_sso.identity.redis_bus import RedisRevocationBus
from asgi_sso.settings import from_env

PROCESS = os.environ.get("MP_NAME", "?")


async def me(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {"process": PROCESS, "sub": user.identity, "user_id": user.user_id, "tenant": user.tenant}
    )


async def health(request: Request) -> JSONResponse:
    bus = middleware.revocations
    shared = isinstance(bus, RedisRevocationBus)
    ok = not shared or bus.connected
    return JSONResponse(
        {"process": PROCESS, "revocations_connected": ok}, status_code=200 if ok else 503
    )


env = from_env()
issuer = os.environ["MP_ISSUER"]
client_id = os.environ["MP_CLIENT_ID"]
middleware = SSOMiddleware(
    Starlette(routes=[Route("/healthz", health), Route("/me", me)]),
    [Issuer(issuer=issuer, audience=("api://mp", client_id), connection_claim="connection_id")],
    paths=PathRules(public=["/healthz"]),
    login=LoginConfig(
        issuer=issuer,
        client_id=client_id,
        client_secret=Secret(os.environ["MP_CLIENT_SECRET"]),
        cookie_secrets=(Secret(os.environ["MP_COOKIE_SECRET"]),),
        secure_cookies=False,
    ),
    scim=ScimConfig(
        tokens={f"{issuer}#{os.environ['MP_CONNECTION']}": Secret(os.environ["MP_SCIM_SECRET"])}
    ),
    identity=env.identity(),
    backends=env.backends(),
)
if isinstance(middleware.revocations, RedisRevocationBus):
    # Revocations may have been lost (a Redis without persistence restarted): check
    # every token again, so the user store decides.
    middleware.revocations.subscribe_gaps(middleware.verifier.cache.clear)
app = middleware
