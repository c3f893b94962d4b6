"""Authlib's ``JsonWebToken.decode`` and ``JWTClaims.validate``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from authlib.jose import JsonWebKey, JsonWebToken

from benchmarks.candidates import Unsupported
from benchmarks.fixtures import Material, hs_secret

NAME = "Authlib"


def setup(material: Material, mode: str) -> Callable[[Sequence[str]], object]:
    """Verify with Authlib, every claim essential, time claims checked against now."""
    if mode != "cold":
        raise Unsupported("Authlib has no verified-token cache")
    key: object
    if material.label == "HS256":
        key = hs_secret(material)
    else:
        key = JsonWebKey.import_key_set(material.jwks)
    decoder = JsonWebToken([material.alg])
    options = {
        "iss": {"essential": True, "value": material.issuer},
        "aud": {"essential": True, "value": material.audience},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "nbf": {"essential": True},
        "iat": {"essential": True},
    }

    def batch(tokens: Sequence[str]) -> None:
        for token in tokens:
            claims = decoder.decode(token, key, claims_options=options)
            claims.validate(now=int(time.time()), leeway=60)

    return batch
