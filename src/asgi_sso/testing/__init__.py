"""Test kit: a development OpenID provider and token helpers (no pytest or hypothesis needed).

The pytest plugin (:mod:`asgi_sso.testing.pytest_plugin`) and the hypothesis
strategies (:mod:`asgi_sso.testing.strategies`) are imported separately.
"""

from __future__ import annotations

from asgi_sso.testing.clock import FakeClock
from asgi_sso.testing.idp import BACKCHANNEL_LOGOUT_EVENT, DevClient, DevIdP, DevUser
from asgi_sso.testing.idp.server import free_port
from asgi_sso.testing.tokens import (
    TokenFactory,
    alg_none,
    generate_key,
    hs256_with_public_key,
    mint,
    public_jwk,
    tamper_payload,
    tamper_signature,
)

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "DevClient",
    "DevIdP",
    "DevUser",
    "FakeClock",
    "TokenFactory",
    "alg_none",
    "free_port",
    "generate_key",
    "hs256_with_public_key",
    "mint",
    "public_jwk",
    "tamper_payload",
    "tamper_signature",
]
