"""The sign-in providers: the default one (``LoginConfig.issuer``) and each connection's.

A :class:`Provider` is what one sign-in needs of an identity provider: its
issuer, this app's client id and credentials there, the scopes and extra
authorization parameters, and the connection it stands for. :class:`Providers`
finds them in the current connection snapshot on every use, so a changed or
disabled connection applies from the next request on, in every leg: the start of
a sign-in, its callback, each request of a session, refresh, logout and
back-channel logout.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from asgi_sso.config import Clock
from asgi_sso.connections.directory import ConnectionDirectory
from asgi_sso.connections.model import Connection
from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.client_auth import load_public_key
from asgi_sso.login.client_auth import ClientAuth, ClientKey, load_client_key
from asgi_sso.login.config import LoginConfig

if TYPE_CHECKING:
    from asgi_sso.connections.live import LiveConnections
    from asgi_sso.login.oidc import FlowState
    from asgi_sso.sessions.base import SessionRecord

__all__ = ["Provider", "Providers"]

_log = logging.getLogger(__name__)
_EMPTY: Final = ConnectionDirectory()
_MAX_KEYS: Final = 4096


class Provider:
    """One identity provider users sign in at, with this app's client there.

    Attributes:
        iss: the provider's exact issuer (a connection's concrete ``iss``).
        client_id: this app's OAuth client id at the provider: the ID token audience.
        auth: how the client authenticates at the token endpoint.
        scopes: the scopes requested.
        authorize_params: extra authorization request parameters.
        connection: the connection id, or ``None`` for the default provider.
        not_before: sessions (and sign-ins) started before this wall time are refused.
        organisation: ``(claim, value)`` a session's claims must hold, for a connection
            sharing its issuer with others (Google's ``hd``), else ``None``.
        published: keys served in the app's JWK Set after ``auth.key``, never signing.
    """

    __slots__ = (
        "auth",
        "authorize_params",
        "client_id",
        "connection",
        "iss",
        "not_before",
        "organisation",
        "published",
        "scopes",
    )

    def __init__(
        self,
        *,
        iss: str,
        client_id: str,
        auth: ClientAuth,
        scopes: tuple[str, ...],
        authorize_params: Mapping[str, str],
        connection: str | None = None,
        not_before: float = 0.0,
        organisation: tuple[str, str] | None = None,
        published: tuple[ClientKey, ...] = (),
    ) -> None:
        self.iss = iss
        self.client_id = client_id
        self.auth = auth
        self.scopes = scopes
        self.authorize_params = dict(authorize_params)
        self.connection = connection
        self.not_before = not_before
        self.organisation = organisation
        self.published = published

    def __repr__(self) -> str:
        return f"Provider(iss={self.iss!r}, connection={self.connection!r})"

    @property
    def keys(self) -> tuple[ClientKey, ...]:
        """The keys it publishes: the signing one first, then ``published``; none without."""
        return () if self.auth.key is None else (self.auth.key, *self.published)


class Providers:
    """Finds the provider of a sign-in, a session or a logout token.

    Args:
        config: the sign-in settings; ``issuer`` set makes the default provider.
        connections: the live connections, or ``None`` without connections.
        clock: wall time for client assertions.

    Raises:
        ConfigurationError: neither a default provider nor connections.
    """

    def __init__(
        self, config: LoginConfig, *, connections: LiveConnections | None, clock: Clock
    ) -> None:
        if config.issuer is None and connections is None:
            raise ConfigurationError(
                "LoginConfig without an issuer signs users in only through connections: "
                "pass connections=... as well, or set LoginConfig.issuer and client_id"
            )
        self._clock = clock
        self._live = connections
        self.default: Provider | None = None
        if config.issuer is not None and config.client_id is not None:
            secret = config.client_secret.reveal() if config.client_secret is not None else None
            self.default = Provider(
                iss=config.issuer,
                client_id=config.client_id,
                auth=ClientAuth(
                    client_id=config.client_id,
                    method=config.token_endpoint_auth,
                    secret=secret,
                    key=config.signing_key(),
                    clock=clock,
                ),
                scopes=config.scopes,
                authorize_params=config.extra_authorize_params,
                published=config.published_public_keys(),
            )
            _warn_certificate(self.default.auth.key, "LoginConfig.client_key", clock)
        self._directory: ConnectionDirectory | None = None
        self._built: dict[str, tuple[Connection, Provider]] = {}
        self._keys: dict[bytes, ClientKey] = {}
        self._jwks: tuple[ConnectionDirectory, bytes | None] | None = None
        self._owners: _KidOwners | None = None

    @property
    def directory(self) -> ConnectionDirectory:
        """The connection snapshot in use (empty without connections)."""
        return self._live.directory if self._live is not None else _EMPTY

    # -- lookups -------------------------------------------------------------------------

    def connection(self, connection_id: str) -> Provider | None:
        """The provider of an enabled sign-in connection with this id, if any."""
        return self._of(self.directory.get(connection_id))

    def for_email(self, email: str) -> Provider | None:
        """The provider of the enabled connection owning the email's domain, if any."""
        return self._of(self.directory.for_email(email))

    def for_domain(self, domain: str) -> Provider | None:
        """The provider of the enabled connection owning ``domain``, if any."""
        return self._of(self.directory.for_domain(domain))

    def for_issuer(self, iss: str) -> Provider | None:
        """The provider whose issuer is ``iss`` (the default or an enabled connection)."""
        if self.default is not None and iss == self.default.iss:
            return self.default
        return self._of(self.directory.by_issuer(iss))

    def for_flow(self, flow: FlowState) -> Provider | None:
        """The provider a pending sign-in was started with, if it is still in force unchanged."""
        if flow.connection is None:
            default = self.default
            if default is None or (flow.iss and (flow.iss, flow.client_id) != _pair(default)):
                return None
            return default
        found = self.connection(flow.connection)
        if found is None or (flow.iss, flow.client_id) != _pair(found):
            return None
        return found if flow.started_at >= found.not_before else None

    def for_record(self, record: SessionRecord) -> Provider | None:
        """The provider a session was opened with, if it is still in force.

        The default provider's sessions match its ``(issuer, client_id)``; a
        connection's match an enabled connection with the record's id, issuer and
        client id, opened at or after its ``not_before``.
        """
        default = self.default
        if default is not None and (record.issuer, record.client_id) == _pair(default):
            return default
        found = self.connection(record.connection)
        if found is None or (record.issuer, record.client_id) != _pair(found):
            return None
        if found.organisation is not None:
            # A shared issuer: the session must name this connection's organisation
            # still (its tenant may have been corrected since).
            claim, value = found.organisation
            if record.claims.get(claim) != value:
                return None
        return found if record.created_at >= found.not_before else None

    def logout_audience(self, iss: str) -> str | None:
        """The client id whose back-channel logout tokens from ``iss`` are honoured."""
        found = self.for_issuer(iss)
        return found.client_id if found is not None else None

    def problem(self, connection: Connection) -> str | None:
        """Why ``connection`` cannot sign anyone in here, or ``None``.

        An unreadable client key, a ``kid`` its published keys share with it or with
        each other (the IdP could not tell the keys apart), or, while it is enabled, a
        ``kid`` that names another key of the default provider or of a connection
        admitted before it (the shared key set holds one key per ``kid``: the other
        provider's IdP would no longer find its key).
        """
        if connection.client_key is None:
            return None
        try:
            key, published = self._keys_of(connection)
        except ConfigurationError as exc:
            return str(exc)
        kids = [key.kid, *(k.kid for k in published)]
        if len(set(kids)) != len(kids):
            return "its published_keys repeat a kid (of its client_key or of each other)"
        return self._kid_taken(connection, (key, *published)) if connection.enabled else None

    def jwks(self) -> bytes | None:
        """The public client keys as a JWK Set (JSON), or ``None`` when no provider has one.

        The default provider's key and its ``published_keys``, then every enabled
        sign-in connection's key and its ``published_keys``, each once (by ``kid``);
        rebuilt when the connection snapshot changes.
        """
        directory = self.directory
        if self._jwks is not None and self._jwks[0] is directory:
            return self._jwks[1]
        found: dict[str, dict[str, Any]] = {}
        providers = [self.default, *(self._of(c) for c in directory if c.client_key)]
        for provider in providers:
            for key in provider.keys if provider is not None else ():
                found.setdefault(key.kid, key.public_jwk())
        document = msgspec.json.encode({"keys": list(found.values())}) if found else None
        self._jwks = (directory, document)
        return document

    # -- kids ----------------------------------------------------------------------------

    def _kid_taken(self, connection: Connection, keys: tuple[ClientKey, ...]) -> str | None:
        owners = self._owners_now()
        for key in keys:
            found = owners.owners.get(key.kid)
            if found is None or found[0] == connection.id:
                continue
            owner, thumbprint = found
            if thumbprint != key.thumbprint:
                who = "LoginConfig" if owner is None else f"connection {owner!r}"
                return f"the kid {key.kid!r} already names another key, of {who}"
        return None

    def _owners_now(self) -> _KidOwners:
        # During a load, the connections admitted so far; else the snapshot in use.
        admitting = self._live.admitting if self._live is not None else None
        source: Collection[Connection] = self.directory if admitting is None else admitting
        owners = self._owners
        if owners is None or owners.source is not source:
            owners = self._owners = _KidOwners(source, self.default)
        for connection in itertools.islice(source, owners.seen, None):
            owners.add(connection.id, self._of(connection))
        owners.seen = len(source)
        return owners

    # -- building ------------------------------------------------------------------------

    def _of(self, connection: Connection | None) -> Provider | None:
        if connection is None or not connection.enabled or connection.client_id is None:
            return None
        directory = self.directory
        if directory is not self._directory:
            # A new snapshot: forget providers of connections that were replaced.
            self._directory, self._built = directory, {}
        cached = self._built.get(connection.id)
        if cached is not None and cached[0] is connection:
            return cached[1]
        try:
            provider = self._build(connection, connection.client_id)
        except ConfigurationError:
            return None  # an unreadable key: the connection signs nobody in
        self._built[connection.id] = (connection, provider)
        return provider

    def _build(self, connection: Connection, client_id: str) -> Provider:
        secret = connection.client_secret.reveal() if connection.client_secret else None
        key, published = self._keys_of(connection) if connection.client_key else (None, ())
        auth = ClientAuth(
            client_id=client_id,
            method=connection.token_endpoint_auth,
            secret=secret,
            key=key,
            clock=self._clock,
        )
        return Provider(
            iss=connection.iss,
            client_id=client_id,
            auth=auth,
            scopes=connection.scopes,
            authorize_params=connection.authorize_params,
            connection=connection.id,
            not_before=connection.not_before,
            published=published,
            organisation=(
                (connection.tenant_claim, connection.tenant)
                if connection.tenant_claim is not None and connection.tenant is not None
                else None
            ),
        )

    def _keys_of(self, connection: Connection) -> tuple[ClientKey, tuple[ClientKey, ...]]:
        # The client key and the published ones, or ConfigurationError saying why not.
        try:
            return self._key(connection), self._published(connection)
        except ConfigurationError:
            raise
        except Exception as exc:
            # Any failure of a parser, even its own bug, costs this connection only: it
            # must never stop the other sign-ins, the key set or a reload.
            raise ConfigurationError(f"its keys cannot be read ({type(exc).__name__})") from exc

    def _published(self, connection: Connection) -> tuple[ClientKey, ...]:
        # Every reload asks about each connection again: each distinct text is read once.
        return tuple(self._remembered(b"public:" + text.encode(), text, load_public_key)
                     for text in connection.published_keys)  # fmt: skip

    def _remembered(self, raw: bytes, text: str, load: Callable[[str], ClientKey]) -> ClientKey:
        digest = hashlib.sha256(raw).digest()
        key = self._keys.get(digest)
        if key is None:
            key = load(text)
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            self._keys[digest] = key
        return key

    def _key(self, connection: Connection) -> ClientKey:
        # Parsing a private key costs milliseconds: each distinct key is parsed once.
        assert connection.client_key is not None
        raw = connection.client_key.reveal()
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise ConfigurationError("client_key must be text (PEM or JWK JSON)") from exc

        def load(text: str) -> ClientKey:
            key = load_client_key(text)
            _warn_certificate(key, f"connection {connection.id!r}: client_key", self._clock)
            return key

        return self._remembered(raw, text, load)


class _KidOwners:
    """Who publishes each kid: a connection id, or ``None`` for the default provider."""

    __slots__ = ("owners", "seen", "source")

    def __init__(self, source: Collection[Connection], default: Provider | None) -> None:
        self.source = source
        self.seen = 0  # how many of source were added
        self.owners: dict[str, tuple[str | None, str]] = {}
        self.add(None, default)

    def add(self, owner: str | None, provider: Provider | None) -> None:
        # A disabled, bearer-only or unreadable one publishes nothing.
        for key in provider.keys if provider is not None else ():
            self.owners.setdefault(key.kid, (owner, key.thumbprint))


def _warn_certificate(key: ClientKey | None, name: str, clock: Clock) -> None:
    # Said once, when the key is read: an IdP that checks the certificate (Entra ID)
    # refuses the assertions of an expired one, and sign-ins there fail until it is
    # replaced. Refusing to start would take down every other sign-in and API call.
    problem = key.certificate.validity_problem(clock.time()) if key and key.certificate else None
    if problem is not None:
        _log.warning("%s: %s", name, problem)


def _pair(provider: Provider) -> tuple[str, str]:
    return provider.iss, provider.client_id
