"""Decide whether a ``return_to`` value is a path inside this app (no open redirect).

The value is percent-decoded repeatedly and every form is checked, so encoded
variants (``%2F%2Fevil``, ``%252F``, ``/%5Cevil``) fail exactly as the plain ones.
Browsers strip tabs and newlines and treat ``\\`` as ``/`` (WHATWG URL §4.4),
so any control character, backslash or whitespace (but a decoded inner space)
refuses the value.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

__all__ = ["MAX_RETURN_TO", "safe_return_to"]

MAX_RETURN_TO = 2048
_MAX_DECODES = 4
_ALLOWED_RAW = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"\\"}
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cs", "Cn"})


def _is_local_path(text: str) -> bool:
    if not text.startswith("/") or text.startswith("//"):
        return False
    if "\\" in text:
        return False
    if any(char != " " and unicodedata.category(char) in _BAD_CATEGORIES for char in text):
        return False
    parts = urlsplit(text)
    if parts.scheme or parts.netloc:
        return False
    segments = parts.path.split("/")
    return not any(segment in {".", ".."} for segment in segments)


def safe_return_to(value: str | None) -> str | None:
    """Return ``value`` if it is a same-app path, else ``None``.

    Args:
        value: the ``return_to`` query parameter, already decoded once by the query parser.

    Returns:
        The value unchanged (printable ASCII, starts with a single ``/``), or ``None``.
    """
    if not value or len(value) > MAX_RETURN_TO:
        return None
    if not all(char in _ALLOWED_RAW for char in value):
        return None
    current = value
    for _ in range(_MAX_DECODES):
        if not _is_local_path(current):
            return None
        decoded = unquote(current, errors="replace") if "%" in current else current
        if decoded == current:
            return value
        current = decoded
    return None  # still changing after several decodes: refuse rather than guess
