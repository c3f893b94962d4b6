"""Strict compact JWS parsing and the lean signature verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from asgi_sso.config import Limits
from asgi_sso.errors import InvalidSignature, MalformedToken, UnknownKey
from asgi_sso.keys.jwk import VerificationKey, key_from_public, key_from_secret
from asgi_sso.testing.tokens import b64url
from asgi_sso.verify.jws import JWSParser, verify_signature

CLAIMS = {"iss": "https://idp.test", "sub": "alice"}
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def segment(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return b64url(raw)


def compact(header: object, claims: object = CLAIMS, signature: bytes = b"\x01" * 8) -> str:
    return f"{segment(header)}.{segment(claims)}.{b64url(signature)}"


@pytest.fixture
def parser() -> JWSParser:
    return JWSParser(Limits())


def test_parses_header_claims_signing_input_and_signature(parser: JWSParser) -> None:
    token = compact({"alg": "RS256", "kid": "k1"}, signature=b"sig")
    parsed = parser.parse(token)
    assert parsed.header == {"alg": "RS256", "kid": "k1"}
    assert parsed.claims == CLAIMS
    assert parsed.alg == "RS256"
    assert parsed.kid == "k1"
    assert parsed.signing_input == token.rsplit(".", 1)[0].encode()
    assert parsed.signature == b"sig"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        ".eyJ9.c2ln",
        "eyJ9..c2ln",
        "eyJ9.eyJ9.",
        "eyJ9.eyJ9.c2ln ",
        " eyJ9.eyJ9.c2ln",
        "eyJ9.eyJ9.c2l\nn",
        "eyJ9.eyJ9.c2ln==",
        "eyJ9.eyJ9.c2l+",
        "eyJ9.eyJ9.c2l/",
        "eyJ9.eyJ9.c2lé",
    ],
)
def test_non_compact_text_is_malformed(parser: JWSParser, token: str) -> None:
    with pytest.raises(MalformedToken):
        parser.parse(token)


def test_non_text_is_malformed(parser: JWSParser) -> None:
    with pytest.raises(MalformedToken, match="text"):
        parser.parse(b"a.b.c")


def test_size_is_checked_before_anything_else() -> None:
    parser = JWSParser(Limits(max_token_bytes=64))
    with pytest.raises(MalformedToken, match="longer than 64"):
        parser.parse("é" * 65)


def test_padded_segments_are_refused(parser: JWSParser) -> None:
    head = base64.urlsafe_b64encode(b'{"alg":"RS256"} ').decode()
    assert head.endswith("=")
    with pytest.raises(MalformedToken):
        parser.parse(f"{head}.{segment(CLAIMS)}.c2ln")


def test_standard_alphabet_is_refused(parser: JWSParser) -> None:
    claims = base64.b64encode(b'{"a":"???~~~"}').decode().rstrip("=")
    assert "+" in claims or "/" in claims
    with pytest.raises(MalformedToken):
        parser.parse(f"{segment({'alg': 'RS256'})}.{claims}.c2ln")


def test_segment_length_one_mod_four_is_refused(parser: JWSParser) -> None:
    with pytest.raises(MalformedToken, match="badly encoded"):
        parser.parse(f"{segment({'alg': 'RS256'})}.{segment(CLAIMS)}.c2lnA")


def test_non_canonical_last_character_is_refused(parser: JWSParser) -> None:
    # "c2k" decodes to b"si"; "c2l" spells the same bytes with a non-zero unused bit.
    base = f"{segment({'alg': 'RS256'})}.{segment(CLAIMS)}"
    assert parser.parse(f"{base}.c2k").signature == b"si"
    with pytest.raises(MalformedToken, match="badly encoded"):
        parser.parse(f"{base}.c2l")


def test_utf16_json_is_refused(parser: JWSParser) -> None:
    header = segment(json.dumps({"alg": "RS256"}).encode("utf-16"))
    with pytest.raises(MalformedToken, match="UTF-8 JSON"):
        parser.parse(f"{header}.{segment(CLAIMS)}.c2ln")
    claims = segment(json.dumps(CLAIMS).encode("utf-16-le"))
    with pytest.raises(MalformedToken, match="UTF-8 JSON"):
        parser.parse(f"{segment({'alg': 'RS256'})}.{claims}.c2ln")


def test_invalid_utf8_is_refused(parser: JWSParser) -> None:
    with pytest.raises(MalformedToken, match="UTF-8 JSON"):
        parser.parse(compact({"alg": "RS256"}, b'{"a":"\xff"}'))


@pytest.mark.parametrize("claims", [[1, 2], "text", 42, None])
def test_claims_must_be_a_json_object(parser: JWSParser, claims: object) -> None:
    with pytest.raises(MalformedToken, match="not a JSON object"):
        parser.parse(compact({"alg": "RS256"}, claims))


def test_nesting_beyond_the_limit_is_refused(parser: JWSParser) -> None:
    deep: object = "x"
    for _ in range(17):
        deep = [deep]
    with pytest.raises(MalformedToken, match="nested too deeply"):
        parser.parse(compact({"alg": "RS256"}, {"a": deep}))


def test_nesting_at_the_limit_and_many_brackets_in_strings_are_fine(parser: JWSParser) -> None:
    deep: object = "x"
    for _ in range(15):
        deep = {"k": deep}
    parsed = parser.parse(compact({"alg": "RS256"}, {"a": deep, "s": "[[[[{{{{" * 10}))
    assert parsed.claims["s"].startswith("[[[[")


def test_hostile_deep_nesting_is_malformed_not_recursion_error(parser: JWSParser) -> None:
    raw = b"[" * 12000 + b"]" * 12000
    parser = JWSParser(Limits(max_token_bytes=64 * 1024))
    with pytest.raises(MalformedToken):
        parser.parse(f"{segment({'alg': 'RS256'})}.{segment(raw)}.c2ln")


def test_duplicate_members_keep_the_lexically_last(parser: JWSParser) -> None:
    # RFC 7515 §4 allows a parser that returns only the lexically last member.
    claims = segment(b'{"sub":"alice","sub":"mallory"}')
    assert parser.parse(f"{segment({'alg': 'RS256'})}.{claims}.c2ln").claims == {"sub": "mallory"}


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(parser: JWSParser, alg: str) -> None:
    with pytest.raises(MalformedToken, match="none"):
        parser.parse(compact({"alg": alg}))


@pytest.mark.parametrize("header", [{}, {"alg": 256}, {"alg": ""}, {"alg": None}])
def test_header_needs_a_string_alg(parser: JWSParser, header: dict[str, object]) -> None:
    with pytest.raises(MalformedToken, match="'alg'"):
        parser.parse(compact(header))


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "x"])
def test_any_crit_is_refused(parser: JWSParser, crit: object) -> None:
    with pytest.raises(MalformedToken, match="critical"):
        parser.parse(compact({"alg": "RS256", "crit": crit, "exp": 1}))


def test_unencoded_payload_is_refused(parser: JWSParser) -> None:
    with pytest.raises(MalformedToken, match="b64"):
        parser.parse(compact({"alg": "RS256", "b64": False}))


@pytest.mark.parametrize("member", [{"kid": 7}, {"kid": ["a"]}, {"typ": 1}])
def test_kid_and_typ_must_be_strings(parser: JWSParser, member: dict[str, object]) -> None:
    with pytest.raises(MalformedToken, match="must be a string"):
        parser.parse(compact({"alg": "RS256", **member}))


@pytest.mark.parametrize("length", [257, 10_000])
def test_an_over_long_kid_is_refused_when_parsed(parser: JWSParser, length: int) -> None:
    with pytest.raises(MalformedToken, match="'kid' is longer than 256 characters"):
        parser.parse(compact({"alg": "RS256", "kid": "k" * length}))


def test_a_kid_up_to_the_limit_is_accepted() -> None:
    parser = JWSParser(Limits(max_kid_length=8))
    assert parser.parse(compact({"alg": "RS256", "kid": "k" * 8})).kid == "k" * 8
    with pytest.raises(MalformedToken, match="longer than 8"):
        parser.parse(compact({"alg": "RS256", "kid": "k" * 9}))


def test_harmless_and_key_location_members_are_kept_but_unused(parser: JWSParser) -> None:
    header = {
        "alg": "RS256",
        "nonce": "entra",
        "jku": "https://evil.test/jwks",
        "x5u": "https://evil.test/cert",
        "jwk": {"kty": "oct", "k": "AAAA"},
        "x5c": ["AAAA"],
    }
    parsed = parser.parse(compact(header))
    assert parsed.header == header
    assert parsed.kid is None


# --- signatures ------------------------------------------------------------------------

DATA = b"header.payload"


def _raw_ec(signature_der: bytes, size: int) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(signature_der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _signed(alg: str) -> tuple[VerificationKey, bytes]:
    if alg.startswith("RS"):
        digest = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}[alg]
        return key_from_public(RSA_KEY), RSA_KEY.sign(DATA, padding.PKCS1v15(), digest())
    if alg.startswith("PS"):
        algorithm = {"PS256": hashes.SHA256, "PS384": hashes.SHA384, "PS512": hashes.SHA512}[alg]()
        pss = padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
        return key_from_public(RSA_KEY), RSA_KEY.sign(DATA, pss, algorithm)
    if alg.startswith("ES"):
        curve, size, digest = {
            "ES256": (ec.SECP256R1(), 32, hashes.SHA256()),
            "ES384": (ec.SECP384R1(), 48, hashes.SHA384()),
            "ES512": (ec.SECP521R1(), 66, hashes.SHA512()),
        }[alg]
        private = EC_KEY if alg == "ES256" else ec.generate_private_key(curve)
        return key_from_public(private), _raw_ec(private.sign(DATA, ec.ECDSA(digest)), size)
    if alg in ("EdDSA", "Ed25519"):
        ed = ed25519.Ed25519PrivateKey.generate()
        return key_from_public(ed), ed.sign(DATA)
    secret = b"s" * 64
    digestmod = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return key_from_secret(secret), hmac.new(secret, DATA, digestmod).digest()


ALGORITHMS = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
    "EdDSA", "Ed25519", "HS256", "HS384", "HS512",
]  # fmt: skip


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_every_algorithm_verifies_and_refuses_a_flipped_bit(alg: str) -> None:
    key, signature = _signed(alg)
    assert verify_signature(alg, DATA, signature, (key,)) is key
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(InvalidSignature):
        verify_signature(alg, DATA, flipped, (key,))
    with pytest.raises(InvalidSignature):
        verify_signature(alg, DATA + b"x", signature, (key,))


def test_ed448_verifies_eddsa_only() -> None:
    ed = ed448.Ed448PrivateKey.generate()
    key = key_from_public(ed)
    assert verify_signature("EdDSA", DATA, ed.sign(DATA), (key,)) is key
    with pytest.raises(UnknownKey):
        verify_signature("Ed25519", DATA, ed.sign(DATA), (key,))


def test_ecdsa_refuses_der_and_wrong_length_signatures() -> None:
    key = key_from_public(EC_KEY)
    der = EC_KEY.sign(DATA, ec.ECDSA(hashes.SHA256()))
    for bad in (der, _raw_ec(der, 32) + b"\0", _raw_ec(der, 32)[:-1]):
        with pytest.raises(InvalidSignature):
            verify_signature("ES256", DATA, bad, (key,))


def test_candidates_are_tried_in_order_until_one_verifies() -> None:
    other = key_from_public(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    key, signature = _signed("RS256")
    assert verify_signature("RS256", DATA, signature, (other, key)) is key


def test_a_key_that_cannot_verify_the_alg_is_never_used() -> None:
    class Liar:
        kid = None
        key = RSA_KEY.public_key()

        def can_verify(self, alg: str) -> bool:
            return False

    _, signature = _signed("RS256")
    with pytest.raises(UnknownKey):
        verify_signature("RS256", DATA, signature, (Liar(),))


def test_public_key_as_hmac_secret_never_verifies() -> None:
    """The classic confusion: HS256 keyed with the RSA public key bytes."""
    from cryptography.hazmat.primitives import serialization

    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = hmac.new(pem, DATA, hashlib.sha256).digest()

    class Confused:
        kid = None
        key = RSA_KEY.public_key()

        def can_verify(self, alg: str) -> bool:
            return True

    with pytest.raises(InvalidSignature):
        verify_signature("HS256", DATA, forged, (Confused(),))


def test_unknown_algorithm_is_refused() -> None:
    key, signature = _signed("RS256")
    with pytest.raises(InvalidSignature, match="not supported"):
        verify_signature("RS1", DATA, signature, (key,))


@pytest.mark.parametrize("part", [0, 1, 2])
@pytest.mark.parametrize("junk", [" ", "!", ".", "=", "+", "/", "\n", "~", "*"])
def test_a_stray_character_in_any_segment_is_refused(
    parser: JWSParser, part: int, junk: str
) -> None:
    good = compact({"alg": "RS256"}, signature=b"0123456789")
    parser.parse(good)  # the header is cached now: a stray character must still be found
    segments = good.split(".")
    segments[part] = segments[part][:4] + junk + segments[part][4:]
    with pytest.raises(MalformedToken):
        parser.parse(".".join(segments))


# PKCS#1 v1.5 signatures are checked by recovering the encoded message and comparing
# it whole with the expected one (RFC 8017 §8.2.2): these encodings, signed with the
# private key, must all be refused.
_SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _raw_rsa_signature(encoded: bytes) -> bytes:
    numbers = RSA_KEY.private_numbers()
    n = numbers.public_numbers.n
    size = (n.bit_length() + 7) // 8
    value = pow(int.from_bytes(encoded.rjust(size, b"\x00"), "big"), numbers.d, n)
    return value.to_bytes(size, "big")


def _em(body: bytes, size: int = 256) -> bytes:
    return b"\x00\x01" + b"\xff" * (size - 3 - len(body)) + b"\x00" + body


def test_the_rsa_check_itself_accepts_a_hand_encoded_signature() -> None:
    key = key_from_public(RSA_KEY)
    signature = _raw_rsa_signature(_em(_SHA256_INFO + hashlib.sha256(DATA).digest()))
    assert verify_signature("RS256", DATA, signature, (key,)) is key


@pytest.mark.parametrize(
    "encoded",
    [
        _em(hashlib.sha256(DATA).digest()),  # the bare hash, no DigestInfo
        _em(bytes.fromhex("3021300906052b0e03021a05000414") + hashlib.sha1(DATA).digest()),
        _em(_SHA256_INFO + hashlib.sha256(DATA).digest() + b"junk"),  # trailing bytes
        _em(_SHA256_INFO + hashlib.sha256(DATA).digest() + b"\x00" * 8),
        _em(b"\x00" + _SHA256_INFO + hashlib.sha256(DATA).digest()),  # one byte shifted
        b"\x00\x02" + b"\xff" * 202 + b"\x00" + _SHA256_INFO + hashlib.sha256(DATA).digest(),
        _em(_SHA256_INFO + hashlib.sha256(DATA + b"x").digest()),
    ],
)
def test_rsa_encodings_other_than_the_expected_one_are_refused(encoded: bytes) -> None:
    assert len(encoded) == 256
    with pytest.raises(InvalidSignature):
        verify_signature("RS256", DATA, _raw_rsa_signature(encoded), (key_from_public(RSA_KEY),))


def test_rsa_signatures_must_be_exactly_the_modulus_length() -> None:
    key = key_from_public(RSA_KEY)
    for n in range(5000):  # find a signature with a leading zero byte (1 in 256)
        message = DATA + str(n).encode()
        signature = RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
        if signature[0] == 0:
            break
    else:  # pragma: no cover - 5000 tries without one: about e^-19
        raise AssertionError("no signature with a leading zero byte")
    assert verify_signature("RS256", message, signature, (key,)) is key
    for variant in (signature[1:], b"\x00" + signature):
        with pytest.raises(InvalidSignature):
            verify_signature("RS256", message, variant, (key,))
