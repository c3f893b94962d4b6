"""Public paths and scope rules match the path FastAPI, Starlette and Litestar route.

The middleware wraps the framework, so it sees the scope before the framework
applies its root_path: the server's (``--root-path``) or its own
(``FastAPI(root_path=...)``). Each app answers with the route it served.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from litestar import Litestar, get
from litestar import Request as LitestarRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import PathRules, SSOMiddleware
from asgi_sso.errors import ConfigurationError
from asgi_sso.testing import DevIdP, DevUser

AUD = "api://roots"
ROUTES = ("/health", "/static/app.js", "/admin/users", "/items")
RULES: dict[str, Any] = {"public": ["/health", "/static/*"], "scope_rules": {"/admin/*": ["admin"]}}


def _body(route: str, user: Any) -> dict[str, Any]:
    return {"route": route, "authenticated": bool(user.is_authenticated)}


def starlette_app() -> Starlette:
    def endpoint(route: str) -> Any:
        async def handler(request: Request) -> JSONResponse:
            return JSONResponse(_body(route, request.scope["user"]))

        return handler

    return Starlette(routes=[Route(r, endpoint(r)) for r in ROUTES])


def fastapi_app(root_path: str = "") -> FastAPI:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastAPI deprecates its own root_path; apps still use it
        app = FastAPI(root_path=root_path) if root_path else FastAPI()
    for r in ROUTES:

        def handler(request: FastAPIRequest, route: str = r) -> dict[str, Any]:
            return _body(route, request.scope["user"])

        app.add_api_route(r, handler, methods=["GET"])
    return app


def litestar_app() -> Litestar:
    def endpoint(route: str) -> Any:
        async def handler(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
            return _body(route, request.scope["user"])  # type: ignore[typeddict-item]

        return get(route, name=route)(handler)

    return Litestar(route_handlers=[endpoint(r) for r in ROUTES])


@pytest.fixture(scope="module")
def idp() -> DevIdP:
    return DevIdP("http://idp.test", users=[DevUser(sub="alice", email="alice@acme.test")])


@pytest.fixture
async def idp_http(idp: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    client = idp.http_client()
    yield client
    await client.aclose()


class Caller:
    def __init__(self, app: Any, idp: DevIdP, http: httpx.AsyncClient, root: str, **kw: Any):
        middleware = SSOMiddleware(
            app, [idp.issuer_config(audience=AUD)], http_client=http, paths=PathRules(**RULES, **kw)
        )
        transport = httpx.ASGITransport(app=middleware, root_path=root)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.read = {
            "authorization": f"Bearer {idp.issue_token('alice', audience=AUD, scopes=['read'])}"
        }
        self.admin = {
            "authorization": f"Bearer {idp.issue_token('alice', audience=AUD, scopes=['admin'])}"
        }

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(path, headers=headers or {})


async def check_rules_follow_routes(c: Caller, prefix: str) -> None:
    """The rules of each route hold at the path the framework routes there."""
    health = await c.get(prefix + "/health")
    assert health.status_code == 200, health.text
    assert health.json() == {"route": "/health", "authenticated": False}
    static = await c.get(prefix + "/static/app.js")
    assert static.json() == {"route": "/static/app.js", "authenticated": False}
    assert (await c.get(prefix + "/items")).status_code == 401
    items = await c.get(prefix + "/items", c.read)
    assert items.json() == {"route": "/items", "authenticated": True}
    denied = await c.get(prefix + "/admin/users", c.read)
    assert denied.status_code == 403
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    admin = await c.get(prefix + "/admin/users", c.admin)
    assert admin.json() == {"route": "/admin/users", "authenticated": True}


async def test_fastapi_with_its_own_root_path_and_a_proxy_that_keeps_the_prefix(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # FastAPI(root_path="/api") behind a proxy that forwards /api/... unchanged: the
    # server sets no root_path, FastAPI routes /api/admin/users as /admin/users.
    caller = Caller(fastapi_app("/api"), idp, idp_http, root="")
    async with caller.client:
        await check_rules_follow_routes(caller, "/api")
        await check_rules_follow_routes(caller, "")  # a proxy that strips the prefix


async def test_fastapi_root_path_replaces_the_servers(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    caller = Caller(fastapi_app("/api"), idp, idp_http, root="/srv")
    async with caller.client:
        await check_rules_follow_routes(caller, "/api")


async def test_fastapi_behind_a_server_root_path(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    caller = Caller(fastapi_app(), idp, idp_http, root="/api")
    async with caller.client:
        await check_rules_follow_routes(caller, "/api")


async def test_starlette_behind_a_server_root_path(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    caller = Caller(starlette_app(), idp, idp_http, root="/api")
    async with caller.client:
        await check_rules_follow_routes(caller, "/api")
        # Starlette cuts the root only at a segment boundary: /apiadmin is not /admin.
        assert (await caller.get("/api/static/api/admin/users")).status_code == 404


async def test_litestar_behind_a_server_root_path(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    caller = Caller(litestar_app(), idp, idp_http, root="/api")
    async with caller.client:
        await check_rules_follow_routes(caller, "/api")
        # Litestar splits at the root wherever it occurs: this is its /admin/users,
        # so the public /static/* rule must not let it through anonymously.
        sneaky = await caller.get("/static/api/admin/users")
        assert sneaky.status_code == 401
        assert (await caller.get("/static/api/admin/users", caller.read)).status_code == 403
        admin = await caller.get("/static/api/admin/users", caller.admin)
        assert admin.json() == {"route": "/admin/users", "authenticated": True}


async def test_explicit_root_path_for_a_wrapped_framework(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        await inner(scope, receive, send)

    inner = fastapi_app("/api")
    caller = Caller(wrapper, idp, idp_http, root="", root_path="/api")
    async with caller.client:
        await check_rules_follow_routes(caller, "/api")


async def test_unknown_framework_with_an_ambiguous_path_is_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # Starlette would route /static/api/admin/users as is (public), Litestar as
    # /admin/users: an app of unknown kind gets neither reading, but a 400.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await starlette_app()(scope, receive, send)

    caller = Caller(app, idp, idp_http, root="/api")
    async with caller.client:
        refused = await caller.get("/static/api/admin/users")
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_request"
        await check_rules_follow_routes(caller, "/api")


@pytest.mark.parametrize("bad", ["api", "/api/", "/a//b", "/a*"])
def test_bad_root_path_fails_at_start_up(idp: DevIdP, bad: str) -> None:
    with pytest.raises(ConfigurationError):
        PathRules(root_path=bad)
