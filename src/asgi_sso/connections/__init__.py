"""Connections: each enterprise customer's own identity provider, managed at runtime.

A :class:`Connection` names a customer's IdP and everything the app needs to trust
it; a :class:`ConnectionStore` keeps them (:class:`StaticConnections` in code or a
file, :class:`~asgi_sso.connections.sql.SQLConnections` in SQLite or PostgreSQL);
:class:`LiveConnections` keeps each worker's snapshot current without a restart;
:class:`ConnectionDirectory` finds a connection by id, issuer or email domain.
"""

from __future__ import annotations

from asgi_sso.connections.directory import ConnectionDirectory, domain_of
from asgi_sso.connections.live import LiveConnections
from asgi_sso.connections.model import Connection, connection_from_data, normalize_domain
from asgi_sso.connections.store import ConnectionStore, StaticConnections

__all__ = [
    "Connection",
    "ConnectionDirectory",
    "ConnectionStore",
    "LiveConnections",
    "StaticConnections",
    "connection_from_data",
    "domain_of",
    "normalize_domain",
]
