"""Token verification: compact JWS, claims, the issuer registry and the verified-token cache.

:class:`TokenVerifier` is the API; the modules beside it are its implementation.
Verification is a synchronous function of (token, keys, issuer policy, now); it
awaits only :mod:`asgi_sso.keys.jwk` for keys it does not hold yet.
"""

from __future__ import annotations

from asgi_sso.verify.verifier import TokenVerifier, VerifiedToken

__all__ = ["TokenVerifier", "VerifiedToken"]
