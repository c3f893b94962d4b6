"""SCIM 2.0 deprovisioning: the ``/Users`` subset IdPs use, as a mountable ASGI app.

Supported (RFC 7644): ``GET /Users?filter=userName eq "…"`` (and ``externalId``),
``GET /Users/{id}``, ``POST /Users`` (provision ahead of sign-in),
``PUT /Users/{id}``, ``PATCH /Users/{id}`` (``active`` and profile attributes,
both the Okta path form and the Entra ID value-object form, booleans as JSON or
as the strings ``"True"``/``"False"``) and ``DELETE /Users/{id}`` (a tombstone:
the user stays refused and is gone from SCIM).

Each request carries a per-connection bearer secret; the secret decides the
connection, and a connection only ever sees its own users (another's are 404).
Bad input gets the RFC 7644 §3.12 error body with 400 and changes nothing.
A user created by ``POST`` is keyed by ``(connection, externalId)`` — set the
IdP's ``externalId`` to the value of the issuer's ``user_claim`` (the OIDC
``sub`` by default; Entra ID's ``oid``, see ``docs/scim.md``) — or by
``userName`` when ``ScimConfig.subject_attribute`` says so. Users provisioned
just in time are keyed the same way, so ``externalId eq`` finds them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

import msgspec

from asgi_sso._asgi import route_path
from asgi_sso.config import Clock, Secret, SystemClock, check_fields
from asgi_sso.deprovision.scim_input import (
    ScimError,
    apply_patch,
    apply_put,
    filter_value,
    read_json,
)
from asgi_sso.errors import ConfigurationError, ServiceUnavailable
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.identity.stores.base import Profile, StoredUser, UserStore
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event

__all__ = ["ScimApp", "ScimConfig"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_SCIM_JSON = (b"content-type", b"application/scim+json")
_NO_STORE = (b"cache-control", b"no-store")
_FILTER = re.compile(r'\s*(userName|externalId)\s+eq\s+"((?:[^"\\]|\\.){0,512})"\s*', re.I)
_MAX_LISTED = 10_000
_encoder = msgspec.json.Encoder()


class ScimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The SCIM endpoint's settings.

    Attributes:
        tokens: connection id → the bearer secret that connection's IdP sends. Runtime
            connections (:mod:`asgi_sso.connections`) bring their own ``scim_secret``.
        prefix: where the app is served (``/scim/v2``); stripped from request paths.
        max_body_bytes: larger request bodies are refused while being read.
        max_json_depth: deeper JSON is refused.
        max_operations: most PATCH operations in one request.
        max_page_size: most users one ``GET /Users`` returns.
        subject_attribute: which attribute of a ``POST`` keys the user: it must carry the
            value of the issuer's ``user_claim`` (``Principal.identity``).
    """

    tokens: Mapping[str, Secret] = msgspec.field(default_factory=dict)
    prefix: str = "/scim/v2"
    max_body_bytes: int = 64 * 1024
    max_json_depth: int = 12
    max_operations: int = 64
    max_page_size: int = 100
    subject_attribute: Literal["externalId", "userName"] = "externalId"

    def __post_init__(self) -> None:
        check_fields(self)
        if len({s.reveal() for s in self.tokens.values()}) != len(self.tokens):
            raise ConfigurationError("two SCIM connections share a bearer secret")
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ConfigurationError("ScimConfig.prefix must start and not end with '/'")
        if min(self.max_body_bytes, self.max_json_depth, self.max_operations) < 1:
            raise ConfigurationError("ScimConfig limits must be positive")
        if not 1 <= self.max_page_size <= 500:
            raise ConfigurationError("ScimConfig.max_page_size must be between 1 and 500")


class ScimApp:
    """The SCIM ``/Users`` endpoint as an ASGI app.

    Args:
        config: tokens, prefix and limits.
        store: the user store it changes.
        revocations: receives ``user`` (deactivation, delete) and ``reactivate`` revocations.
        emitter: receives ``provision`` and ``deprovision`` events.
        clock: wall time for events and revocations.
    """

    def __init__(
        self,
        config: ScimConfig,
        store: UserStore,
        *,
        revocations: RevocationBus | None = None,
        emitter: Emitter = NULL_EMITTER,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._bus = revocations
        self._emitter = emitter
        self._clock = clock or SystemClock()
        self._secrets = [(conn, secret.reveal()) for conn, secret in config.tokens.items()]
        self._runtime: dict[bytes, tuple[str, bytes]] = {}

    def set_connection_secrets(self, secrets: Iterable[tuple[str, Secret]]) -> None:
        """Accept these (connection id, secret) pairs too, replacing the previous ones.

        For runtime connections: found by the secret's SHA-256 in one dict lookup,
        then compared in constant time. A secret given to two connections (or equal to
        a configured token) acts for none of them: it could not say whose users it
        may change.
        """
        runtime: dict[bytes, tuple[str, bytes]] = {}
        shared: set[bytes] = {hashlib.sha256(raw).digest() for _, raw in self._secrets}
        for connection, secret in secrets:
            digest = hashlib.sha256(secret.reveal()).digest()
            if digest in runtime or digest in shared:
                shared.add(digest)  # claimed twice: it acts for neither connection
                continue
            runtime[digest] = (connection, secret.reveal())
        for digest in shared:
            runtime.pop(digest, None)
        self._runtime = runtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one SCIM request (other scope types are ignored)."""
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._handle(scope, receive)
        except ScimError as exc:
            status, body, headers = exc.status, exc.body(), []
            if exc.status == 401:
                headers = [(b"www-authenticate", b'Bearer realm="scim"')]
        except ServiceUnavailable as exc:
            status, body = 503, ScimError(503, None, exc.description).body()
            headers = [(b"retry-after", str(exc.retry_after).encode())]
        payload = b"" if body is None else _encoder.encode(body)
        headers = [*headers, _NO_STORE, (b"content-length", str(len(payload)).encode())]
        if body is not None:
            headers.append(_SCIM_JSON)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _handle(
        self, scope: Any, receive: Any
    ) -> tuple[int, dict[str, Any] | None, list[tuple[bytes, bytes]]]:
        connection = self._authenticate(scope)
        path = route_path(scope)
        if "\x00" in path or b"%00" in scope.get("query_string", b""):
            # No store keeps NUL in text (PostgreSQL refuses it): a 400, not a 503.
            raise ScimError(400, "invalidValue", "NUL characters are not allowed")
        prefix = self.config.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :]
        parts = [p for p in path.split("/") if p]
        method = scope.get("method", "GET")
        if not parts or parts[0] != "Users" or len(parts) > 2:
            raise ScimError(404, None, "no such resource")
        if len(parts) == 1:
            if method == "GET":
                return 200, await self._search(connection, scope), []
            if method == "POST":
                doc = await read_json(
                    receive, scope, self.config.max_body_bytes, self.config.max_json_depth
                )
                return await self._create(connection, doc)
            raise ScimError(405, None, "method not allowed")
        user = await self._user(connection, parts[1])
        if method == "GET":
            return 200, self._resource(user), []
        if method == "DELETE":
            await self._store.update(user.id, deleted=True)
            await self._revoke(user, "user", "scim_delete")
            return 204, None, []
        if method not in ("PUT", "PATCH"):
            raise ScimError(405, None, "method not allowed")
        doc = await read_json(
            receive, scope, self.config.max_body_bytes, self.config.max_json_depth
        )
        if method == "PUT":
            profile, active = apply_put(user.profile, doc)
        else:
            profile, active = apply_patch(
                user.profile, user.active, doc, self.config.max_operations
            )
        changed = await self._store.update(user.id, profile=profile, active=active)
        if changed is None:
            raise ScimError(404, None, "no such user")
        if user.active and not changed.active:
            await self._revoke(changed, "user", "scim_deactivate")
        elif changed.active and not user.active:
            await self._revoke(changed, "reactivate", "scim_reactivate")
        return 200, self._resource(changed), []

    def _authenticate(self, scope: Any) -> str:
        presented = b""
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, token = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    presented = token.strip()
                break
        found: str | None = None
        for connection, secret in self._secrets:
            # Compare against every secret so timing reveals neither which nor how much matched.
            if hmac.compare_digest(presented, secret) and presented:
                found = connection
        if found is None and presented and self._runtime:
            entry = self._runtime.get(hashlib.sha256(presented).digest())
            if entry is not None and hmac.compare_digest(presented, entry[1]):
                found = entry[0]
        if found is None:
            raise ScimError(401, None, "a valid SCIM bearer token is required")
        return found

    async def _user(self, connection: str, user_id: str) -> StoredUser:
        user = await self._store.get(user_id) if len(user_id) <= 64 else None
        if user is None or user.connection != connection or user.deleted:
            raise ScimError(404, None, "no such user")
        return user

    async def _search(self, connection: str, scope: Any) -> dict[str, Any]:
        raw = bytes(scope.get("query_string", b""))
        try:
            params = dict(parse_qsl(raw.decode("utf-8"), errors="strict"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ScimError(400, "invalidValue", "the query string is malformed") from exc
        try:
            start = max(1, int(params.get("startIndex", "1")))
            count = max(0, min(int(params.get("count", "100")), self.config.max_page_size))
        except ValueError as exc:
            raise ScimError(400, "invalidValue", "startIndex and count must be integers") from exc
        found: list[StoredUser]
        if "filter" in params:
            match = _FILTER.fullmatch(params["filter"])
            if match is None:
                raise ScimError(400, "invalidFilter", 'only userName eq "…" is supported')
            attribute, value = match.group(1).lower(), filter_value(match.group(2))
            if attribute == "username":
                user = await self._store.find_by_user_name(connection, value)
            else:
                user = await self._store.get_by_subject(connection, value)
            found = [user] if user is not None and not user.deleted else []
        else:
            found = await self._all(connection)
        page = found[start - 1 : start - 1 + count]
        return {
            "schemas": [LIST_SCHEMA],
            "totalResults": len(found),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": [self._resource(u) for u in page],
        }

    async def _all(self, connection: str) -> list[StoredUser]:
        users: list[StoredUser] = []
        after: str | None = None
        while len(users) < _MAX_LISTED:
            page = await self._store.list(connection, limit=500, after=after)
            users.extend(u for u in page.users if not u.deleted)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        return users

    async def _create(
        self, connection: str, doc: Any
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        profile, active = apply_put(Profile(), doc)
        key = doc.get(self.config.subject_attribute) or profile.user_name
        if not isinstance(key, str) or not key or len(key) > 512:
            raise ScimError(
                400, "invalidValue", f"{self.config.subject_attribute} must be a string"
            )
        existing = await self._store.get_by_subject(connection, key)
        assert profile.user_name is not None
        same_name = await self._store.find_by_user_name(connection, profile.user_name)
        if (existing is not None and not existing.deleted) or same_name is not None:
            raise ScimError(409, "uniqueness", "a user with this userName or externalId exists")
        if existing is not None:
            user = await self._store.update(
                existing.id, profile=profile, active=active is not False, deleted=False
            )
            assert user is not None
        else:
            user, _ = await self._store.get_or_provision(connection, key, profile)
            if active is False:
                user = await self._store.update(user.id, active=False) or user
        if self._emitter.enabled:
            self._emitter.emit(
                Event(name="provision", reason="scim", time=self._clock.time(),
                      connection=connection, subject=key)
            )  # fmt: skip
        location = f"{self.config.prefix}/Users/{user.id}".encode()
        return 201, self._resource(user), [(b"location", location)]

    async def _revoke(
        self, user: StoredUser, kind: Literal["user", "reactivate"], why: str
    ) -> None:
        if self._bus is not None:
            await self._bus.publish(
                Revocation(kind=kind, connection=user.connection, subject=user.subject,
                           time=self._clock.time())
            )  # fmt: skip
        if self._emitter.enabled:
            self._emitter.emit(
                Event(name="provision" if kind == "reactivate" else "deprovision", reason=why,
                      time=self._clock.time(), connection=user.connection, subject=user.subject,
                      detail={"kind": "scim"})
            )  # fmt: skip

    def _resource(self, user: StoredUser) -> dict[str, Any]:
        p = user.profile
        resource: dict[str, Any] = {
            "schemas": [USER_SCHEMA],
            "id": user.id,
            "externalId": user.subject,
            "userName": p.user_name or user.subject,
            "active": user.active,
            "name": {
                k: v for k, v in (("givenName", p.given_name), ("familyName", p.family_name)) if v
            },
            "meta": {
                "resourceType": "User",
                "created": _iso(user.created_at),
                "lastModified": _iso(user.updated_at),
                "location": f"{self.config.prefix}/Users/{user.id}",
            },
        }
        if p.name:
            resource["displayName"] = p.name
        if p.email:
            resource["emails"] = [{"value": p.email, "type": "work", "primary": True}]
        return resource


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
