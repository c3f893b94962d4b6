"""The pytest11 plugin: fixtures available in a fresh pytest run (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _without import python_without

pytest_plugins = ["pytester"]

APP = """
from starlette.responses import JSONResponse

async def app(scope, receive, send):
    user = scope.get("user")
    body = {"sub": getattr(user, "identity", None),
            "authenticated": bool(getattr(user, "is_authenticated", False))}
    await JSONResponse(body)(scope, receive, send)
"""


def run(pytester: pytest.Pytester, source: str, mode: str = "auto") -> pytest.RunResult:
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")


def test_dev_idp_and_token_factory_fixtures(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import json, base64
from asgi_sso.testing import DevIdP, TokenFactory

def claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))

def test_dev_idp(dev_idp):
    assert isinstance(dev_idp, DevIdP)
    assert {"alice", "bob"} <= set(dev_idp.users)
    assert "dev-client" in dev_idp.clients
    assert dev_idp.auto_approve

def test_token_factory(token_factory, dev_idp):
    assert isinstance(token_factory, TokenFactory)
    token = token_factory.token(sub="alice")
    assert claims(token)["iss"] == dev_idp.issuer
    assert claims(token)["aud"] == "api://asgi-sso-dev"
    assert claims(token_factory.expired())["exp"] < claims(token)["iat"]

async def test_in_process_discovery(dev_idp):
    async with dev_idp.http_client() as http:
        doc = (await http.get(dev_idp.discovery_url)).json()
    assert doc["issuer"] == dev_idp.issuer
""",
    )
    result.assert_outcomes(passed=3)


def test_sso_client_wraps_an_app_with_the_middleware(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        APP
        + """
async def test_signed_in_user_reaches_the_app(sso_client):
    async with sso_client(app, user="alice") as client:
        response = await client.get("/")
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "alice", "authenticated": True}

async def test_anonymous_request_is_refused(sso_client):
    async with sso_client(app) as client:
        response = await client.get("/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")

async def test_forged_token_is_refused(sso_client, token_factory):
    async with sso_client(app) as client:
        bad = token_factory.tampered(sub="alice")
        response = await client.get("/", headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]

async def test_token_factory_tokens_are_accepted(sso_client, token_factory):
    async with sso_client(app) as client:
        token = token_factory.token(sub="bob")
        response = await client.get("/", headers={"Authorization": f"Bearer {token}"})
    assert response.json()["sub"] == "bob"

async def test_middleware_options_pass_through(sso_client):
    from asgi_sso import PathRules

    async with sso_client(app, paths=PathRules(public=("/",))) as client:
        response = await client.get("/")
    assert response.json() == {"sub": "", "authenticated": False}
""",
    )
    result.assert_outcomes(passed=5)


def test_sso_client_closes_its_clients_in_the_tests_loop_in_strict_mode(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        APP
        + """
import asyncio
import httpx
import pytest

BUILT, CLOSED_IN = [], {}
_aclose = httpx.AsyncClient.aclose

async def recording_aclose(self):
    CLOSED_IN[id(self)] = asyncio.get_running_loop()
    await _aclose(self)

httpx.AsyncClient.aclose = recording_aclose

@pytest.mark.asyncio
async def test_uses_a_client_without_closing_it(sso_client):
    client = sso_client(app, user="alice")
    BUILT.append((client, asyncio.get_running_loop()))
    assert (await client.get("/")).json()["sub"] == "alice"

@pytest.mark.asyncio(loop_scope="module")
async def test_a_module_loop_test_can_use_it_too(sso_client):
    client = sso_client(app, user="bob")
    BUILT.append((client, asyncio.get_running_loop()))
    assert (await client.get("/")).json()["sub"] == "bob"

def test_every_client_was_closed_at_teardown():
    assert len(BUILT) == 2
    assert all(client.is_closed for client, _ in BUILT)
    (client, loop), _ = BUILT
    assert CLOSED_IN[id(client)] is loop  # not a loop of its own made at teardown
""",
        mode="strict",
    )
    result.assert_outcomes(passed=3)


def test_without_pytest_asyncio_sso_client_reports_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        check="""
import sys
sys.modules["pytest_asyncio"] = None  # as if it were not installed
import pytest
from asgi_sso.testing import pytest_plugin
assert not hasattr(pytest_plugin, "sso_client")
try:
    pytest_plugin._sso_client_needs_pytest_asyncio.__wrapped__()
except pytest.UsageError as exc:
    print("usage:", exc)
"""
    )
    result = pytester.run(__import__("sys").executable, "check.py")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["usage: the sso_client fixture needs pytest-asyncio"])


def test_package_import_needs_neither_pytest_nor_hypothesis(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        check="""
import sys
import asgi_sso.testing
assert "hypothesis" not in sys.modules, "hypothesis was imported"
assert "pytest" not in sys.modules, "pytest was imported"
print("clean")
"""
    )
    result = pytester.run(__import__("sys").executable, "check.py")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["clean"])


def test_pytest_starts_without_the_testing_extra_and_fixtures_name_it(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(
        "def test_plain():\n    assert True\n\n"
        "def test_with_fixture(dev_idp):\n    assert dev_idp\n"
    )
    code = "import pytest, sys; sys.exit(pytest.main(['-p', 'no:cacheprovider', '-rE']))"
    done = python_without({"starlette"}, code, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # a test errored, pytest ran
    assert "1 passed, 1 error" in done.stdout
    assert (
        "UsageError: the asgi_sso fixtures need the testing extra (starlette is not "
        "installed): pip install 'asgi-sso[testing]'" in done.stdout
    )
