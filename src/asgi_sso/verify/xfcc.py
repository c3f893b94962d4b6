"""Envoy's ``x-forwarded-client-cert`` (XFCC) header: the pairs of its one element.

XFCC is a comma-separated list of elements, one per proxy hop that added one, the
nearest proxy's last. An element is ``;``-separated ``Key=value`` pairs: keys are
case-insensitive; a value is bare (no ``"``, ``,``, ``;``, space or control
character) or double-quoted with ``\\`` escaping the next character. ``By``,
``URI`` and ``DNS`` repeat, one pair per name; ``Hash``, ``Cert``, ``Chain`` and
``Subject`` come once at most.

Only a header of exactly one element is read: the one the trusted proxy set
(``forward_client_cert_details: SANITIZE_SET``) for the TLS handshake it made with
the client. With several, an earlier element came from whoever sent the request to
that proxy, and a later one describes another hop's peer. Anything else in the
grammar, a key given twice among the once-only ones included, is malformed. One
left-to-right pass: every pattern has one way to match each byte, so the cost is
linear in the header's length (its bound is the caller's).
"""

from __future__ import annotations

import re

__all__ = ["ONCE", "MalformedXFCC", "only_element"]

ONCE = frozenset({"hash", "cert", "chain", "subject"})
"""Keys Envoy sends at most once per element (lower case); the pairs returned."""

_KEY = rb"([A-Za-z0-9_.-]+)"
# A quoted value without backtracking across escapes: runs of plain bytes, each
# escape a backslash and one byte (Friedl's unrolled loop). No raw ';': Envoy never
# writes one inside quotes (Cert is URL-escaped, Subject RFC 2253-escaped), while a
# client's opening quote closed by a '"' in a SAN Envoy writes unquoted would swallow
# Envoy's own element, whose Hash is always followed by a ';'.
_QUOTED = rb'"([^"\\;]*(?:\\.[^"\\;]*)*)"'
_BARE = rb"([!#-+\--:<-~]*)"  # visible ASCII but '"', ',' and ';'
_PAIR = re.compile(_KEY + rb"=(?:" + _QUOTED + rb"|" + _BARE + rb")", re.DOTALL)
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


class MalformedXFCC(ValueError):
    """The header is not one well-formed XFCC element; the message says why."""


def only_element(value: bytes) -> dict[str, bytes]:
    """The once-only pairs (:data:`ONCE`) of the header's single element.

    Args:
        value: the header's value, bounded by the caller.

    Returns:
        Lower-case key to value, quotes and escapes removed; repeatable and
        unknown keys are checked for form and left out.

    Raises:
        MalformedXFCC: not exactly one well-formed element, or a once-only key twice.
    """
    value = value.strip(b" \t")
    pairs: dict[str, bytes] = {}
    position = 0
    while True:
        match = _PAIR.match(value, position)
        if match is None:
            raise MalformedXFCC(
                f"is not an x-forwarded-client-cert element: no Key=value at byte {position}"
            )
        key = match.group(1).decode("ascii").lower()
        if key in ONCE:
            if key in pairs:
                raise MalformedXFCC(f"names {key.capitalize()} more than once")
            quoted = match.group(2)
            pairs[key] = match.group(3) if quoted is None else _ESCAPE.sub(rb"\1", quoted)
        position = match.end()
        if position == len(value):
            return pairs
        separator = value[position : position + 1]
        if separator == b",":
            raise MalformedXFCC(
                "holds more than one element (one per proxy hop): have the proxy that "
                "verifies client certificates set it alone (forward_client_cert_details: "
                "SANITIZE_SET)"
            )
        if separator != b";":
            raise MalformedXFCC(
                f"is not an x-forwarded-client-cert element: no ';' at byte {position}"
            )
        position += 1
