"""``asgi-sso token --dpop`` and ``asgi-sso dpop-proof``: DPoP-bound tokens from a shell."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from _cli import printed, run
from _without import python_without
from asgi_sso import SSOMiddleware
from asgi_sso.keys.jwk import parse_jwk
from asgi_sso.testing import DevClient, DevIdP, DevUser, DPoPClient

SECRET = "svc-secret"
API = "api://svc"
URL = "http://api.test/me"
CLIENTS = [
    DevClient(client_id="svc", client_secret=SECRET, audience=API,
              grant_types=("client_credentials",)),
    DevClient(client_id="strict", client_secret=SECRET, audience=API,
              grant_types=("client_credentials",), dpop_bound=True),
]  # fmt: skip


@pytest.fixture(scope="module")
def served() -> Iterator[DevIdP]:
    idp = DevIdP(users=[DevUser(sub="alice")], clients=CLIENTS)
    with idp.serve():
        yield idp


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVC_SECRET", SECRET)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def service_token(capsys: pytest.CaptureFixture[str], idp: DevIdP, *key: str) -> str:
    argv = ("token", "--client", "svc", "--secret-env", "SVC_SECRET", "--issuer", idp.issuer)
    return printed(capsys, *argv, "--dpop", *key)


def thumbprint(path: Path) -> str:
    jwk = json.loads(path.read_text())
    public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    return parse_jwk(public).thumbprint


async def call_api(idp: DevIdP, *requests: dict[str, str]) -> list[httpx.Response]:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.identity})

    async with httpx.AsyncClient() as keys:
        app = SSOMiddleware(
            Starlette(routes=[Route("/me", me)]),
            issuers=[idp.issuer_config(API, dpop="allow")],
            http_client=keys,
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return [await client.get(URL, headers=headers) for headers in requests]


def test_a_service_token_bound_to_a_new_saved_key_works_with_printed_proofs(
    served: DevIdP, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "svc.jwk"
    token = service_token(capsys, served, "--save-dpop-key", str(key))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    private = json.loads(key.read_text())
    assert private["d"] not in token
    assert claims_of(token)["cnf"] == {"jkt": thumbprint(key)}
    proof = printed(
        capsys, "dpop-proof", "--key", str(key), "--method", "GET", "--url", URL, "--token", token
    )
    dpop = {"Authorization": f"DPoP {token}", "DPoP": proof}
    ok, replayed, as_bearer = asyncio.run(
        call_api(served, dpop, dpop, {"Authorization": f"Bearer {token}"})
    )
    assert (ok.status_code, ok.json()) == (200, {"sub": "svc"})
    assert replayed.status_code == 401
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    assert as_bearer.status_code == 401


def test_a_saved_key_is_reused_for_the_next_token_and_for_a_users_token(
    served: DevIdP, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "svc.jwk"
    first = service_token(capsys, served, "--save-dpop-key", str(key))
    again = service_token(capsys, served, "--dpop-key", str(key))
    user = printed(
        capsys, "token", "--user", "alice", "--issuer", served.issuer, "--dpop", "--dpop-key",
        str(key),
    )  # fmt: skip
    assert claims_of(first)["cnf"] == claims_of(again)["cnf"] == claims_of(user)["cnf"]
    assert claims_of(user)["sub"] == "alice"


def test_the_client_retries_once_with_the_servers_nonce(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    idp = DevIdP(clients=CLIENTS, dpop_nonce=True)
    with idp.serve():
        token = service_token(capsys, idp, "--save-dpop-key", str(tmp_path / "k.jwk"))
    assert claims_of(token)["cnf"]["jkt"]
    assert idp.requests["/token"] == 2


def test_a_client_registered_dpop_bound_gets_its_token_with_dpop_only(
    served: DevIdP, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ("token", "--client", "strict", "--secret-env", "SVC_SECRET", "--issuer", served.issuer)
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert "invalid_dpop_proof" in err
    token = printed(capsys, *argv, "--dpop", "--save-dpop-key", str(tmp_path / "k.jwk"))
    assert "cnf" in claims_of(token)


def test_the_shell_substitutions_of_the_docs_work(served: DevIdP, tmp_path: Path) -> None:
    cli = f"{sys.executable} -c 'import sys; from asgi_sso.cli import main; sys.exit(main())'"
    script = (
        f'T="$({cli} token --client svc --secret-env SVC_SECRET --issuer {served.issuer} '
        f'--dpop --save-dpop-key {tmp_path}/svc.jwk)" && '
        f'P="$({cli} dpop-proof --key {tmp_path}/svc.jwk --method GET --url {URL} --token "$T")"'
        ' && printf "%s\\n%s" "$T" "$P"'
    )
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    token, proof = done.stdout.split("\n")
    (ok,) = asyncio.run(call_api(served, {"Authorization": f"DPoP {token}", "DPoP": proof}))
    assert ok.status_code == 200, ok.text


def test_a_proof_for_the_token_endpoint_has_no_ath_and_carries_a_nonce(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "k.jwk"
    key.write_text(json.dumps(DPoPClient().key.as_dict(private=True)))
    key.chmod(0o600)
    proof = printed(
        capsys, "dpop-proof", "--key", str(key), "--method", "post", "--url",
        "https://idp.test/token?x=1", "--nonce", "n-1",
    )  # fmt: skip
    header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "=="))
    claims = claims_of(proof)
    assert (header["typ"], header["alg"]) == ("dpop+jwt", "ES256")
    assert "d" not in header["jwk"]
    assert (claims["htm"], claims["htu"], claims["nonce"]) == ("POST", "https://idp.test/token",
                                                               "n-1")  # fmt: skip
    assert "ath" not in claims


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--dpop"], "--dpop needs --dpop-key FILE or --save-dpop-key FILE"),
        (["--dpop-key", "k.jwk"], "--dpop-key goes with --dpop"),
        (["--save-dpop-key", "k.jwk"], "--save-dpop-key goes with --dpop"),
        (["--dpop", "--dpop-key", "a", "--save-dpop-key", "b"], "one of --dpop-key"),
        (["--dpop", "--dpop-key", "missing.jwk"], "cannot read missing.jwk"),
        (["--dpop", "--dpop-key", "public.jwk"], "public.jwk holds no private key"),
        (["--dpop", "--dpop-key", "junk.jwk"], "junk.jwk is not a JSON Web Key"),
        (["--dpop", "--dpop-key", "hmac.jwk"], "hmac.jwk holds no key DPoP can use"),
        (["--dpop", "--save-dpop-key", "existing.jwk"], "existing.jwk exists"),
    ],
)
def test_key_problems_exit_2_and_never_echo_the_key(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    says: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    client = DPoPClient()
    (tmp_path / "public.jwk").write_text(json.dumps(client.jwk))
    (tmp_path / "junk.jwk").write_text("not json at all: secret-looking-junk")
    (tmp_path / "hmac.jwk").write_text(json.dumps({"kty": "oct", "k": "c2VjcmV0LWhtYWMta2V5"}))
    (tmp_path / "existing.jwk").write_text("keep me")
    code, out, err = run(
        capsys, "token", "--user", "alice", "--issuer", "http://127.0.0.1:9", *argv
    )
    assert (code, out) == (2, "")
    assert says in err
    assert "secret-looking-junk" not in err
    assert "c2VjcmV0LWhtYWMta2V5" not in err
    assert (tmp_path / "existing.jwk").read_text() == "keep me"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--method", "GET", "--url", "not-a-url"], "--url is the request's absolute http(s) URL"),
        (["--method", "G T", "--url", URL], "--method is an HTTP method"),
        (["--method", "GET", "--url", URL, "--token", "a b"], "--token is the access token"),
        (["--method", "GET", "--url", URL, "--nonce", "\x1b[2J"], "--nonce is the server's"),
    ],
)
def test_dpop_proof_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], says: str
) -> None:
    key = tmp_path / "k.jwk"
    key.write_text(json.dumps(DPoPClient().key.as_dict(private=True)))
    code, out, err = run(capsys, "dpop-proof", "--key", str(key), *argv)
    assert (code, out) == (2, "")
    assert says in err


def test_a_bearer_token_from_an_idp_ignoring_dpop_is_not_printed() -> None:
    from asgi_sso import cli

    def answer(request: httpx.Request) -> httpx.Response:
        assert "dpop" in request.headers
        return httpx.Response(200, json={"access_token": "a.b.c", "token_type": "Bearer"})

    async def ask() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await cli._post_token(client, "http://idp/token", {}, dpop=DPoPClient())

    with pytest.raises(cli._Refused, match="not a DPoP-bound one"):
        asyncio.run(ask())


def test_dpop_proof_needs_no_extra(tmp_path: Path) -> None:
    key = tmp_path / "k.jwk"
    key.write_text(json.dumps(DPoPClient().key.as_dict(private=True)))
    key.chmod(0o600)
    code = "from asgi_sso.cli import main; raise SystemExit(main(['dpop-proof', '--key', "
    code += f"{str(key)!r}, '--method', 'GET', '--url', 'https://api.test/']))"
    done = python_without({"starlette", "uvicorn", "fastapi", "pytest", "hypothesis"}, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(".") == 2
