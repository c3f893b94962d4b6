"""The Litestar example under uvicorn takes a DPoP-bound token from its DPoP service account.

All over real sockets, as the README's commands do: the example and its dev IdPs listen
on 127.0.0.1, ``asgi-sso token --dpop`` gets the token from the broker, ``asgi-sso
dpop-proof`` makes each request's proof.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asgi_sso.cli import main
from asgi_sso.testing import free_port
from asgi_sso.testing.idp.server import serve_in_thread
from examples.litestar_app.app import DPOP_BOT, Shotter, create_app


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Shotter, str]]:
    """The example (its dev IdPs start in its lifespan) under uvicorn on 127.0.0.1."""
    base = f"http://127.0.0.1:{free_port()}"
    shotter = create_app(port=int(base.rsplit(":", 1)[1]))
    with serve_in_thread(shotter.app, base, lifespan=True):
        yield shotter, base


def cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.strip()


def dpop_lines(shotter: Shotter) -> list[str]:
    """The banner's shell lines for the DPoP service account (the README shows the same)."""
    lines = [line.strip() for line in shotter.banner]
    first = next(i for i, line in enumerate(lines) if line.startswith("export ACME_DPOP_BOT"))
    return lines[first : first + 3]


def test_the_banners_commands_get_a_dpop_token_and_call_the_api(
    served: tuple[Shotter, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shotter, base = served
    export, get_token, call = dpop_lines(shotter)
    assert get_token.startswith("T=$(asgi-sso token --client acme-dpop-bot ")
    assert call.startswith('curl -s -H "Authorization: DPoP $T" -H "DPoP: $(asgi-sso dpop-proof ')
    shim = (
        f"asgi-sso() {{ {sys.executable} -c 'import sys; from asgi_sso.cli import main; "
        'sys.exit(main())\' "$@"; }'
    )  # the installed command, from this checkout
    script = "\n".join(["set -euo pipefail", shim, export, get_token, call, 'printf "\\n%s" "$T"'])
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer, token = done.stdout.rsplit("\n", 1)
    plan = json.loads(answer)
    assert (plan["tier"], plan["connection"]) == ("pro", "broker:acme")
    assert stat.S_IMODE((tmp_path / "acme-dpop-bot.jwk").stat().st_mode) == 0o600

    url = f"{base}/v1/plan"
    key = str(tmp_path / "acme-dpop-bot.jwk")
    proof = cli(capsys, ["dpop-proof", "--key", key, "--method", "GET", "--url", url,
                         "--token", token])  # fmt: skip
    dpop = {"Authorization": f"DPoP {token}", "DPoP": proof}
    with httpx.Client(timeout=10) as http:
        ok = http.get(url, headers=dpop)
        replayed = http.get(url, headers=dpop)
        as_bearer = http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200, ok.text
    assert replayed.status_code == 401
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    assert as_bearer.status_code == 401
    assert 'error="invalid_token"' in as_bearer.headers["www-authenticate"]


def test_the_dpop_service_account_gets_no_bearer_token(served: tuple[Shotter, str]) -> None:
    shotter, _ = served
    assert shotter.idps is not None
    broker = shotter.idps.broker
    secret = broker.clients[DPOP_BOT].client_secret
    assert secret is not None
    with httpx.Client(timeout=10) as http:
        unbound = http.post(
            broker.url("/token"), data={"grant_type": "client_credentials"}, auth=(DPOP_BOT, secret)
        )
    assert (unbound.status_code, unbound.json()["error"]) == (400, "invalid_dpop_proof")
