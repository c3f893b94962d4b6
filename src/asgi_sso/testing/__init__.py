"""Test kit: a development OpenID provider and token helpers (no pytest or hypothesis needed).

The pytest plugin (:mod:`asgi_sso.testing.pytest_plugin`) and the hypothesis
strategies (:mod:`asgi_sso.testing.strategies`) are imported separately.

The kit needs the ``testing`` extra (``pip install 'asgi-sso[testing]'``). Its names
are imported on first use, so this package imports with the core alone: pytest loads
the plugin inside it wherever ``asgi-sso`` is installed, extra or not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asgi_sso.testing.clock import FakeClock
    from asgi_sso.testing.dpop import DPoPClient
    from asgi_sso.testing.idp import BACKCHANNEL_LOGOUT_EVENT, DevClient, DevIdP, DevUser
    from asgi_sso.testing.idp.server import free_port
    from asgi_sso.testing.mtls import ClientCertificate
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
    "ClientCertificate",
    "DPoPClient",
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

_IDP, _TOKENS = "asgi_sso.testing.idp", "asgi_sso.testing.tokens"
_HOMES = {
    "BACKCHANNEL_LOGOUT_EVENT": _IDP,
    "ClientCertificate": "asgi_sso.testing.mtls",
    "DPoPClient": "asgi_sso.testing.dpop",
    "DevClient": _IDP,
    "DevIdP": _IDP,
    "DevUser": _IDP,
    "FakeClock": "asgi_sso.testing.clock",
    "TokenFactory": _TOKENS,
    "alg_none": _TOKENS,
    "free_port": "asgi_sso.testing.idp.server",
    "generate_key": _TOKENS,
    "hs256_with_public_key": _TOKENS,
    "mint": _TOKENS,
    "public_jwk": _TOKENS,
    "tamper_payload": _TOKENS,
    "tamper_signature": _TOKENS,
}


def __getattr__(name: str) -> Any:
    # PEP 562: import a name's module on first use, naming the extra if it is missing.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(home)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "asgi_sso":
            raise
        raise ModuleNotFoundError(
            f"asgi_sso.testing.{name} needs the testing extra ({exc.name} is not installed): "
            "pip install 'asgi-sso[testing]'",
            name=exc.name,
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
