"""Browser sign-in as an ASGI app: OIDC authorization code + PKCE, session cookies, refresh.

:class:`BrowserLogin` (mounted by ``SSOMiddleware`` from ``login=LoginConfig(...)``)
is the API (with :class:`DiscoveryPage`, what a custom home-realm discovery page
shows); the flow's legs, the OIDC client, the cookies and ``return_to``
checks are the modules beside it.
"""

from __future__ import annotations

from asgi_sso.login.app import BrowserLogin
from asgi_sso.login.config import LoginConfig
from asgi_sso.login.discovery import DiscoveryPage

__all__ = ["BrowserLogin", "DiscoveryPage", "LoginConfig"]
