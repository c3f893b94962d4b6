"""Whether ``.venv`` needs ``pip install`` again: a stamp of what the last install was made from.

``scripts/example`` runs ``python scripts/venv_stamp.py check .venv SPEC`` with the venv's
own interpreter and installs only when it exits 1, then records the install with ``write``.
The package is installed editable, so source edits need no reinstall; what does is a new
``pyproject.toml`` (dependencies, extras, entry points), another install spec, another
interpreter, a moved checkout, or a venv in which the package is no longer installed.

Usage: python scripts/venv_stamp.py check|write VENV SPEC
"""

from __future__ import annotations

import hashlib
import sys
from importlib import metadata
from pathlib import Path

STAMP = ".asgi-sso-install-stamp"
DISTRIBUTION = "asgi-sso"


def fingerprint(root: Path, spec: str) -> str:
    """What an install of ``spec`` from the checkout at ``root`` depends on, hashed."""
    digest = hashlib.sha256()
    for part in (
        (root / "pyproject.toml").read_bytes(),
        spec.encode(),
        str(root.resolve()).encode(),  # an editable install points into this checkout
        sys.version.encode(),
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def installed() -> bool:
    """Whether the running interpreter has the package installed."""
    try:
        metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return True


def up_to_date(venv: Path, root: Path, spec: str) -> bool:
    """Whether the last install into ``venv`` was of ``spec`` from this ``pyproject.toml``."""
    try:
        recorded = (venv / STAMP).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False  # a new venv, or one installed before stamps existed
    return recorded == fingerprint(root, spec) and installed()


def write(venv: Path, root: Path, spec: str) -> None:
    """Record a successful install of ``spec``."""
    (venv / STAMP).write_text(fingerprint(root, spec) + "\n", encoding="ascii")


def main(argv: list[str]) -> int:
    """``check`` exits 0 when nothing needs installing and 1 otherwise; ``write`` records."""
    if len(argv) != 3 or argv[0] not in ("check", "write"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    command, venv, spec = argv[0], Path(argv[1]), argv[2]
    root = Path(__file__).resolve().parent.parent
    if command == "write":
        write(venv, root, spec)
        return 0
    return 0 if up_to_date(venv, root, spec) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
