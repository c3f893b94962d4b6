"""One module per verification candidate.

Each module exposes ``NAME`` (the label in reports) and
``setup(material, mode) -> verify_batch``: ``verify_batch(tokens)`` fully
verifies every token (signature, ``iss``, ``aud``, ``exp``, ``nbf``, ``iat``,
``sub`` required) the way that library's users would, raising on any refusal.
``mode`` is ``"cold"`` (every token new) or ``"warm"`` (the same token again;
only asgi_sso has a cache). ``setup`` raises :class:`Unsupported` for an
algorithm the library does not implement.
"""

from __future__ import annotations

CANDIDATES = ("raw_crypto", "asgi_sso_", "pyjwt_", "joserfc_", "jose_", "authlib_")
"""Module names, in report order (``raw_crypto`` is the floor every ratio divides by)."""


class Unsupported(Exception):
    """The candidate does not implement this algorithm or mode."""
