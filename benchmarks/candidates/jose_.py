"""python-jose's ``jwt.decode`` (it verifies iss, aud, exp, nbf, iat itself)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jose import jwt

from benchmarks.candidates import Unsupported
from benchmarks.fixtures import Material, hs_secret

NAME = "python-jose"


def setup(material: Material, mode: str) -> Callable[[Sequence[str]], object]:
    """Verify with python-jose against the JWK set (or the HS256 secret)."""
    if mode != "cold":
        raise Unsupported("python-jose has no verified-token cache")
    if material.label == "Ed25519":
        raise Unsupported("python-jose does not implement EdDSA")
    key: object = hs_secret(material) if material.label == "HS256" else material.jwks
    algorithms = [material.alg]
    options = {"require_sub": True, "require_iat": True, "require_nbf": True, "require_exp": True}
    iss, aud = material.issuer, material.audience

    def batch(tokens: Sequence[str]) -> None:
        for token in tokens:
            jwt.decode(token, key, algorithms=algorithms, audience=aud, issuer=iss, options=options)

    return batch
