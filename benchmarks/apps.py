"""The ASGI apps compared in-process (``middleware``) and behind uvicorn (``e2e``).

Each endpoint answers ``GET /`` with a short text; the protected ones answer with
the verified ``sub``. All verify RS256 tokens with the same checks (signature,
``iss``, ``aud``, ``exp``, ``nbf``, ``iat``, ``sub``). The PyJWT-based apps get
their keys from PyJWKClient over a local JWKS server on 127.0.0.1 (fetched once,
then cached by PyJWKClient); Litestar's ``JWTAuth`` takes the public key as PEM
(it has no JWKS support); asgi_sso gets its JWKS through an ``httpx.MockTransport``.

``factory()`` builds the app named by ``BENCH_APP`` from the material file in
``BENCH_MATERIAL``, for ``uvicorn benchmarks.apps:factory --factory``.

No ``from __future__ import annotations`` here: FastAPI and Litestar read the
handlers' annotations at run time, and those name objects local to the builders.
"""

import os
from collections.abc import Callable
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from benchmarks.fixtures import Material, serve_jwks

REQUIRE = ["exp", "iat", "nbf", "iss", "aud", "sub"]


def _user(request: Request) -> str:
    user = request.scope.get("user")
    return str(getattr(user, "identity", None) or getattr(user, "sub", None) or "anonymous")


async def _home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(_user(request))


def starlette_bare(material: Material) -> Any:
    """The baseline: a Starlette app with no authentication."""
    return Starlette(routes=[Route("/", _home)])


def asgi_sso(material: Material) -> Any:
    """asgi_sso's ``SSOMiddleware`` around the bare Starlette app."""
    from benchmarks._asgi_sso import Limits, SSOMiddleware
    from benchmarks.candidates.asgi_sso_ import issuer, jwks_client

    return SSOMiddleware(
        starlette_bare(material),
        [issuer(material)],
        http_client=jwks_client(material),
        limits=Limits(token_cache_size=100_000),
    )


def asgi_sso_stubbed(material: Material) -> Any:
    """``SSOMiddleware`` whose verification is a stub answering at once (diagnostic only).

    Every request still goes through extraction and the cache lookups; the verifier
    returns one pre-verified token without parsing or checking anything. The
    difference to ``asgi_sso`` is what verification costs inside the request loop.
    """
    import asyncio

    from benchmarks._asgi_sso import middleware_verify, replace_verification

    app = asgi_sso(material)
    loop = asyncio.new_event_loop()
    try:
        verify = middleware_verify(app)
        verified = loop.run_until_complete(verify(material.warmup[0], use_cache=False))
    finally:
        loop.close()

    async def stub(token: str, **options: Any) -> Any:
        return verified

    replace_verification(app, stub)
    return app


def asgi_sso_signature_only(material: Material) -> Any:
    """``SSOMiddleware`` whose verifier does nothing but the floor's signature check
    (diagnostic only: tokens are split before timing; no claims, no cache insert).

    Its overhead over bare Starlette, divided by the raw-crypto floor, is the
    lowest cold ratio any verifier could reach inside this middleware.
    """
    from benchmarks._asgi_sso import middleware_verify, replace_verification
    from benchmarks.candidates import raw_crypto

    app = asgi_sso_stubbed(material)
    stub = middleware_verify(app)
    check = raw_crypto.setup(material, "cold")

    async def signature_only(token: str, **options: Any) -> Any:
        check((token,))
        return await stub(token)

    replace_verification(app, signature_only)
    return app


def verify_then_starlette(material: Material) -> Any:
    """No middleware: the verify suite's ``TokenVerifier`` called by hand before bare
    Starlette (diagnostic only: full verification, 401 on refusal, nothing else).

    Its overhead over bare Starlette is what verification costs inside a request
    loop, the same work as the verify suite's ``asgi_sso:cold`` but interleaved with
    the framework's own work on every request.
    """
    from benchmarks._asgi_sso import AuthError
    from benchmarks.candidates.asgi_sso_ import verifier

    app = starlette_bare(material)
    verify = verifier(material).verify

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        try:
            await verify(auth.decode("latin-1").removeprefix("Bearer "))
        except AuthError:
            await PlainTextResponse("unauthorized", 401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


class _PyJWTMiddleware:
    """A typical hand-written pure-ASGI middleware: Bearer header -> PyJWT -> scope."""

    def __init__(self, app: Any, material: Material) -> None:
        self.app = app
        self.client = jwt.PyJWKClient(serve_jwks(material))
        self.kwargs = {
            "algorithms": [material.alg],
            "audience": material.audience,
            "issuer": material.issuer,
            "options": {"require": REQUIRE},
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = auth.partition(" ")
            try:
                if scheme.lower() != "bearer":
                    raise jwt.InvalidTokenError("no bearer token")
                key = self.client.get_signing_key_from_jwt(token).key
                claims = jwt.decode(token, key, **self.kwargs)
            except (jwt.InvalidTokenError, jwt.PyJWKClientError):
                await PlainTextResponse("unauthorized", 401)(scope, receive, send)
                return
            scope["user"] = type("User", (), {"identity": claims["sub"]})()
        await self.app(scope, receive, send)


def starlette_pyjwt(material: Material) -> Any:
    """Starlette with a PyJWT + PyJWKClient middleware."""
    return _PyJWTMiddleware(starlette_bare(material), material)


def litestar_bare(material: Material) -> Any:
    """A Litestar app with no authentication."""
    from litestar import Litestar, get

    @get("/", sync_to_thread=False)
    def home() -> str:
        return "anonymous"

    return Litestar(route_handlers=[home], debug=False)


def litestar_jwt(material: Material) -> Any:
    """Litestar with ``litestar.security.jwt.JWTAuth`` (PyJWT underneath)."""
    from litestar import Litestar, Request, get
    from litestar.security.jwt import JWTAuth, Token

    def retrieve_user(token: Token, connection: Any) -> str:
        return token.sub

    assert material.pem is not None
    auth = JWTAuth[str, Token](
        retrieve_user_handler=retrieve_user,
        token_secret=material.pem,
        algorithm=material.alg,
        accepted_audiences=[material.audience],
        accepted_issuers=[material.issuer],
        require_claims=REQUIRE,
    )

    @get("/", sync_to_thread=False)
    def home(request: Request[str, Token, Any]) -> str:
        return request.user

    return Litestar(route_handlers=[home], on_app_init=[auth.on_app_init], debug=False)


def fastapi_bare(material: Material) -> Any:
    """A FastAPI app with no authentication."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/", response_class=PlainTextResponse)
    async def home() -> str:
        return "anonymous"

    return app


def fastapi_pyjwt(material: Material) -> Any:
    """FastAPI with an ``async`` ``Depends`` on ``HTTPBearer`` + PyJWT + PyJWKClient."""
    from typing import Annotated

    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    client = jwt.PyJWKClient(serve_jwks(material))
    bearer = HTTPBearer()
    app = FastAPI()

    async def current_user(
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    ) -> str:
        token = credentials.credentials
        try:
            key = client.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=[material.alg],
                audience=material.audience,
                issuer=material.issuer,
                options={"require": REQUIRE},
            )
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise HTTPException(status_code=401, detail="invalid token") from exc
        return str(claims["sub"])

    @app.get("/", response_class=PlainTextResponse)
    async def home(user: Annotated[str, Depends(current_user)]) -> str:
        return user

    return app


APPS: dict[str, Callable[[Material], Any]] = {
    "starlette": starlette_bare,
    "asgi_sso": asgi_sso,
    "asgi_sso_stubbed": asgi_sso_stubbed,
    "asgi_sso_signature_only": asgi_sso_signature_only,
    "verify_then_starlette": verify_then_starlette,
    "starlette_pyjwt": starlette_pyjwt,
    "litestar": litestar_bare,
    "litestar_jwt": litestar_jwt,
    "fastapi": fastapi_bare,
    "fastapi_pyjwt": fastapi_pyjwt,
}
"""App name -> builder."""

BASELINE = {
    "asgi_sso": "starlette",
    "asgi_sso_stubbed": "starlette",
    "asgi_sso_signature_only": "starlette",
    "verify_then_starlette": "starlette",
    "starlette_pyjwt": "starlette",
    "litestar_jwt": "litestar",
    "fastapi_pyjwt": "fastapi",
}
"""Each protected app's unauthenticated baseline (its overhead is measured against it)."""


STUBBED = frozenset({"asgi_sso_stubbed", "asgi_sso_signature_only"})
"""Diagnostic apps that accept any token (never in the e2e suite, never a candidate)."""

DIAGNOSTIC = STUBBED | {"verify_then_starlette"}
"""Every app that only explains a figure (never in the e2e suite)."""


def factory() -> Any:
    """Build the app named by ``$BENCH_APP`` (for uvicorn's ``--factory``)."""
    material = Material.load(os.environ["BENCH_MATERIAL"])
    return APPS[os.environ["BENCH_APP"]](material)
