"""The parser's base64url decoding against an obviously strict reference (RFC 7515 §2, RFC 4648 §5).

Every segment spelling the reference refuses is refused, and every one it accepts
decodes to the same bytes, whichever segment (claims or signature) it sits in.
"""

from __future__ import annotations

import base64
import json
import re

from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.config import Limits
from asgi_sso.errors import MalformedToken
from asgi_sso.testing.tokens import b64url
from asgi_sso.verify.jws import JWSParser, ParsedToken

_STRICT = re.compile(r"[A-Za-z0-9_-]*\Z")
_HEADER = b64url(json.dumps({"alg": "RS256"}).encode())
_CLAIMS = b64url(json.dumps({"iss": "https://idp.test", "sub": "s"}).encode())
_SIGNATURE = b64url(b"\x07" * 256)
# Base64url characters, the standard alphabet's, padding, and what a JSON string
# would treat specially (quote, backslash escapes, control characters).
_CHARS = st.sampled_from(
    list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    + list('+/="\\ \t\n\r\x00!.%u\x7f')
)
_SEGMENT = st.one_of(
    st.text(_CHARS, max_size=40),
    st.binary(max_size=40).map(b64url),
    st.builds(lambda raw, c, i: (b64url(raw) + "A")[:i] + c + (b64url(raw) + "A")[i:],
              st.binary(min_size=1, max_size=30), _CHARS, st.integers(0, 41)),
)  # fmt: skip


def reference(segment: str) -> bytes | None:
    """Strict base64url: alphabet, no padding, length not 1 mod 4, zero unused bits."""
    if not _STRICT.match(segment) or len(segment) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return raw if b64url(raw) == segment else None


def parsed(token: str) -> ParsedToken | None:
    try:
        return JWSParser(Limits()).parse(token)
    except MalformedToken:
        return None


@given(_SEGMENT)
@example('AAAA"')
@example("AA\\u0041")
@example("QR")
@example("AAA=")
def test_signature_segment_decodes_exactly_like_the_reference(segment: str) -> None:
    expected = reference(segment) or None  # an empty signature is refused too
    result = parsed(f"{_HEADER}.{_CLAIMS}.{segment}")
    assert (result and result.signature) == expected, segment


@given(_SEGMENT)
@example('eyJ9"')
@example("eyJ9\\u0041")
def test_claims_segment_decodes_exactly_like_the_reference(segment: str) -> None:
    expected = reference(segment)
    result = parsed(f"{_HEADER}.{segment}.{_SIGNATURE}")
    if result is not None:
        assert result.payload == expected, segment
    elif expected is not None:  # decodes, but is refused for not being a JSON object
        try:
            value = json.loads(expected)
        except ValueError:
            return
        assert not isinstance(value, dict), segment


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=6))
def test_any_claim_set_round_trips(claims: dict[str, object]) -> None:
    payload = json.dumps(claims).encode()
    parsed = JWSParser(Limits()).parse(f"{_HEADER}.{b64url(payload)}.{_SIGNATURE}")
    assert parsed.claims == claims
    assert parsed.payload == payload
