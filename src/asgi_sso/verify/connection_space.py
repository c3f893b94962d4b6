"""Connection-id spaces: which ids an issuer can give its users, and whether two can meet.

Users, sessions and revocations are keyed by ``(connection, sub)``, and ``sub`` is
unique only within its issuer (RFC 7519 §4.1.2, OIDC Core §5.7), so two different
issuers must never produce the same connection id. Each issuer's ids form a small
regular language — a literal, or ``prefix + run + suffix`` where the run is 1-128
characters of a charset — and two languages meet exactly when the product of
their automata reaches both ends. Runs at start-up only.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Final, NamedTuple

from asgi_sso.config import Issuer
from asgi_sso.errors import ConfigurationError

__all__ = ["CLAIM_CHARS", "TENANT_CHARS", "Space", "check_spaces", "spaces_of"]

TENANT = "{tenant}"
# RFC 3986 pchar without percent-encoding: a template tenant is one path segment.
TENANT_CHARS: Final = string.ascii_letters + string.digits + "._~!$&'()*+,;=:@-"
# RFC 3986 unreserved: a broker's connection claim cannot spell a URL or a separator.
CLAIM_CHARS: Final = string.ascii_letters + string.digits + "._~-"

# One position of a pattern: the characters it accepts, and whether it repeats (x*).
_Atom = tuple[frozenset[str], bool]


class Space(NamedTuple):
    """The connection ids one issuer can produce.

    Attributes:
        issuer: the issuer producing them.
        atoms: the pattern, one atom per literal character or run.
        is_iss: the ids are the token's ``iss`` itself, so an id shared with another
            issuer's ``iss`` space names one and the same issuer.
    """

    issuer: Issuer
    atoms: tuple[_Atom, ...]
    is_iss: bool


def literal_atoms(text: str) -> tuple[_Atom, ...]:
    """The atoms matching exactly ``text``."""
    return tuple((frozenset(c), False) for c in text)


def _pattern_atoms(pattern: str, chars: str) -> tuple[_Atom, ...]:
    prefix, _, suffix = pattern.partition(TENANT)
    run = frozenset(chars)
    # The 128-character bound is left out: the language only grows, so the check stays safe.
    return (*literal_atoms(prefix), (run, False), (run, True), *literal_atoms(suffix))


def spaces_of(config: Issuer) -> tuple[Space, ...]:
    """The connection-id spaces of one issuer (a broker also keeps its own ``iss``)."""
    pattern = config.connection_pattern
    chars = CLAIM_CHARS if config.connection_claim is not None else TENANT_CHARS
    atoms = _pattern_atoms(pattern, chars) if TENANT in pattern else literal_atoms(pattern)
    main = Space(config, atoms, pattern == config.issuer)
    if config.connection_claim is None:
        return (main,)
    return (main, Space(config, literal_atoms(config.issuer), True))


def _closure(atoms: Sequence[_Atom], i: int) -> tuple[int, ...]:
    return (i, i + 1) if i < len(atoms) and atoms[i][1] else (i,)


def meet(a: Sequence[_Atom], b: Sequence[_Atom]) -> bool:
    """Whether some string matches both patterns (a walk of the product automaton)."""
    seen = {(0, 0)}
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        for x in _closure(a, i):
            for y in _closure(b, j):
                if x == len(a) and y == len(b):
                    return True
                if x == len(a) or y == len(b) or not a[x][0] & b[y][0]:
                    continue
                step = (x if a[x][1] else x + 1, y if b[y][1] else y + 1)
                if step not in seen:
                    seen.add(step)
                    todo.append(step)
    return False


def check_spaces(issuers: Sequence[Issuer]) -> tuple[Space, ...]:
    """Refuse issuers whose connection ids can meet; return every space.

    Raises:
        ConfigurationError: two different issuers (or a broker's own ``iss`` and one
            of its connections) can produce the same connection id.
    """
    spaces = [space for config in issuers for space in spaces_of(config)]
    for n, first in enumerate(spaces):
        for second in spaces[n + 1 :]:
            if first.is_iss and second.is_iss:
                continue
            if meet(first.atoms, second.atoms):
                raise ConfigurationError(
                    f"issuers {first.issuer.label!r} and {second.issuer.label!r} can give "
                    "their users the same connection id, so a user of one could be taken "
                    "for a user of the other; give one of them a distinct Issuer.connection "
                    "(e.g. 'name:{tenant}' or a name no other issuer can produce)"
                )
    return tuple(spaces)
