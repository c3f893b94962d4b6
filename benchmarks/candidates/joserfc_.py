"""joserfc's own generic path: ``jwt.decode`` then ``JWTClaimsRegistry.validate``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from joserfc import jwt
from joserfc.jwk import KeySet, OctKey

from benchmarks.candidates import Unsupported
from benchmarks.fixtures import Material, hs_secret

NAME = "joserfc decode + claims registry"


def setup(material: Material, mode: str) -> Callable[[Sequence[str]], object]:
    """Verify with joserfc's documented API, every claim marked essential."""
    if mode != "cold":
        raise Unsupported("joserfc has no verified-token cache")
    key: object
    if material.label == "HS256":
        key = OctKey.import_key(hs_secret(material))
    else:
        key = KeySet.import_key_set(material.jwks)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": material.issuer},
        aud={"essential": True, "value": material.audience},
        sub={"essential": True},
        exp={"essential": True},
        nbf={"essential": True},
        iat={"essential": True},
    )
    algorithms = [material.alg]

    def batch(tokens: Sequence[str]) -> None:
        for token in tokens:
            registry.validate(jwt.decode(token, key, algorithms=algorithms).claims)  # type: ignore[arg-type]

    return batch
