"""The FastAPI example in a real browser: Playwright driving Debian's Chromium.

home → Sign in with SSO → dev IdP sign-in page → dashboard → admin page (an
admin may, a member gets 403) → sign out → signed out. Screenshots go to
``artifacts/screenshots/`` for CI to keep.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_sso import Secret
from asgi_sso.testing import free_port
from examples.fastapi_app.app import Example, Settings, create_app

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


def sign_in(page: Any, example: Example, sub: str, prefix: str) -> None:
    assert example.idp is not None
    page.goto(example.settings.app_url + "/")
    shot(page, f"{prefix}-1-home")
    page.click("#signin")
    page.wait_for_url(example.idp.issuer + "/authorize*")
    assert "Sign in to the dev IdP" in page.content()
    shot(page, f"{prefix}-2-idp-login")
    page.click(f"button[value='{sub}']")
    page.wait_for_url(example.settings.app_url + "/dashboard")


def test_admin_signs_in_sees_the_admin_page_and_signs_out(served: Example, browser: Any) -> None:
    app_url = served.settings.app_url
    assert served.idp is not None
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, served, "alice", "admin")
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
        page.wait_for_url(served.idp.issuer + "/authorize*")  # signed out: asked to sign in again
        assert not [c for c in context.cookies() if c["name"].endswith("sso_session")]
    finally:
        context.close()


def test_member_gets_403_on_the_admin_page(served: Example, browser: Any) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, served, "bob", "member")
        assert page.inner_text("#email") == "bob@acme.example"
        refused = page.goto(served.settings.app_url + "/admin/users")
        assert refused is not None
        assert refused.status == 403
        assert "403 · Not allowed" in page.inner_text("#error")
        shot(page, "member-3-admin-403")
    finally:
        context.close()
