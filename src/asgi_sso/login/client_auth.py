"""Client authentication at the provider's endpoints; it lives in :mod:`asgi_sso.keys.client_auth`.

Kept here so that ``from asgi_sso.login.client_auth import ClientAuth`` goes on working.
"""

from __future__ import annotations

from asgi_sso.keys.client_auth import (
    ASSERTION_LIFETIME,
    ASSERTION_TYPE,
    ClientAuth,
    ClientKey,
    load_client_key,
)

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "ClientAuth",
    "ClientKey",
    "load_client_key",
]
