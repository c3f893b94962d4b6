"""docs/cli.md is true: its config file, its error messages and its commands are the CLI's."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asgi_sso import cli
from asgi_sso.testing import DevIdP, free_port

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "cli.md"
EXAMPLE = ROOT / "examples" / "dev-idp.json"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(DOC.read_text()) if lang == language]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[DevIdP]:
    idps: list[DevIdP] = []
    monkeypatch.setattr(cli, "_serve_forever", lambda idp, host, port: idps.append(idp))
    return idps


def dev_idp(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["dev-idp", "--config", str(path), "--port", "0"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("source", ["doc", "example"])
def test_the_documented_config_files_load(
    source: str, tmp_path: Path, served: list[DevIdP], capsys: pytest.CaptureFixture[str]
) -> None:
    path = EXAMPLE
    if source == "doc":
        (snippet,) = blocks("json")
        path = tmp_path / "idp.json"
        path.write_text(snippet)
    assert dev_idp(path, capsys) == (0, "")
    (idp,) = served
    assert idp.users["alice"].groups == ("admins", "staff")
    assert idp.clients["my-app-docs"].is_public
    assert idp.clients["my-app-docs"].redirect_uris == (
        "http://127.0.0.1:8000/docs/oauth2-redirect",
    )
    assert idp.clients["my-app"].token_audience == "api://my-app"


def test_a_config_file_may_require_par_and_name_a_client_by_its_jwks_uri(
    tmp_path: Path, served: list[DevIdP], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "idp.json"
    keyed = {"client_id": "app", "jwks_uri": "http://127.0.0.1:8000/auth/jwks.json",
             "redirect_uris": ["http://127.0.0.1:8000/auth/callback"]}  # fmt: skip
    path.write_text(json.dumps({"require_par": True, "clients": [keyed]}))
    assert dev_idp(path, capsys) == (0, "")
    (idp,) = served
    assert idp.require_par
    assert idp.clients["app"].uses_keys
    assert not idp.clients["app"].is_public


BAD_FILES = [
    {"users": [{"sub": "alice", "groups": "admins"}]},
    {"users": [{"sub": "alice"}, {"sub": "alice"}]},
    {"clients": [{"client_id": "job", "grant_types": ["client_credentials"]}]},
    {"usres": []},
]


@pytest.mark.parametrize("bad", BAD_FILES, ids=[json.dumps(b)[:40] for b in BAD_FILES])
def test_the_documented_errors_are_what_the_cli_says(
    bad: dict[str, object], tmp_path: Path, served: list[DevIdP], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "idp.json"
    path.write_text(json.dumps(bad))
    code, err = dev_idp(path, capsys)
    assert code == 2
    assert served == []
    (documented,) = blocks("text")
    assert err.replace(str(path), "idp.json").strip() in documented.splitlines()


def invocations() -> Iterator[list[str]]:
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").replace('"$TOKEN"', "TOKEN").splitlines():
            for match in re.finditer(r"asgi-sso ([^|&)#]*)", line):
                yield shlex.split(match.group(1))


def test_every_documented_command_parses() -> None:
    commands = list(invocations())
    assert {argv[0] for argv in commands} >= {"dev-idp", "token", "verify"}
    parser = cli._parser()
    for argv in commands:
        parser.parse_args(argv)  # SystemExit on an unknown flag


def test_five_minutes_with_the_example_file(tmp_path: Path) -> None:
    """The doc's first block for real: dev-idp in a process, then a token, then verify it."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    runner = "import sys; from asgi_sso.cli import main; sys.exit(main())"
    log = tmp_path / "dev-idp.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", runner, "dev-idp", "--config", str(EXAMPLE), "--port",
             str(port)],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(issuer + "/jwks", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)  # waiting for the process to listen, bounded by the deadline
        token = subprocess.run(
            [sys.executable, "-c", runner, "token", "--user", "alice", "--issuer", issuer],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert token.returncode == 0, token.stderr + log.read_text()
        verified = subprocess.run(
            [sys.executable, "-c", runner, "verify", "-", "--issuer", issuer, "--audience",
             "api://my-app"],
            input=token.stdout, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert (report["valid"], report["claims"]["sub"]) == (True, "alice")
    assert verified.stderr == ""
    assert "my-app-dev-secret" not in log.read_text()
