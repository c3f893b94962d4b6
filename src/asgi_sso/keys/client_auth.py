"""How this app authenticates at a token endpoint: a shared secret, nothing, or a signed JWT.

``client_secret_basic`` and ``client_secret_post`` send the secret (RFC 6749
§2.3.1); ``none`` sends only the client id (a public client, PKCE alone);
``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9) signs a short-lived assertion
with the client's private key for each request: ``iss`` = ``sub`` = the client
id, ``aud`` = the token endpoint, a random ``jti``, ``iat`` and an ``exp`` at most
:data:`ASSERTION_LIFETIME` seconds later.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote_plus

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

from asgi_sso.config import Clock, SystemClock
from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.certificates import (
    KeyCertificate,
    certificate_for,
    split_pem,
    x5c_certificates,
)

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "MAX_RSA_BITS",
    "ClientAuth",
    "ClientKey",
    "credentials_problem",
    "load_client_key",
    "load_public_key",
]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
"""``client_assertion_type`` of a JWT client assertion (RFC 7523 §2.2)."""
ASSERTION_LIFETIME: Final = 60
"""Seconds a client assertion lives: short, as it is made for one request."""
_MAX_KEY_TEXT: Final = 64 * 1024  # a key and a certificate chain
MAX_RSA_BITS: Final = 8192
"""The largest RSA client key taken, in bits."""
_RSA_ALGS: Final = ("RS256", "PS256")  # RS256 first: what an RSA key signs by default
# Members holding private key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class ClientKey:
    """A parsed key for ``private_key_jwt``, the algorithms it signs with and its certificate.

    Attributes:
        alg: the algorithm it signs with unless asked for another: the one a JWK
            names (``RS256``, ``PS256`` or ``ES256``), else ``RS256`` for an RSA key
            and ``ES256`` for a P-256 key.
        algs: every algorithm it may sign with, ``alg`` first: only the one a JWK
            names; ``RS256`` and ``PS256`` for an RSA key read from PEM.
        kid: the key id sent as ``kid`` and published with :meth:`public_jwk`: the
            one a JWK names, else the key's RFC 7638 thumbprint.
        certificate: the key's X.509 certificate, when one came with it: every
            assertion then names it by ``x5t`` and ``x5t#S256`` (what Entra ID looks
            for), and :meth:`public_jwk` carries ``x5c`` and ``x5t#S256``.
    """

    __slots__ = ("_key", "alg", "algs", "certificate", "kid")

    def __init__(
        self,
        key: RSAKey | ECKey,
        algs: tuple[str, ...],
        kid: str | None,
        certificate: KeyCertificate | None = None,
    ) -> None:
        if not isinstance(algs, tuple) or not algs:  # a bare "RS256" would read as letters
            raise ConfigurationError("ClientKey needs a tuple of algorithms, e.g. ('RS256',)")
        self._key = key
        self.alg = algs[0]
        self.algs = algs
        # Always a kid: the IdP picks the key from the published set by it.
        self.kid: str = kid or key.thumbprint()
        self.certificate = certificate

    def __repr__(self) -> str:
        # The private key never reaches a log line (STYLE.md rule 10).
        return f"ClientKey(alg={self.alg!r}, kid={self.kid!r}, certificate={self.certificate!r})"

    @property
    def thumbprint(self) -> str:
        """The public key's RFC 7638 thumbprint: equal exactly for the same key."""
        return str(self._key.thumbprint())

    @property
    def is_private(self) -> bool:
        """Whether this key can sign (a key given only to be published may be public)."""
        return bool(self._key.is_private)

    def sign(self, claims: dict[str, Any], alg: str | None = None) -> str:
        """A compact JWS of ``claims`` signed with this key, by ``alg`` (default :attr:`alg`).

        Raises:
            ValueError: ``alg`` is not one of :attr:`algs`.
        """
        alg = alg or self.alg
        if alg not in self.algs:
            raise ValueError(f"this client key does not sign {alg[:20]!r}")
        header: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": self.kid}
        if self.certificate is not None:
            header["x5t"] = self.certificate.x5t
            header["x5t#S256"] = self.certificate.x5t_s256
        return jwt.encode(header, claims, self._key, algorithms=[alg])

    def signing_alg(self, accepted: Sequence[str]) -> str | None:
        """The algorithm to sign with for a provider taking ``accepted``, else ``None``.

        ``accepted`` is what the provider's metadata lists in
        ``token_endpoint_auth_signing_alg_values_supported`` (RFC 8414 §2); empty
        when it lists nothing, and then :attr:`alg`. Else the first of :attr:`algs`
        it takes (``RS256`` before ``PS256``); ``None`` when it takes none of them.
        """
        if not accepted:
            return self.alg
        return next((alg for alg in self.algs if alg in accepted), None)

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``use: sig`` and ``alg`` (RFC 7517 §4).

        Built from the public members only (``n``/``e``, ``crv``/``x``/``y``), so no
        private member of the key, nor any other member a JWK was given, is ever copied.
        ``alg`` is there when the key signs one algorithm only: an RSA key read from
        PEM signs RS256 or PS256, and a provider that holds a JWK to its ``alg``
        would refuse the other. With a certificate, ``x5c`` (the chain) and
        ``x5t#S256`` follow (RFC 7517 §4.7-9).
        """
        full = self._key.as_dict(private=False)
        rsa_key = isinstance(self._key, RSAKey)
        names = ("kty", "n", "e") if rsa_key else ("kty", "crv", "x", "y")
        jwk: dict[str, Any] = {name: str(full[name]) for name in names}
        jwk.update(kid=self.kid, use="sig")
        if len(self.algs) == 1:
            jwk["alg"] = self.alg
        if self.certificate is not None:
            jwk["x5c"] = self.certificate.x5c()
            jwk["x5t#S256"] = self.certificate.x5t_s256
        return jwk


def credentials_problem(method: str, *, secret: bool, key: bool) -> str | None:
    """Why a client authenticating by ``method`` cannot hold the credentials given, or ``None``.

    A secret goes with ``client_secret_basic``/``_post`` and only with them; a key
    with ``private_key_jwt`` and only with it.
    """
    needs_secret = method in ("client_secret_basic", "client_secret_post")
    if needs_secret != secret:
        needs = "needs a client_secret" if needs_secret else "takes no client_secret"
        return f"token_endpoint_auth={method!r} {needs}"
    if (method == "private_key_jwt") != key:
        return "a client_key goes with token_endpoint_auth='private_key_jwt', and only with it"
    return None


def load_client_key(text: str, name: str = "client_key") -> ClientKey:
    """Parse a client's private key: PEM (PKCS#8 or traditional) or a JWK as JSON.

    The text may carry the key's X.509 certificate (Entra ID's certificate
    credentials): PEM blocks of the key and its certificate in either order, a
    chain after the key's own certificate, or a JWK with ``x5c``. The assertions
    then name it by ``x5t`` and ``x5t#S256``, and the published JWK holds ``x5c``.

    Raises:
        ConfigurationError: not a private RSA or P-256 EC key, or a certificate for
            another key (the message names ``name``, never the key).
    """
    loaded = _read_key(text, name)
    if not loaded.is_private:
        raise ConfigurationError(f"{name} is a public key; private_key_jwt needs a private one")
    try:
        # A JWK may forbid what private_key_jwt needs ("use": "enc", key_ops without
        # "sign"): find out now, not on a user's sign-in.
        for alg in loaded.algs:
            loaded.sign({"probe": 1}, alg)
    except Exception as exc:
        raise ConfigurationError(
            f"{name} cannot sign {loaded.alg} (check its alg, use and key_ops)"
        ) from exc
    return loaded


def load_public_key(text: str, name: str = "published_keys") -> ClientKey:
    """Parse a key that is only published, never signs: as :func:`load_client_key`, public or not.

    Raises:
        ConfigurationError: not an RSA or P-256 EC key, or a certificate for another key.
    """
    return _read_key(text, name)


def _read_key(text: str, name: str) -> ClientKey:
    if not text or len(text) > _MAX_KEY_TEXT:
        raise ConfigurationError(f"{name} must be a PEM or JWK key")
    stripped = text.strip()
    jwk: dict[str, Any] = {}
    try:
        # PEM blocks may have any text around them, even a "{": a JWK has no PEM block.
        if stripped.startswith("{") and "-----BEGIN" not in stripped:
            key, jwk, ders = _import_jwk(stripped, name)
        else:
            key, ders = _import_pem(stripped, name)
        certificate = certificate_for(key.public_key, ders, name) if ders else None
    except ConfigurationError:
        raise
    except Exception as exc:  # joserfc and cryptography raise many kinds; none echo the key
        raise ConfigurationError(f"{name} is not a readable PEM or JWK key") from exc
    for member in ("x5t", "x5t#S256"):
        # A JWK's own thumbprint must name its x5c, else the IdP looks for another certificate.
        named = jwk.get(member)
        if named is not None and (certificate is None or named != _thumbprint(certificate, member)):
            raise ConfigurationError(f"{name}: the JWK's {member} does not match its x5c")
    kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
    if isinstance(key, RSAKey):
        if key.raw_value.key_size > MAX_RSA_BITS:  # each use of a larger one costs seconds
            raise ConfigurationError(f"{name} must be an RSA key of at most {MAX_RSA_BITS} bits")
        return ClientKey(key, _named_algs(jwk, _RSA_ALGS, name), kid, certificate)
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return ClientKey(key, _named_algs(jwk, ("ES256",), name), kid, certificate)
    raise ConfigurationError(f"{name} must be an RSA or a P-256 EC key (RS256, PS256 or ES256)")


def _named_algs(jwk: dict[str, Any], algs: tuple[str, ...], name: str) -> tuple[str, ...]:
    # A JWK's alg binds the key to that one algorithm (RFC 7517 §4.4).
    named = jwk.get("alg")
    if named is None:
        return algs
    if named not in algs:
        raise ConfigurationError(f"{name} names an alg it cannot sign; use {' or '.join(algs)}")
    return (named,)


def _import_jwk(text: str, name: str) -> tuple[Any, dict[str, Any], list[bytes]]:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC"):
        raise ValueError("not an RSA or EC JWK")
    key = JWKRegistry.import_key(data)
    if not key.is_private and _PRIVATE_MEMBERS.intersection(data):
        # joserfc reads a key without "d" as public: its p and q would still give the
        # private key away to whoever reads a "public" key stored in clear.
        raise ConfigurationError(f"{name}: the JWK holds private members but no private key (d)")
    ders = x5c_certificates(data["x5c"]) if "x5c" in data else []
    return key, data, ders


def _thumbprint(certificate: KeyCertificate, member: str) -> str:
    return certificate.x5t if member == "x5t" else certificate.x5t_s256


def _import_pem(text: str, name: str) -> tuple[Any, list[bytes]]:
    blocks, ders = split_pem(text, name)
    if len(blocks) != 1:
        raise ValueError("not exactly one key")
    pem = blocks[0].encode()
    # cryptography tells the key type (a PKCS#8 armour does not name it).
    if "PUBLIC KEY" in blocks[0]:
        loaded: Any = serialization.load_pem_public_key(pem)
    else:
        loaded = serialization.load_pem_private_key(pem, password=None)
    # joserfc wraps the key cryptography parsed: a private key is parsed (and checked) once.
    if isinstance(loaded, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSAKey.import_key(loaded), ders
    if isinstance(loaded, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECKey.import_key(loaded), ders
    raise ValueError("not an RSA or EC key")


class ClientAuth:
    """The credentials one client presents at a token endpoint.

    Args:
        client_id: the OAuth client id.
        secret: the client secret (``client_secret_basic``/``_post``).
        method: ``client_secret_basic``, ``client_secret_post``, ``private_key_jwt``
            or ``none``.
        key: the signing key (``private_key_jwt``).
        clock: wall time for the assertion's ``iat`` and ``exp``.
        alg: the algorithm assertions are signed with, one of the key's
            :attr:`~ClientKey.algs` (default its :attr:`~ClientKey.alg`); see
            :meth:`accepting`.
    """

    __slots__ = ("_clock", "_key", "_secret", "alg", "client_id", "method")

    def __init__(
        self,
        *,
        client_id: str,
        method: str,
        secret: bytes | None = None,
        key: ClientKey | None = None,
        clock: Clock | None = None,
        alg: str | None = None,
    ) -> None:
        if method == "private_key_jwt" and key is None:
            raise ConfigurationError("private_key_jwt needs a client key")
        if alg is not None and (key is None or alg not in key.algs):
            raise ConfigurationError(f"the client key does not sign {alg[:20]!r}")
        self.client_id = client_id
        self.method = method
        self._secret = secret
        self._key = key
        self._clock = clock or SystemClock()
        self.alg: str | None = alg or (key.alg if key is not None else None)

    def __repr__(self) -> str:
        return f"ClientAuth(client_id={self.client_id!r}, method={self.method!r})"

    @property
    def key(self) -> ClientKey | None:
        """The signing key of ``private_key_jwt``, else ``None``."""
        return self._key

    def accepting(self, accepted: Sequence[str]) -> ClientAuth | None:
        """These credentials for an endpoint taking assertions signed by ``accepted``.

        ``accepted`` is the provider's ``*_endpoint_auth_signing_alg_values_supported``
        (RFC 8414 §2), empty when it lists none. Returns ``self`` when nothing changes
        (no key, or the algorithm stays), a copy signing with the algorithm
        :meth:`ClientKey.signing_alg` picks, or ``None`` when the key signs nothing
        the provider takes (then every assertion would be refused).
        """
        if self._key is None or self.method != "private_key_jwt":
            return self
        alg = self._key.signing_alg(accepted)
        if alg is None:
            return None
        if alg == self.alg:
            return self
        return ClientAuth(
            client_id=self.client_id,
            method=self.method,
            key=self._key,
            clock=self._clock,
            alg=alg,
        )

    def apply(self, form: dict[str, str], *, endpoint: str) -> dict[str, str]:
        """Add the credentials to ``form`` for a request to ``endpoint``; return extra headers."""
        if self.method == "client_secret_basic" and self._secret is not None:
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self._secret.decode())}"
            return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        form["client_id"] = self.client_id
        if self.method == "client_secret_post" and self._secret is not None:
            form["client_secret"] = self._secret.decode()
        elif self.method == "private_key_jwt" and self._key is not None:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self.assertion(endpoint)
        return {}

    def assertion(self, endpoint: str) -> str:
        """A fresh client assertion for ``endpoint`` (RFC 7523 §3)."""
        assert self._key is not None
        now = int(self._clock.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": endpoint,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        return self._key.sign(claims, self.alg)
