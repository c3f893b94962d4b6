"""Framework-neutral access checks on the principal ``SSOMiddleware`` put in the scope.

The FastAPI dependencies and Litestar guards only translate the
:class:`~asgi_sso.errors.AuthError` these checks return into their framework's
exception; nothing here verifies a token again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from asgi_sso.errors import AuthError, ConfigurationError, CredentialsMissing, InsufficientScope
from asgi_sso.principal import Principal
from asgi_sso.responses import challenge_header

__all__ = ["Rule", "challenge", "principal_in", "tier_rule", "tiers_from"]


def principal_in(scope: Mapping[str, Any]) -> Any:
    """The principal in an ASGI scope.

    Raises:
        ConfigurationError: ``scope["user"]`` is missing: the app is not wrapped
            by ``SSOMiddleware`` (a deployment mistake, not a client error).
    """
    if "user" not in scope:
        raise ConfigurationError("scope['user'] is missing: wrap the app in asgi_sso.SSOMiddleware")
    return scope["user"]


def tiers_from(minimum: str, ranking: Sequence[str] | None) -> frozenset[str]:
    """The tiers that satisfy ``minimum``.

    Args:
        minimum: the lowest acceptable tier.
        ranking: tier names listed highest first (as given to
            :class:`~asgi_sso.PriorityTierMapper`); ``None`` accepts ``minimum`` only.

    Raises:
        ConfigurationError: ``minimum`` is not one of the ranked tiers.
    """
    if ranking is None:
        return frozenset({minimum})
    if isinstance(ranking, str):
        raise ConfigurationError("ranking must list tiers, not be a single string")
    names = list(ranking)
    if minimum not in names:
        raise ConfigurationError(f"tier {minimum!r} is not in the ranking {names!r}")
    return frozenset(names[: names.index(minimum) + 1])


class Rule:
    """What a route needs: an authenticated principal, scopes, and a tier.

    Args:
        scopes: every one of these must be granted.
        tiers: the principal's tier must be one of these (``None``: any tier, or none).
        minimum: the principal's tier must be this one or one its tier mapper ranks
            higher (``Principal.has_tier``); used when no explicit ``tiers`` are given.
        label: how the tier requirement is described in a refusal.
    """

    __slots__ = ("label", "minimum", "scopes", "tiers")

    def __init__(
        self,
        *,
        scopes: Iterable[str] = (),
        tiers: frozenset[str] | None = None,
        minimum: str | None = None,
        label: str = "",
    ) -> None:
        self.scopes = tuple(scopes)
        self.tiers = tiers
        self.minimum = minimum
        self.label = label
        if any(not s or " " in s for s in self.scopes):
            raise ConfigurationError("required scopes must be non-empty and contain no spaces")
        if tiers is not None and not tiers:
            raise ConfigurationError("a tier rule needs at least one tier")
        if minimum is not None and (not isinstance(minimum, str) or not minimum):
            raise ConfigurationError("the minimum tier must be a non-empty tier name")

    def check(self, user: Any) -> Principal:
        """Return the principal when the rule holds.

        Raises:
            CredentialsMissing: nobody is signed in.
            InsufficientScope: a scope or the tier is missing.
        """
        if not isinstance(user, Principal) or not user.is_authenticated:
            raise CredentialsMissing()
        missing = tuple(s for s in self.scopes if s not in user.scopes)
        if missing:
            raise InsufficientScope(
                f"this resource requires the scope(s): {' '.join(missing)}", scopes=self.scopes
            )
        if self.tiers is not None and user.tier not in self.tiers:
            raise InsufficientScope(f"this resource requires the {self.label} tier")
        if self.minimum is not None and not user.has_tier(self.minimum):
            raise InsufficientScope(f"this resource requires the {self.label} tier")
        return user


def tier_rule(minimum: str, ranking: Sequence[str] | None) -> Rule:
    """The rule "tier ``minimum`` or higher".

    With ``ranking``, the tiers it lists at or above ``minimum`` (see
    :func:`tiers_from`); without, the order of the principal's tier mapper
    (``Principal.tier_ranks``; only ``minimum`` itself when it has none).
    """
    if ranking is None:
        return Rule(minimum=minimum, label=f"{minimum} (or higher)")
    return Rule(tiers=tiers_from(minimum, ranking), label=f"{minimum} (or higher)")


def challenge(error: AuthError, realm: str) -> dict[str, str]:
    """The RFC 6750 §3 ``WWW-Authenticate`` header for ``error``, as a header dict."""
    value = challenge_header(error, realm)
    return {} if value is None else {"WWW-Authenticate": value.decode("latin-1")}
