"""Connections: each enterprise customer's own identity provider, managed at runtime.

A :class:`Connection` names a customer's IdP and everything the app needs to trust
it; a :class:`ConnectionStore` keeps them (:class:`StaticConnections` in code or a
file, :class:`SQLConnections` in SQLite or PostgreSQL); :class:`LiveConnections`
keeps each worker's snapshot current without a restart; :class:`ConnectionDirectory`
finds a connection by id, issuer or email domain. :class:`ConnectionAdmin` changes
them at runtime (the ``asgi-sso connections`` command and
:class:`ConnectionsAdminApp`, a JSON API to mount behind the app's own admin
authentication) and tests one against its provider.

:class:`SQLConnections` needs the ``sql`` extra; it is imported on first use, so
this package imports with the core alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asgi_sso.connections.admin import ConnectionsAdminApp
from asgi_sso.connections.directory import ConnectionDirectory, domain_of
from asgi_sso.connections.live import LiveConnections
from asgi_sso.connections.manage import ConnectionAdmin, announce_on
from asgi_sso.connections.model import Connection, connection_from_data, normalize_domain
from asgi_sso.connections.probe import Check, ProbeReport, probe_connection
from asgi_sso.connections.store import ConnectionStore, StaticConnections

if TYPE_CHECKING:
    from asgi_sso.connections.sql import SQLConnections

__all__ = [
    "Check",
    "Connection",
    "ConnectionAdmin",
    "ConnectionDirectory",
    "ConnectionStore",
    "ConnectionsAdminApp",
    "LiveConnections",
    "ProbeReport",
    "SQLConnections",
    "StaticConnections",
    "announce_on",
    "connection_from_data",
    "domain_of",
    "normalize_domain",
    "probe_connection",
]

_LAZY = {"SQLConnections": "asgi_sso.connections.sql"}


def __getattr__(name: str) -> Any:
    # PEP 562: import the SQL store on first use, naming the extra if it is missing.
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(home)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "asgi_sso":
            raise
        raise ModuleNotFoundError(
            f"asgi_sso.connections.{name} needs the sql extra ({exc.name} is not installed): "
            "pip install 'asgi-sso[sql]'",
            name=exc.name,
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
