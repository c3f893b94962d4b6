"""The app each uvicorn process of the DPoP multi-process test serves.

The replay memory is shared the way a deployment shares it: ``ASGI_SSO_REDIS_URL``
(and ``ASGI_SSO_REDIS_PREFIX``) through :func:`asgi_sso.settings.from_env`. Both
processes sit behind one external URL (``MP_EXTERNAL_URL``), as behind a load
balancer, so one proof names the same URL on either.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import Issuer, PathRules, SSOMiddleware
from asgi_sso.settings import from_env

PROCESS = os.environ.get("MP_NAME", "?")


async def things(request: Request) -> JSONResponse:
    return JSONResponse({"process": PROCESS, "sub": request.user.identity})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"process": PROCESS})


env = from_env()
app = SSOMiddleware(
    Starlette(routes=[Route("/healthz", health), Route("/things", things)]),
    [Issuer(issuer=os.environ["MP_ISSUER"], audience="api://mp-dpop", dpop="require")],
    paths=PathRules(public=["/healthz"], external_url=os.environ["MP_EXTERNAL_URL"]),
    backends=env.backends(sessions=False),
)
