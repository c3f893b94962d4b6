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


def test_every_test_file_the_readme_names_exists() -> None:
    named = set(re.findall(r"`(tests/[\w/]+\.py)`", README.read_text()))
    assert len(named) >= 20
    root = README.parent
    assert sorted(n for n in named if not (root / n).is_file()) == []


def test_each_standard_row_names_its_tests() -> None:
    text = README.read_text()
    table = text.split("## Standards implemented", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith(("| RFC", "| O"))]
    assert len(rows) >= 15
    for row in rows:
        assert "`tests/" in row.split("|")[3], row
    for rfc in ("9449", "8705", "7662", "7523", "9126"):
        assert any(f"RFC {rfc}" in row for row in rows), rfc
