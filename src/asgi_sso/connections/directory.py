"""One consistent snapshot of the connections: found by id, by issuer, by email domain.

Built whole from a list and never changed, so a request sees one version of every
connection from start to end; a change builds a new snapshot. Each lookup is one
dict access, however many connections there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from asgi_sso.connections.model import Connection, normalize_domain
from asgi_sso.errors import ConfigurationError

__all__ = ["ConnectionDirectory", "domain_of"]

MAX_EMAIL_LENGTH: Final = 320
"""Longest email address read (RFC 3696 errata 1690: 64 + 1 + 255)."""


def domain_of(email: str) -> str | None:
    """The normalised domain of an email address, or ``None`` when it has none."""
    if not isinstance(email, str) or len(email) > MAX_EMAIL_LENGTH:
        return None
    local, at, domain = email.strip().rpartition("@")
    if not at or not local:
        return None
    return normalize_domain(domain)


class ConnectionDirectory:
    """An immutable set of connections, indexed.

    Args:
        connections: the connections; ids, concrete issuers and domains must each be
            unique.

    Raises:
        ConfigurationError: two connections share an id, an issuer or a domain.
    """

    __slots__ = ("_by_domain", "_by_id", "_by_iss", "_shared")

    def __init__(self, connections: Iterable[Connection] = ()) -> None:
        self._by_id: dict[str, Connection] = {}
        self._by_iss: dict[str, Connection] = {}
        self._by_domain: dict[str, Connection] = {}
        self._shared: dict[str, Connection] = {}
        for connection in connections:
            self._add(connection)

    def _add(self, connection: Connection) -> None:
        if connection.id in self._by_id:
            raise ConfigurationError(f"connection {connection.id!r} is listed twice")
        other = self._by_iss.get(connection.issuer_key) or self._by_iss.get(connection.iss)
        shared = self._shared.get(connection.iss)
        if other is None and shared is not None and connection.tenant_claim != shared.tenant_claim:
            other = shared
        if other is not None and other.id != connection.id:
            # A user key is (connection, user claim): one issuer's users in two
            # connections would be two users, and its tokens would be ambiguous.
            raise ConfigurationError(
                f"connections {other.id!r} and {connection.id!r} have the same issuer "
                f"{connection.iss!r}; one issuer belongs to one connection, unless each "
                "names its organisation with tenant_claim and tenant"
            )
        for domain in connection.domains:
            owner = self._by_domain.get(domain)
            if owner is not None:
                raise ConfigurationError(
                    f"the domain {domain!r} belongs to connection {owner.id!r}; "
                    f"it cannot also belong to {connection.id!r}"
                )
        self._by_id[connection.id] = connection
        self._by_iss[connection.issuer_key] = connection
        if connection.tenant_claim is not None:
            self._shared[connection.iss] = connection
        for domain in connection.domains:
            self._by_domain[domain] = connection

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self._by_id.values())

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._by_id

    def get(self, connection_id: str) -> Connection | None:
        """The connection with this id (enabled or not), if any."""
        return self._by_id.get(connection_id)

    def by_issuer(self, iss: str) -> Connection | None:
        """The one connection whose concrete issuer is ``iss`` (not a shared one), if any."""
        return self._by_iss.get(iss)

    def for_domain(self, domain: str) -> Connection | None:
        """The enabled connection owning ``domain`` (any spelling), if any."""
        normal = normalize_domain(domain) if isinstance(domain, str) else None
        found = self._by_domain.get(normal) if normal is not None else None
        return found if found is not None and found.enabled else None

    def for_email(self, email: str) -> Connection | None:
        """The enabled connection owning the domain of ``email``, if any."""
        domain = domain_of(email)
        found = self._by_domain.get(domain) if domain is not None else None
        return found if found is not None and found.enabled else None

    def replaced(self, connection: Connection) -> ConnectionDirectory:
        """A new directory with ``connection`` added or put in place of its namesake.

        Raises:
            ConfigurationError: it would share an issuer or domain with another one.
        """
        rest = [c for c in self._by_id.values() if c.id != connection.id]
        return ConnectionDirectory([*rest, connection])
