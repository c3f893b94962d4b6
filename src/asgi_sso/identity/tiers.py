"""Tier mapping: IdP groups and roles → a product tier → the scopes it grants.

A :class:`TierMapper` turns a verified principal into a :class:`TierDecision`.
The default :class:`PriorityTierMapper` maps the principal's groups and roles
(``Principal.roles``, read at ``IdentityConfig.role_claims``) per connection to
ordered tiers, lets the highest tier win, falls back to the connection's default
tier (what that customer's contract buys), grants extra scopes per group
(``group_scopes``), and reports Entra ID group overage instead of treating it as
"no groups". Its ordering (:attr:`PriorityTierMapper.ranks`) reaches the principal
as ``Principal.tier_ranks``, so ``require_tier("pro")`` admits ``"enterprise"``.

Scopes: by default the decision grants the union of the token's own scopes and
the tier's scopes (``scope_mode="union"``); ``scope_mode="replace"`` grants the
tier's scopes only whenever a tier applies (the token's scopes are then ignored).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from asgi_sso.config import check_fields
from asgi_sso.errors import ConfigurationError
from asgi_sso.principal import (
    DEFAULT_CLAIM_PATHS,
    MAX_VALUES_PER_PATH,
    Principal,
    read_claim_path,
    read_roles,
)
from asgi_sso.verify.claims import scopes_from

__all__ = [
    "DEFAULT_CLAIM_PATHS",
    "MAX_VALUES_PER_PATH",
    "ConnectionTiers",
    "PriorityTierMapper",
    "Tier",
    "TierDecision",
    "TierMapper",
    "has_group_overage",
    "read_claim_path",
    "read_roles",
    "token_scopes",
]


class Tier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One product tier.

    Attributes:
        name: the tier's name, e.g. ``"pro"``.
        scopes: the scopes the tier grants.
        rank: higher wins; ``None`` takes the rank from the tier's position in
            the list given to :class:`PriorityTierMapper` (listed highest first).
    """

    name: str
    scopes: frozenset[str] = frozenset()
    rank: int | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.name:
            raise ConfigurationError("Tier.name must not be empty")


class ConnectionTiers(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one connection (one customer's IdP) maps to tiers.

    Attributes:
        default_tier: the tier everyone at this connection gets (the contract's
            tier); ``None`` means no tier unless a group maps to one.
        groups: IdP group or role value → tier name (exact, case-sensitive match).
    """

    default_tier: str | None = None
    groups: Mapping[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)


class TierDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What a tier mapper decided for one principal.

    Attributes:
        tier: the winning tier, or ``None``.
        scopes: the scopes to grant.
        roles: every group and role value read from the token, in order, deduplicated.
        groups: the values that mapped to a tier at this connection.
        overage: the IdP left the groups out (Entra ID group overage): the token's
            groups are unknown, not empty.
    """

    tier: str | None
    scopes: frozenset[str] = frozenset()
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    overage: bool = False


@runtime_checkable
class TierMapper(Protocol):
    """Decides a principal's tier, scopes and roles; sync or async.

    A mapper whose tiers are ordered may also expose ``ranks`` (tier name → rank,
    higher wins), as :class:`PriorityTierMapper` does: the middleware puts it on
    the principal (``Principal.tier_ranks``) and ``require_tier`` admits higher tiers.
    """

    def map(self, principal: Principal) -> TierDecision | Awaitable[TierDecision]:
        """Return (or return an awaitable of) the decision for ``principal``."""
        ...


def has_group_overage(claims: Mapping[str, Any]) -> bool:
    """Whether Entra ID left the groups out of the token (too many to carry).

    Entra ID then omits ``groups`` and names a source for it in ``_claim_names``
    (or sets ``hasgroups: true`` in implicit-flow tokens).
    """
    if "groups" in claims:
        return False
    names = claims.get("_claim_names")
    if isinstance(names, Mapping) and "groups" in names:
        return True
    return claims.get("hasgroups") is True


def token_scopes(
    claims: Mapping[str, Any], names: Iterable[str] = ("scope", "scp")
) -> frozenset[str]:
    """The scopes the token grants itself (space-separated string or list, RFC 8693 §4.2)."""
    return scopes_from(claims, names, max_items=MAX_VALUES_PER_PATH)


class PriorityTierMapper:
    """The default mapper: the highest tier any group maps to, else the connection default.

    Example::

        PriorityTierMapper(
            tiers=["enterprise", "pro", "free"],             # highest first
            scopes={"pro": ["reports:write"], "enterprise": ["reports:write", "audit:read"]},
            connections={"acme": ConnectionTiers(default_tier="enterprise")},
            default_connection=ConnectionTiers(default_tier="free",
                                               groups={"analytics-pro": "pro"}),
            group_scopes={"admins": ["users:admin"]},        # no subclass needed
        )

    Args:
        tiers: the tiers, listed highest first (``["enterprise", "pro", "free"]``);
            plain names take their scopes from ``scopes``; :class:`Tier` objects
            may set an explicit ``rank``. This order is :attr:`ranks`.
        scopes: tier name → scopes, for tiers given as names.
        connections: connection id → :class:`ConnectionTiers` (a
            :class:`~asgi_sso.connections.Connection` brings its own ``tiers``).
        default_connection: the mapping for connections not in ``connections``.
        claim_paths: where this mapper reads groups and roles itself. ``None`` (the
            default): it maps ``Principal.roles``, read at ``IdentityConfig.role_claims``
            (:data:`DEFAULT_CLAIM_PATHS` unless set), so the roles the app sees are
            the roles that decide the tier. Given here, ``IdentityConfig`` takes them
            as its ``role_claims`` too.
        client_id: the resource server's own client id, which replaces ``<client>``
            in claim paths (Keycloak's ``resource_access.<client>.roles``); ``None``
            skips those paths. The token's ``azp`` is never used. Given here,
            ``IdentityConfig`` takes it as its ``role_client_id`` too.
        scope_mode: ``"union"`` (token scopes plus tier scopes) or ``"replace"``.
        group_scopes: IdP group or role value → scopes granted to its members on top of
            the tier's (e.g. ``{"admins": ["users:admin"]}``), at every connection:
            mapping a group to scopes is configuration, not a subclass.

    Raises:
        ConfigurationError: a tier is unknown, duplicated or ranked twice, or
            ``client_id`` is empty.
    """

    __slots__ = (
        "_by_conn",
        "_client_id",
        "_default_conn",
        "_given_paths",
        "_group_scopes",
        "_paths",
        "_rank",
        "_ranks",
        "_runtime",
        "_scope_mode",
        "_scopes",
    )

    def __init__(
        self,
        *,
        tiers: Sequence[Tier | str],
        scopes: Mapping[str, Iterable[str]] | None = None,
        connections: Mapping[str, ConnectionTiers] | None = None,
        default_connection: ConnectionTiers | None = None,
        claim_paths: Sequence[str] | None = None,
        client_id: str | None = None,
        scope_mode: Literal["union", "replace"] = "union",
        group_scopes: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if not tiers:
            raise ConfigurationError("PriorityTierMapper needs at least one tier")
        if scope_mode not in ("union", "replace"):
            raise ConfigurationError(f"scope_mode must be 'union' or 'replace', got {scope_mode!r}")
        scopes = scopes or {}
        self._rank: dict[str, int] = {}
        self._scopes: dict[str, frozenset[str]] = {}
        for position, item in enumerate(tiers):
            tier = (
                Tier(name=item, scopes=frozenset(scopes.get(item, ())))
                if isinstance(item, str)
                else item
            )
            if tier.name in self._rank:
                raise ConfigurationError(f"tier {tier.name!r} is listed twice")
            self._rank[tier.name] = tier.rank if tier.rank is not None else len(tiers) - position
            self._scopes[tier.name] = tier.scopes | frozenset(scopes.get(tier.name, ()))
        if len(set(self._rank.values())) != len(self._rank):
            raise ConfigurationError("two tiers share a rank; the winner would be ambiguous")
        for name in scopes:
            if name not in self._rank:
                raise ConfigurationError(f"scopes given for unknown tier {name!r}")
        self._by_conn = dict(connections or {})
        self._runtime: Mapping[str, ConnectionTiers] = {}
        self._default_conn = default_connection or ConnectionTiers()
        for label, conn in [*self._by_conn.items(), ("default_connection", self._default_conn)]:
            problem = self.unknown_tier(conn)
            if problem is not None:
                raise ConfigurationError(f"connection {label!r} names unknown tier {problem!r}")
        if claim_paths is not None and (
            isinstance(claim_paths, str) or not claim_paths or any(not p for p in claim_paths)
        ):
            raise ConfigurationError("claim_paths must be a list of non-empty paths")
        self._given_paths = None if claim_paths is None else tuple(claim_paths)
        self._paths = self._given_paths or DEFAULT_CLAIM_PATHS
        if client_id is not None and not client_id:
            raise ConfigurationError("client_id must not be empty (None skips client roles)")
        self._client_id = client_id
        self._scope_mode = scope_mode
        self._ranks: Mapping[str, int] = MappingProxyType(self._rank)
        for label, given in (("scopes", scopes), ("group_scopes", group_scopes or {})):
            if any(isinstance(v, str) for v in given.values()):
                raise ConfigurationError(f"{label} values must be lists of scopes, not strings")
        self._group_scopes = {g: frozenset(s) for g, s in (group_scopes or {}).items()}
        if any(not g for g in self._group_scopes):
            raise ConfigurationError("group_scopes keys must be non-empty group names")

    def unknown_tier(self, policy: ConnectionTiers) -> str | None:
        """The first tier ``policy`` names that this mapper does not define, if any."""
        for tier_name in [policy.default_tier, *policy.groups.values()]:
            if tier_name is not None and tier_name not in self._rank:
                return tier_name
        return None

    def set_connection_tiers(self, policies: Mapping[str, ConnectionTiers]) -> None:
        """Use these policies of runtime connections too, replacing the previous ones.

        A policy given to the constructor for the same connection id wins.

        Raises:
            ConfigurationError: a policy names a tier this mapper does not define.
        """
        for connection, policy in policies.items():
            problem = self.unknown_tier(policy)
            if problem is not None:
                raise ConfigurationError(
                    f"connection {connection!r} names unknown tier {problem!r}"
                )
        self._runtime = dict(policies)

    @property
    def ranks(self) -> Mapping[str, int]:
        """Tier name → rank, higher wins (read-only): the order ``require_tier`` follows."""
        return self._ranks

    @property
    def claim_paths(self) -> tuple[str, ...] | None:
        """The claim paths given to this mapper, or ``None`` (it maps ``Principal.roles``)."""
        return self._given_paths

    @property
    def client_id(self) -> str | None:
        """The client id that replaces ``<client>`` in claim paths, if given."""
        return self._client_id

    def map(self, principal: Principal) -> TierDecision:
        """Decide for a verified principal: its connection, and its roles.

        The roles are ``principal.roles``, unless this mapper was given claim paths
        or a client id of its own (then it reads those from ``principal.claims``).
        """
        own = self._given_paths is not None or self._client_id is not None
        roles = None if own else principal.roles
        return self.decide(principal.claims, principal.connection, roles=roles)

    def decide(
        self,
        claims: Mapping[str, Any],
        connection: str,
        *,
        roles: Sequence[str] | None = None,
    ) -> TierDecision:
        """Decide from a claim set and a connection id (pure; no I/O).

        Args:
            claims: the verified claim set (its scopes, its group overage signal).
            connection: the connection id (``Principal.connection``).
            roles: the group and role values to map; ``None`` reads them from
                ``claims`` at this mapper's claim paths.
        """
        conn = self._by_conn.get(connection) or self._runtime.get(connection) or self._default_conn
        roles = read_roles(claims, self._paths, self._client_id) if roles is None else tuple(roles)
        best = conn.default_tier
        matched: list[str] = []
        for value in roles:
            tier = conn.groups.get(value)
            if tier is None:
                continue
            matched.append(value)
            if best is None or self._rank[tier] > self._rank[best]:
                best = tier
        own = token_scopes(claims)
        if best is None:
            scopes = own
        elif self._scope_mode == "replace":
            scopes = self._scopes[best]
        else:
            scopes = own | self._scopes[best]
        if self._group_scopes:
            for value in roles:
                granted = self._group_scopes.get(value)
                if granted:
                    scopes = scopes | granted
        return TierDecision(
            tier=best,
            scopes=scopes,
            roles=roles,
            groups=tuple(matched),
            overage=has_group_overage(claims),
        )

    def rank(self, tier: str) -> int:
        """The rank of ``tier`` (higher wins)."""
        return self._rank[tier]
