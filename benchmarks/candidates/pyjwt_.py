"""PyJWT with PyJWKClient: the most common path in Python APIs.

PyJWKClient fetches keys over HTTP only, so the JWKS is served from a local
server on 127.0.0.1; it is fetched once during warm-up and then cached by
PyJWKClient (its default behaviour), as in a long-running app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jwt

from benchmarks.candidates import Unsupported
from benchmarks.fixtures import Material, hs_secret, serve_jwks

NAME = "PyJWT + PyJWKClient"
REQUIRE = ["exp", "iat", "nbf", "iss", "aud", "sub"]


def setup(material: Material, mode: str) -> Callable[[Sequence[str]], object]:
    """Verify like a typical PyJWT user: resolve the key by ``kid``, then ``jwt.decode``."""
    if mode != "cold":
        raise Unsupported("PyJWT has no verified-token cache")
    algorithms = [material.alg]
    options = {"require": REQUIRE}
    iss, aud = material.issuer, material.audience
    if material.label == "HS256":
        secret = hs_secret(material)

        def hs_batch(tokens: Sequence[str]) -> None:
            for token in tokens:
                jwt.decode(
                    token, secret, algorithms=algorithms, audience=aud, issuer=iss, options=options
                )

        return hs_batch

    client = jwt.PyJWKClient(serve_jwks(material))

    def batch(tokens: Sequence[str]) -> None:
        for token in tokens:
            key = client.get_signing_key_from_jwt(token).key
            jwt.decode(token, key, algorithms=algorithms, audience=aud, issuer=iss, options=options)

    return batch
