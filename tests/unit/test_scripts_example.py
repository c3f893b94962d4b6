"""``./scripts/example`` installs into ``.venv`` only when it is new or pyproject.toml changed.

The script runs for real in a temporary copy of the checkout whose ``.venv/bin/python`` is a
stand-in: it logs each call, answers ``-m pip ...`` and ``-m examples...`` without doing
anything, and hands ``scripts/venv_stamp.py`` to this interpreter (which has the package
installed, as the venv would after its first install).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[2]
FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$(dirname "$0")/../calls.log"
if [ "$1" = -m ]; then exit 0; fi
exec {python} "$@"
"""


def _load_helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("venv_stamp", ROOT / "scripts" / "venv_stamp.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


venv_stamp = _load_helper()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("scripts/example", "scripts/venv_stamp.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, repo / name)
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    return repo


def start(repo: Path, app: str = "fastapi") -> list[str]:
    """Run the script once; the calls it made to the venv's python."""
    log = repo / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        [str(repo / "scripts" / "example"), app],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def installs(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("-m pip install")]


def test_the_second_start_does_not_reinstall(checkout: Path) -> None:
    first = start(checkout)
    assert installs(first) == ["-m pip install -q --disable-pip-version-check -e .[examples]"]
    assert first[-1] == "-m examples.fastapi_app"
    second = start(checkout, "litestar")
    assert installs(second) == []
    assert second[-1] == "-m examples.litestar_app"
    assert start(checkout, "mcp")[-1] == "-m examples.mcp_server"


def test_a_changed_pyproject_installs_again_and_then_not(checkout: Path) -> None:
    start(checkout)
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# a new dependency, say\n")
    assert len(installs(start(checkout))) == 1
    assert installs(start(checkout)) == []


def test_source_edits_need_no_reinstall(checkout: Path) -> None:
    start(checkout)
    (checkout / "src" / "asgi_sso").mkdir(parents=True)
    (checkout / "src" / "asgi_sso" / "__init__.py").write_text("# edited\n")
    assert installs(start(checkout)) == []


def test_a_new_venv_installs(checkout: Path) -> None:
    start(checkout)
    (checkout / ".venv" / venv_stamp.STAMP).unlink()  # what a freshly made venv lacks
    assert len(installs(start(checkout))) == 1


def test_a_failed_install_leaves_no_stamp(checkout: Path) -> None:
    python = checkout / ".venv" / "bin" / "python"
    python.write_text(python.read_text().replace("exit 0; fi", 'exit "${FAIL:-0}"; fi'))
    done = subprocess.run(
        [str(checkout / "scripts" / "example")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "FAIL": "1"},
    )
    assert done.returncode == 1
    assert not (checkout / ".venv" / venv_stamp.STAMP).exists()
    assert len(installs(start(checkout))) == 1


def test_the_stamp_keys_on_pyproject_spec_and_checkout(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    venv = tmp_path / ".venv"
    venv.mkdir()
    assert not venv_stamp.up_to_date(venv, tmp_path, "-e .[examples]")
    venv_stamp.write(venv, tmp_path, "-e .[examples]")
    assert venv_stamp.up_to_date(venv, tmp_path, "-e .[examples]")
    assert not venv_stamp.up_to_date(venv, tmp_path, "-e .[dev]")
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy2(tmp_path / "pyproject.toml", moved / "pyproject.toml")
    assert not venv_stamp.up_to_date(venv, moved, "-e .[examples]")


def test_an_uninstalled_package_installs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    venv_stamp.write(tmp_path, tmp_path, "-e .")
    monkeypatch.setattr(venv_stamp, "DISTRIBUTION", "asgi-sso-not-installed")
    assert not venv_stamp.up_to_date(tmp_path, tmp_path, "-e .")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert venv_stamp.main([]) == 2
    assert venv_stamp.main(["install", ".venv", "."]) == 2
    assert "check|write VENV SPEC" in capsys.readouterr().err
