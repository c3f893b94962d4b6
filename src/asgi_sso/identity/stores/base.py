"""The ``UserStore`` protocol and the records it keeps.

Users are keyed by ``(connection, subject)`` — the IdP connection and the value
of the issuer's ``user_claim`` (the token's ``sub`` by default) — never by email:
the same email at two customers is two users, and an email can be reassigned. A
store provisions a user the first time they are seen (just in time), keeps their
profile current, and records whether they are active.
Deleting (SCIM ``DELETE``) leaves a tombstone so an old token cannot provision
the user again.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["MAX_PAGE_SIZE", "Profile", "StoredUser", "UserPage", "UserStore"]

MAX_PAGE_SIZE = 500
"""Most users one :meth:`UserStore.list` call returns."""


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """The profile fields refreshed on sign-in (from claims) or by SCIM.

    Attributes:
        email: the email address (informational, never a key).
        name: the display name.
        given_name: the given name.
        family_name: the family name.
        user_name: the IdP login name (SCIM ``userName``; ``preferred_username``/``upn``).
        groups: the groups and roles read from the token.
        tier: the tier decided at the last sign-in.
    """

    email: str | None = None
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    user_name: str | None = None
    groups: tuple[str, ...] = ()
    tier: str | None = None


class StoredUser(msgspec.Struct, frozen=True, kw_only=True):
    """A user record.

    Attributes:
        id: the store's opaque id (stable; what SCIM calls ``id``).
        connection: the connection id.
        subject: the user key at that connection (the issuer's ``user_claim``).
        profile: the profile fields.
        active: whether the user may sign in; ``False`` after deprovisioning.
        deleted: a tombstone left by SCIM ``DELETE`` (always inactive).
        created_at: wall-clock seconds when provisioned.
        updated_at: wall-clock seconds of the last change.
    """

    id: str
    connection: str
    subject: str
    profile: Profile = Profile()
    active: bool = True
    deleted: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


class UserPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of users of a connection.

    Attributes:
        users: the users, ordered by id.
        next_cursor: pass as ``after`` to get the next page; ``None`` on the last page.
    """

    users: tuple[StoredUser, ...]
    next_cursor: str | None = None


@runtime_checkable
class UserStore(Protocol):
    """Where users are kept. Every failure to reach the backend raises ``StoreUnavailable``.

    Implementations must be safe under concurrency: concurrent first sign-ins of
    one ``(connection, subject)`` create exactly one record, and a failed write
    leaves no half-written user.
    """

    async def start(self) -> None:
        """Connect and create or migrate the schema."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def get_or_provision(
        self, connection: str, subject: str, profile: Profile, *, update: bool = True
    ) -> tuple[StoredUser, bool]:
        """Return the user, creating them (active) if new.

        Args:
            connection: the connection id.
            subject: the user key at that connection (the issuer's ``user_claim``).
            profile: the current profile (from the token's claims).
            update: write ``profile`` over a differing stored profile (never on a tombstone).

        Returns:
            The user and whether this call created them.
        """
        ...

    async def get(self, user_id: str) -> StoredUser | None:
        """Return the user with this id (tombstones included), or ``None``."""
        ...

    async def get_by_subject(self, connection: str, subject: str) -> StoredUser | None:
        """Return the user keyed by ``(connection, subject)``, or ``None``."""
        ...

    async def find_by_user_name(self, connection: str, user_name: str) -> StoredUser | None:
        """Return the connection's non-deleted user with this ``user_name`` (case-insensitive)."""
        ...

    async def update(
        self,
        user_id: str,
        *,
        profile: Profile | None = None,
        active: bool | None = None,
        deleted: bool | None = None,
    ) -> StoredUser | None:
        """Change a user; ``deleted=True`` also deactivates. ``None`` if there is no such user."""
        ...

    async def list(
        self, connection: str, *, limit: int = 100, after: str | None = None
    ) -> UserPage:
        """Return up to ``limit`` users (at most :data:`MAX_PAGE_SIZE`) after ``after``."""
        ...
