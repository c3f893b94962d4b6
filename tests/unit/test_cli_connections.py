"""``asgi-sso connections``: every operation in process, clear one-line errors, never a secret.

Writes run against a StaticConnections store put in place of the one ``--store``
names, and against SQLite through ``SQLConnections`` where that store exists.
"""

from __future__ import annotations

import importlib.util
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis import Redis

from _without import python_without
from asgi_sso import cli
from asgi_sso.config import Secret
from asgi_sso.connections import Connection, StaticConnections
from asgi_sso.errors import StoreUnavailable
from asgi_sso.identity.revocation import Revocation
from asgi_sso.testing import DevIdP, free_port

CLIENT_SECRET = "cli-client-secret-0123456789"
SCIM_SECRET = "cli-scim-secret-0123456789"
APP_SECRET = "app-sealing-secret-0123456789abcdef"
HAS_SQL_STORE = importlib.util.find_spec("asgi_sso.connections.sql") is not None

ACME = {
    "id": "acme",
    "name": "Acme Corp",
    "issuer": "https://idp.acme.example",
    "audience": ["api://app"],
    "client_id": "app",
    "client_secret": CLIENT_SECRET,
    "domains": ["acme.com"],
}
GLOBEX = {
    "id": "globex",
    "issuer": "https://login.microsoftonline.com/{tenant}/v2.0",
    "tenant": "t-1",
    "audience": ["api://app"],
    "user_claim": "oid",
    "enabled": False,
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["connections", *argv])
    out, err = capsys.readouterr()
    assert CLIENT_SECRET not in out + err
    assert SCIM_SECRET not in out + err
    assert "Traceback" not in err
    if code == cli.EXIT_BAD_INPUT:
        assert err.count("\n") == 1 or err.startswith("usage:"), err
    return code, out, err


@pytest.fixture
def file_store(tmp_path: Path) -> str:
    path = tmp_path / "connections.json"
    path.write_text(json.dumps([ACME, GLOBEX]))
    return str(path)


# -- reading a file --------------------------------------------------------------------


def test_list_prints_a_table(capsys: pytest.CaptureFixture[str], file_store: str) -> None:
    code, out, _ = run(capsys, "list", "--store", file_store)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "issuer", "domains", "enabled"]
    assert lines[1].split() == [
        "acme",
        "Acme",
        "Corp",
        "https://idp.acme.example",
        "acme.com",
        "yes",
    ]
    # A templated issuer is shown as its tokens carry it.
    assert lines[2].split() == [
        "globex", "-", "https://login.microsoftonline.com/t-1/v2.0", "-", "no"
    ]  # fmt: skip


def test_the_store_may_come_from_the_environment_and_be_toml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "connections.toml"
    path.write_text(
        '[[connections]]\nid = "acme"\nissuer = "https://idp.acme.example"\naudience = ["a"]\n'
        'client_id = "app"\nclient_secret = { env = "ACME_SECRET" }\n'
    )
    monkeypatch.setenv("ACME_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("ASGI_SSO_CONNECTIONS", str(path))
    code, out, _ = run(capsys, "show", "acme")
    assert code == 0
    assert json.loads(out)["has_client_secret"] is True


def test_show_prints_public_json(capsys: pytest.CaptureFixture[str], file_store: str) -> None:
    code, out, _ = run(capsys, "show", "acme", "--store", file_store)
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == "acme"
    assert (shown["has_client_secret"], shown["has_scim_secret"]) == (True, False)
    assert "client_secret" not in shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "nope"], "no connection 'nope'"),
        (["show", "../../etc"], "no connection '../../etc'"),
        (["add", "--id", "x"], "read-only here: edit the file"),
        (["disable", "acme"], "read-only here"),
        (["test"], "test takes a connection id, or --json FILE"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], file_store: str, argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv, "--store", file_store)
    assert code == 2
    assert err == f"asgi-sso connections: {err.split(': ', 1)[1]}"
    assert message in err


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (None, "name the connection store with --store URL or ASGI_SSO_CONNECTIONS"),
        ("ftp://admin:hunter2-password@db", "--store is a sqlite:// or postgresql:// URL"),
        ("connections.yaml", "--store is a sqlite:// or postgresql:// URL"),
        ("missing.json", "cannot read connections from missing.json"),
        ("sqlite:///c.db", "name the environment variable holding them with --secret-env NAME"),
    ],
)
def test_a_missing_or_unknown_store_is_exit_2_without_its_url(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: str | None,
    message: str,
) -> None:
    monkeypatch.delenv("ASGI_SSO_CONNECTIONS", raising=False)
    code, _, err = run(capsys, "list", *(["--store", store] if store else []))
    assert code == 2
    assert message in err
    assert "hunter2" not in err


@pytest.mark.parametrize("flag", ["--client-secret", "--scim-secret"])
@pytest.mark.parametrize("op", ["add", "update"])
def test_a_secret_on_the_command_line_is_refused_and_not_echoed(
    capsys: pytest.CaptureFixture[str], file_store: str, flag: str, op: str
) -> None:
    target = ["--id", "x"] if op == "add" else ["acme"]
    code, _, err = run(capsys, op, *target, flag, "oops-a-secret", "--store", file_store)
    assert code == 2
    assert f"{flag} is not taken on the command line: use {flag}-env NAME" in err
    assert "oops-a-secret" not in err


# -- writing (StaticConnections here; SQLite once SQLConnections exists) ----------------


@pytest.fixture(params=["static", "sqlite"])
def writable(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[str]:
    """Arguments naming a writable store that holds ACME."""
    monkeypatch.setenv("APP_SECRET", APP_SECRET)
    monkeypatch.setenv("ACME_SECRET", CLIENT_SECRET)
    if request.param == "static":
        store = StaticConnections()
        monkeypatch.setattr(cli, "_open_store", lambda args, *, write: store)
        args: list[str] = []
    else:
        if not HAS_SQL_STORE:
            pytest.skip("asgi_sso.connections.sql (SQLConnections) is not merged yet")
        args = ["--store", f"sqlite:///{tmp_path / 'c.db'}", "--secret-env", "APP_SECRET"]
    code = cli.main(["connections", "add", *args, "--json", _write(tmp_path, ACME, "ACME_SECRET")])
    assert code == 0
    return args


def _write(tmp_path: Path, data: dict[str, Any], secret_env: str | None = None) -> str:
    values = dict(data)
    if secret_env is not None:
        values["client_secret"] = {"env": secret_env}  # as in a connections file
    path = tmp_path / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(values))
    return str(path)


def shown(capsys: pytest.CaptureFixture[str], store: list[str], connection_id: str) -> Any:
    code, out, err = run(capsys, "show", connection_id, *store)
    assert code == 0, err
    return json.loads(out)


def test_add_from_flags_reads_secrets_from_the_environment(
    capsys: pytest.CaptureFixture[str], writable: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("GLOBEX_SCIM", SCIM_SECRET)
    code, out, _ = run(
        capsys, "add", *writable,
        "--id", "globex", "--name", "Globex", "--issuer", "https://idp.globex.example",
        "--client-id", "app", "--client-secret-env", "ACME_SECRET",
        "--audience", "api://a", "--audience", "api://b",
        "--domain", "Globex.COM", "--domain", "globex.io",
        "--algorithm", "RS256", "--algorithm", "ES256",
        "--user-claim", "oid", "--default-tier", "pro",
        "--group", "admins=enterprise", "--group", "staff=pro",
        "--scim-secret-env", "GLOBEX_SCIM", "--disabled",
    )  # fmt: skip
    assert (code, out) == (0, "added connection 'globex'\n")
    data = shown(capsys, writable, "globex")
    assert data["audience"] == ["api://a", "api://b"]
    assert data["domains"] == ["globex.com", "globex.io"]
    assert data["algorithms"] == ["RS256", "ES256"]
    assert data["tiers"] == {
        "default_tier": "pro",
        "groups": {"admins": "enterprise", "staff": "pro"},
    }
    assert (data["has_client_secret"], data["has_scim_secret"]) == (True, True)
    assert (data["enabled"], data["user_claim"]) == (False, "oid")


def test_add_reads_the_client_secret_from_stdin(
    capsys: pytest.CaptureFixture[str], writable: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CLIENT_SECRET + "\n"))
    code, _, _ = run(
        capsys, "add", *writable, "--id", "initech", "--issuer", "https://idp.initech.example",
        "--client-id", "app", "--client-secret-stdin",
    )  # fmt: skip
    assert code == 0
    assert shown(capsys, writable, "initech")["has_client_secret"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "--id", "acme", "--issuer", "https://o.example", "--audience", "a"], "exists"),
        (["add", "--id", "o", "--issuer", "https://idp.acme.example", "--audience", "a"],
         "same issuer"),
        (["add", "--id", "o", "--issuer", "https://o.example", "--audience", "a",
          "--domain", "acme.com"], "'acme.com' belongs to connection 'acme'"),
        (["add", "--id", "o", "--issuer", "http://o.example", "--audience", "a"], "https URL"),
        (["add", "--id", "o", "--issuer", "https://o.example"], "neither a client_id"),
        (["add", "--id", "o", "--issuer", "https://o.example", "--audience", "a",
          "--group", "admins"], "--group takes GROUP=TIER"),
        (["add", "--id", "o", "--issuer", "https://o.example", "--client-id", "c",
          "--client-secret-env", "UNSET_VAR_X"], "'UNSET_VAR_X', which is unset"),
        (["add", "--issuer", "https://o.example", "--audience", "a"], "`id`"),
        (["update", "acme"], "name at least one field"),
        (["update", "acme", "--algorithm", "HS256"], "algorithms must be asymmetric"),
        (["update", "nope", "--name", "x"], "no connection 'nope'"),
        (["disable", "nope"], "no connection 'nope'"),
        (["enable", "nope"], "no connection 'nope'"),
        (["delete", "nope"], "no connection 'nope'"),
    ],
)  # fmt: skip
def test_refused_writes_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], writable: list[str], argv: list[str], message: str
) -> None:
    capsys.readouterr()
    code, out, err = run(capsys, argv[0], *writable, *argv[1:])
    assert code == 2, err
    assert out == ""
    assert message in err


def test_update_changes_only_the_named_fields(
    capsys: pytest.CaptureFixture[str], writable: list[str], tmp_path: Path
) -> None:
    capsys.readouterr()
    code, out, _ = run(
        capsys, "update", "acme", *writable, "--name", "ACME", "--domain", "acme.io",
        "--group", "admins=enterprise", "--default-tier", "pro",
    )  # fmt: skip
    assert (code, out) == (0, "updated connection 'acme'\n")
    data = shown(capsys, writable, "acme")
    assert (data["name"], data["domains"], data["issuer"]) == (
        "ACME",
        ["acme.io"],
        "https://idp.acme.example",
    )
    assert data["tiers"] == {"default_tier": "pro", "groups": {"admins": "enterprise"}}
    assert data["has_client_secret"] is True
    # GROUP= removes a group; '' removes the default tier; --json is a merge patch.
    patch = _write(tmp_path, {"authorize_params": {"prompt": "login"}})
    code, _, _ = run(
        capsys, "update", "acme", *writable, "--group", "admins=", "--default-tier", "",
        "--json", patch,
    )  # fmt: skip
    assert code == 0
    data = shown(capsys, writable, "acme")
    assert data["tiers"] == {"default_tier": None, "groups": {}}
    assert data["authorize_params"] == {"prompt": "login"}


def test_disable_enable_delete(capsys: pytest.CaptureFixture[str], writable: list[str]) -> None:
    capsys.readouterr()
    assert run(capsys, "disable", "acme", *writable)[:2] == (0, "disabled connection 'acme'\n")
    disabled = shown(capsys, writable, "acme")
    assert disabled["enabled"] is False
    assert disabled["not_before"] > 1_700_000_000
    assert run(capsys, "enable", "acme", *writable)[:2] == (0, "enabled connection 'acme'\n")
    enabled = shown(capsys, writable, "acme")
    assert (enabled["enabled"], enabled["not_before"]) == (True, disabled["not_before"])
    assert run(capsys, "delete", "acme", *writable)[:2] == (0, "deleted connection 'acme'\n")
    code, out, _ = run(capsys, "list", *writable)
    assert (code, out) == (0, "no connections\n")


def test_a_store_that_is_down_is_exit_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Down(StaticConnections):
        async def load(self) -> tuple[str, list[Connection]]:
            raise StoreUnavailable("the connection store is unavailable")

    monkeypatch.setattr(cli, "_open_store", lambda args, *, write: Down())
    code, _, err = run(capsys, "list")
    assert code == 3
    assert err == "asgi-sso connections: the connection store is unavailable\n"


# -- announcing ----------------------------------------------------------------------


@pytest.mark.redis
def test_redis_announces_the_change_to_every_worker(
    capsys: pytest.CaptureFixture[str], writable: list[str], redis_url: str
) -> None:
    prefix = f"asgi_sso_test:{uuid.uuid4().hex}:"
    redis = Redis.from_url(redis_url)
    try:
        capsys.readouterr()
        code, _, err = run(
            capsys, "disable", "acme", *writable, "--redis", redis_url, "--redis-prefix", prefix
        )
        assert (code, err) == (0, "")
        entries = redis.xrange(f"{prefix}revocations")
        assert len(entries) == 1
        revocation = msgspec.json.decode(entries[0][1][b"r"], type=Revocation)
        assert (revocation.kind, revocation.connection) == ("connection", "acme")
    finally:
        keys = list(redis.scan_iter(match=prefix + "*"))
        if keys:
            redis.delete(*keys)
        redis.close()


def test_an_unreachable_redis_warns_and_keeps_the_change(
    capsys: pytest.CaptureFixture[str], writable: list[str]
) -> None:
    capsys.readouterr()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = run(capsys, "disable", "acme", *writable, "--redis", dead)
    assert code == 0
    assert "Redis could not be reached to announce it" in err
    assert shown(capsys, writable, "acme")["enabled"] is False


# -- testing ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[DevIdP]:
    idp = DevIdP()
    with idp.serve():
        yield idp


def test_test_prints_the_report_and_exits_0_when_all_pass(
    capsys: pytest.CaptureFixture[str], served: DevIdP, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{**ACME, "issuer": served.issuer}]))
    code, out, _ = run(capsys, "test", "acme", "--store", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "connection acme: all checks passed"
    assert [line.split()[:2] for line in lines[1:3]] == [["ok", "discovery"], ["ok", "issuer"]]


def test_test_exits_1_and_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**ACME, "issuer": base}))
    code, out, _ = run(capsys, "test", "--json", str(path), "--timeout", "2")
    assert code == 1
    assert out.splitlines()[0] == "connection acme: 1 check(s) failed"
    assert out.splitlines()[1].split()[:2] == ["FAIL", "discovery"]
    assert "unreachable" in out


def test_test_of_an_issuer_mismatch_shows_both(
    capsys: pytest.CaptureFixture[str], served: DevIdP, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**ACME, "issuer": served.issuer + "/"}))
    code, out, _ = run(capsys, "test", "--json", str(path))
    assert code == 1
    assert f"names issuer {served.issuer!r}" in out
    assert f"configured with {served.issuer + '/'!r}" in out


# -- extras --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "argv", "extra"),
    [
        ("sqlalchemy", ["list", "--store", "sqlite:///x.db"], "sql"),
        ("asyncpg", ["list", "--store", "postgresql://db/app"], "sql"),
        ("redis", ["delete", "acme", "--store", "c.json", "--redis", "redis://x"], "redis"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(
    tmp_path: Path, missing: str, argv: list[str], extra: str
) -> None:
    code = f"from asgi_sso.cli import main; raise SystemExit(main({['connections', *argv]!r}))"
    done = python_without({missing}, code, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        f"asgi-sso connections: needs the {extra} extra ({missing} is not installed): "
        f"pip install 'asgi-sso[{extra}]'\n"
    )


def test_secret_env_splits_rotating_secrets_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_SECRET", "old-secret, new-secret")
    args = cli._parser().parse_args(["connections", "list", "--secret-env", "APP_SECRET"])
    assert cli._app_secrets(args) == [Secret("old-secret"), Secret("new-secret")]
