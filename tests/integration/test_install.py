"""The package installs anywhere: one pure-Python ``py3-none-any`` wheel, no compiler needed.

A copy of the checkout (what a clone holds) is built into a wheel, then installed into fresh
virtual environments both from that wheel and from the source tree, with no C compiler on
``PATH`` (and ``CC`` pointing nowhere). The dependencies come from this test environment
through a ``.pth`` file, so the test needs no package index; an install from the index
resolves them to the same binary wheels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
COMPILERS = ("cc", "gcc", "clang", "c++", "g++")


def _run(*argv: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a clone holds of the package: pyproject.toml, the README and src/."""
    repo = tmp_path_factory.mktemp("clone")
    shutil.copy2(ROOT / "pyproject.toml", repo)
    shutil.copy2(ROOT / "README.md", repo)
    shutil.copytree(
        ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return repo


@pytest.fixture(scope="module")
def no_compiler(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose PATH has no C compiler."""
    empty = tmp_path_factory.mktemp("bin")
    env = {
        "PATH": str(empty),
        "CC": "/nonexistent/cc",
        "CXX": "/nonexistent/c++",
        "HOME": str(empty),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INDEX": "1",
    }
    assert all(shutil.which(c, path=env["PATH"]) is None for c in COMPILERS)
    return env


@pytest.fixture(scope="module")
def wheel(clone: Path, no_compiler: dict[str, str]) -> Path:
    out = clone / "dist"
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", out,
         cwd=clone, env=no_compiler)  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


def _fresh_venv(where: Path, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A new venv (no pip of its own) that finds the test environment's dependencies."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=where, env=env).stdout.strip()  # fmt: skip
    # Appended after the venv's own site-packages: what the install puts there wins.
    Path(purelib, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, {**env, "PATH": f"{where / 'bin'}{os.pathsep}{env['PATH']}"}


def _assert_installed_in(python: Path, where: Path, env: dict[str, str]) -> None:
    code = "import asgi_sso, asgi_sso.cli; print(asgi_sso.__file__)"
    location = _run(python, "-c", code, cwd=where, env=env).stdout.strip()
    assert Path(location).is_relative_to(where), location
    help_text = _run(where / "bin" / "asgi-sso", "--help", cwd=where, env=env).stdout
    assert "dev-idp" in help_text


def test_the_wheel_is_one_universal_pure_python_wheel(wheel: Path) -> None:
    assert wheel.name == "asgi_sso-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read("asgi_sso-0.1.0.dist-info/WHEEL").decode()
        entry_points = archive.read("asgi_sso-0.1.0.dist-info/entry_points.txt").decode()
    assert "Root-Is-Purelib: true" in meta
    assert "Tag: py3-none-any" in meta
    assert "asgi_sso/py.typed" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c", ".pyx"))]
    assert not [n for n in names if "__pycache__" in n]
    assert "asgi-sso = asgi_sso.cli:main" in entry_points


def test_pip_install_the_wheel_without_a_compiler(
    wheel: Path, tmp_path: Path, no_compiler: dict[str, str]
) -> None:
    python, env = _fresh_venv(tmp_path / "venv", no_compiler)
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel,
         cwd=tmp_path, env=env)  # fmt: skip
    _assert_installed_in(python, tmp_path / "venv", env)


def test_pip_install_from_a_clone_without_a_compiler(
    clone: Path, tmp_path: Path, no_compiler: dict[str, str]
) -> None:
    python, env = _fresh_venv(tmp_path / "venv", no_compiler)
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
         "--no-build-isolation", ".", cwd=clone, env=env)  # fmt: skip
    _assert_installed_in(python, tmp_path / "venv", env)
