"""Encrypt and authenticate cookie payloads (JWE ``dir`` + ``A256GCM``): key rotation, chunking.

Each configured secret yields one 256-bit key through HKDF-SHA256, bound to a
*purpose* (``"session"``, ``"state"``) so a cookie made for one use never opens
as another, and to a *binding* (the sign-in issuer and client id) so a cookie
made by one app never opens in another app that shares the secret. The key id in
the JWE header names the secret, so rotation tries the right key first; the
newest secret encrypts, every secret decrypts.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.jwk import GuestProtocol, OctKey

from asgi_sso.config import Secret
from asgi_sso.errors import ConfigurationError
from asgi_sso.sessions.base import SessionInvalid

__all__ = ["MIN_SECRET_BYTES", "CookieCodec", "join_chunks", "split_chunks"]

MIN_SECRET_BYTES = 32
MAX_COOKIE_TOKEN = 64 * 1024
_HEADER_ALG = "dir"
_HEADER_ENC = "A256GCM"


def _info(purpose: str, binding: Sequence[str]) -> bytes:
    """The HKDF ``info`` (RFC 5869 §3.2): the purpose, then each binding part length-prefixed.

    Length prefixes keep the parts apart: ``("ab", "c")`` and ``("a", "bc")`` derive
    different keys, whatever characters an issuer or client id holds.
    """
    info = purpose.encode()
    for part in binding:
        raw = part.encode()
        info += len(raw).to_bytes(4, "big") + raw
    return info


def _derive(secret: Secret, info: bytes) -> tuple[str, OctKey]:
    raw = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"asgi_sso cookie v1",
        info=info,
    ).derive(secret.reveal())
    kid = base64.urlsafe_b64encode(hashlib.sha256(b"kid:" + raw).digest()[:6]).decode()
    return kid, OctKey.import_key(raw)


class CookieCodec:
    """Seals bytes into a cookie-safe JWE string and opens them again.

    Args:
        secrets: the cookie secrets, oldest to newest; each at least 32 bytes.
        purpose: what the cookies are for; keys differ per purpose.
        binding: whose cookies they are, e.g. ``(issuer, client_id)``; keys differ per
            binding, so apps sharing a secret cannot open each other's cookies.
    """

    __slots__ = ("_current", "_keys")

    def __init__(
        self, secrets: Sequence[Secret], *, purpose: str, binding: Sequence[str] = ()
    ) -> None:
        if not secrets:
            raise ConfigurationError("at least one cookie secret is required")
        info = _info(purpose, binding)
        keys: dict[str, OctKey] = {}
        for secret in secrets:
            if len(secret.reveal()) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"every cookie secret must be at least {MIN_SECRET_BYTES} bytes"
                )
            kid, key = _derive(secret, info)
            keys[kid] = key
        self._keys = keys
        self._current = _derive(secrets[-1], info)

    def encode(self, payload: bytes) -> str:
        """Encrypt ``payload`` with the newest key."""
        kid, key = self._current
        header = {"alg": _HEADER_ALG, "enc": _HEADER_ENC, "kid": kid}
        return jwe.encrypt_compact(header, payload, key, algorithms=[_HEADER_ALG, _HEADER_ENC])

    def decode(self, value: str) -> bytes:
        """Decrypt ``value``; raise :class:`SessionInvalid` unless one of our keys made it."""
        if not value or len(value) > MAX_COOKIE_TOKEN or value.count(".") != 4:
            raise SessionInvalid("the cookie is malformed")

        def resolve(obj: GuestProtocol) -> OctKey:
            kid = obj.headers().get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise LookupError("unknown cookie key")
            return key

        try:
            result = jwe.decrypt_compact(value, resolve, algorithms=[_HEADER_ALG, _HEADER_ENC])
        except Exception as exc:  # untrusted cookie meets joserfc: any failure is a refusal
            raise SessionInvalid("the cookie cannot be decrypted") from exc
        plaintext = result.plaintext
        if not isinstance(plaintext, bytes):
            raise SessionInvalid("the cookie is malformed")
        return plaintext


def split_chunks(name: str, value: str, *, chunk_size: int) -> list[tuple[str, str]]:
    """Cut ``value`` into cookies: ``name`` alone if it fits, else ``name.0``, ``name.1`` …"""
    if len(value) <= chunk_size:
        return [(name, value)]
    return [
        (f"{name}.{index}", value[start : start + chunk_size])
        for index, start in enumerate(range(0, len(value), chunk_size))
    ]


def join_chunks(cookies: Mapping[str, str], name: str, *, max_chunks: int) -> str | None:
    """Rebuild a value cut by :func:`split_chunks`; ``None`` when no such cookie is present."""
    whole = cookies.get(name)
    if whole is not None:
        return whole
    parts: list[str] = []
    for index in range(max_chunks + 1):
        part = cookies.get(f"{name}.{index}")
        if part is None:
            break
        parts.append(part)
    if not parts:
        return None
    if len(parts) > max_chunks:
        raise SessionInvalid("the session cookie has too many parts")
    return "".join(parts)
