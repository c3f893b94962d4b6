"""Validate a verified token's claim set against its issuer's policy (RFC 7519 §4.1, RFC 9068).

Every refusal says exactly what was wrong ("the token expired 42 s ago", "expected
audience 'api://x'") and never echoes the token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from asgi_sso.config import Issuer
from asgi_sso.errors import (
    ExpiredToken,
    InvalidAudience,
    InvalidClaim,
    InvalidToken,
    NotYetValid,
)
from asgi_sso.verify.issuers import printable

__all__ = [
    "ID_TOKEN_CLAIMS",
    "ID_TOKEN_TYPES",
    "ClaimPolicy",
    "check_id_token_type",
    "check_type",
    "normalize_type",
    "scopes_from",
    "validate_claims",
]

# Far beyond any real timestamp. Int claims (the common case) are compared with the
# int bound, exact for any size (a float bound would convert the int, and a huge one
# overflows); the float bound clamps, so float() of a huge int stays finite.
_MAX_INT_TIME: Final = 10**15
_MAX_TIME: Final = float(_MAX_INT_TIME)
_EMPTY: Final[frozenset[str]] = frozenset()
_ACCESS_TOKEN_TYPE: Final = "at+jwt"  # RFC 9068 §2.1

ID_TOKEN_TYPES: Final = frozenset({"jwt"})
"""The normalized ``typ`` values an ID token may carry besides none (RFC 7519 §5.1).

OIDC Core names no ``typ`` for ID tokens; providers send none or ``JWT``. Anything
else, ``at+jwt`` above all, marks another kind of token (RFC 8725 §3.11).
"""
ID_TOKEN_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat")
"""The claims every ID token carries (OIDC Core §2)."""


def normalize_type(value: str) -> str:
    """Lower-case a media type and drop an implied ``application/`` (RFC 7515 §4.1.9)."""
    lowered = value.lower()
    if lowered.startswith("application/") and "/" not in lowered[12:]:
        return lowered[12:]
    return lowered


class ClaimPolicy:
    """One issuer's claim rules, computed once from its :class:`~asgi_sso.config.Issuer`.

    Attributes:
        audiences: accepted audiences (empty: no check).
        required: claims that must be present.
        leeway: tolerated clock skew in seconds.
        token_types: accepted normalized ``typ`` values, or ``None`` for no check.
        scope_claims: claims read for scopes.
        sign_in_clients: the issuer's sign-in client ids, whose ID tokens are refused
            as bearer tokens (empty: none known).
        grant_claims: claims whose presence marks an access grant (the scope claims;
            ``roles`` only beside an access-token marker, see :data:`ACCESS_MARKERS`).
    """

    __slots__ = (
        "audiences",
        "grant_claims",
        "leeway",
        "required",
        "scope_claims",
        "sign_in_clients",
        "token_types",
    )

    def __init__(self, issuer: Issuer) -> None:
        self.audiences = issuer.audiences
        self.required = issuer.essential_claims
        self.leeway = issuer.leeway
        self.token_types = (
            None
            if issuer.token_types is None
            else frozenset(normalize_type(t) for t in issuer.token_types)
        )
        self.scope_claims = issuer.scope_claims
        self.sign_in_clients: frozenset[str] = (
            _EMPTY if issuer.client_id is None else frozenset({issuer.client_id})
        )
        # What an access token grants and an ID token does not: scopes (RFC 6749 §3.3,
        # Entra's delegated "scp"). App roles alone do not tell: Entra puts a user's
        # assigned roles in ID tokens too, so they count only beside ACCESS_MARKERS.
        self.grant_claims: tuple[str, ...] = self.scope_claims


def _number(claims: Mapping[str, Any], name: str) -> float | int:
    # Called for a claim that is present; the value is untrusted JSON until tested.
    value: object = claims.get(name)
    # An exact type test: bool is an int subclass, and RFC 7519 §2 NumericDate is a
    # number (null is not one: a present null is refused, never read as absent).
    if type(value) is int or type(value) is float:
        if -_MAX_TIME < value < _MAX_TIME:
            return value
        if type(value) is float and not math.isfinite(value):
            raise InvalidClaim(f"the {name!r} claim must be a finite number")
        # Clamp absurd integers so arithmetic with them cannot overflow a float.
        return max(-_MAX_TIME, min(value, _MAX_TIME))
    raise InvalidClaim(f"the {name!r} claim must be a number (seconds since the epoch)")


def _check_audience(claims: Mapping[str, Any], audiences: frozenset[str]) -> None:
    aud = claims.get("aud")
    if type(aud) is str and aud in audiences:
        return
    if aud is None:
        if audiences:
            raise InvalidAudience(f"the token has no 'aud'; expected {_expected(audiences)}")
        return
    if isinstance(aud, str):
        values: Iterable[str] = (aud,)
    elif isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        values = aud
    else:
        raise InvalidClaim("the 'aud' claim must be a string or a list of strings")
    if audiences and audiences.isdisjoint(values):
        raise InvalidAudience(f"the token audience does not match; expected {_expected(audiences)}")


def _expected(audiences: frozenset[str]) -> str:
    return " or ".join(repr(a) for a in sorted(audiences))


def _check_strings(claims: Mapping[str, Any], names: Iterable[str]) -> None:
    for name in names:
        value = claims.get(name)
        if value is None or type(value) is str:
            continue
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise InvalidClaim(f"the {name!r} claim must be a string or a list of strings")


def check_type(header: Mapping[str, Any], token_types: frozenset[str]) -> None:
    """Check the header ``typ`` against accepted normalized types (RFC 9068 §4).

    Raises:
        InvalidToken: ``typ`` is missing or not accepted.
    """
    typ = header.get("typ")
    if not isinstance(typ, str) or normalize_type(typ) not in token_types:
        expected = " or ".join(sorted(token_types))
        got = "no 'typ'" if typ is None else f"typ {printable(str(typ), 40)!r}"
        raise InvalidToken(f"the token has {got}; expected {expected}")


def check_id_token_type(header: Mapping[str, Any]) -> None:
    """Check an ID token's header ``typ``: none, or one of :data:`ID_TOKEN_TYPES`.

    Raises:
        InvalidToken: the header types the token as something else (e.g. ``at+jwt``).
    """
    typ = header.get("typ")
    if typ is None or (isinstance(typ, str) and normalize_type(typ) in ID_TOKEN_TYPES):
        return
    raise InvalidToken(
        f"an ID token must have no 'typ' or typ 'JWT'; got typ {printable(str(typ), 40)!r}"
    )


ACCESS_MARKERS: Final = frozenset({"client_id", "azpacr", "appidacr", "idtyp"})
"""Claims only access tokens carry: ``client_id`` (RFC 9068 §2.2) and Entra's
client-authentication claims (``azpacr`` v2, ``appidacr`` v1, ``idtyp`` for app-only
tokens). With one of them, an app-only token granting ``roles`` is an access token."""


def _refuse_id_token(
    claims: Mapping[str, Any], header: Mapping[str, Any], policy: ClaimPolicy
) -> None:
    # An ID token of a sign-in client is never a bearer token (OIDC Core §2: its aud
    # holds the client id). Entra's access tokens for an app's own API carry that
    # client id too, so the audience alone does not decide: RFC 9068's "at+jwt" marks
    # an access token; a "nonce" claim (which the package's sign-in always requests,
    # §3.1.2.1) marks an ID token; otherwise only a token granting scopes or roles is
    # an access token (an ID token from a refresh carries no nonce, §12.2).
    typ = header.get("typ")
    if isinstance(typ, str) and normalize_type(typ) == _ACCESS_TOKEN_TYPE:
        return
    aud = claims.get("aud")  # validated: None, a string or a list of strings
    clients = policy.sign_in_clients
    if aud is None or (aud not in clients if type(aud) is str else clients.isdisjoint(aud)):
        return
    if "nonce" not in claims:
        for name in policy.grant_claims:
            if claims.get(name):
                return
        if claims.get("roles") and not ACCESS_MARKERS.isdisjoint(claims):
            return
    raise InvalidToken("an ID token is not accepted as a bearer token; send an access token")


def validate_claims(
    claims: Mapping[str, Any],
    header: Mapping[str, Any],
    iss: str,
    policy: ClaimPolicy,
    *,
    now: float,
    audiences: frozenset[str] | None = None,
    token_types: frozenset[str] | None = None,
    required: tuple[str, ...] | None = None,
    id_token: bool = False,
) -> float:
    """Check a claim set; return its expiry time.

    Args:
        claims: the verified claim set.
        header: the verified protected header.
        iss: the concrete issuer the token was routed to.
        policy: the issuer's rules.
        now: wall-clock seconds since the epoch.
        audiences: overrides the policy's audiences (e.g. a client id for ID tokens).
        token_types: overrides the policy's accepted normalized ``typ`` values (an
            empty set: no ``typ`` check).
        required: overrides the policy's required claims (e.g. a logout token may
            carry ``sid`` instead of ``sub``).
        id_token: check an ID token (with ``audiences`` the client id): its ``typ``
            follows :func:`check_id_token_type`, never the policy's ``token_types``.
            Otherwise, under the policy's own audiences (a bearer token), an ID token
            of one of the policy's ``sign_in_clients`` is refused.

    Returns:
        ``exp`` as a float (capped far in the future), or ``inf`` without ``exp``.

    Raises:
        InvalidToken: a subclass naming the first rule the token breaks.
    """
    for name in policy.required if required is None else required:
        if claims.get(name) is None:
            raise InvalidClaim(f"the token has no {name!r} claim")
    if claims.get("iss") != iss:
        raise InvalidClaim("the 'iss' claim does not match the token's issuer")
    sub = claims.get("sub")
    if sub is not None and (type(sub) is not str or not sub):
        raise InvalidClaim("the 'sub' claim must be a non-empty string")
    exp = _check_times(claims, now, policy.leeway)
    accepted = policy.audiences if audiences is None else audiences
    aud = claims.get("aud")
    if type(aud) is not str or aud not in accepted:
        _check_audience(claims, accepted)
    for name in policy.scope_claims:
        value = claims.get(name)
        if value is not None and type(value) is not str:
            _check_strings(claims, (name,))
    _check_kind(claims, header, policy, token_types, bearer=audiences is None, id_token=id_token)
    return float("inf") if exp is None else float(exp)


def _check_kind(
    claims: Mapping[str, Any],
    header: Mapping[str, Any],
    policy: ClaimPolicy,
    token_types: frozenset[str] | None,
    *,
    bearer: bool,
    id_token: bool,
) -> None:
    # The kind of token: an ID token by its own typ rule; any other by the accepted
    # typ values, and never a sign-in client's ID token when used as a bearer token.
    if id_token:
        check_id_token_type(header)
        return
    types = policy.token_types if token_types is None else token_types
    if types:
        check_type(header, types)
    if policy.sign_in_clients and bearer:
        _refuse_id_token(claims, header, policy)


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> float | int | None:
    # RFC 7519 §4.1.4-6, each with the issuer's leeway; returns exp (None when absent).
    exp = _time(claims, "exp")
    if exp is not None and now >= exp + leeway:
        raise ExpiredToken(f"the token expired {max(int(now - exp), 0)} s ago")
    nbf = _time(claims, "nbf")
    if nbf is not None and now + leeway < nbf:
        raise NotYetValid(f"the token is not valid for another {int(nbf - now)} s")
    iat = _time(claims, "iat")
    if iat is not None and now + leeway < iat:
        raise NotYetValid(f"the token was issued {int(iat - now)} s in the future")
    return exp


def _time(claims: Mapping[str, Any], name: str) -> float | int | None:
    # None when absent. An exact int test first (the common case); _number gives the
    # precise refusal when it fails (a present null included).
    value: Any = claims.get(name)
    if value is None and name not in claims:
        return None
    if type(value) is not int or not -_MAX_INT_TIME < value < _MAX_INT_TIME:
        return _number(claims, name)
    return int(value)


def scopes_from(
    claims: Mapping[str, Any], scope_claims: Iterable[str], *, max_items: int | None = None
) -> frozenset[str]:
    """Collect scopes from space-separated strings (RFC 6749 §3.3) or string lists.

    Values of other types are ignored (:func:`validate_claims` refuses them).
    ``max_items`` bounds how many items of each list are read.
    """
    found: set[str] = set()
    for name in scope_claims:
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value[:max_items] if isinstance(item, str) and item)
    return frozenset(found) if found else _EMPTY
