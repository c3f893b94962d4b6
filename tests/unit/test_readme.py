"""The README's first example runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from asgi_sso import SSOMiddleware

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


async def test_the_ten_line_example_builds_and_refuses_anonymous_calls() -> None:
    first = python_blocks()[0]
    assert len(first.strip().splitlines()) <= 15
    namespace: dict[str, Any] = {}
    exec(compile(first, "README.md", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, SSOMiddleware)
    app.prefetch = False  # no network in tests: the example's IdP is not reachable
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="api"'
