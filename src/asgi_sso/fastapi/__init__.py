"""FastAPI helpers over the principal that ``SSOMiddleware`` put in ``scope["user"]``.

:mod:`~asgi_sso.fastapi.dependencies` has the dependencies (``CurrentUser``,
``require_scopes``, ``require_tier``); nothing here reads or verifies a token.
"""

from __future__ import annotations

from asgi_sso.fastapi.dependencies import (
    CurrentUser,
    OptionalUser,
    bearer_scheme,
    current_user,
    optional_user,
    require_scopes,
    require_tier,
)

__all__ = [
    "CurrentUser",
    "OptionalUser",
    "bearer_scheme",
    "current_user",
    "optional_user",
    "require_scopes",
    "require_tier",
]
