"""The floor: only the signature check with ``cryptography`` (no parsing, no claims)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from benchmarks.candidates import Unsupported
from benchmarks.fixtures import Material, b64decode, hs_secret

NAME = "raw cryptography (floor)"


def setup(material: Material, mode: str) -> Callable[[Sequence[str]], object]:
    """A batch verifier doing nothing but the signature check of each token."""
    if mode != "cold":
        raise Unsupported("the floor has no cache")
    if material.label == "HS256":
        secret = hs_secret(material)

        def hs_batch(tokens: Sequence[str]) -> None:
            for token in tokens:
                signing_input, _, sig = token.rpartition(".")
                mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
                if not hmac.compare_digest(mac, b64decode(sig)):
                    raise ValueError("bad signature")

        return hs_batch

    assert material.pem is not None
    key = serialization.load_pem_public_key(material.pem.encode())
    verify: Callable[[bytes, bytes], None]
    if material.label == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def verify(sig: bytes, data: bytes) -> None:
            key.verify(sig, data, pkcs1, sha256)  # type: ignore[union-attr, call-arg]

    elif material.label == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())

        def verify(sig: bytes, data: bytes) -> None:
            der = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
            key.verify(der, data, ecdsa)  # type: ignore[union-attr, call-arg]

    else:

        def verify(sig: bytes, data: bytes) -> None:
            key.verify(sig, data)  # type: ignore[union-attr, call-arg]

    def batch(tokens: Sequence[str]) -> None:
        for token in tokens:
            signing_input, _, sig = token.rpartition(".")
            verify(b64decode(sig), signing_input.encode())

    return batch
