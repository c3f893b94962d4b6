"""Tier mapping: IdP groups and roles → a product tier → the scopes it grants.

A :class:`TierMapper` turns a verified principal into a :class:`TierDecision`.
The default :class:`PriorityTierMapper` reads groups and roles at configurable
claim paths, maps them per connection to ordered tiers, lets the highest tier
win, falls back to the connection's default tier (what that customer's contract
buys), and reports Entra ID group overage instead of treating it as "no groups".

Scopes: by default the decision grants the union of the token's own scopes and
the tier's scopes (``scope_mode="union"``); ``scope_mode="replace"`` grants the
tier's scopes only whenever a tier applies (the token's scopes are then ignored).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from asgi_sso.config import check_fields
from asgi_sso.errors import ConfigurationError
from asgi_sso.principal import Principal
from asgi_sso.verify.claims import scopes_from

__all__ = [
    "DEFAULT_CLAIM_PATHS",
    "ConnectionTiers",
    "PriorityTierMapper",
    "Tier",
    "TierDecision",
    "TierMapper",
    "has_group_overage",
    "read_claim_path",
    "token_scopes",
]

DEFAULT_CLAIM_PATHS = ("groups", "roles", "realm_access.roles", "resource_access.<client>.roles")
"""Where groups and roles sit in Okta, Entra ID, Auth0 and Keycloak tokens.

``<client>`` is replaced by the mapper's ``client_id`` (the resource server's own
client); without one, those paths are not read. The token's ``azp`` never names it:
a token requested through another client carries the user's roles at every client.
"""

MAX_VALUES_PER_PATH = 1000
"""Values read from one claim path at most; a token cannot make mapping unbounded."""


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
    """Decides a principal's tier, scopes and roles; sync or async."""

    def map(self, principal: Principal) -> TierDecision | Awaitable[TierDecision]:
        """Return (or return an awaitable of) the decision for ``principal``."""
        ...


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

    Args:
        tiers: the tiers, listed highest first (``["enterprise", "pro", "free"]``);
            plain names take their scopes from ``scopes``; :class:`Tier` objects
            may set an explicit ``rank``.
        scopes: tier name → scopes, for tiers given as names.
        connections: connection id → :class:`ConnectionTiers`.
        default_connection: the mapping for connections not in ``connections``.
        claim_paths: where groups and roles are read (see :data:`DEFAULT_CLAIM_PATHS`).
        client_id: the resource server's own client id, which replaces ``<client>``
            in claim paths (Keycloak's ``resource_access.<client>.roles``); ``None``
            skips those paths. The token's ``azp`` is never used.
        scope_mode: ``"union"`` (token scopes plus tier scopes) or ``"replace"``.
        group_scopes: IdP group or role value → scopes granted to its members on top of
            the tier's (e.g. ``{"admins": ["users:admin"]}``), at every connection.

    Raises:
        ConfigurationError: a tier is unknown, duplicated or ranked twice, or
            ``client_id`` is empty.
    """

    __slots__ = (
        "_by_conn",
        "_client_id",
        "_default_conn",
        "_group_scopes",
        "_paths",
        "_rank",
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
        claim_paths: Sequence[str] = DEFAULT_CLAIM_PATHS,
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
        if not claim_paths or any(not p for p in claim_paths):
            raise ConfigurationError("claim_paths must be non-empty paths")
        self._paths = tuple(claim_paths)
        if client_id is not None and not client_id:
            raise ConfigurationError("client_id must not be empty (None skips client roles)")
        self._client_id = client_id
        self._scope_mode = scope_mode
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

    def map(self, principal: Principal) -> TierDecision:
        """Decide for a verified principal (its ``tenant`` is the connection)."""
        return self.decide(principal.claims, principal.tenant)

    def decide(self, claims: Mapping[str, Any], connection: str) -> TierDecision:
        """Decide from a claim set and a connection id (pure; no I/O)."""
        conn = self._by_conn.get(connection) or self._runtime.get(connection) or self._default_conn
        roles = self._read_roles(claims)
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

    def _read_roles(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        client = self._client_id
        seen: dict[str, None] = {}
        for path in self._paths:
            if "<client>" in path:
                if client is None:
                    continue
                # The client id may contain dots; substitute it as one path part.
                parts = [client if p == "<client>" else p for p in path.split(".")]
                values = _values(_walk(claims, parts))
            else:
                values = read_claim_path(claims, path)
            for value in values:
                seen.setdefault(value, None)
        return tuple(seen)
