"""Certificates no parser should take, made from good ones at test time."""

from __future__ import annotations

import base64

# A v3 certificate's version field: [0] EXPLICIT INTEGER 2 (RFC 5280 §4.1.2.1).
_VERSION_3 = bytes.fromhex("a003020102")


def bad_version(der: bytes, version: int = 15) -> bytes:
    """``der`` with its X.509 version number set to ``version`` (15 is no version at all)."""
    at = der.index(_VERSION_3) + len(_VERSION_3) - 1
    return der[:at] + bytes([version]) + der[at + 1 :]


def pem_of(der: bytes) -> str:
    """``der`` as a PEM ``CERTIFICATE`` block."""
    text = base64.b64encode(der).decode()
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"
