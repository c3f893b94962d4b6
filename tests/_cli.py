"""Run ``asgi-sso`` in process and read what it printed."""

from __future__ import annotations

import pytest

from asgi_sso.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The exit code, stdout and stderr of ``asgi-sso *argv``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def printed(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one value ``asgi-sso *argv`` prints, for ``$(...)``; it must succeed silently."""
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    return out.strip()
