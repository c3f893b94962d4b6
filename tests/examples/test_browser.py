"""The FastAPI example in a real browser: Playwright driving Debian's Chromium.

home → Sign in with SSO → "your work email" → that company's dev IdP → dashboard →
admin page (an admin may, a member gets 403) → sign out → signed out; an unknown
domain; a third company added with ``asgi-sso connections add`` while the app
runs, signed in through, then disabled with ``asgi-sso connections disable``
(its signed-in user is refused on the next request). Screenshots go to
``artifacts/screenshots/`` for CI to keep.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_sso import Secret
from asgi_sso.testing import DevIdP, free_port
from examples.fastapi_app.app import (
    COMPANIES,
    DEV_AUDIENCE,
    DEV_CLIENT_ID,
    THIRD_COMPANY,
    Example,
    Settings,
    create_app,
    dev_client,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 15_000

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(
        "Debian's Chromium is not installed at /usr/bin/chromium "
        "(apt-get install chromium; with CI=true this test must run)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """The example (and, through its lifespan, its dev IdP) under uvicorn on 127.0.0.1."""
    import uvicorn

    port = free_port()
    example = create_app(
        Settings(
            session_secret=Secret(b"b" * 32),
            app_url=f"http://127.0.0.1:{port}",
            data_dir=str(tmp_path_factory.mktemp("browser-data")),
        )
    )
    config = uvicorn.Config(
        example.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fastapi-example", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # bounded by the deadline and the thread's life
        assert thread.is_alive(), "the example server stopped while starting"
        assert time.monotonic() < deadline, "the example server did not start in time"
        time.sleep(0.02)
    try:
        yield example
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, example: Example, email: str, issuer: str, prefix: str) -> None:
    """Home → Sign in with SSO → type the work email → that company's IdP → dashboard."""
    page.goto(example.settings.app_url + "/")
    shot(page, f"{prefix}-1-home")
    page.click("#signin")
    page.wait_for_selector("#sso-email")
    shot(page, f"{prefix}-2-work-email")
    page.fill("#sso-email", email)
    # The email goes to the company's IdP as login_hint; the dev IdP signs that user in.
    with page.expect_request(lambda request: request.url.startswith(issuer + "/authorize?")):
        page.click("button[type=submit]")
    page.wait_for_url(example.settings.app_url + "/dashboard")


def company_issuer(example: Example, company_id: str) -> str:
    return example.idps[company_id].issuer


def test_admin_signs_in_sees_the_admin_page_and_signs_out(served: Example, browser: Any) -> None:
    app_url = served.settings.app_url
    acme = company_issuer(served, "acme")
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, served, "alice@acme.example", acme, "admin")
        assert page.inner_text("#email") == "alice@acme.example"
        assert "enterprise" in page.inner_text("dl")
        shot(page, "admin-3-dashboard")

        admin = page.goto(app_url + "/admin/users")
        assert admin is not None
        assert admin.status == 200
        assert "alice@acme.example" in page.inner_text("#users")
        shot(page, "admin-4-admin-users")

        page.goto(app_url + "/dashboard")
        page.click("#signout")  # → dev IdP end_session → back to the home page
        page.wait_for_url(lambda url: url.split("?")[0] == app_url + "/")
        shot(page, "admin-5-signed-out")
        page.goto(app_url + "/dashboard")
        page.wait_for_selector("#sso-email")  # signed out: asked to sign in again
        assert not [c for c in context.cookies() if c["name"].endswith("sso_session")]
    finally:
        context.close()


def test_member_gets_403_on_the_admin_page(served: Example, browser: Any) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, served, "bob@acme.example", company_issuer(served, "acme"), "member")
        assert page.inner_text("#email") == "bob@acme.example"
        refused = page.goto(served.settings.app_url + "/admin/users")
        assert refused is not None
        assert refused.status == 403
        assert "403 · Not allowed" in page.inner_text("#error")
        shot(page, "member-3-admin-403")
    finally:
        context.close()


def test_each_company_signs_in_at_its_own_idp_and_an_unknown_domain_is_told_so(
    served: Example, browser: Any
) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        globex = COMPANIES[1]
        sign_in(page, served, f"dave@{globex.domain}", company_issuer(served, globex.id), "globex")
        assert page.inner_text("#email") == f"dave@{globex.domain}"
        assert "globex" in page.inner_text("dl")
        assert "pro" in page.inner_text("dl")
        context.clear_cookies()
        page.goto(served.settings.app_url + "/auth/login")
        page.fill("#sso-email", "eve@unknown.example")
        page.click("button[type=submit]")
        page.wait_for_selector("#sso-error")
        assert "No single sign-on" in page.inner_text("#sso-error")
        assert page.input_value("#sso-email") == "eve@unknown.example"
        shot(page, "unknown-domain")
    finally:
        context.close()


def cli(example: Example, *args: str, secret: str | None = None) -> None:
    """``asgi-sso connections ...`` against the example's store, as its banner shows."""
    assert example.connections_url is not None
    env = {**os.environ, "APP_SECRET": example.app_secret.reveal_str()}
    if secret is not None:
        env["CLIENT_SECRET"] = secret
    store = ["--store", example.connections_url, "--secret-env", "APP_SECRET"]
    done = subprocess.run(
        [sys.executable, "-m", "asgi_sso.cli", "connections", args[0], *store, *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_company_added_at_runtime_signs_in_and_disabling_it_refuses_its_user(
    served: Example, browser: Any
) -> None:
    company, user = THIRD_COMPANY, THIRD_COMPANY.users[0]
    idp = DevIdP(f"http://127.0.0.1:{served.third_port}", users=company.users)
    idp.add_client(dev_client(served.settings.app_url, served.client_secret))
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    assert any(company.id in line for line in served.third_company_steps())
    with idp.serve():
        try:
            cli(
                served, "add", "--id", company.id, "--name", company.name,
                "--issuer", idp.issuer, "--client-id", DEV_CLIENT_ID,
                "--client-secret-env", "CLIENT_SECRET", "--audience", DEV_AUDIENCE,
                "--domain", company.domain, "--default-tier", "pro",
                secret=served.client_secret,
            )  # fmt: skip
            time.sleep(1.0)  # the app polls its store twice a second: no restart, no signal
            sign_in(page, served, user.email or "", idp.issuer, "runtime")
            assert company.id in page.inner_text("dl")
            cli(served, "disable", company.id)
            time.sleep(1.0)
            # The API refuses the session; a page navigation is sent back to sign in.
            refused = page.request.get(served.settings.app_url + "/me")
            assert refused.status == 401, refused.text()
            page.goto(served.settings.app_url + "/dashboard")
            page.wait_for_selector("#sso-email")
            shot(page, "runtime-4-disabled")
        finally:
            context.close()
