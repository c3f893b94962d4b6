"""``DevIdP``: an OpenID provider for development and tests, as an ASGI app.

:class:`DevIdP` and its users and clients are the API; the endpoints, token
issuance, logout, pages and the loopback server are the modules beside it.
"""

from __future__ import annotations

from asgi_sso.testing.idp.model import DEMO_AUDIENCE, DEMO_CLIENTS, DEMO_USERS, DevClient, DevUser
from asgi_sso.testing.idp.provider import BACKCHANNEL_LOGOUT_EVENT, DevIdP

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "DEMO_AUDIENCE",
    "DEMO_CLIENTS",
    "DEMO_USERS",
    "DevClient",
    "DevIdP",
    "DevUser",
]
