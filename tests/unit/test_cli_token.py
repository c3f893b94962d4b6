"""``asgi-sso token``: a bearer token from a running dev IdP, for curl."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from _without import python_without
from asgi_sso import SSOMiddleware
from asgi_sso.cli import main
from asgi_sso.testing import DevClient, DevIdP, DevUser, free_port

SECRET = "svc-secret+with/odd=chars"
USERS = [DevUser(sub="alice", email="alice@example.com", groups=("admins",)), DevUser(sub="bob")]
CLIENTS = [
    DevClient(
        client_id="web",
        client_secret="web-secret",
        redirect_uris=("http://127.0.0.1:8000/auth/callback",),
        audience="api://web",
    ),
    DevClient(
        client_id="svc",
        client_secret=SECRET,
        audience="api://svc",
        grant_types=("client_credentials",),
        scopes=("reports:read",),
    ),
]


@pytest.fixture(scope="module")
def served() -> Iterator[DevIdP]:
    idp = DevIdP(users=USERS, clients=CLIENTS)
    with idp.serve():
        yield idp


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["token", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def token_for(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert err == ""
    assert out.count("\n") == 1  # the token alone, for $(...)
    return out.strip()


async def call_api(idp: DevIdP, token: str, audience: str) -> httpx.Response:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.identity})

    async with httpx.AsyncClient() as keys:
        app = SSOMiddleware(
            Starlette(routes=[Route("/me", me)]),
            issuers=[idp.issuer_config(audience)],
            http_client=keys,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/me", headers={"Authorization": f"Bearer {token}"})


def test_a_user_token_is_printed_alone_and_the_api_accepts_it(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    token = token_for(capsys, "--user", "alice", "--issuer", served.issuer)
    claims = claims_of(token)
    assert (claims["iss"], claims["sub"], claims["aud"]) == (served.issuer, "alice", "api://web")
    assert claims["groups"] == ["admins"]
    reply = asyncio.run(call_api(served, token, "api://web"))
    assert (reply.status_code, reply.json()) == (200, {"sub": "alice"})


def test_scope_lifetime_audience_and_client_are_asked_for(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    token = token_for(
        capsys, "--user", "alice@example.com", "--issuer", served.issuer, "--scope", "a",
        "--scope", "b", "--expires-in", "60", "--audience", "api://x",
    )  # fmt: skip
    claims = claims_of(token)
    assert (claims["sub"], claims["scope"], claims["aud"]) == ("alice", "a b", "api://x")
    assert claims["exp"] - claims["iat"] == 60
    token = token_for(capsys, "--user", "bob", "--client", "svc", "--issuer", served.issuer)
    assert (claims_of(token)["client_id"], claims_of(token)["aud"]) == ("svc", "api://svc")


def test_client_credentials_with_the_secret_from_the_environment(
    served: DevIdP, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVC_SECRET", SECRET)
    token = token_for(
        capsys, "--client", "svc", "--secret-env", "SVC_SECRET", "--issuer", served.issuer,
        "--expires-in", "30",
    )  # fmt: skip
    claims = claims_of(token)
    assert (claims["sub"], claims["client_id"], claims["aud"]) == ("svc", "svc", "api://svc")
    assert claims["scope"] == "reports:read"
    assert claims["exp"] - claims["iat"] == 30
    assert asyncio.run(call_api(served, token, "api://svc")).status_code == 200


def test_the_shell_substitution_gets_the_token_and_nothing_else(served: DevIdP) -> None:
    cli = f"{sys.executable} -c 'import sys; from asgi_sso.cli import main; sys.exit(main())'"
    script = f'tok="$({cli} token --user alice --issuer {served.issuer})"; printf %s "$tok"'
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert claims_of(done.stdout)["sub"] == "alice"
    assert done.stdout.count(".") == 2


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--user", "mallory"], "unknown user 'mallory' (registered: alice, bob)"),
        (["--user", "alice", "--client", "nope"], "unknown client_id 'nope'"),
        (["--client", "svc", "--secret-env", "WRONG_SECRET"], "invalid_client"),
    ],
)
def test_what_the_idp_refuses_exits_1_with_its_reason(
    served: DevIdP,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    says: str,
) -> None:
    monkeypatch.setenv("WRONG_SECRET", "not-it")
    code, out, err = run(capsys, *argv, "--issuer", served.issuer)
    assert (code, out) == (1, "")
    assert err.startswith("asgi-sso token: ")
    assert "refused (HTTP " in err
    assert says in err
    assert "not-it" not in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "give --user NAME"),
        (["--user", "alice", "--secret-env", "X"], "--secret-env goes with --client alone"),
        (["--client", "svc"], "--client needs --secret-env NAME"),
        (["--client", "svc", "--secret-env", "UNSET_VARIABLE_FOR_TEST"], "unset or empty"),
        (["--user", "alice", "--expires-in", "0"], "--expires-in is a number of seconds"),
        (["--user", "alice", "--expires-in", "86401"], "--expires-in is a number of seconds"),
        (["--user", "alice", "--issuer", "idp.example"], "--issuer is the issuer URL"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert says in err


def test_an_idp_that_is_not_a_dev_idp_is_named(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--user", "alice", "--issuer", served.issuer + "/elsewhere")
    assert code == 2
    assert "has no /dev/token" in err
    assert "--client" in err


def test_an_unreachable_idp_exits_3_and_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "--user", "alice", "--issuer", issuer, "--timeout", "2")
    assert (code, out) == (3, "")
    assert f"cannot reach {issuer}/dev/token" in err


def test_client_credentials_check_the_discovered_issuer(
    served: DevIdP, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVC_SECRET", SECRET)
    argv = ("--client", "svc", "--secret-env", "SVC_SECRET", "--issuer", served.issuer + "/")
    code, _, err = run(capsys, *argv)
    assert code == 3
    assert f"names issuer '{served.issuer}', expected '{served.issuer}/'" in err


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (200, {"access_token": "\x1b[31mred"}, "no usable access_token"),
        (200, {"access_token": ""}, "no usable access_token"),
        (200, ["not", "an", "object"], "not a JSON object"),
        (502, "<html>bad gateway</html>", "HTTP 502, not a JSON object"),
        (400, {"error": "invalid_scope\x1b[2J", "error_description": "no"}, "invalid_scope?[2J"),
    ],
)
def test_garbage_from_the_token_endpoint_is_never_printed_as_a_token(
    status: int, body: Any, says: str
) -> None:
    from asgi_sso import cli

    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    async def ask() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await cli._post_token(client, "http://idp/token", {})

    with pytest.raises((cli._Unavailable, cli._Refused)) as raised:
        asyncio.run(ask())
    assert says in str(raised.value)
    assert "\x1b" not in str(raised.value)


def test_token_needs_no_extra() -> None:
    code = "from asgi_sso.cli import main; raise SystemExit(main(['token', '--user', 'a', "
    code += f"'--issuer', 'http://127.0.0.1:{free_port()}', '--timeout', '1']))"
    done = python_without({"starlette", "uvicorn", "fastapi"}, code)
    assert done.returncode == 3, done.stderr
    assert "cannot reach" in done.stderr
    assert "Traceback" not in done.stderr
