"""Who is calling: the verified ``Principal`` and the ``Credentials`` put in the scope.

Both are compatible with Starlette's authentication objects, so
``request.user.is_authenticated`` and ``starlette.authentication.requires`` work
unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["ANONYMOUS", "AnonymousPrincipal", "Credentials", "Principal"]

_EMPTY: Mapping[str, Any] = {}


class Principal:
    """A verified user (Starlette's ``BaseUser`` shape, plus what SSO knows).

    Attributes:
        identity: the user's identifier: the value of the issuer's ``user_claim``
            (``sub`` by default; ``oid`` for an Entra ID issuer so configured).
        claims: the verified claim set (decoded from ``payload`` on first read when
            built from a cached verification, so requests that never read it pay nothing).
        issuer: the token's ``iss``.
        tenant: the connection id, which with ``identity`` keys the user, its
            sessions and revocations. It is the token's ``iss`` (for a template such
            as Entra's, the concrete ``iss``, which holds the tenant id); for a broker
            issuer with ``connection_claim``, ``"<iss>#<claim value>"``; or the
            issuer's ``Issuer.connection`` with ``{tenant}`` filled in. Two different
            issuers never share one.
        scopes: granted scopes (from the token, or from the tier mapping).
        tier: the product tier, once a tier mapper is configured.
        roles: the roles / groups the tier mapper read.
        user_id: the stored user's id, once a user store is configured.
        profile: the stored profile fields, once a user store is configured.
        source: where the credential came from (``"header"``, ``"cookie"``,
            ``"query"`` or ``"session"``).
        session_id: the server-side session id for a browser session.
    """

    __slots__ = (
        "_claims",
        "_payload",
        "identity",
        "issuer",
        "profile",
        "roles",
        "scopes",
        "session_id",
        "source",
        "tenant",
        "tier",
        "user_id",
    )

    is_authenticated = True

    def __init__(
        self,
        *,
        identity: str,
        claims: Mapping[str, Any] | None = None,
        issuer: str,
        tenant: str,
        scopes: frozenset[str] = frozenset(),
        tier: str | None = None,
        roles: tuple[str, ...] = (),
        user_id: str | None = None,
        profile: Mapping[str, Any] = _EMPTY,
        source: str = "header",
        session_id: str | None = None,
        payload: bytes | None = None,
    ) -> None:
        self.identity = identity
        self._claims = claims
        self._payload = payload
        self.issuer = issuer
        self.tenant = tenant
        self.scopes = scopes
        self.tier = tier
        self.roles = roles
        self.user_id = user_id
        self.profile = profile
        self.source = source
        self.session_id = session_id

    @property
    def claims(self) -> Mapping[str, Any]:
        """The verified claim set (see the class attributes)."""
        claims = self._claims
        if claims is None:
            payload = self._payload
            claims = _EMPTY if payload is None else msgspec.json.decode(payload)
            self._claims = claims
        return claims

    @property
    def display_name(self) -> str:
        """The best human-readable name: ``name``, then email, then :attr:`identity`."""
        for source in (self.profile, self.claims):
            for key in ("name", "preferred_username", "email"):
                value = source.get(key)
                if isinstance(value, str) and value:
                    return value
        return self.identity

    @property
    def email(self) -> str | None:
        """The email, from the stored profile or the claims (never used as a key)."""
        for source in (self.profile, self.claims):
            value = source.get("email")
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def subject(self) -> str:
        """Alias of :attr:`identity` (the issuer's user claim, ``sub`` by default)."""
        return self.identity

    def has_scopes(self, *required: str) -> bool:
        """Whether every one of ``required`` is granted."""
        return all(scope in self.scopes for scope in required)

    def __repr__(self) -> str:
        return (
            f"Principal(identity={self.identity!r}, tenant={self.tenant!r}, "
            f"tier={self.tier!r}, scopes={sorted(self.scopes)!r})"
        )


class AnonymousPrincipal:
    """Nobody signed in (Starlette's ``UnauthenticatedUser`` shape)."""

    __slots__ = ()

    is_authenticated = False
    identity = ""
    display_name = ""
    claims: Mapping[str, Any] = _EMPTY
    issuer = ""
    tenant = ""
    scopes: frozenset[str] = frozenset()
    tier: str | None = None
    roles: tuple[str, ...] = ()
    user_id: str | None = None
    profile: Mapping[str, Any] = _EMPTY
    email: str | None = None
    source = ""
    session_id: str | None = None

    def has_scopes(self, *required: str) -> bool:
        """Anonymous callers hold no scopes."""
        return not required

    def __repr__(self) -> str:
        return "AnonymousPrincipal()"


ANONYMOUS = AnonymousPrincipal()


class Credentials:
    """What ``scope["auth"]`` holds: the granted scopes (Starlette's ``AuthCredentials``).

    Read-only, so one object can serve every request with the same scope set.
    """

    __slots__ = ("scopes",)

    scopes: frozenset[str]

    def __init__(self, scopes: frozenset[str] = frozenset()) -> None:
        object.__setattr__(self, "scopes", scopes)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credentials are read-only")

    def __repr__(self) -> str:
        return f"Credentials(scopes={sorted(self.scopes)!r})"
