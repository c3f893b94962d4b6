"""``asgi-sso token --cert --key``, ``asgi-sso cert`` and the dev IdP's certificate options.

Against a loopback dev IdP the command line presents its certificate in the RFC 9440
``Client-Cert`` header, which ``asgi-sso dev-idp --client-cert-header rfc9440`` trusts
from this machine only (tests/integration/test_idp_mtls_served.py covers mutual TLS).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from _cli import printed, run
from _jwt import claims_of
from _without import python_without
from asgi_sso import CertificateHeader, CredentialSources, SSOMiddleware, cli
from asgi_sso.testing import ClientCertificate, DevClient, DevIdP, DevUser
from asgi_sso.testing.tokens import b64url

SECRET = "svc-secret"
API = "api://svc"
LOOPBACK = CertificateHeader(trusted_proxies=("127.0.0.1", "::1"))
CLIENTS = [
    DevClient(client_id="svc", client_secret=SECRET, audience=API,
              grant_types=("client_credentials",), certificate_bound=True),
    DevClient(client_id="plain", client_secret=SECRET, audience=API,
              grant_types=("client_credentials",)),
    DevClient(client_id="web", client_secret=SECRET, audience=API, certificate_bound=True),
]  # fmt: skip


@pytest.fixture(scope="module")
def served() -> Iterator[DevIdP]:
    idp = DevIdP(users=[DevUser(sub="alice")], clients=CLIENTS, client_cert_header=LOOPBACK)
    with idp.serve():
        yield idp


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVC_SECRET", SECRET)


def made_pair(capsys: pytest.CaptureFixture[str], folder: Path) -> tuple[str, str, str]:
    """``asgi-sso cert --out folder``: the certificate's and key's paths, the thumbprint."""
    thumbprint = printed(capsys, "cert", "--out", str(folder))
    return str(folder / "cert.pem"), str(folder / "key.pem"), thumbprint


def service_argv(idp: DevIdP, client: str = "svc") -> tuple[str, ...]:
    return ("token", "--client", client, "--secret-env", "SVC_SECRET", "--issuer", idp.issuer)


def rfc9440(path: str) -> dict[str, str]:
    """The ``Client-Cert`` header a proxy would set for the certificate in ``path``."""
    der = x509.load_pem_x509_certificate(Path(path).read_bytes()).public_bytes(Encoding.DER)
    return {"Client-Cert": ":" + base64.b64encode(der).decode() + ":"}


async def call_api(idp: DevIdP, token: str, *certs: dict[str, str]) -> list[httpx.Response]:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.identity})

    async with httpx.AsyncClient() as keys:
        app = SSOMiddleware(
            Starlette(routes=[Route("/me", me)]),
            issuers=[idp.issuer_config(API)],
            sources=CredentialSources(certificate_header=LOOPBACK),
            http_client=keys,
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            bearer = {"Authorization": f"Bearer {token}"}
            return [await client.get("http://api.test/me", headers={**bearer, **c}) for c in certs]


# -- asgi-sso cert ---------------------------------------------------------------------------


def test_cert_writes_a_self_signed_pair_and_prints_its_thumbprint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cert, key, thumbprint = made_pair(capsys, tmp_path / "client")
    assert stat.S_IMODE(Path(key).stat().st_mode) == 0o600
    der = base64.b64decode(rfc9440(cert)["Client-Cert"].strip(":"))
    assert thumbprint == b64url(hashlib.sha256(der).digest())
    code, _, err = run(capsys, "cert", "--out", str(tmp_path / "client"))
    assert code == 2
    assert "exists" in err  # a key a token may be bound to is never overwritten


def test_an_output_path_that_cannot_be_used_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    too_long = tmp_path / ("x" * 300)  # longer than any file system's name limit
    code, out, err = run(capsys, "cert", "--out", str(too_long))
    assert (code, out) == (2, "")
    assert "cannot use" in err
    code, out, err = run(capsys, "token", "--user", "alice", "--dpop",
                         "--save-dpop-key", f"{too_long}.json")  # fmt: skip
    assert (code, out) == (2, "")
    assert "cannot use" in err


# -- asgi-sso token --cert --------------------------------------------------------------------


def test_a_service_token_is_bound_to_the_certificate(
    served: DevIdP, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cert, key, thumbprint = made_pair(capsys, tmp_path)
    token = printed(capsys, *service_argv(served), "--cert", cert, "--key", key)
    assert claims_of(token)["cnf"] == {"x5t#S256": thumbprint}
    other = {"Client-Cert": ClientCertificate().rfc9440()}
    ok, stolen, none = asyncio.run(call_api(served, token, rfc9440(cert), other, {}))
    assert (ok.status_code, ok.json()) == (200, {"sub": "svc"})
    assert stolen.status_code == none.status_code == 401


def test_a_users_token_from_dev_token_is_bound_too(
    served: DevIdP, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cert, key, thumbprint = made_pair(capsys, tmp_path)
    argv = ("token", "--user", "alice", "--client", "web", "--issuer", served.issuer)
    token = printed(capsys, *argv, "--cert", cert, "--key", key)
    assert claims_of(token)["cnf"] == {"x5t#S256": thumbprint}
    assert claims_of(token)["sub"] == "alice"


def test_a_certificate_bound_client_without_cert_is_refused(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *service_argv(served))
    assert (code, out) == (1, "")
    assert "invalid_request" in err
    assert "client certificate" in err


def test_a_token_that_comes_back_unbound_is_not_printed(
    served: DevIdP, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cert, key, _ = made_pair(capsys, tmp_path)
    code, out, err = run(capsys, *service_argv(served, "plain"), "--cert", cert, "--key", key)
    assert (code, out) == (1, "")
    assert "not bound to the certificate" in err


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--cert", "c.pem"), "--cert and --key go together"),
        (("--key", "k.pem"), "--cert and --key go together"),
        (("--cert", "missing.pem", "--key", "k.pem"), "cannot read"),
    ],
)
def test_bad_certificate_options_are_usage_errors(
    served: DevIdP, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], says: str
) -> None:
    code, out, err = run(capsys, *service_argv(served), *extra)
    assert (code, out) == (2, "")
    assert says in err


def test_a_key_that_is_not_the_certificates_is_refused_without_echoing_it(
    served: DevIdP, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cert, _, _ = made_pair(capsys, tmp_path / "a")
    _, key, _ = made_pair(capsys, tmp_path / "b")
    code, out, err = run(capsys, *service_argv(served), "--cert", cert, "--key", key)
    assert (code, out) == (2, "")
    assert "is not the private key of" in err
    assert "PRIVATE KEY" not in err
    code, _, err = run(capsys, *service_argv(served), "--cert", key, "--key", key)
    assert (code, "holds no PEM certificate" in err) == (2, True)


def test_a_plain_http_idp_on_another_host_gets_no_certificate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cert, key, _ = made_pair(capsys, tmp_path)
    argv = ("token", "--user", "alice", "--issuer", "http://idp.example.com")
    code, _, err = run(capsys, *argv, "--cert", cert, "--key", key)
    assert code == 2
    assert "https" in err


# -- asgi-sso dev-idp ------------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[DevIdP]:
    idps: list[DevIdP] = []
    monkeypatch.setattr(cli, "_serve_forever", lambda idp, host, port: idps.append(idp))
    return idps


def test_dev_idp_trusts_this_machine_with_the_header_and_binds_a_client(
    started: list[DevIdP], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["dev-idp", "--port", "0", "--client-id", "job", "--client-secret", "s",
            "--certificate-bound", "--client-cert-header", "rfc9440"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    (idp,) = started
    assert idp.client_cert_header == CertificateHeader(trusted_proxies=("127.0.0.1", "::1"))
    assert idp.clients["job"].certificate_bound
    assert "client-cert" in out
    assert "certificate-bound" in out


def test_dev_idp_reads_envoys_header_when_told(
    started: list[DevIdP], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["dev-idp", "--port", "0", "--client-cert-header", "xfcc",
            "--trusted-proxy", "10.0.0.7"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    (idp,) = started
    assert idp.client_cert_header == CertificateHeader(trusted_proxies=("10.0.0.7",), format="xfcc")
    assert "the x-forwarded-client-cert header from 10.0.0.7" in out


def test_dev_idp_takes_the_header_from_its_config_file(
    started: list[DevIdP], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "idp.json"
    config.write_text(
        '{"client_cert_header": {"trusted_proxies": ["10.1.2.3"], "format": "nginx"},'
        ' "clients": [{"client_id": "job", "client_secret": "s", "certificate_bound": true}]}'
    )
    assert run(capsys, "dev-idp", "--port", "0", "--config", str(config))[0] == 0
    (idp,) = started
    header = CertificateHeader(trusted_proxies=("10.1.2.3",), format="nginx")
    assert idp.client_cert_header == header


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("--trusted-proxy", "10.0.0.1"), "--trusted-proxy goes with --client-cert-header"),
        (("--certificate-bound",), "--certificate-bound goes with --client-id"),
        (("--client-cert-header", "rfc9440", "--trusted-proxy", "0.0.0.0/0"), "every address"),
        (("--client-cert-header", "rfc9440", "--trusted-proxy", "nope"), "not an IP"),
    ],
)
def test_dev_idp_certificate_options_are_checked(
    started: list[DevIdP], capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str
) -> None:
    code, _, err = run(capsys, "dev-idp", "--port", "0", *argv)
    assert (code, started) == (2, [])
    assert says in err


def test_cert_and_token_cert_need_no_extra(served: DevIdP, tmp_path: Path) -> None:
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    argv = [*service_argv(served), "--cert", cert, "--key", key]
    code = "from asgi_sso.cli import main; import sys; "
    code += f"main(['cert', '--out', {str(tmp_path)!r}]); sys.exit(main({argv!r}))"
    done = python_without({"starlette", "uvicorn", "pytest", "hypothesis"}, code)
    assert done.returncode == 0, done.stderr
    thumbprint, token = done.stdout.split()
    assert claims_of(token)["cnf"] == {"x5t#S256": thumbprint}
