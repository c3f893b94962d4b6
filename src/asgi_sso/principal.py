"""Who is calling: the verified ``Principal`` and the ``Credentials`` put in the scope.

Both are compatible with Starlette's authentication objects, so
``request.user.is_authenticated`` and ``starlette.authentication.requires`` work
unchanged. The principal's roles are the group and role values its claims carry
at the role claim paths (:func:`read_roles`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from asgi_sso.errors import ConfigurationError

__all__ = [
    "ANONYMOUS",
    "DEFAULT_CLAIM_PATHS",
    "MAX_VALUES_PER_PATH",
    "AnonymousPrincipal",
    "Credentials",
    "Principal",
    "read_claim_path",
    "read_roles",
]

_EMPTY: Mapping[str, Any] = {}
_NO_RANKS: Mapping[str, int] = {}

DEFAULT_CLAIM_PATHS = ("groups", "roles", "realm_access.roles", "resource_access.<client>.roles")
"""Where groups and roles sit in Okta, Entra ID, Auth0 and Keycloak tokens.

``<client>`` is replaced by the API's own client id (``IdentityConfig.role_client_id``
or ``PriorityTierMapper(client_id=...)``); without one, those paths are not read.
The token's ``azp`` never names it: a token requested through another client
carries the user's roles at every client.
"""

MAX_VALUES_PER_PATH = 1000
"""Values read from one claim path at most; a token cannot make reading roles unbounded."""


def read_claim_path(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """Read string values at a dotted claim path.

    A literal top-level key wins over the dotted walk, so namespaced claims such
    as ``https://example.com/roles`` work. A string yields one value, a list
    yields its string members; anything else yields nothing.

    Args:
        claims: the verified claim set.
        path: e.g. ``"groups"`` or ``"realm_access.roles"``.

    Returns:
        The values found (at most :data:`MAX_VALUES_PER_PATH`).
    """
    return _values(claims.get(path) if path in claims else _walk(claims, path.split(".")))


def read_roles(
    claims: Mapping[str, Any],
    paths: Sequence[str] = DEFAULT_CLAIM_PATHS,
    client_id: str | None = None,
) -> tuple[str, ...]:
    """The group and role values at ``paths``, in order, each once.

    Args:
        claims: the verified claim set.
        paths: dotted claim paths (see :func:`read_claim_path`); ``<client>`` stands
            for ``client_id`` as one path part (a client id may contain dots).
        client_id: the API's own client id; ``None`` skips paths naming ``<client>``.

    Returns:
        Non-empty strings only, in the order the paths and claims give them, without
        duplicates: at most :data:`MAX_VALUES_PER_PATH` per path.
    """
    seen: dict[str, None] = {}
    for path in paths:
        if "<client>" in path:
            if client_id is None:
                continue
            parts = [client_id if p == "<client>" else p for p in path.split(".")]
            values = _values(_walk(claims, parts))
        else:
            values = read_claim_path(claims, path)
        for value in values:
            seen.setdefault(value, None)
    return tuple(seen)


def _values(node: Any) -> tuple[str, ...]:
    if isinstance(node, str):
        return (node,) if node else ()
    if isinstance(node, list):
        return tuple(v for v in node[:MAX_VALUES_PER_PATH] if isinstance(v, str) and v)
    return ()


def _walk(claims: Mapping[str, Any], parts: Sequence[str]) -> Any:
    node: Any = claims
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


class Principal:
    """A verified user (Starlette's ``BaseUser`` shape, plus what SSO knows).

    Attributes:
        identity: the user's identifier: the value of the issuer's ``user_claim``
            (``sub`` by default; ``oid`` for an Entra ID issuer so configured).
        claims: the verified claim set (decoded from ``payload`` on first read when
            built from a cached verification, so requests that never read it pay nothing).
        connection: the connection id: which customer's identity provider the user
            belongs to. With ``identity`` it keys the user, its sessions and
            revocations, and it is the tenant key for the app's own data. For a
            :class:`~asgi_sso.connections.Connection` it is its ``id``; for an
            ``Issuer``, the token's ``iss`` (for a template such as Entra's, the
            concrete ``iss``, which holds the tenant id), ``"<iss>#<claim value>"``
            for a broker issuer with ``connection_claim``, or ``Issuer.connection``
            with ``{tenant}`` filled in. Two different issuers never share one.
        tenant: an alias of :attr:`connection`, kept for existing code.
        issuer: the token's ``iss``: the identity provider that signed the token
            (for a templated issuer, the concrete one). Several connections may
            share an issuer (Google Workspace); :attr:`connection` tells them apart.
        scopes: granted scopes (from the token, or from the tier mapping).
        tier: the product tier, once a tier mapper is configured.
        tier_ranks: the tier mapper's ordering, tier name → rank (higher wins), when
            the mapper has one (:class:`~asgi_sso.PriorityTierMapper`); see
            :meth:`has_tier`.
        roles: the group and role values the token carries (``groups``, ``roles``,
            Keycloak's ``realm_access.roles`` … see :func:`read_roles`), in order and
            each once; read on first access, tier mapper or not. The paths are
            ``IdentityConfig.role_claims`` (default :data:`DEFAULT_CLAIM_PATHS`).
        user_id: the stored user's id, once a user store is configured.
        profile: the stored profile fields, once a user store is configured.
        source: where the credential came from (``"header"``, ``"cookie"``,
            ``"query"`` or ``"session"``).
        session_id: the server-side session id for a browser session.
    """

    __slots__ = (
        "_claims",
        "_payload",
        "_role_claims",
        "_role_client",
        "_roles",
        "connection",
        "identity",
        "issuer",
        "profile",
        "scopes",
        "session_id",
        "source",
        "tier",
        "tier_ranks",
        "user_id",
    )

    is_authenticated = True

    def __init__(
        self,
        *,
        identity: str,
        claims: Mapping[str, Any] | None = None,
        issuer: str,
        connection: str | None = None,
        tenant: str | None = None,
        scopes: frozenset[str] = frozenset(),
        tier: str | None = None,
        roles: tuple[str, ...] | None = None,
        user_id: str | None = None,
        profile: Mapping[str, Any] = _EMPTY,
        source: str = "header",
        session_id: str | None = None,
        payload: bytes | None = None,
        role_claims: Sequence[str] = DEFAULT_CLAIM_PATHS,
        role_client_id: str | None = None,
        tier_ranks: Mapping[str, int] = _NO_RANKS,
    ) -> None:
        """Build a principal; ``roles=None`` reads them from the claims when first used.

        ``connection`` is required (``tenant``, its old name, is accepted instead).
        ``role_claims`` and ``role_client_id`` say where the roles are read.
        """
        if connection is None:
            if tenant is None:
                raise TypeError("Principal needs connection= (the connection id)")
            connection = tenant
        elif tenant is not None and tenant != connection:
            raise TypeError("Principal: tenant is an alias of connection; give one of them")
        self.identity = identity
        self._claims = claims
        self._payload = payload
        self.issuer = issuer
        self.connection = connection
        self.scopes = scopes
        self.tier = tier
        self.tier_ranks = tier_ranks
        self._roles = roles
        self._role_claims = role_claims
        self._role_client = role_client_id
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
    def roles(self) -> tuple[str, ...]:
        """The group and role values of the token (see the class attributes)."""
        roles = self._roles
        if roles is None:
            roles = self._roles = read_roles(self.claims, self._role_claims, self._role_client)
        return roles

    @property
    def tenant(self) -> str:
        """Alias of :attr:`connection` (the connection id), its name before connections."""
        return self.connection

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

    def has_tier(self, minimum: str) -> bool:
        """Whether the tier is ``minimum`` or one the tier mapper ranks higher.

        The ordering is the tier mapper's own (:attr:`tier_ranks`, e.g.
        ``PriorityTierMapper(tiers=["enterprise", "pro", "free"])``); without one,
        only ``minimum`` itself counts.

        Raises:
            ConfigurationError: the mapper has an ordering and ``minimum`` is not in
                it (a misspelt tier would otherwise refuse everyone in silence).
        """
        ranks = self.tier_ranks
        if not ranks:
            return self.tier == minimum
        floor = ranks.get(minimum)
        if floor is None:
            raise ConfigurationError(
                f"tier {minimum!r} is not one of the tier mapper's tiers {sorted(ranks)}"
            )
        rank = ranks.get(self.tier) if self.tier is not None else None
        return rank is not None and rank >= floor

    def __repr__(self) -> str:
        return (
            f"Principal(identity={self.identity!r}, connection={self.connection!r}, "
            f"tier={self.tier!r}, scopes={sorted(self.scopes)!r})"
        )


def with_role_claims(
    principal: Principal,
    paths: Sequence[str],
    client_id: str | None,
    *,
    tier_ranks: Mapping[str, int] = _NO_RANKS,
) -> Principal:
    """A copy of ``principal`` whose roles are read at ``paths`` (when first used).

    The claims are shared, not decoded: a request that never reads them pays nothing.
    """
    return Principal(
        identity=principal.identity,
        claims=principal._claims,
        payload=principal._payload,
        issuer=principal.issuer,
        connection=principal.connection,
        scopes=principal.scopes,
        tier=principal.tier,
        tier_ranks=tier_ranks or principal.tier_ranks,
        user_id=principal.user_id,
        profile=principal.profile,
        source=principal.source,
        session_id=principal.session_id,
        role_claims=paths,
        role_client_id=client_id,
    )


class AnonymousPrincipal:
    """Nobody signed in (Starlette's ``UnauthenticatedUser`` shape)."""

    __slots__ = ()

    is_authenticated = False
    identity = ""
    display_name = ""
    claims: Mapping[str, Any] = _EMPTY
    issuer = ""
    connection = ""
    tenant = ""
    scopes: frozenset[str] = frozenset()
    tier: str | None = None
    tier_ranks: Mapping[str, int] = _NO_RANKS
    roles: tuple[str, ...] = ()
    user_id: str | None = None
    profile: Mapping[str, Any] = _EMPTY
    email: str | None = None
    source = ""
    session_id: str | None = None

    def has_scopes(self, *required: str) -> bool:
        """Anonymous callers hold no scopes."""
        return not required

    def has_tier(self, minimum: str) -> bool:
        """Anonymous callers have no tier."""
        return False

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
