"""The connection: one enterprise customer's identity provider, as the app knows it.

A :class:`Connection` is a stable, app-assigned id (the tenant key of the app's
data) with everything needed to trust that customer's IdP: its issuer, the
sign-in client, the API audience, the claim naming a user, the email domains it
owns, its tier policy, its SCIM secret and whether it is enabled. Users,
sessions and revocations of a connection are keyed by ``(id, user claim)``.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import idna
import msgspec

from asgi_sso.config import ASYMMETRIC_ALGORITHMS, Issuer, Secret, check_fields, is_loopback
from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.tiers import ConnectionTiers
from asgi_sso.keys.client_auth import credentials_problem, load_public_key

__all__ = [
    "CONNECTION_ID",
    "Connection",
    "TokenEndpointAuth",
    "normalize_domain",
]

CONNECTION_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
"""An app-assigned connection id: 1-63 lowercase letters, digits, ``.``, ``_`` or ``-``."""

TokenEndpointAuth = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

_TENANT: Final = "{tenant}"
_TENANT_CHARS: Final = frozenset(string.ascii_letters + string.digits + "._~-")
_LABEL: Final = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_MAX_DOMAINS: Final = 1000
_MAX_TEXT: Final = 2048
_MAX_PUBLISHED: Final = 8
# Set by the sign-in flow itself (OIDC Core §3.1.2.1, RFC 7636 §4.3).
_PROTOCOL_PARAMS: Final = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
     "code_challenge", "code_challenge_method"}
)  # fmt: skip


def normalize_domain(value: str) -> str | None:
    """An email domain in its one comparable form (lowercase ASCII, IDNA), or ``None``.

    ``Example.COM.`` and ``example.com`` are the same domain; ``bücher.example`` is
    ``xn--bcher-kva.example`` and ``straße.de`` is ``xn--strae-oqa.de`` (IDNA 2008).
    Anything that is not a DNS name of at least two labels (at most 253 characters)
    gives ``None``.
    """
    if not value or len(value) > 253 * 4:
        return None
    text = value.strip().rstrip(".").lower()
    if not text.isascii():
        try:
            # IDNA 2008 with UTS #46 mapping, as browsers and mail systems spell
            # domains (the standard library's IDNA 2003 maps "ß" to "ss": another domain).
            text = idna.encode(text, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2:
        return None
    if not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return None
    return text


def _check_url(value: str, what: str) -> None:
    # https, or plain http only to a loopback host (a dev IdP on this machine).
    parts = urlsplit(value.replace(_TENANT, "t"))
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise ConfigurationError(
        f"{what} {value!r} must be an https URL (plain http only to a loopback host)"
    )


class Connection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One customer's identity provider.

    Attributes:
        id: the app-assigned, stable id: ``Principal.connection`` of its users and the
            key of their users, sessions and revocations (see :data:`CONNECTION_ID`).
        name: the display name ("Acme Corp").
        issuer: the provider's exact issuer, or a template holding ``{tenant}``
            (e.g. ``https://login.microsoftonline.com/{tenant}/v2.0``).
        tenant: the value of ``{tenant}`` in a template ``issuer``; with ``tenant_claim``,
            the value that claim must hold.
        tenant_claim: for an issuer shared by many organisations (Google's
            ``https://accounts.google.com``), the claim naming the customer's
            organisation (Google Workspace: ``hd``, the hosted domain); only tokens
            whose claim equals ``tenant`` belong to this connection. Without it, every
            account at a shared issuer could sign in as a user of this connection.
        discovery_url: the discovery document URL, when not ``{issuer}/.well-known/…``.
        jwks_uri: the key set URL, when not taken from discovery.
        client_id: this app's OAuth client id at the provider (sign-in); ``None``: the
            connection serves bearer tokens only.
        client_secret: the client secret (``client_secret_basic``/``_post``).
        client_key: the private key (PEM or JWK JSON) for ``private_key_jwt``, with its
            X.509 certificate when the IdP wants one (Entra ID; see
            :attr:`LoginConfig.client_key <asgi_sso.login.config.LoginConfig>`).
        published_keys: public keys (PEM or JWK JSON, with a certificate or not)
            served at ``LoginConfig.jwks_path`` after ``client_key`` but never used to
            sign: the next key before a rotation, the previous one after it. Public
            only: unlike secrets, these are stored and shown in clear. At most 8, with
            ``client_key``; their ``kid`` must differ from each other and from its.
        token_endpoint_auth: how the client authenticates at the token endpoint
            (``client_secret_basic``, ``client_secret_post`` or ``private_key_jwt``;
            ``none`` is refused: see :meth:`_check_client`).
        audience: the API audience(s) of bearer tokens; empty: bearer tokens of this
            connection are refused (sign-in only).
        algorithms: the signature algorithms accepted (asymmetric only).
        user_claim: the claim naming a user: ``sub``, or ``oid`` for Entra ID.
        dpop: DPoP-bound bearer tokens (RFC 9449), as :attr:`Issuer.dpop
            <asgi_sso.config.Issuer>`: ``"off"``, ``"allow"`` or ``"require"``.
        mtls: certificate-bound tokens (RFC 8705), as :attr:`Issuer.mtls
            <asgi_sso.config.Issuer>`: ``"allow"`` or ``"require"``.
        domains: the email domains this connection owns (checked by the operator);
            a domain belongs to at most one connection.
        scopes: the scopes requested at sign-in (must hold ``openid``).
        authorize_params: extra authorization request parameters (``prompt`` …).
        tiers: the tier policy: default tier and group → tier.
        scim_secret: the bearer secret the customer's IdP sends to the SCIM endpoint.
        enabled: a disabled connection signs nobody in, its tokens and sessions are
            refused.
        not_before: sessions opened before this wall-clock time are refused (set when
            the connection is disabled, so re-enabling it does not revive them).
    """

    id: str
    issuer: str
    name: str = ""
    tenant: str | None = None
    tenant_claim: str | None = None
    discovery_url: str | None = None
    jwks_uri: str | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    client_key: Secret | None = None
    published_keys: tuple[str, ...] = ()
    token_endpoint_auth: TokenEndpointAuth = "client_secret_basic"
    audience: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS256",)
    user_claim: str = "sub"
    dpop: Literal["off", "allow", "require"] = "off"
    mtls: Literal["allow", "require"] = "allow"
    domains: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    authorize_params: dict[str, str] = {}
    tiers: ConnectionTiers = ConnectionTiers()
    scim_secret: Secret | None = None
    enabled: bool = True
    not_before: float = 0.0

    def __post_init__(self) -> None:
        fail = ConfigurationError
        check_fields(self)
        if CONNECTION_ID.fullmatch(self.id) is None:
            raise fail(
                f"Connection.id {self.id!r} must be 1-63 characters of a-z 0-9 . _ - "
                "starting with a letter or digit"
            )
        for field in ("name", "issuer", "user_claim"):
            if len(getattr(self, field)) > _MAX_TEXT:
                raise fail(f"Connection.{field} is too long")
        self._check_issuer()
        self._check_client()
        # Apart from _check_client, which ends early for a bearer-only connection.
        self._check_published_keys()
        bad = [alg for alg in self.algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if not self.algorithms or bad:
            raise fail(
                f"connection {self.id!r}: algorithms must be asymmetric "
                f"({sorted(ASYMMETRIC_ALGORITHMS)}), got {list(self.algorithms)}"
            )
        if not self.user_claim:
            raise fail(f"connection {self.id!r}: user_claim must name a claim")
        if any(not a or len(a) > _MAX_TEXT for a in self.audience):
            raise fail(f"connection {self.id!r}: each audience must be non-empty")
        if "openid" not in self.scopes:
            raise fail(f"connection {self.id!r}: scopes must include 'openid'")
        if not isinstance(self.not_before, int | float) or not math.isfinite(self.not_before):
            # NaN compares false with every time: no session would ever be cut off.
            raise fail(f"connection {self.id!r}: not_before must be a finite time")
        clash = _PROTOCOL_PARAMS.intersection(self.authorize_params)
        if clash:
            raise fail(f"connection {self.id!r}: authorize_params cannot set {sorted(clash)}")
        if len(self.authorize_params) > 32 or any(
            len(k) > 256 or len(v) > 2048 for k, v in self.authorize_params.items()
        ):
            raise fail(f"connection {self.id!r}: authorize_params holds too much")
        if len(self.tiers.groups) > 10_000:
            raise fail(f"connection {self.id!r}: at most 10000 group mappings")
        self._check_domains()

    def _check_issuer(self) -> None:
        fail = ConfigurationError
        templated = _TENANT in self.issuer
        if self.issuer.count("{") != self.issuer.count(_TENANT) or self.issuer.count(_TENANT) > 1:
            raise fail(f"connection {self.id!r}: issuer may hold one '{{tenant}}' at most")
        if templated and self.tenant_claim is not None:
            raise fail(f"connection {self.id!r}: tenant_claim needs an exact issuer")
        if (templated or self.tenant_claim is not None) != (self.tenant is not None):
            raise fail(
                f"connection {self.id!r}: a tenant is given exactly when the issuer is a "
                "template with '{tenant}' or a tenant_claim is set"
            )
        if self.tenant_claim is not None and not 0 < len(self.tenant_claim) <= 128:
            raise fail(f"connection {self.id!r}: tenant_claim must name a claim")
        if self.tenant is not None and (
            not self.tenant or len(self.tenant) > 128 or not set(self.tenant) <= _TENANT_CHARS
        ):
            raise fail(f"connection {self.id!r}: tenant must be 1-128 of A-Z a-z 0-9 . _ ~ -")
        _check_url(self.issuer, f"connection {self.id!r}: issuer")
        for name in ("discovery_url", "jwks_uri"):
            value = getattr(self, name)
            if value is not None:
                _check_url(value, f"connection {self.id!r}: {name}")

    def _check_client(self) -> None:
        fail = ConfigurationError
        method = self.token_endpoint_auth
        if self.client_id is None:
            if self.client_secret is not None or self.client_key is not None:
                raise fail(f"connection {self.id!r}: client credentials need a client_id")
            if not self.audience:
                raise fail(
                    f"connection {self.id!r} has neither a client_id (sign-in) nor an "
                    "audience (bearer tokens): it would accept nothing"
                )
            return
        if not self.client_id or len(self.client_id) > _MAX_TEXT:
            raise fail(f"connection {self.id!r}: client_id must not be empty")
        if method == "none":
            # One callback URL serves every connection: another connection's IdP could
            # obtain a public client's code and PKCE verifier and redeem them (an OAuth
            # mix-up, RFC 9700 §4.4). A client secret or key cannot be replayed there.
            raise fail(
                f"connection {self.id!r}: the app's client must authenticate at the token "
                "endpoint (client_secret_basic, client_secret_post or private_key_jwt), "
                "not 'none'"
            )
        problem = credentials_problem(
            method, secret=self.client_secret is not None, key=self.client_key is not None
        )
        if problem is not None:
            raise fail(f"connection {self.id!r}: {problem}")

    def _check_published_keys(self) -> None:
        if not self.published_keys:
            return
        if self.client_key is None:
            raise ConfigurationError(
                f"connection {self.id!r}: published_keys go with client_key (private_key_jwt)"
            )
        if len(self.published_keys) > _MAX_PUBLISHED:
            raise ConfigurationError(
                f"connection {self.id!r}: at most {_MAX_PUBLISHED} published_keys"
            )
        for index, text in enumerate(self.published_keys):
            name = f"connection {self.id!r}: published_keys[{index}]"
            if load_public_key(text, name).is_private:
                raise ConfigurationError(
                    f"{name} is a private key: publish its public half (connection fields "
                    "other than secrets are stored and shown in clear)"
                )

    def _check_domains(self) -> None:
        if len(self.domains) > _MAX_DOMAINS:
            raise ConfigurationError(f"connection {self.id!r}: at most {_MAX_DOMAINS} domains")
        for domain in self.domains:
            if normalize_domain(domain) != domain:
                raise ConfigurationError(
                    f"connection {self.id!r}: domain {domain!r} must be a lowercase DNS "
                    f"name (e.g. {normalize_domain(domain) or 'example.com'!r})"
                )
        if len(set(self.domains)) != len(self.domains):
            raise ConfigurationError(f"connection {self.id!r}: a domain is listed twice")

    # -- derived values ------------------------------------------------------------------

    @property
    def iss(self) -> str:
        """The concrete issuer (``{tenant}`` filled in): what its tokens carry in ``iss``."""
        if self.tenant is None or self.tenant_claim is not None:
            return self.issuer
        return self.issuer.replace(_TENANT, self.tenant)

    @property
    def issuer_key(self) -> str:
        """What no two connections may share: the issuer, and the tenant claim's value."""
        if self.tenant_claim is None or self.tenant is None:
            return self.iss
        return f"{self.iss} {self.tenant_claim}={self.tenant}"

    @property
    def label(self) -> str:
        """The display name, or the id."""
        return self.name or self.id

    def issuer_config(self) -> Issuer:
        """The :class:`~asgi_sso.config.Issuer` verifying this connection's tokens."""

        def fill(url: str | None) -> str | None:
            return url.replace(_TENANT, self.tenant) if url and self.tenant else url

        shared = self.tenant_claim is not None and self.tenant is not None

        audience: tuple[str, ...] | None = self.audience or None
        if audience is None and self.client_id is not None:
            # ID tokens at sign-in name the client; no bearer token is accepted (below).
            audience = (self.client_id,)
        return Issuer(
            issuer=self.iss,
            audience=audience,
            jwks_uri=fill(self.jwks_uri),
            discovery_url=fill(self.discovery_url),
            algorithms=self.algorithms,
            user_claim=self.user_claim,
            connection=self.id,
            client_id=self.client_id,
            name=self.id,
            tenant_claim=self.tenant_claim if shared and self.tenant_claim else "tid",
            tenants=frozenset({self.tenant}) if shared and self.tenant else None,
            dpop=self.dpop,
            mtls=self.mtls,
        )

    @property
    def accepts_bearer(self) -> bool:
        """Whether API bearer tokens of this connection are accepted (an audience is set)."""
        return self.enabled and bool(self.audience)

    def public(self) -> dict[str, Any]:
        """The connection as JSON-ready data, secrets shown only as present or not."""
        fields = msgspec.structs.asdict(self)
        for name in ("client_secret", "client_key", "scim_secret"):
            fields[f"has_{name}"] = fields.pop(name) is not None
        data: dict[str, Any] = msgspec.to_builtins(fields)
        return data


def connection_from_data(data: Mapping[str, Any]) -> Connection:
    """Build a :class:`Connection` from JSON/TOML data; secrets are plain strings there.

    A secret may also be a :class:`~asgi_sso.config.Secret` already (a store that
    opened it), and is kept as it is.

    Raises:
        ConfigurationError: a field is unknown, mistyped or invalid.
    """
    values = dict(data)
    for name in ("client_secret", "client_key", "scim_secret"):
        value = values.get(name)
        if value is not None and not isinstance(value, Secret):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"connection {name} must be a non-empty string")
            values[name] = Secret(value)
    try:
        return msgspec.convert(values, Connection, dec_hook=_keep_secrets, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"invalid connection: {exc}") from exc


def _keep_secrets(kind: type, value: Any) -> Any:
    if kind is Secret and isinstance(value, Secret):
        return value
    raise NotImplementedError
