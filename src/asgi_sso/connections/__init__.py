"""Connections: each enterprise customer's own identity provider, managed at runtime.

A :class:`Connection` names a customer's IdP and everything the app needs to trust
it; a :class:`ConnectionStore` keeps them (:class:`StaticConnections` in code or a
file, :class:`~asgi_sso.connections.sql.SQLConnections` in SQLite or PostgreSQL);
:class:`LiveConnections` keeps each worker's snapshot current without a restart;
:class:`ConnectionDirectory` finds a connection by id, issuer or email domain.
:class:`ConnectionAdmin` changes them at runtime (the ``asgi-sso connections``
command and :class:`ConnectionsAdminApp`, a JSON API to mount behind the app's
own admin authentication) and tests one against its provider.
"""

from __future__ import annotations

from asgi_sso.connections.admin import ConnectionsAdminApp
from asgi_sso.connections.directory import ConnectionDirectory, domain_of
from asgi_sso.connections.live import LiveConnections
from asgi_sso.connections.manage import ConnectionAdmin, announce_on
from asgi_sso.connections.model import Connection, connection_from_data, normalize_domain
from asgi_sso.connections.probe import Check, ProbeReport, probe_connection
from asgi_sso.connections.store import ConnectionStore, StaticConnections

__all__ = [
    "Check",
    "Connection",
    "ConnectionAdmin",
    "ConnectionDirectory",
    "ConnectionStore",
    "ConnectionsAdminApp",
    "LiveConnections",
    "ProbeReport",
    "StaticConnections",
    "announce_on",
    "connection_from_data",
    "domain_of",
    "normalize_domain",
    "probe_connection",
]
