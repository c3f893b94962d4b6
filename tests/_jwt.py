"""Read a JWT's claims in a test, without checking anything (the code under test does)."""

from __future__ import annotations

import base64
import json
from typing import Any


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, as a dict."""
    return _part(token, 1)


def header_of(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, as a dict."""
    return _part(token, 0)


def _part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
