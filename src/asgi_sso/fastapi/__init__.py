"""FastAPI helpers over the principal that ``SSOMiddleware`` put in ``scope["user"]``.

:mod:`~asgi_sso.fastapi.dependencies` has the dependencies (``CurrentUser``,
``require_scopes``, ``require_tier``), :mod:`~asgi_sso.fastapi.docs` the Swagger UI sign-in
(``configure_docs``); nothing here reads or verifies a token.
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
from asgi_sso.fastapi.docs import DocsSignIn, configure_docs

__all__ = [
    "CurrentUser",
    "DocsSignIn",
    "OptionalUser",
    "bearer_scheme",
    "configure_docs",
    "current_user",
    "optional_user",
    "require_scopes",
    "require_tier",
]
