"""Which issuers are trusted: route a token's ``iss`` to its exact or templated configuration.

Exact issuers are a dict lookup. Templates such as
``https://login.microsoftonline.com/{tenant}/v2.0`` are compiled once to anchored
patterns whose ``{tenant}`` part is one path-safe segment; the tenant must equal
the token's tenant claim and, when configured, be in the issuer's allow-list.
Each token's user gets a connection id from its issuer's pattern; the registry
refuses, when built, issuers whose connection ids could meet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from asgi_sso.config import Issuer
from asgi_sso.errors import ConfigurationError, InvalidClaim, UnknownIssuer
from asgi_sso.verify.connection_space import (
    CLAIM_CHARS,
    TENANT_CHARS,
    Space,
    check_spaces,
    literal_atoms,
    meet,
)

__all__ = ["IssuerRegistry", "ResolvedIssuer", "printable"]

_TENANT: Final = "{tenant}"
# RFC 3986 pchar without percent-encoding: no '/', '?', '#', '%', whitespace or controls.
_TENANT_PATTERN: Final = "([" + re.escape(TENANT_CHARS) + "]{1,128})"
_CONNECTION_CLAIM: Final = re.compile("[" + re.escape(CLAIM_CHARS) + "]{1,128}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: str, limit: int = 120) -> str:
    """Return ``value`` without control characters and cut to ``limit`` characters."""
    cleaned = _CONTROL.sub("", value[: limit * 2])
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


class ResolvedIssuer:
    """A configured issuer bound to the concrete ``iss`` of one token.

    Attributes:
        config: the configured :class:`~asgi_sso.config.Issuer`.
        iss: the concrete issuer string.
        tenant: the ``{tenant}`` part of a template, else ``None``.
        connection: the connection id of the token's user.
        jwks_uri: the key set URL (tenant substituted), or ``None`` for discovery.
        discovery_url: the discovery document URL (tenant substituted).
        key: names the configuration among all trusted ones: the issuer string of a
            configured issuer, ``"connection:<id>"`` for a runtime connection (several
            connections may share one issuer, told apart by a claim).
    """

    __slots__ = ("config", "connection", "discovery_url", "iss", "jwks_uri", "key", "tenant")

    def __init__(
        self,
        config: Issuer,
        iss: str,
        tenant: str | None,
        connection: str,
        jwks_uri: str | None,
        discovery_url: str,
        key: str | None = None,
    ) -> None:
        self.config = config
        self.iss = iss
        self.tenant = tenant
        self.connection = connection
        self.jwks_uri = jwks_uri
        self.discovery_url = discovery_url
        self.key = config.issuer if key is None else key

    def with_connection(self, connection: str) -> ResolvedIssuer:
        """Return a copy naming another connection."""
        return ResolvedIssuer(
            self.config,
            self.iss,
            self.tenant,
            connection,
            self.jwks_uri,
            self.discovery_url,
            self.key,
        )

    def __repr__(self) -> str:
        return f"ResolvedIssuer(iss={self.iss!r}, connection={self.connection!r})"


def _bind(config: Issuer, iss: str, tenant: str | None, key: str | None = None) -> ResolvedIssuer:
    def fill(url: str) -> str:
        return url.replace(_TENANT, tenant) if tenant is not None else url

    # A broker's token without its connection claim belongs to the broker itself.
    connection = config.issuer if config.connection_claim is not None else config.connection_pattern
    return ResolvedIssuer(
        config,
        iss,
        tenant,
        fill(connection),
        fill(config.jwks_uri) if config.jwks_uri is not None else None,
        fill(config.discovery_document_url),
        key,
    )


class _ByClaim:
    """Connections sharing one issuer, told apart by the value of one claim."""

    __slots__ = ("by_value", "claim")

    def __init__(self, claim: str) -> None:
        self.claim = claim
        self.by_value: dict[str, ResolvedIssuer] = {}

    def pick(self, claims: Mapping[str, Any]) -> ResolvedIssuer:
        value = claims.get(self.claim)
        found = self.by_value.get(value) if isinstance(value, str) else None
        if found is None:
            raise UnknownIssuer(
                f"no connection trusts this issuer's tokens for the token's {self.claim!r} claim"
            )
        return found


def _compile(template: str) -> re.Pattern[str]:
    prefix, _, suffix = template.partition(_TENANT)
    return re.compile(re.escape(prefix) + _TENANT_PATTERN + re.escape(suffix))


class IssuerRegistry:
    """The trusted issuers, exact and templated.

    Args:
        issuers: the configured issuers; each ``issuer`` string must be unique.

    Raises:
        ConfigurationError: the same issuer twice, or two issuers that
            could give their users the same connection id.
    """

    __slots__ = ("_by_name", "_connections", "_exact", "_issuers", "_spaces", "_templates")

    def __init__(self, issuers: Sequence[Issuer]) -> None:
        self._issuers = tuple(issuers)
        self._by_name: dict[str, Issuer] = {}
        for config in self._issuers:
            if config.issuer in self._by_name:
                raise ConfigurationError(f"issuer {config.issuer!r} is configured twice")
            self._by_name[config.issuer] = config
        self._spaces: tuple[Space, ...] = check_spaces(self._issuers)
        self._exact = {
            c.issuer: _bind(c, c.issuer, None) for c in self._issuers if not c.is_template
        }
        self._templates = tuple((_compile(c.issuer), c) for c in self._issuers if c.is_template)
        self._connections: dict[str, ResolvedIssuer | _ByClaim] = {}

    def set_connections(self, issuers: Sequence[Issuer]) -> None:
        """Trust these exact issuers too, in place of the previous ones (runtime connections).

        Each names its connection with a literal ``Issuer.connection``, its key is
        ``"connection:<id>"``; the caller has checked that none is trusted by a
        configured issuer or produces its ids. Connections sharing one issuer each
        set ``tenant_claim`` and ``tenants`` to the one value naming them (Google
        Workspace's ``hd``): a token goes to the connection its claim names.

        Raises:
            ConfigurationError: two connections share an issuer and a claim value,
                or one shares its issuer without a claim.
        """
        table: dict[str, ResolvedIssuer | _ByClaim] = {}
        for config in issuers:
            bound = _bind(config, config.issuer, None, "connection:" + (config.connection or ""))
            present = table.get(config.issuer)
            if config.tenants is None:
                if present is not None:
                    raise ConfigurationError(f"issuer {config.issuer!r} is used twice")
                table[config.issuer] = bound
                continue
            if present is None:
                present = table[config.issuer] = _ByClaim(config.tenant_claim)
            if not isinstance(present, _ByClaim) or present.claim != config.tenant_claim:
                raise ConfigurationError(f"issuer {config.issuer!r} is used twice")
            for value in config.tenants:
                if value in present.by_value:
                    raise ConfigurationError(
                        f"issuer {config.issuer!r} with {config.tenant_claim}={value!r} "
                        "is used twice"
                    )
                present.by_value[value] = bound
        self._connections = table

    def is_connection(self, iss: str) -> bool:
        """Whether ``iss`` is trusted as a runtime connection (not a configured issuer)."""
        return iss in self._connections

    @property
    def issuers(self) -> tuple[Issuer, ...]:
        """The configured issuers, in order."""
        return self._issuers

    def produces(self, connection: str) -> bool:
        """Whether some trusted issuer can give its users the connection id ``connection``."""
        atoms = literal_atoms(connection)
        return any(meet(atoms, space.atoms) for space in self._spaces)

    def find(self, iss: str) -> Issuer | None:
        """Return the configuration trusting ``iss`` (exact, connection, template text or match).

        Unlike :meth:`resolve`, no tenant claim is checked.
        """
        config = self._by_name.get(iss)
        if config is not None:
            return config
        connection = self._connections.get(iss)
        if isinstance(connection, _ByClaim):
            return next(iter(connection.by_value.values())).config
        if connection is not None:
            return connection.config
        for pattern, template in self._templates:
            if pattern.fullmatch(iss) is not None:
                return template
        return None

    def resolve(self, iss: object, claims: Mapping[str, Any]) -> ResolvedIssuer:
        """Route a token to its issuer configuration.

        Args:
            iss: the token's ``iss`` claim (untrusted).
            claims: the token's claim set (for the tenant and connection claims).

        Raises:
            InvalidClaim: ``iss`` is missing or not a string.
            UnknownIssuer: no configured issuer trusts ``iss``.
        """
        if not isinstance(iss, str) or not iss:
            raise InvalidClaim("the token has no 'iss' claim (a non-empty string)")
        resolved = self._exact.get(iss)
        if resolved is None:
            found = self._connections.get(iss)
            if found is None:
                resolved = self._match_template(iss)
            elif isinstance(found, _ByClaim):
                return found.pick(claims)
            else:
                resolved = found
        if resolved.tenant is not None:
            self._check_tenant_claim(resolved, claims)
        connection_claim = resolved.config.connection_claim
        if connection_claim is not None and connection_claim in claims:
            return self._broker_connection(resolved, connection_claim, claims[connection_claim])
        return resolved

    @staticmethod
    def _broker_connection(resolved: ResolvedIssuer, claim: str, value: object) -> ResolvedIssuer:
        # The value names a connection only within this broker issuer: it is placed in
        # the issuer's pattern, and a value that is present but unusable is refused
        # rather than falling back to another namespace. The value is never echoed.
        if not isinstance(value, str) or _CONNECTION_CLAIM.fullmatch(value) is None:
            raise InvalidClaim(
                f"the token's {claim!r} claim is not a connection id "
                "(1-128 characters of A-Z a-z 0-9 . _ ~ -)"
            )
        return resolved.with_connection(resolved.config.connection_pattern.replace(_TENANT, value))

    def _match_template(self, iss: str) -> ResolvedIssuer:
        refusal: str | None = None
        for pattern, config in self._templates:
            match = pattern.fullmatch(iss)
            if match is None:
                continue
            tenant = match.group(1)
            if tenant in (".", ".."):
                continue
            if config.tenants is not None and tenant not in config.tenants:
                refusal = f"the tenant {printable(tenant)!r} is not allowed"
                continue
            return _bind(config, iss, tenant)
        raise UnknownIssuer(refusal or f"the token issuer {printable(iss)!r} is not trusted")

    def _check_tenant_claim(self, resolved: ResolvedIssuer, claims: Mapping[str, Any]) -> None:
        claim = resolved.config.tenant_claim
        if claims.get(claim) != resolved.tenant:
            raise UnknownIssuer(
                f"the token's {claim!r} claim does not match the tenant of its issuer "
                f"{printable(resolved.iss)!r}"
            )
