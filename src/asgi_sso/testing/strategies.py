"""Hypothesis strategies: claim sets, group lists, tokens, ``return_to``, connections, emails.

Importing this module needs ``hypothesis`` (the ``test`` extra); the rest of
:mod:`asgi_sso.testing` does not.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote

from hypothesis import strategies as st

from asgi_sso.config import CertificateHeader
from asgi_sso.connections.model import CONNECTION_ID, Connection
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.testing.mtls import ClientCertificate
from asgi_sso.testing.tokens import (
    SigningKey,
    alg_none,
    b64url,
    hs256_with_public_key,
    mint,
    tamper_payload,
    tamper_signature,
)

__all__ = [
    "claim_sets",
    "connection_ids",
    "connection_issuers",
    "connections",
    "email_domains",
    "emails",
    "emails_at",
    "group_lists",
    "hostile_certificate_requests",
    "hostile_dpop_proofs",
    "hostile_return_to",
    "hostile_tokens",
    "junk_tokens",
    "valid_tokens",
]

_NOW = 1_700_000_000
_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=24)
_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=40)


def group_lists(max_size: int = 20) -> st.SearchStrategy[list[str]]:
    """Lists of group names: plain, Entra-style object ids, DN-like, unicode, duplicates."""
    name = st.one_of(
        _names,
        st.uuids().map(str),
        st.builds("cn={},ou=groups,dc=example,dc=com".format, _names),
        st.text(min_size=1, max_size=30),
    )
    return st.lists(name, max_size=max_size)


def claim_sets(
    *, issuer: str = "https://idp.example", audience: str = "api://test", now: int = _NOW
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid-looking claim sets around ``now`` with random extra claims."""
    base = st.fixed_dictionaries(
        {
            "iss": st.just(issuer),
            "sub": st.text(min_size=1, max_size=64),
            "aud": st.sampled_from([audience, [audience], [audience, "other"]]),
            "iat": st.integers(now - 3600, now),
            "exp": st.integers(now + 60, now + 86_400),
        },
        optional={
            "groups": group_lists(),
            "scope": st.lists(_names, max_size=5).map(" ".join),
            "email": st.emails(),
            "tid": st.uuids().map(str),
            "nbf": st.integers(now - 3600, now),
        },
    )
    extras = st.dictionaries(
        _names.map("ext_{}".format),  # never a registered or policy-relevant claim
        _json_scalars,
        max_size=5,
    )
    return st.builds(lambda claims, extra: {**extra, **claims}, base, extras)


def valid_tokens(key: SigningKey, **claim_kw: Any) -> st.SearchStrategy[str]:
    """Tokens signed by ``key`` over :func:`claim_sets` (``claim_kw`` passed through)."""
    return claim_sets(**claim_kw).map(lambda claims: mint(claims, key))


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"{}" + b"}" * depth


def junk_tokens() -> st.SearchStrategy[str]:
    """Strings that are not compact JWS at all, or barely: segments, padding, encodings."""
    segment = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw_json = st.one_of(
        st.just(b64url(b"[]")),
        st.just(b64url(b"null")),
        st.just(b64url('{"alg":"RS256"}'.encode("utf-16"))),
        st.just(b64url(b'{"alg":"RS256","alg":"none"}')),
        st.just(b64url(b"\xff\xfe{}")),
        st.just(b64url(_nested(5000))),
        st.just(b64url(b'{"alg":' + b"[" * 5000 + b"]" * 5000 + b"}")),
        st.just(b64url(json.dumps({"alg": "RS256", "kid": "x" * 100_000}).encode())),
    )
    parts = st.one_of(segment, raw_json, st.text(max_size=30), st.just("=="), st.just(""))
    return st.one_of(
        st.text(max_size=200),
        st.lists(parts, min_size=1, max_size=6).map(".".join),
        st.builds("{}.{}.{}".format, raw_json, raw_json, segment),
        st.just("." * 2),
        st.just("a" * 70_000),
    )


def hostile_tokens(
    key: SigningKey, *, issuer: str = "https://idp.example", audience: str = "api://test"
) -> st.SearchStrategy[str]:
    """Tokens a verifier trusting ``key`` for ``issuer`` must refuse, none of them valid.

    Mutations of a valid token, ``alg`` tricks (``none``, HS256 keyed with the public
    key, header-embedded keys, ``jku``/``x5u``, unknown ``crit``), wrong claims, and junk.
    """
    claims = claim_sets(issuer=issuer, audience=audience, now=_NOW)
    header_tricks = st.sampled_from(
        [
            {"jku": "https://evil.example/jwks"},
            {"x5u": "https://evil.example/cert"},
            {"jwk": {"kty": "oct", "k": "AAAA"}},
            {"crit": ["urn:evil"], "urn:evil": True},
            {"alg": "RS512"},
            {"alg": "HS256"},
        ]
    )
    return st.one_of(
        claims.map(lambda c: tamper_signature(mint(c, key))),
        claims.map(lambda c: tamper_payload(mint(c, key))),
        claims.map(lambda c: tamper_payload(mint(c, key), aud="someone-else")),
        claims.map(lambda c: alg_none(c)),
        claims.map(lambda c: hs256_with_public_key(c, key)),
        st.builds(lambda c, h: tamper_signature(mint(c, key, headers=h)), claims, header_tricks),
        claims.map(lambda c: mint({**c, "exp": c["iat"] - 10 - 10**6}, key)),
        claims.map(lambda c: mint({**c, "iss": issuer + ".evil.example"}, key)),
        claims.map(lambda c: mint({**c, "aud": "https://other.example"}, key)),
        junk_tokens(),
    )


def hostile_dpop_proofs(
    client: DPoPClient, method: str, url: str, token: str | None
) -> st.SearchStrategy[str]:
    """DPoP proofs a resource server must refuse for this request, token and key.

    Another method or URL, a stale or future ``iat``, a wrong ``ath``, another key
    (wrong ``jkt``), ``none``/HMAC signatures, a private key in ``jwk``, a wrong
    ``typ``, broken signatures, missing claims, and junk. Each is fresh (its own
    ``jti``), so a refusal is never the replay memory's doing. With ``token=None``:
    those a token endpoint must refuse (RFC 9449 §5), where there is no ``ath`` to
    check and any key may ask for a token.
    """
    now = int(client.clock.time())
    other_methods = st.sampled_from(["POST", "PUT", "DELETE", "get", "PATCH", ""])
    other_urls = st.one_of(
        st.sampled_from([url + "/x", url.replace("://", "://evil."), "", "not a url"]),
        st.text(max_size=40).filter(lambda u: u != url),
    )
    skews = st.one_of(st.integers(-(10**6), -3601), st.integers(3601, 10**6))
    missing = st.sampled_from(["jti", "htm", "htu", "iat", *(("ath",) if token else ())])
    bound = () if token is None else (
        st.text(max_size=20).map(lambda t: client.proof(method, url, token + "." + t)),
        st.just(0).map(lambda _: DPoPClient(clock=client.clock).proof(method, url, token)),
    )  # fmt: skip
    return st.one_of(
        other_methods.filter(lambda m: m != method).map(lambda m: client.proof(m, url, token)),
        other_urls.map(lambda u: client.proof(method, u, token)),
        skews.map(lambda d: client.proof(method, url, token, claims={"iat": now + d})),
        *bound,
        st.just(0).map(lambda _: client.none_proof(method, url, token)),
        st.just(0).map(lambda _: client.hmac_proof(method, url, token)),
        st.just(0).map(lambda _: client.private_key_proof(method, url, token)),
        st.sampled_from(["JWT", "at+jwt", "dpop", ""]).map(
            lambda typ: client.proof(method, url, token, headers={"typ": typ})
        ),
        missing.map(lambda name: client.proof(method, url, token, claims={name: None})),
        st.just(0).map(lambda _: tamper_signature(client.proof(method, url, token))),
        junk_tokens(),
    )


def hostile_certificate_requests(
    cert: ClientCertificate,
    *,
    fmt: Literal["rfc9440", "nginx", "xfcc"] = "rfc9440",
    header: str | None = None,
    proxy: str = "127.0.0.1",
) -> st.SearchStrategy[dict[str, Any]]:
    """Scope parts (``headers``, ``client``) that must not present ``cert`` (RFC 8705).

    For a middleware trusting ``proxy`` to set ``header`` (``None``: the format's
    default name) in format ``fmt`` (``"rfc9440"``, ``"nginx"`` or ``"xfcc"``):
    another certificate, a tampered one, the right one from an untrusted peer or in
    the wrong format or twice, garbage inside and outside the byte-sequence colons,
    an oversized value, junk; for ``"xfcc"`` also several elements, a ``Hash`` and
    ``Cert`` that disagree, a key given twice, an element naming no certificate.
    """
    name = CertificateHeader(trusted_proxies=(proxy,), format=fmt, header=header).name
    other = ClientCertificate("someone-else")
    encoders: dict[str, Callable[[ClientCertificate], str]] = {
        "rfc9440": ClientCertificate.rfc9440,
        "nginx": ClientCertificate.nginx,
        "xfcc": ClientCertificate.xfcc,
    }
    encode = encoders[fmt]
    right = encode(cert)

    def request(*values: str | bytes, peer: str = proxy) -> dict[str, Any]:
        raw = [v.encode("latin-1") if isinstance(v, str) else v for v in values]
        return {"headers": [(name, v) for v in raw], "client": (peer, 40000)}

    flipped = st.integers(0, len(cert.der) - 1).map(
        lambda i: cert.der[:i] + bytes([cert.der[i] ^ 0x01]) + cert.der[i + 1 :]
    )
    tampered = {
        "rfc9440": lambda der: ":" + base64.b64encode(der).decode() + ":",
        "nginx": lambda der: quote(_pem(der), safe=""),
        "xfcc": lambda der: 'Cert="' + quote(_pem(der), safe="") + '"',
    }[fmt]
    wrong = {
        "rfc9440": [cert.nginx(), cert.pem],
        "nginx": [cert.rfc9440()],  # plain PEM is escaped PEM without escapes
        "xfcc": [cert.rfc9440(), cert.nginx(), cert.pem],
    }[fmt]
    untrusted = st.sampled_from(["192.0.2.7", "10.0.0.1", "::2", "testclient", ""])
    garbage = st.binary(max_size=200).map(lambda b: ":" + base64.b64encode(b).decode() + ":")
    hostile = st.one_of(
        st.just(0).map(lambda _: request(encode(other))),
        flipped.map(tampered).map(request),
        untrusted.filter(lambda p: p != proxy).map(lambda p: request(right, peer=p)),
        st.just(0).map(lambda _: request(right, right)),
        st.sampled_from(wrong).map(request),
        garbage.map(request),
        st.binary(max_size=300).map(request),
        st.text(max_size=100).map(lambda t: request(quote(t, safe=""))),
        st.integers(17, 40).map(lambda k: request(":" + "A" * (k * 1024) + ":")),
        st.just(0).map(lambda _: request(right[: len(right) // 2])),
    )
    if fmt == "xfcc":
        hostile |= st.sampled_from(_hostile_xfcc(cert, other)).map(request)
    return hostile


def _hostile_xfcc(cert: ClientCertificate, other: ClientCertificate) -> list[str]:
    right, digest = cert.xfcc(), hashlib.sha256(cert.der).hexdigest()
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    return [
        f"{right},{other.xfcc()}",  # APPEND_FORWARD: one element per hop
        f"{other.xfcc()},{right}",
        f"{right},{right}",
        f'Hash={hashlib.sha256(other.der).hexdigest()};Cert="{cert.nginx()}"',
        f'Hash={digest};Cert="{other.nginx()}"',
        f"{right};Hash={digest}",  # a pair smuggled in twice
        f'Cert="{other.nginx()}";{right}',
        other.xfcc(cert=False),
        f"Hash={flipped}",
        f"{other.xfcc(cert=False)};URI=https://x.example/,Hash={digest}",  # unescaped URI
        "By=spiffe://cluster.local/ns/edge/sa/envoy;URI=spiffe://client",
        right + '"',
        right.replace('Cert="', "Cert=", 1),
        f'{right};Subject="{"x" * 70_000}"',  # longer than MAX_XFCC_BYTES
    ]


def _pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def hostile_return_to() -> st.SearchStrategy[str]:
    """``return_to`` values that must never send a browser off-site."""
    host = st.sampled_from(["evil.example", "evil.example:443", "user@evil.example", "127.1"])
    fixed = st.sampled_from(
        [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "https:evil.example",
            "https:",
            "http://evil.example/",
            "HTTPS://evil.example",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "%2F%2Fevil.example",
            "/%2F%2Fevil.example",
            "%5C%5Cevil.example",
            "\t//evil.example",
            " //evil.example",
            "/\t/evil.example",
            "\r\n//evil.example",
            "\uff0f\uff0fevil.example",
            "/\uff0fevil.example",
            "\u2044\u2044evil.example",
            "//evil\u3002example",
            "/.//evil.example",
            "https://app.example@evil.example/",
            "//app.example.evil.example/",
            "\x00//evil.example",
        ]
    )
    built = st.one_of(
        st.builds("//{}/{}".format, host, _names),
        st.builds(
            "{}//{}".format, st.sampled_from(["http:", "https:", "ftp:", "", "\\", "/\\"]), host
        ),
        st.builds(
            "{}{}".format, st.sampled_from(["\t", "\n", " ", "\x0b"]), st.just("//evil.example")
        ),
    )
    return st.one_of(fixed, built)


# Small pools, so that generated sets of connections share ids, issuers and domains often.
_POOL_IDS = ("acme", "globex", "initech", "a", "a-1", "umbrella.corp")
_POOL_LABELS = ("acme", "globex", "a", "b-c", "x1", "xn--bcher-kva", "example", "co")
_ISSUER_HOSTS = ("idp.example", "login.example", "acme.okta.example", "127.0.0.1:8443")
_ISSUER_PATHS = ("", "/", "/oauth2/default", "/t1/v2.0", "/t2/v2.0")
_TEMPLATE = "https://login.example/{tenant}/v2.0"
_TENANTS = ("t1", "t2", "Tenant-3")


def connection_ids() -> st.SearchStrategy[str]:
    """Valid connection ids (:data:`~asgi_sso.connections.model.CONNECTION_ID`), often repeated."""
    return st.one_of(st.sampled_from(_POOL_IDS), st.from_regex(CONNECTION_ID, fullmatch=True))


def email_domains() -> st.SearchStrategy[str]:
    """Email domains in their normal form, from a small pool of labels so that they repeat."""
    label = st.one_of(
        st.sampled_from(_POOL_LABELS),
        st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True),
    )
    return st.lists(label, min_size=2, max_size=3).map(".".join)


def connection_issuers() -> st.SearchStrategy[tuple[str, str | None]]:
    """``(issuer, tenant)`` pairs: exact issuers, or the ``{tenant}`` template and a tenant.

    The template filled with ``t1`` equals the exact ``https://login.example/t1/v2.0``,
    so sets of connections meet that collision too.
    """
    exact = st.builds(
        "https://{}{}".format, st.sampled_from(_ISSUER_HOSTS), st.sampled_from(_ISSUER_PATHS)
    )
    return st.one_of(
        st.tuples(exact, st.none()),
        st.tuples(st.just(_TEMPLATE), st.sampled_from(_TENANTS)),
    )


def connections(
    *, ids: st.SearchStrategy[str] | None = None, max_domains: int = 4
) -> st.SearchStrategy[Connection]:
    """Valid bearer-token connections: any id, issuer, domains; enabled or not."""

    def build(
        connection_id: str, issuer: tuple[str, str | None], domains: list[str], enabled: bool
    ) -> Connection:
        return Connection(
            id=connection_id,
            issuer=issuer[0],
            tenant=issuer[1],
            audience=("api://app",),
            domains=tuple(domains),
            enabled=enabled,
        )

    return st.builds(
        build,
        ids if ids is not None else connection_ids(),
        connection_issuers(),
        st.lists(email_domains(), max_size=max_domains, unique=True),
        st.booleans(),
    )


def emails_at(domain: str) -> st.SearchStrategy[str]:
    """Addresses at ``domain`` spelled any way a user types it: case, a trailing dot, spaces."""

    def spell(local: str, flips: list[bool], dot: bool, pad: str) -> str:
        cased = "".join(ch.upper() if up else ch for ch, up in zip(domain, flips, strict=True))
        return f"{pad}{local}@{cased}{'.' if dot else ''}{pad}"

    local = st.one_of(
        st.sampled_from(["jo", "first.last", "a+tag", '"quoted@local"']),
        st.from_regex(r"[A-Za-z0-9._%+-]{1,20}", fullmatch=True),
    )
    return st.builds(
        spell,
        local,
        st.lists(st.booleans(), min_size=len(domain), max_size=len(domain)),
        st.booleans(),
        st.sampled_from(["", " ", "\t"]),
    )


def emails() -> st.SearchStrategy[str]:
    """Addresses at :func:`email_domains` in any spelling, other addresses, and non-addresses."""
    return st.one_of(
        email_domains().flatmap(emails_at),
        st.emails(),
        st.text(max_size=40),
        st.sampled_from(["", "@", "a@", "@acme.example", "a@@acme.example", "a@acme..example"]),
        st.builds("{}@{}".format, st.text(max_size=10), st.text(max_size=30)),
        st.just("a" * 400 + "@acme.example"),
    )
