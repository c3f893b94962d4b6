"""Swagger UI that signs in: ``/docs`` offers OAuth 2.0 authorization code + PKCE.

:func:`configure_docs` adds an ``oauth2`` security scheme (the provider's authorization and
token endpoints, given or found by discovery) to the app's OpenAPI document, beside the
bearer scheme the dependencies declare, so "Authorize" in ``/docs`` sends the browser to the
provider and Swagger UI then calls the API with the access token it got. Each operation lists
the scopes its :func:`~asgi_sso.fastapi.require_scopes` dependencies check. The sign-in uses
a *public* client (no secret: the page is public) with PKCE (RFC 7636).

Example::

    api = FastAPI()
    docs_paths = configure_docs(
        api, DocsSignIn(issuer="https://login.example.com", client_id="my-api-docs")
    )
    app = SSOMiddleware(api, issuers=[...], paths=PathRules(public=[*docs_paths, "/health"]))
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from asgi_sso.config import Clock, Limits, SystemClock
from asgi_sso.errors import ConfigurationError, KeysUnavailable
from asgi_sso.fastapi.dependencies import bearer_scheme, required_scopes
from asgi_sso.keys.discovery import DiscoveryCache
from asgi_sso.responses import error_body

__all__ = ["DEFAULT_SCHEME", "DocsSignIn", "configure_docs"]

DEFAULT_SCHEME = "SSO sign-in"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token
# Parameters Swagger UI sets itself: a second value would make the request ambiguous.
_RESERVED = frozenset(
    ("client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge")
) | {"code_challenge_method"}


class DocsSignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How Swagger UI at ``/docs`` signs in.

    Register a **public** client (no secret; Entra ID: a "Single-page application"
    platform; Okta: a SPA app; Auth0: a Single Page Application) whose redirect URI is the
    app's URL plus ``/docs/oauth2-redirect``.

    Attributes:
        client_id: that public client's id.
        issuer: the provider; its authorization and token endpoints come from its discovery
            document, fetched once, on the first ``/openapi.json``.
        authorization_url: the authorization endpoint, with ``token_url`` instead of discovery.
        token_url: the token endpoint.
        discovery_url: the discovery document, when not at the issuer's well-known URL.
        scopes: what "Authorize" asks for unless the user changes it: the provider's scopes
            (``openid``; Entra ID: your API's ``api://…/.default`` or its scope names).
        extra_params: other authorization request parameters (Auth0: ``audience``).
        scheme_name: the security scheme's name in the OpenAPI document.

    Raises:
        ConfigurationError: no endpoints nor issuer, a plain ``http`` URL off loopback, a
            malformed scope, a reserved parameter, or a string where a list belongs.
    """

    client_id: str
    issuer: str | None = None
    authorization_url: str | None = None
    token_url: str | None = None
    discovery_url: str | None = None
    scopes: tuple[str, ...] = ("openid",)
    extra_params: dict[str, str] = {}
    scheme_name: str = DEFAULT_SCHEME

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ConfigurationError("DocsSignIn.client_id must be the public client's id")
        given = (self.authorization_url is not None, self.token_url is not None)
        if given[0] != given[1]:
            raise ConfigurationError("DocsSignIn: give authorization_url and token_url together")
        if not given[0] and self.issuer is None:
            raise ConfigurationError(
                "DocsSignIn needs the provider: issuer (its endpoints by discovery), or "
                "authorization_url and token_url"
            )
        for name in ("issuer", "authorization_url", "token_url", "discovery_url"):
            _check_url(getattr(self, name), f"DocsSignIn.{name}", self.issuer)
        _check_scopes(self.scopes)
        if not isinstance(self.extra_params, dict):
            raise ConfigurationError("DocsSignIn.extra_params is a dict of parameter: value")
        reserved = sorted(_RESERVED & set(self.extra_params))
        if reserved:
            raise ConfigurationError(f"DocsSignIn.extra_params may not set {reserved}")
        if not all(isinstance(v, str) for v in self.extra_params.values()):
            raise ConfigurationError("DocsSignIn.extra_params values are strings")

    @property
    def discovery(self) -> str:
        """Where the provider's discovery document is."""
        if self.discovery_url is not None:
            return self.discovery_url
        return f"{(self.issuer or '').rstrip('/')}/.well-known/openid-configuration"


def _check_url(url: str | None, name: str, issuer: str | None) -> None:
    if url is None:
        return
    if not isinstance(url, str):
        raise ConfigurationError(f"{name} must be a URL string")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not a valid URL: {url!r}") from exc
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host in _LOOPBACK:
        return  # a dev IdP on this machine
    raise ConfigurationError(f"{name} must be https (plain http only on loopback): {url!r}")


def _check_scopes(scopes: object) -> None:
    if isinstance(scopes, str) or not isinstance(scopes, tuple | list):
        raise ConfigurationError(f"DocsSignIn.scopes takes a list of scopes, got {scopes!r}")
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
            raise ConfigurationError(f"DocsSignIn.scopes: {scope!r} is not a scope (RFC 6749 §3.3)")


class _Endpoints:
    """The authorization and token URLs: given, or discovered once (single-flight).

    ``/openapi.json`` is public, so a provider that cannot be reached is asked again only
    after ``Limits.retry_after`` seconds, whatever the traffic.
    """

    def __init__(
        self, sign_in: DocsSignIn, http_client: httpx.AsyncClient | None, clock: Clock
    ) -> None:
        self.sign_in = sign_in
        self._clock = clock
        self.urls: tuple[str, str] | None = None
        if sign_in.authorization_url is not None and sign_in.token_url is not None:
            self.urls = (sign_in.authorization_url, sign_in.token_url)
        self._client = http_client
        self._limits = Limits()
        self._lock: asyncio.Lock | None = None
        self._failed: KeysUnavailable | None = None
        self._retry_at = 0.0

    async def resolve(self) -> tuple[str, str]:
        """The URLs; raises :class:`KeysUnavailable` while the provider cannot say."""
        if self.urls is not None:
            return self.urls
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self.urls is None:
                if self._failed is not None and self._clock.monotonic() < self._retry_at:
                    raise self._failed
                try:
                    self.urls = await self._discover()
                except KeysUnavailable as exc:
                    self._failed, self._retry_at = exc, self._clock.monotonic() + exc.retry_after
                    raise
        return self.urls

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is not None:
            yield self._client
            return
        async with httpx.AsyncClient(timeout=self._limits.fetch_timeout) as client:
            yield client

    async def _discover(self) -> tuple[str, str]:
        issuer = self.sign_in.issuer or ""
        async with self._http() as client:
            cache = DiscoveryCache(client, limits=self._limits, clock=self._clock)
            try:
                metadata = await cache.get(self.sign_in.discovery, expected_issuer=issuer)
            except KeysUnavailable as exc:
                raise KeysUnavailable(
                    f"the sign-in of /docs needs {self.sign_in.discovery}: {exc.description}",
                    retry_after=exc.retry_after,
                ) from exc
        urls = (metadata.authorization_endpoint, metadata.token_endpoint)
        if urls[0] is None or urls[1] is None:
            raise KeysUnavailable(f"{issuer} names no authorization or token endpoint")
        methods = metadata.code_challenge_methods_supported
        if methods and "S256" not in methods:
            raise KeysUnavailable(f"{issuer} does not support PKCE with S256")
        try:
            for url in urls:
                _check_url(url, "a discovered endpoint", issuer)
        except ConfigurationError as exc:
            raise KeysUnavailable(str(exc)) from exc
        return urls[0], urls[1]


def _dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependencies(sub)


def _operation_scopes(api: FastAPI) -> dict[tuple[str, str], list[str]]:
    """(path, method) -> the scopes its ``require_scopes`` dependencies check, in order."""
    found: dict[tuple[str, str], list[str]] = {}
    for route in api.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        scopes = list(
            dict.fromkeys(s for c in _dependencies(route.dependant) for s in required_scopes(c))
        )
        for method in route.methods or ():
            found[(route.path_format, method.lower())] = scopes
    return found


def _add_sign_in(
    schema: dict[str, Any], api: FastAPI, sign_in: DocsSignIn, urls: tuple[str, str]
) -> None:
    """Add the ``oauth2`` scheme, and it as an alternative wherever the bearer scheme is."""
    bearer = bearer_scheme.scheme_name
    used: dict[str, list[str]] = {}
    for (path, method), scopes in _operation_scopes(api).items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if not operation or {bearer: []} not in operation.get("security", []):
            continue
        operation["security"].append({sign_in.scheme_name: scopes})
        for scope in scopes:
            used.setdefault(scope, []).append(f"{method.upper()} {path}")
    described = dict.fromkeys(sign_in.scopes, "asked for by default")
    for scope, where in used.items():
        described[scope] = "required by " + ", ".join(where[:5]) + (" ..." if where[5:] else "")
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[sign_in.scheme_name] = {
        "type": "oauth2",
        "description": (
            f"Sign in at the identity provider (authorization code + PKCE, client "
            f"{sign_in.client_id}). A required scope comes from the token or from your tier."
        ),
        "flows": {
            "authorizationCode": {
                "authorizationUrl": urls[0],
                "tokenUrl": urls[1],
                "scopes": described,
            }
        },
    }


def _redirect_page(request: Request) -> Response:
    # Swagger UI's own page that hands the code back to /docs (window.opener).
    page: HTMLResponse = get_swagger_ui_oauth2_redirect_html()
    return page


def _guard_openapi_route(api: FastAPI, endpoints: _Endpoints) -> None:
    """Have ``/openapi.json`` learn the provider's endpoints first (503 while it cannot)."""
    found = [
        (index, route)
        for index, route in enumerate(api.router.routes)
        if isinstance(route, Route) and route.path == api.openapi_url
    ]
    if not found:  # FastAPI adds it whenever openapi_url is set; someone removed it
        raise ConfigurationError(f"no route serves {api.openapi_url}")
    index, route = found[0]
    serve = route.endpoint

    async def openapi_json(request: Request) -> Response:
        try:
            await endpoints.resolve()
        except KeysUnavailable as exc:
            headers = {"Retry-After": str(exc.retry_after), "Cache-Control": "no-store"}
            return Response(error_body(exc), 503, headers, media_type="application/json")
        response: Response = await serve(request)
        return response

    api.router.routes[index] = Route(
        route.path, openapi_json, methods=["GET", "HEAD"], include_in_schema=False
    )


def configure_docs(
    api: FastAPI,
    sign_in: DocsSignIn,
    *,
    http_client: httpx.AsyncClient | None = None,
    clock: Clock | None = None,
) -> tuple[str, ...]:
    """Make ``/docs`` sign in at the provider with authorization code + PKCE.

    Sets FastAPI's ``swagger_ui_init_oauth`` (the client id, PKCE, the default scopes),
    makes sure the Swagger redirect page is served, and adds the ``oauth2`` security scheme
    to the OpenAPI document, each operation listing the scopes its dependencies require.
    Call it once per provider (each its own ``scheme_name``, one client id) to offer a
    choice of providers in the "Authorize" dialog.

    Args:
        api: the FastAPI app (before or after its routes are added).
        sign_in: the provider and the public client.
        http_client: fetches the discovery document (default: a client of its own per try).
        clock: monotonic time for the pause after a failed discovery.

    Returns:
        The documentation's paths (``/openapi.json``, ``/docs``, ``/docs/oauth2-redirect``
        and ``/redoc`` as the app names them), to add to ``PathRules.public``: a browser
        must reach them before it has signed in.

    Raises:
        ConfigurationError: the app serves no Swagger UI or OpenAPI document, or its
            ``swagger_ui_init_oauth`` holds a client secret.
    """
    if api.openapi_url is None or api.docs_url is None:
        raise ConfigurationError("configure_docs needs FastAPI's docs_url and openapi_url")
    earlier = (api.swagger_ui_init_oauth or {}).get("clientId", sign_in.client_id)
    if earlier != sign_in.client_id:
        raise ConfigurationError(
            f"Swagger UI has one client id for every sign-in scheme: {earlier!r} was set, "
            f"not {sign_in.client_id!r} (register the same public client id at each provider)"
        )
    init = {
        **(api.swagger_ui_init_oauth or {}),
        "clientId": sign_in.client_id,
        "usePkceWithAuthorizationCodeGrant": True,
        "scopes": " ".join(sign_in.scopes),
    }
    if sign_in.extra_params:
        init["additionalQueryStringParams"] = dict(sign_in.extra_params)
    if "clientSecret" in init:
        raise ConfigurationError(
            "swagger_ui_init_oauth holds a clientSecret, which /docs would show to anyone: "
            "use a public client (PKCE)"
        )
    api.swagger_ui_init_oauth = init
    if api.swagger_ui_oauth2_redirect_url is None:
        api.swagger_ui_oauth2_redirect_url = "/docs/oauth2-redirect"
        api.add_route(api.swagger_ui_oauth2_redirect_url, _redirect_page, include_in_schema=False)
    endpoints = _Endpoints(sign_in, http_client, clock or SystemClock())
    _guard_openapi_route(api, endpoints)
    _document_sign_in(api, sign_in, endpoints)
    paths = (api.openapi_url, api.docs_url, api.swagger_ui_oauth2_redirect_url, api.redoc_url)
    return tuple(dict.fromkeys(path for path in paths if path))


def _document_sign_in(api: FastAPI, sign_in: DocsSignIn, endpoints: _Endpoints) -> None:
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            if endpoints.urls is None:
                raise ConfigurationError(
                    "the docs' sign-in endpoints come from discovery, done by the first "
                    "GET /openapi.json: give DocsSignIn authorization_url and token_url to "
                    "build the document without the network"
                )
            schema = build()  # FastAPI keeps it as api.openapi_schema
            _add_sign_in(schema, api, sign_in, endpoints.urls)
            return schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
