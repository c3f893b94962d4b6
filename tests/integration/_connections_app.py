"""The app each uvicorn process of the connection multi-process tests serves.

Shared state comes from the environment as in a deployment: the connections in
PostgreSQL (``MP_DATABASE_URL``, tables named with ``MP_TABLE_PREFIX``), the
revocation bus in Redis (``ASGI_SSO_REDIS_URL``, ``ASGI_SSO_REDIS_PREFIX``).
``MP_POLL`` sets how often a worker asks the store on its own: the tests make it
long, so a change can only arrive in time through the bus.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_sso import Limits, PathRules, Secret, SSOMiddleware
from asgi_sso.connections import SQLConnections
from asgi_sso.settings import from_env

PROCESS = os.environ.get("MP_NAME", "?")


async def me(request: Request) -> JSONResponse:
    return JSONResponse(
        {"process": PROCESS, "sub": request.user.identity, "tenant": request.user.tenant}
    )


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"process": PROCESS})


inner = Starlette(routes=[Route("/healthz", health), Route("/me", me)])
middleware = SSOMiddleware(
    inner,
    connections=SQLConnections(
        os.environ["MP_DATABASE_URL"],
        secrets=[Secret(os.environ["MP_APP_SECRET"])],
        table_prefix=os.environ["MP_TABLE_PREFIX"],
    ),
    # Test only: the admin API has no authentication of its own and belongs behind
    # the application's admin authorisation, never on a public path.
    paths=PathRules(public=["/healthz", "/admin/*"]),
    backends=from_env().backends(sessions=False),
    limits=Limits(connections_poll=float(os.environ.get("MP_POLL", "0.5"))),
)
inner.router.routes.append(Mount("/admin/connections", app=middleware.connections_admin()))
app = middleware
