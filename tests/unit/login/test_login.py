"""BrowserLogin's callback against a provider whose token endpoint the test scripts.

Discovery, JWKS and authorize come from the DevIdP; the token and userinfo
answers are written here, so every ID token defect and hostile response is tried.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import pytest

from asgi_sso.config import AT_JWT_TYPES, Secret
from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.revocation import RevocationBus
from asgi_sso.login import BrowserLogin, LoginConfig
from asgi_sso.login.oidc import FlowState, TokenSet
from asgi_sso.observe.events import NULL_EMITTER
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock
from asgi_sso.verify import TokenVerifier

IDP = "https://idp.example"
APP = "https://app.example"
SECRET = "client secret+/="
Override = Callable[[httpx.Request], httpx.Response | None]


class Provider:
    """A DevIdP whose /token and /userinfo answers a test may replace."""

    def __init__(self, *, issuer: dict[str, Any] | None = None, **login: Any) -> None:
        self.clock = FakeClock()
        self.idp = DevIdP(
            IDP,
            users=[DevUser(sub="alice", email="alice@corp.example")],
            clients=[DevClient(client_id="web", client_secret=SECRET,
                               redirect_uris=(APP + "/auth/callback",))],
            auto_approve=True,
            clock=self.clock,
        )  # fmt: skip
        self.overrides: dict[str, Override] = {}
        self.requests: list[httpx.Request] = []
        asgi = httpx.ASGITransport(app=self.idp)

        async def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            override = self.overrides.get(request.url.path)
            answer = override(request) if override is not None else None
            return answer if answer is not None else await asgi.handle_async_request(request)

        self.http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        config = LoginConfig(
            issuer=IDP,
            client_id="web",
            client_secret=Secret(SECRET),
            cookie_secrets=(Secret(b"k" * 32),),
            **login,
        )
        self.verifier = TokenVerifier(
            [self.idp.issuer_config(**(issuer or {}))], client=self.http, clock=self.clock
        )
        self.login = BrowserLogin(
            config,
            verifier=self.verifier,
            client=self.http,
            session_store=None,
            clock=self.clock,
            emitter=NULL_EMITTER,
            revocations=RevocationBus(),
        )

    def id_token(self, nonce: str, **changes: Any) -> str:
        now = int(self.clock.now)
        claims = {"iss": IDP, "sub": "alice", "aud": "web", "iat": now, "exp": now + 300,
                  "nonce": nonce, **changes}  # fmt: skip
        return self.idp.sign({k: v for k, v in claims.items() if v is not None}, "JWT")

    async def call(
        self, path: str, *, method: str = "GET", cookie: str = "", query: str = "", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        if cookie:
            raw.append((b"cookie", cookie.encode()))
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "scheme": "https",
            "query_string": query.encode(),
            "headers": [(b"host", b"app.example"), *raw],
        }
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await self.login.handle(scope, receive, send)
        head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
        return sent[0]["status"], head, sent[1]["body"]

    async def begin(self) -> tuple[str, dict[str, str]]:
        """Start a sign-in; return the state cookie and the authorization request parameters."""
        status, head, _ = await self.call("/auth/login", query="return_to=/home")
        assert status == 302
        cookie = head["set-cookie"].split(";")[0]
        params = {k: v[0] for k, v in parse_qs(urlsplit(head["location"]).query).items()}
        return cookie, params

    async def finish(self, id_token: str | None = None, **token_fields: Any) -> tuple[int, bytes]:
        cookie, params = await self.begin()
        token = id_token if id_token is not None else self.id_token(params["nonce"])
        body = {"access_token": "at", "token_type": "Bearer", "id_token": token, **token_fields}
        self.overrides.setdefault("/token", lambda _r: httpx.Response(200, json=body))
        query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
        status, _, page = await self.call("/auth/callback", cookie=cookie, query=query)
        return status, page


def _json(page: bytes) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.json.decode(page)
    return result


async def test_authorization_request_uses_pkce_s256_state_and_nonce() -> None:
    provider = Provider()
    cookie, params = await provider.begin()
    assert params["code_challenge_method"] == "S256"
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == APP + "/auth/callback"
    assert len(params["state"]) >= 32
    assert len(params["nonce"]) >= 32
    assert cookie.startswith("__Secure-sso_state.")
    assert params["state"] not in cookie
    assert params["nonce"] not in cookie


async def test_code_exchange_sends_the_verifier_and_basic_auth() -> None:
    provider = Provider(use_userinfo=False)
    captured: list[httpx.Request] = []
    provider.overrides["/token"] = lambda r: captured.append(r)
    cookie, params = await provider.begin()
    query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
    await provider.call("/auth/callback", cookie=cookie, query=query)
    form = parse_qs(captured[0].content.decode())
    challenge = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"][0].encode()).digest())
    assert challenge.rstrip(b"=").decode() == params["code_challenge"]
    assert "client_secret" not in form
    basic = base64.b64decode(captured[0].headers["authorization"].split()[1]).decode()
    assert basic == "web:client+secret%2B%2F%3D"  # RFC 6749 §2.3.1: form-encoded


async def test_client_secret_post_puts_credentials_in_the_body() -> None:
    provider = Provider(token_endpoint_auth="client_secret_post", use_userinfo=False)
    status, page = await provider.finish()
    assert status == 303, page
    token_call = next(r for r in provider.requests if r.url.path == "/token")
    assert parse_qs(token_call.content.decode())["client_secret"] == [SECRET]
    assert "authorization" not in token_call.headers


async def test_happy_callback_redirects_to_return_to() -> None:
    provider = Provider(use_userinfo=False)
    status, _ = await provider.finish()
    assert status == 303


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"nonce": "another-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": "someone-else"}, "audience"),
        ({"aud": ["web", "other"]}, "azp"),
        ({"azp": "other"}, "azp"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": 1_600_000_000}, "expired"),
        ({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "at_hash"),
        ({"iat": None}, "no 'iat'"),
    ],
)
async def test_bad_id_tokens_are_refused(changes: dict[str, Any], expected: str) -> None:
    provider = Provider(use_userinfo=False)
    cookie, params = await provider.begin()
    claims = {"nonce": params["nonce"], **changes}
    token = provider.id_token(**claims)
    body = {"access_token": "at", "token_type": "Bearer", "id_token": token}
    provider.overrides["/token"] = lambda _r: httpx.Response(200, json=body)
    query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
    status, _, page = await provider.call("/auth/callback", cookie=cookie, query=query)
    assert status == 401
    assert expected in _json(page)["error_description"]


async def test_sign_in_works_when_the_issuer_demands_at_jwt_bearer_tokens() -> None:
    # The issuer's token_types govern bearer tokens; ID tokens follow their own typ
    # rule (none or JWT), and never fill the verified-token cache.
    strict = {"token_types": AT_JWT_TYPES, "audience": "web", "client_id": "web"}
    provider = Provider(issuer=strict, use_userinfo=False)
    for _ in range(2):  # a second sighting would be cached, were ID tokens cached
        cookie, params = await provider.begin()
        token = provider.id_token(params["nonce"])
        body = {"access_token": "at", "token_type": "Bearer", "id_token": token}
        provider.overrides["/token"] = lambda _r, body=body: httpx.Response(200, json=body)
        query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
        status, _, page = await provider.call("/auth/callback", cookie=cookie, query=query)
        assert status == 303, page
        assert provider.verifier.cached(token) is None
    assert len(provider.verifier.cache) == 0


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "logout+jwt"])
async def test_a_token_typed_as_another_kind_is_no_id_token(typ: str) -> None:
    provider = Provider(use_userinfo=False)
    cookie, params = await provider.begin()
    now = int(provider.clock.now)
    claims = {"iss": IDP, "sub": "alice", "aud": "web", "iat": now, "exp": now + 300,
              "nonce": params["nonce"]}  # fmt: skip
    body = {
        "access_token": "at",
        "token_type": "Bearer",
        "id_token": provider.idp.sign(claims, typ),
    }
    provider.overrides["/token"] = lambda _r: httpx.Response(200, json=body)
    query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
    status, _, page = await provider.call("/auth/callback", cookie=cookie, query=query)
    assert status == 401
    assert "an ID token must have no 'typ' or typ 'JWT'" in _json(page)["error_description"]


async def test_userinfo_is_merged_but_cannot_change_the_subject() -> None:
    provider = Provider()
    provider.overrides["/userinfo"] = lambda _r: httpx.Response(200, json={"sub": "mallory"})
    status, page = await provider.finish()
    assert status == 401
    assert "userinfo subject" in _json(page)["error_description"]


async def test_the_user_claim_must_be_in_the_id_token_and_userinfo_cannot_change_it() -> None:
    oid = "6f1c2b9e-0000-4000-8000-00000000a11c"
    provider = Provider(issuer={"user_claim": "oid"})
    provider.overrides["/userinfo"] = lambda _r: httpx.Response(200, json={"sub": "alice"})
    status, page = await provider.finish()  # an ID token without oid
    assert status == 401
    assert "'oid'" in _json(page)["error_description"]

    provider = Provider(issuer={"user_claim": "oid"})
    provider.overrides["/userinfo"] = lambda _r: httpx.Response(
        200, json={"sub": "alice", "oid": "someone-else"}
    )
    cookie, params = await provider.begin()
    token = provider.id_token(params["nonce"], oid=oid)
    body = {"access_token": "at", "token_type": "Bearer", "id_token": token}
    provider.overrides["/token"] = lambda _r: httpx.Response(200, json=body)
    query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
    status, _, page = await provider.call("/auth/callback", cookie=cookie, query=query)
    assert status == 401
    assert "userinfo 'oid'" in _json(page)["error_description"]


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (httpx.Response(200, text="<html>oops</html>"), 502),
        (httpx.Response(200, json=["not", "an", "object"]), 502),
        (httpx.Response(200, json={"access_token": "at", "token_type": "Bearer"}), 502),
        (httpx.Response(200, json={"id_token": 42}), 502),
        (httpx.Response(200, content=b"{" + b'"a":"' + b"x" * 300_000 + b'"}'), 502),
        (httpx.Response(400, json={"error": "invalid_grant"}), 400),
        (httpx.Response(400, json={"error": "<script>"}), 400),
        (httpx.Response(500, text="down"), 503),
        (httpx.Response(302, headers={"location": "https://evil.example"}), 502),
    ],
)
async def test_hostile_token_responses_become_clear_errors(
    response: httpx.Response, status: int
) -> None:
    provider = Provider()
    provider.overrides["/token"] = lambda _r: response
    got, page = await provider.finish()
    assert got == status
    assert "<script>" not in page.decode()


async def test_unreachable_token_endpoint_is_503() -> None:
    provider = Provider()

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    provider.overrides["/token"] = fail
    status, _ = await provider.finish()
    assert status == 503


async def test_callback_with_duplicate_parameters_is_refused() -> None:
    provider = Provider()
    cookie, params = await provider.begin()
    query = urlencode([("code", "a"), ("code", "b"), ("state", params["state"])])
    status, _, _ = await provider.call("/auth/callback", cookie=cookie, query=query)
    assert status == 400


async def test_wrong_methods_get_405_with_allow() -> None:
    provider = Provider()
    status, head, _ = await provider.call("/auth/callback", method="POST")
    assert status == 405
    assert head["allow"] == "GET"


def _config(**changes: Any) -> LoginConfig:
    base: dict[str, Any] = {"issuer": IDP, "client_id": "web", "client_secret": Secret(SECRET),
                            "cookie_secrets": (Secret(b"k" * 32),)}  # fmt: skip
    return LoginConfig(**{**base, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"cookie_secrets": ()},
        {"cookie_secrets": (Secret(b"short"),)},
        {"client_secret": None},
        {"token_endpoint_auth": "none"},
        {"scopes": ("profile",)},
        {"prefix": "auth"},
        {"prefix": "/auth/"},
        {"idle_timeout": 10 * 3600},
        {"redirect_uri": "/auth/callback"},
        {"default_return_to": "//evil.example"},
        {"extra_authorize_params": {"state": "fixed"}},
        {"session_cookie": "__Host-x"},
        {"issuer": "https://login.example/{tenant}/v2.0"},
        {"max_session_lifetime": 3600.0},
        {"refresh_leeway": 0},
        {"refresh_retry": -1},
    ],
)
def test_bad_configuration_fails_at_build_time(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        _config(**changes)


def test_config_repr_hides_secrets() -> None:
    text = repr(_config())
    assert SECRET not in text
    assert "kkkk" not in text


async def test_signed_userinfo_is_refused_by_name() -> None:
    provider = Provider()
    provider.overrides["/userinfo"] = lambda _r: httpx.Response(
        200, content=b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln", headers={"content-type": "application/jwt"}
    )
    status, page = await provider.finish()
    assert status == 502
    assert "signed or encrypted JWT" in _json(page)["error_description"]


@pytest.mark.parametrize("expires_in", ["3600", 3600, "not a number", None, "NaN", -5])
async def test_expires_in_in_any_reasonable_shape_signs_in(expires_in: Any) -> None:
    provider = Provider(use_userinfo=False)
    status, page = await provider.finish(expires_in=expires_in)
    # A string that is not a number is a malformed response; everything else signs in.
    assert status == (502 if expires_in == "not a number" else 303), page


async def test_token_response_with_caching_headers_is_used_once() -> None:
    provider = Provider(use_userinfo=False)
    cookie, params = await provider.begin()
    body = {
        "access_token": "at",
        "token_type": "Bearer",
        "id_token": provider.id_token(params["nonce"]),
    }
    headers = {"cache-control": "max-age=3600", "pragma": "cache"}
    provider.overrides["/token"] = lambda _r: httpx.Response(200, json=body, headers=headers)
    query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
    status, head, _ = await provider.call("/auth/callback", cookie=cookie, query=query)
    assert status == 303
    assert head["cache-control"] == "no-store"  # our redirect never gets cached


async def test_idp_error_description_is_cleaned() -> None:
    provider = Provider()
    cookie, params = await provider.begin()
    hostile = "AADSTS50011: bad\r\nTrace ID: 1\u202egnp.exe\x00 end"
    query = urlencode({"error": "access_denied\n", "error_description": hostile,
                       "state": params["state"]})  # fmt: skip
    status, _, page = await provider.call("/auth/callback", cookie=cookie, query=query)
    assert status == 400
    description = _json(page)["error_description"]
    assert description == (
        "the identity provider answered access_denied: AADSTS50011: bad Trace ID: 1 gnp.exe end"
    )


@pytest.mark.parametrize(
    ("root", "path", "route"),
    [
        ("", "/auth/login", "/auth/login"),
        ("/app", "/app/auth/login", "/auth/login"),
        ("/app/", "/app/auth/login", "/auth/login"),
        ("/app", "/auth/login", "/auth/login"),
        ("/app", "/application/auth/login", "/application/auth/login"),
        ("/app", "/app", "/"),
    ],
)
def test_route_path_handles_both_root_path_conventions(root: str, path: str, route: str) -> None:
    from asgi_sso._asgi import route_path

    assert route_path({"root_path": root, "path": path}) == route


def test_token_sets_and_flow_states_never_show_their_secrets_in_repr() -> None:
    # A traceback reporter that records local variables (Sentry does by default)
    # would otherwise copy refresh tokens and PKCE verifiers into its events.
    tokens = TokenSet(
        id_token="id-SECRET", access_token="at-SECRET", refresh_token="rt-SECRET", expires_in=60
    )
    flow = FlowState(
        state="st-SECRET",
        nonce="nn-SECRET",
        verifier="pv-SECRET",
        return_to="/home",
        redirect_uri="https://app.test/cb",
        expires_at=1.0,
    )
    for value in (tokens, flow):
        assert "SECRET" not in repr(value)
        assert "SECRET" not in str(value)
    assert "/home" in repr(flow)


async def test_resource_is_sent_in_the_authorization_and_token_requests() -> None:
    # RFC 8707: the token is issued for this resource (an MCP server's canonical URL).
    provider = Provider(use_userinfo=False, resource="https://MCP.example/mcp/")
    captured: list[httpx.Request] = []
    provider.overrides["/token"] = lambda r: captured.append(r)
    cookie, params = await provider.begin()
    assert params["resource"] == "https://mcp.example/mcp"
    query = urlencode({"code": "c0de", "state": params["state"], "iss": IDP})
    await provider.call("/auth/callback", cookie=cookie, query=query)
    assert parse_qs(captured[0].content.decode())["resource"] == ["https://mcp.example/mcp"]


async def test_no_resource_parameter_unless_configured() -> None:
    provider = Provider(use_userinfo=False)
    _, params = await provider.begin()
    assert "resource" not in params


@pytest.mark.parametrize(
    "kw",
    [{"resource": "http://mcp.example/mcp"}, {"extra_authorize_params": {"resource": "x"}}],
)
def test_resource_settings_are_checked_when_built(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="resource"):
        LoginConfig(
            issuer=IDP,
            client_id="web",
            client_secret=Secret(SECRET),
            cookie_secrets=(Secret(b"k" * 32),),
            **kw,
        )
