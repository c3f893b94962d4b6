"""The in-memory ``UserStore``: the default, for one process and for tests.

Every method runs without awaiting between its read and its write, so it is
atomic on the event loop: concurrent first sign-ins create one record.
"""

from __future__ import annotations

import bisect
import uuid

import msgspec

from asgi_sso.config import Clock, SystemClock
from asgi_sso.identity.stores.base import MAX_PAGE_SIZE, Profile, StoredUser, UserPage

__all__ = ["MemoryUserStore"]


class MemoryUserStore:
    """Users in a dict, lost when the process ends.

    Args:
        clock: where ``created_at`` / ``updated_at`` come from.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._by_id: dict[str, StoredUser] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._ids_by_conn: dict[str, list[str]] = {}

    async def start(self) -> None:
        """Nothing to set up."""

    async def close(self) -> None:
        """Nothing to release."""

    async def get_or_provision(
        self, connection: str, subject: str, profile: Profile, *, update: bool = True
    ) -> tuple[StoredUser, bool]:
        """See :meth:`asgi_sso.identity.stores.UserStore.get_or_provision`."""
        user_id = self._by_key.get((connection, subject))
        if user_id is not None:
            user = self._by_id[user_id]
            if update and not user.deleted and user.profile != profile:
                user = self._put(msgspec.structs.replace(user, profile=profile))
            return user, False
        now = self._clock.time()
        user = StoredUser(
            id=str(uuid.uuid4()),
            connection=connection,
            subject=subject,
            profile=profile,
            created_at=now,
            updated_at=now,
        )
        self._by_id[user.id] = user
        self._by_key[(connection, subject)] = user.id
        bisect.insort(self._ids_by_conn.setdefault(connection, []), user.id)
        return user, True

    async def get(self, user_id: str) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.get`."""
        return self._by_id.get(user_id)

    async def get_by_subject(self, connection: str, subject: str) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.get_by_subject`."""
        user_id = self._by_key.get((connection, subject))
        return None if user_id is None else self._by_id[user_id]

    async def find_by_user_name(self, connection: str, user_name: str) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.find_by_user_name`."""
        wanted = user_name.casefold()
        for user_id in self._ids_by_conn.get(connection, ()):
            user = self._by_id[user_id]
            name = user.profile.user_name
            if not user.deleted and name is not None and name.casefold() == wanted:
                return user
        return None

    async def update(
        self,
        user_id: str,
        *,
        profile: Profile | None = None,
        active: bool | None = None,
        deleted: bool | None = None,
    ) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.update`."""
        user = self._by_id.get(user_id)
        if user is None:
            return None
        new_deleted = user.deleted if deleted is None else deleted
        new_active = user.active if active is None else active
        return self._put(
            msgspec.structs.replace(
                user,
                profile=user.profile if profile is None else profile,
                active=new_active and not new_deleted,
                deleted=new_deleted,
            )
        )

    async def list(
        self, connection: str, *, limit: int = 100, after: str | None = None
    ) -> UserPage:
        """See :meth:`asgi_sso.identity.stores.UserStore.list`."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        ids = self._ids_by_conn.get(connection, [])
        start = 0 if after is None else bisect.bisect_right(ids, after)
        chunk = ids[start : start + limit]
        more = start + limit < len(ids)
        return UserPage(
            users=tuple(self._by_id[i] for i in chunk),
            next_cursor=chunk[-1] if more and chunk else None,
        )

    def _put(self, user: StoredUser) -> StoredUser:
        user = msgspec.structs.replace(user, updated_at=self._clock.time())
        self._by_id[user.id] = user
        return user
