"""Every snippet of docs/testing.md runs as written: test files, scripts and the CLI command."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from asgi_sso.testing import free_port

pytest_plugins = ["pytester"]

DOC = Path(__file__).parents[2] / "docs" / "testing.md"
_BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FILE = re.compile(r"# file: (\S+)\n")


def blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(DOC.read_text()) if lang == language]


def files() -> dict[str, str]:
    found = {}
    for body in blocks("python"):
        named = _FILE.match(body)
        if named is not None:
            found[named.group(1)] = body
    return found


def scripts() -> list[str]:
    return [body for body in blocks("python") if not _FILE.match(body)]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A directory holding every ``# file:`` snippet of the guide."""
    for name, body in files().items():
        pytester.path.joinpath(name).write_text(body)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    return pytester


def test_the_guide_has_the_snippets_this_test_expects() -> None:
    assert set(files()) == {
        "myapp.py", "test_api.py", "test_bad_tokens.py", "test_expiry.py", "test_props.py",
        "browser_app.py",
    }  # fmt: skip
    assert len(scripts()) == 1
    assert any("asgi-sso dev-idp" in body for body in blocks("bash"))


def test_the_test_snippets_pass_with_the_plugin(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3 + 9 + 1 + 1)


def test_the_browser_app_snippet_builds(project: pytest.Pytester) -> None:
    result = project.run(sys.executable, "-c", "import browser_app; print(type(browser_app.sso))")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*SSOMiddleware*"])


def test_the_third_party_client_snippet_signs_in(project: pytest.Pytester) -> None:
    (script,) = scripts()
    project.path.joinpath("third_party.py").write_text(script)
    result = project.run(sys.executable, "third_party.py", timeout=120)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["signed in as alice"])


def test_the_cli_snippet_serves_the_dev_idp(tmp_path: Path) -> None:
    (command,) = [b for b in blocks("bash") if "asgi-sso dev-idp" in b]
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:2] == ["asgi-sso", "dev-idp"]
    port = free_port()
    argv = [str(port) if arg == "8765" else arg for arg in argv[2:]]
    runner = "import sys; from asgi_sso.cli import main; sys.exit(main())"
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", runner, "dev-idp", *argv], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        issuer = f"http://127.0.0.1:{port}"
        doc = None
        deadline = time.monotonic() + 30
        while doc is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                doc = httpx.get(issuer + "/.well-known/openid-configuration", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.1)  # waiting for a subprocess to listen, bounded by the deadline
        assert doc is not None, out.read_text()
        assert doc["issuer"] == issuer
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, out.read_text()
    text = out.read_text()
    assert "carol" in text
    assert "back-channel logout: http://127.0.0.1:8000/auth/backchannel-logout" in text
    assert "web-secret" not in text
