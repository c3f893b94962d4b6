"""Identity: roles, tiers and scopes from a verified token, the stored user, and revocation.

:class:`IdentityResolver` runs after verification; the tier mapper, the user
store (:mod:`asgi_sso.identity.stores`) and the revocation bus are its plug-ins.
The Redis revocation bus (:mod:`asgi_sso.identity.redis_bus`, the ``redis``
extra) sits beside the protocol it implements.
"""

from __future__ import annotations

from asgi_sso.identity.resolver import IdentityConfig, IdentityResolver
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.identity.tiers import (
    ConnectionTiers,
    PriorityTierMapper,
    Tier,
    TierDecision,
    TierMapper,
)

__all__ = [
    "ConnectionTiers",
    "IdentityConfig",
    "IdentityResolver",
    "PriorityTierMapper",
    "Revocation",
    "RevocationBus",
    "Tier",
    "TierDecision",
    "TierMapper",
]
