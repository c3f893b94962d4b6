"""The docs install asgi-sso from a clone or a wheel, never by name from an index it is not on."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = sorted(
    [
        ROOT / "README.md",
        *(p for d in ("docs", "examples", "benchmarks") for p in ROOT.glob(f"{d}/**/*.md")),
    ]
)
_BLOCK = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def pip_installs(text: str) -> list[list[str]]:
    """The targets of every ``pip install`` command in the page's code blocks."""
    found = []
    for block in _BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.partition("#")[0]
            if "pip install" not in command:
                continue
            words = shlex.split(command.partition("pip install")[2])
            found.append([word for word in words if not word.startswith("-")])
    return found


def by_name(target: str) -> bool:
    """Whether ``target`` names the distribution for an index to find (not a path or a wheel)."""
    name = re.split(r"[\[<>=!~ ]", target, maxsplit=1)[0]
    return name.lower().replace("_", "-") == "asgi-sso"


def test_the_pages_are_found() -> None:
    assert ROOT / "README.md" in PAGES
    assert ROOT / "docs" / "testing.md" in PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_installs_asgi_sso_by_name(page: Path) -> None:
    offending = [t for targets in pip_installs(page.read_text()) for t in targets if by_name(t)]
    assert not offending, f"{page.name}: install from a clone ('.') or a wheel, not {offending}"


def test_the_readme_shows_the_clone_and_the_wheel() -> None:
    installs = pip_installs((ROOT / "README.md").read_text())
    targets = [target for found in installs for target in found]
    assert any(t.startswith(".[") or t == "." for t in targets)
    assert any(".whl[" in t for t in targets)
    assert "py3-none-any" in (ROOT / "README.md").read_text()


def test_the_checker_catches_an_install_by_name() -> None:
    page = "```sh\npip install 'asgi-sso[testing]'   # no\npip install -e '.[dev]'\n```\n"
    assert [by_name(t) for found in pip_installs(page) for t in found] == [True, False]
    assert by_name("asgi_sso>=0.1")
    assert not by_name("./dist/asgi_sso-0.1.0-py3-none-any.whl")
