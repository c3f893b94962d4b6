"""``asgi-sso`` CLI: exit codes, exact failure reasons, never the signature."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from _without import python_without
from asgi_sso import cli
from asgi_sso.testing import DevIdP, DevUser, free_port


@pytest.fixture(scope="module")
def served() -> Iterator[DevIdP]:
    idp = DevIdP(users=[DevUser(sub="alice", email="alice@example.com")])
    with idp.serve():
        yield idp


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_prints_header_and_claims_but_never_the_signature(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    token = served.issue_token("alice", audience="api://x")
    code, out, err = run(
        capsys, "verify", token, "--issuer", served.issuer, "--audience", "api://x"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["valid"] is True
    assert report["header"]["typ"] == "at+jwt"
    assert report["claims"]["sub"] == "alice"
    assert token.split(".")[2] not in out + err


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("expired", "expired"),
        ("wrong_audience", "audience"),
        ("tampered", "signature"),
        ("wrong_issuer", "issuer"),
        ("alg_none", "malformed"),  # the core refuses an empty signature before alg
        ("hs256_with_public_key", "algorithm"),
    ],
)
def test_verify_names_the_exact_reason_and_exits_1(
    served: DevIdP, capsys: pytest.CaptureFixture[str], variant: str, reason: str
) -> None:
    factory = served.tokens
    factory.audience = "api://x"
    token = getattr(factory, variant)(sub="alice")
    code, out, err = run(
        capsys, "verify", token, "--issuer", served.issuer, "--audience", "api://x"
    )
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert report["reason"] == reason, report
    assert f"({reason})" in err
    assert token.split(".")[2] not in out + err or not token.split(".")[2]


def test_verify_warns_when_the_audience_went_unchecked(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    token = served.issue_token("alice", audience="api://x")
    code, out, err = run(capsys, "verify", token, "--issuer", served.issuer)
    assert code == 0
    assert json.loads(out)["valid"] is True
    assert err == (
        'warning: the audience was not checked (the token\'s aud is "api://x"): '
        "pass --audience with your API's audience\n"
    )
    code, _, err = run(capsys, "verify", token, "--issuer", served.issuer, "--audience", "api://x")
    assert (code, err) == (0, "")


def test_verify_leeway_allows_clock_skew(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    token = served.issue_token("alice", audience="a", expires_in=-100)
    args = ("verify", token, "--issuer", served.issuer, "--audience", "a")
    code, out, _ = run(capsys, *args)
    assert (code, json.loads(out)["reason"]) == (1, "expired")
    assert run(capsys, *args, "--leeway", "200")[0] == 0
    assert run(capsys, *args, "--leeway", "0")[0] == 1
    code, _, err = run(capsys, *args, "--leeway", "-1")
    assert code == 2
    assert "--leeway is a number of seconds" in err


@pytest.mark.parametrize(
    ("suffix", "note"),
    [
        ("/", "they differ only in a trailing slash"),
        ("/v2", None),
    ],
)
def test_verify_shows_the_expected_issuer_next_to_the_tokens(
    served: DevIdP, capsys: pytest.CaptureFixture[str], suffix: str, note: str | None
) -> None:
    token = served.issue_token("alice", audience="a")
    expected = served.issuer + suffix
    code, out, err = run(capsys, "verify", token, "--issuer", expected, "--audience", "a")
    assert code == 1
    report = json.loads(out)
    assert (report["reason"], report["expected_issuer"]) == ("issuer", expected)
    lines = err.splitlines()
    at = lines.index(f'  the token\'s issuer: "{served.issuer}"')
    assert lines[at + 1] == f'  expected issuer:    "{expected}"'
    assert (note in err) if note else ("differ only" not in err)


def test_verify_with_explicit_jwks_uri_and_algorithm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    idp = DevIdP(algorithm="ES256")
    with idp.serve():
        token = idp.issue_token("bob", audience="a")
        args = ("verify", token, "--issuer", idp.issuer, "--audience", "a")
        code, out, _ = run(capsys, *args)
        assert (code, json.loads(out)["reason"]) == (1, "algorithm")
        code, _, err = run(capsys, *args, "--algorithm", "ES256", "--jwks-uri", idp.jwks_uri)
        assert code == 0, err


def test_verify_reports_an_unavailable_idp_with_exit_3(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    token = served.issue_token("alice")
    with served.outage():
        code, out, _ = run(capsys, "verify", token, "--issuer", served.issuer, "--timeout", "5")
    assert code == 3
    assert json.loads(out)["valid"] is False


@pytest.mark.parametrize("token", ["not-a-token", "a.b", "!!!.e30.x", "W10.W10.x"])
def test_verify_bad_input_exits_2(capsys: pytest.CaptureFixture[str], token: str) -> None:
    code, out, err = run(capsys, "verify", token, "--issuer", "https://idp.example")
    assert code == 2
    assert out == ""
    assert "asgi-sso verify:" in err


def test_verify_reads_stdin_and_rejects_bad_config(
    served: DevIdP, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(served.issue_token("alice") + "\n"))
    assert run(capsys, "verify", "-", "--issuer", served.issuer)[0] == 0
    token = served.issue_token("alice")
    code, _, err = run(capsys, "verify", token, "--issuer", served.issuer, "--algorithm", "XX1")
    assert code == 2
    assert "not supported" in err


@pytest.mark.parametrize("suffix", ["", "/", "/jwks", "/.well-known/openid-configuration"])
def test_jwks_lists_keys_and_cache_headers(
    served: DevIdP, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    code, out, err = run(capsys, "jwks", served.issuer + suffix)
    assert code == 0, err
    assert f"jwks_uri:      {served.jwks_uri}" in out
    assert "cache-control: public, max-age=300" in out
    assert served.keys.current.kid in out
    assert "RSA  RS256    sig" in out


def test_jwks_exit_codes_for_bad_input_and_unreachable_idp(
    served: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "jwks", "idp.example")[0] == 2
    code, _, err = run(capsys, "jwks", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert code == 3
    assert "cannot reach" in err
    with served.outage():
        assert run(capsys, "jwks", served.issuer)[0] == 3


def test_usage_errors_exit_2_and_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            capsys,
        )[0]
        == 2
    )
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "--help")[0] == 0


@pytest.fixture
def served_args(monkeypatch: pytest.MonkeyPatch) -> list[tuple[DevIdP, str, int]]:
    calls: list[tuple[DevIdP, str, int]] = []
    monkeypatch.setattr(
        cli, "_serve_forever", lambda idp, host, port: calls.append((idp, host, port))
    )
    return calls


def test_dev_idp_refuses_non_loopback_hosts_unless_allowed(
    capsys: pytest.CaptureFixture[str], served_args: list[tuple[DevIdP, str, int]]
) -> None:
    code, _, err = run(capsys, "dev-idp", "--host", "0.0.0.0")
    assert code == 2
    assert "loopback" in err
    assert served_args == []
    assert run(capsys, "dev-idp", "--host", "0.0.0.0", "--allow-remote", "--port", "9001")[0] == 0
    assert served_args[0][1:] == ("0.0.0.0", 9001)


def test_dev_idp_from_flags_prints_issuer_users_and_clients(
    capsys: pytest.CaptureFixture[str], served_args: list[tuple[DevIdP, str, int]]
) -> None:
    code, out, _ = run(
        capsys, "dev-idp", "--port", "9002", "--user", "carol:carol@example.com:admins,ops",
        "--client-id", "web", "--client-secret", "topsecret-value",
        "--redirect-uri", "http://127.0.0.1:8000/cb", "--auto-approve",
        "--backchannel-logout-uri", "http://127.0.0.1:8000/auth/backchannel-logout",
    )  # fmt: skip
    assert code == 0
    idp, host, port = served_args[0]
    assert (host, port, idp.issuer) == ("127.0.0.1", 9002, "http://127.0.0.1:9002")
    assert idp.users["carol"].groups == ("admins", "ops")
    assert idp.clients["web"].redirect_uris == ("http://127.0.0.1:8000/cb",)
    assert (
        idp.clients["web"].backchannel_logout_uri == "http://127.0.0.1:8000/auth/backchannel-logout"
    )
    assert "back-channel logout: http://127.0.0.1:8000/auth/backchannel-logout" in out
    assert idp.auto_approve
    assert "dev IdP issuer: http://127.0.0.1:9002" in out
    assert "a token for curl: asgi-sso token --user carol --issuer http://127.0.0.1:9002" in out
    assert "carol" in out
    assert "topsecret-value" not in out


def test_dev_idp_reads_a_json_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], served_args: list[tuple[DevIdP, str, int]]
) -> None:
    config = tmp_path / "idp.json"
    config.write_text(json.dumps({
        "users": [{"sub": "dora", "groups": ["g"], "connection_id": "c1"}],
        "clients": [{"client_id": "app", "redirect_uris": ["http://localhost:3000/cb"]}],
        "algorithm": "ES256",
    }))  # fmt: skip
    assert run(capsys, "dev-idp", "--config", str(config), "--port", "0")[0] == 0
    idp = served_args[0][0]
    assert idp.algorithm == "ES256"
    assert idp.users["dora"].connection_id == "c1"
    assert idp.clients["app"].is_public
    config.write_text('{"users": [{"email": "no-sub"}]}')
    code, _, err = run(capsys, "dev-idp", "--config", str(config))
    assert code == 2
    assert err == f"asgi-sso dev-idp: {config}: users[0]: Object missing required field `sub`\n"
    code, _, err = run(capsys, "dev-idp", "--config", str(tmp_path / "missing.json"))
    assert code == 2
    assert "cannot read" in err
    assert "No such file or directory" in err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json", "is not valid JSON: JSON is malformed"),
        ("[]", ": Expected `object`, got `array`"),
        ('{"algorithm": 5}', ": algorithm: Expected `str | null`, got `int`"),
        ('{"users": [{"sub": "a", "colour": "blue"}]}',
         ": users[0]: Object contains unknown field `colour` (known: sub, email, name,"),
        ('{"users": [{"sub": "a", "groups": ["ok", 5]}]}',
         ": users[0].groups[1]: Expected `str`, got `int`"),
        ('{"users": [{"sub": ""}]}', ": users[0]: DevUser.sub must be 1 to 255 characters"),
        ('{"clients": [{"client_id": "c"}, {"client_id": "d"}, {"client_id": "c"}]}',
         ": clients[2]: client_id 'c' is already clients[0]"),
        ('{"clients": [{"client_id": "c", "grant_types": ["password"]}]}',
         ": clients[0]: unknown grant type 'password'"),
        ('{"algorithm": "HS256"}', "cannot sign with 'HS256'"),
    ],
)  # fmt: skip
def test_dev_idp_config_mistakes_are_refused_saying_where(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    served_args: list[tuple[DevIdP, str, int]],
    content: str,
    says: str,
) -> None:
    config = tmp_path / "idp.json"
    config.write_text(content)
    code, out, err = run(capsys, "dev-idp", "--config", str(config))
    assert (code, out, served_args) == (2, "", [])
    assert err.startswith("asgi-sso dev-idp: ")
    assert says in err
    assert len(err.splitlines()) == 1


def test_parse_user_spec() -> None:
    user = cli._parse_user("eve")
    assert (user.sub, user.email, user.groups) == ("eve", None, ())
    assert isinstance(cli._parser().parse_args(["jwks", "x"]), argparse.Namespace)


@pytest.mark.parametrize("missing", ["starlette", "uvicorn"])
def test_dev_idp_without_the_testing_extra_names_it_in_one_line(
    tmp_path: Path, missing: str
) -> None:
    code = "from asgi_sso.cli import main; raise SystemExit(main(['dev-idp', '--port', '0']))"
    done = python_without({missing}, code, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"asgi-sso dev-idp: needs the testing extra ({missing} is not installed): "
        "pip install 'asgi-sso[testing]'\n"
    )


def test_core_subcommands_run_without_the_testing_extra(tmp_path: Path) -> None:
    code = (
        "from asgi_sso.cli import main\n"
        "print(main(['verify', 'a.b', '--issuer', 'https://idp.example']))\n"
        "print(main(['jwks', 'ftp://idp.example']))\n"
    )
    done = python_without({"starlette", "uvicorn"}, code, cwd=tmp_path)
    assert (done.returncode, done.stdout.split()) == (0, ["2", "2"]), done.stderr
    assert "not a compact JWS" in done.stderr
    assert "Traceback" not in done.stderr


# Each subcommand and what it needs beyond the core (checked with that extra missing).
NEEDS = {
    "dev-idp": "testing",  # test_dev_idp_without_the_testing_extra_names_it_in_one_line
    "verify": None,  # test_core_subcommands_run_without_the_testing_extra
    "jwks": None,  # likewise
    "token": None,  # test_cli_token.py: test_token_needs_no_extra
    "dpop-proof": None,  # test_cli_dpop.py: test_dpop_proof_needs_no_extra
    "cert": None,  # test_cli_mtls.py: test_cert_and_token_cert_need_no_extra
    "connections": None,  # sql and redis by store: test_cli_connections.py
}


def test_every_subcommand_is_accounted_for() -> None:
    parser = cli._parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == set(NEEDS)
    for name, extra in NEEDS.items():
        args = parser.parse_args(_minimal_args(name))
        declared = getattr(args, "extra", None)
        assert (declared[0] if declared else None) == extra, name


def _minimal_args(name: str) -> list[str]:
    return {
        "verify": ["verify", "t", "--issuer", "https://i"],
        "jwks": ["jwks", "https://i"],
        "connections": ["connections", "list"],
        "dpop-proof": ["dpop-proof", "--key", "k", "--method", "GET", "--url", "https://a/"],
        "cert": ["cert", "--out", "d"],
    }.get(name, [name])
