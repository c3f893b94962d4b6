"""User stores: the ``UserStore`` protocol, the in-memory default and the SQL store.

:class:`~asgi_sso.identity.stores.sql.SQLUserStore` needs the ``sql`` extra and is imported
from :mod:`asgi_sso.identity.stores.sql` so the core does not require SQLAlchemy.
"""

from __future__ import annotations

from asgi_sso.identity.stores.base import MAX_PAGE_SIZE, Profile, StoredUser, UserPage, UserStore
from asgi_sso.identity.stores.memory import MemoryUserStore

__all__ = ["MAX_PAGE_SIZE", "MemoryUserStore", "Profile", "StoredUser", "UserPage", "UserStore"]
