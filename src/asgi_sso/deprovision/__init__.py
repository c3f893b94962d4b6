"""Deprovisioning: SCIM 2.0 user provisioning and OIDC back-channel logout, as ASGI apps.

``SSOMiddleware`` mounts both (``scim=ScimConfig(...)``; back-channel logout
with sign-in); each ends what it names through the revocation bus.
"""

from __future__ import annotations

from asgi_sso.deprovision.backchannel import BackchannelConfig, BackchannelLogoutApp
from asgi_sso.deprovision.scim import ScimApp, ScimConfig

__all__ = ["BackchannelConfig", "BackchannelLogoutApp", "ScimApp", "ScimConfig"]
