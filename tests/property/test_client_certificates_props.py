"""Property tests for reading a client key with its certificate from PEM text.

Whatever the order of the blocks and whatever text lies between them, the same key
and certificate are read; a certificate for another key is always refused.
"""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from _certs import pem_of
from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.client_auth import load_client_key, load_public_key
from asgi_sso.testing import ClientCertificate

CA = ClientCertificate("test-ca", ca=True)
LEAF = ClientCertificate("app", issuer=CA)
OTHER = ClientCertificate("other")
KEY = LEAF.key_pem().decode()
KID = load_client_key(KEY).kid

# Text found around PEM blocks in real files: openssl's "Bag Attributes", comments, blanks.
junk = st.text(
    alphabet=st.characters(blacklist_characters="-", blacklist_categories=("Cs",)), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(key_first=st.booleans(), with_ca=st.booleans(), gaps=st.lists(junk, min_size=4, max_size=4))
@example(key_first=False, with_ca=False, gaps=["{", "", "", ""])  # not taken for a JWK
def test_key_and_certificate_in_any_order_with_junk_between_read_the_same(
    key_first: bool, with_ca: bool, gaps: list[str]
) -> None:
    certificates = [LEAF.pem, CA.pem] if with_ca else [LEAF.pem]
    blocks = [KEY, *certificates] if key_first else [*certificates, KEY]
    text = gaps[0] + "".join(block + gap for block, gap in zip(blocks, gaps[1:], strict=False))
    key = load_client_key(text)
    assert key.kid == KID
    assert key.certificate is not None
    assert key.certificate.x5t_s256 == LEAF.thumbprint
    assert len(key.public_jwk()["x5c"]) == len(certificates)
    assert load_public_key(text).public_jwk() == key.public_jwk()


@settings(max_examples=30, deadline=None)
@given(key_first=st.booleans(), gap=junk)
def test_a_certificate_for_another_key_is_always_refused(key_first: bool, gap: str) -> None:
    blocks = [KEY, OTHER.pem] if key_first else [OTHER.pem, KEY]
    with pytest.raises(ConfigurationError, match="not for this key") as caught:
        load_client_key(gap.join(blocks))
    assert "PRIVATE" not in str(caught.value)


_DER = LEAF.der
_VERSION_AT = _DER.index(bytes.fromhex("a003020102")) + 4  # the version number


@settings(max_examples=150, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, len(_DER) - 1), st.integers(0, 255)), min_size=1, max_size=4
    ),
    as_jwk=st.booleans(),
)
@example(changes=[(_VERSION_AT, 15)], as_jwk=True)  # InvalidVersion, which is no ValueError
@example(changes=[(_VERSION_AT, 15)], as_jwk=False)
def test_a_damaged_certificate_is_read_or_refused_never_an_error(
    changes: list[tuple[int, int]], as_jwk: bool
) -> None:
    der = bytearray(_DER)
    for at, value in changes:
        der[at] = value
    if as_jwk:
        x5c = [base64.b64encode(bytes(der)).decode()]
        text = json.dumps({**ECKey.import_key(KEY).as_dict(private=True), "x5c": x5c})
    else:
        text = KEY + pem_of(bytes(der))
    for load in (load_client_key, load_public_key):
        with contextlib.suppress(ConfigurationError):  # anything else fails the test
            load(text)


_PUBLIC = ECKey.import_key(KEY).as_dict(private=False)


@settings(max_examples=60, deadline=None)
@given(
    members=st.sets(st.sampled_from(["p", "q", "dp", "dq", "qi", "k"]), min_size=1),
    value=st.text(alphabet="ABCDEFabcdef0123456789-_", min_size=1, max_size=40),
)
def test_a_public_jwk_with_any_private_member_is_never_read(members: set[str], value: str) -> None:
    jwk = {**_PUBLIC, **dict.fromkeys(members, value)}
    with pytest.raises(ConfigurationError) as caught:
        load_public_key(json.dumps(jwk))
    # A fixed message: nothing of the members is echoed.
    assert str(caught.value) == (
        "published_keys: the JWK holds private members but no private key (d)"
    )
