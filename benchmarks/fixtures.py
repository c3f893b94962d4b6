"""Key material and pre-minted tokens shared by every benchmark process.

The parent process generates one key per algorithm, mints the tokens and writes
a :class:`Material` JSON file; each candidate process loads it, so minting never
counts against a candidate and every candidate checks the very same tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://idp.bench.example"
AUDIENCE = "api://bench"
KID = "bench-key-1"
JWKS_URI = "https://idp.bench.example/jwks"

ALGORITHMS = {"RS256": "RS256", "ES256": "ES256", "Ed25519": "EdDSA", "HS256": "HS256"}
"""Report label -> JOSE ``alg`` (RFC 8037 names Ed25519 signatures ``EdDSA``)."""


def b64(raw: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    """Inverse of :func:`b64`."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Material:
    """One algorithm's public key, issuer policy and tokens, as loaded by a candidate."""

    label: str
    alg: str
    jwk: dict[str, Any]
    pem: str | None
    secret: str | None
    tokens: list[str] = field(default_factory=list)
    warmup: list[str] = field(default_factory=list)
    issuer: str = ISSUER
    audience: str = AUDIENCE
    kid: str = KID

    @property
    def jwks(self) -> dict[str, Any]:
        """The JWK set holding the one public key (empty for HS256)."""
        return {"keys": [self.jwk]} if self.jwk else {"keys": []}

    def tampered(self) -> str:
        """A token whose signature belongs to other claims: every candidate must refuse it."""
        head, _, sig = self.warmup[0].split(".")
        return ".".join((head, self.warmup[1].split(".")[1], sig))

    def save(self, path: Path) -> None:
        """Write the material as JSON."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: str | Path) -> Material:
        """Read material written by :meth:`save`."""
        return cls(**json.loads(Path(path).read_text()))


def _private_key(label: str) -> Any:
    if label == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if label == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if label == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return secrets.token_bytes(32)


def _public_jwk(label: str, key: Any) -> dict[str, Any]:
    base = {"kid": KID, "use": "sig", "alg": ALGORITHMS[label]}
    if label == "RS256":
        nums = key.public_key().public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        return {"kty": "RSA", "n": b64(n), "e": b64(nums.e.to_bytes(3, "big")), **base}
    if label == "ES256":
        nums = key.public_key().public_numbers()
        x, y = nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big")
        return {"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), **base}
    if label == "Ed25519":
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw), **base}
    return {}


def _sign(label: str, key: Any, data: bytes) -> bytes:
    if label == "RS256":
        return bytes(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    if label == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if label == "Ed25519":
        return bytes(key.sign(data))
    return hmac.new(key, data, hashlib.sha256).digest()


def _serialize(label: str, key: Any) -> bytes:
    if isinstance(key, bytes):
        return key
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _deserialize(label: str, blob: bytes) -> Any:
    return blob if label == "HS256" else serialization.load_pem_private_key(blob, None)


def _mint_range(
    label: str,
    blob: bytes,
    start: int,
    stop: int,
    now: int,
    issuer: str = ISSUER,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    key = _deserialize(label, blob)
    header = b64(
        json.dumps(
            {"alg": ALGORITHMS[label], "typ": "JWT", "kid": KID}, separators=(",", ":")
        ).encode()
    )
    out = []
    for i in range(start, stop):
        claims = {
            "iss": issuer,
            "sub": f"user-{i}",
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 6 * 3600,
            "jti": f"jti-{i}",
            "scope": "read write",
            **(extra or {}),
        }
        signing_input = f"{header}.{b64(json.dumps(claims, separators=(',', ':')).encode())}"
        out.append(f"{signing_input}.{b64(_sign(label, key, signing_input.encode()))}")
    return out


def mint(
    label: str,
    key: Any,
    count: int,
    *,
    start: int = 0,
    issuer: str = ISSUER,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """Mint ``count`` distinct tokens of ``issuer`` (unique ``sub``/``jti``), in parallel.

    ``extra`` claims (e.g. a DPoP binding, ``cnf``) are added to every token.
    """
    blob = _serialize(label, key)
    now = int(time.time())
    workers = min(os.cpu_count() or 1, 4)
    if count < 2000 or workers < 2:
        return _mint_range(label, blob, start, start + count, now, issuer, extra)
    step = -(-count // workers)
    bounds = [(start + i, min(start + i + step, start + count)) for i in range(0, count, step)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = pool.map(
            _mint_range,
            *zip(*[(label, blob, a, b, now, issuer, extra) for a, b in bounds], strict=False),
        )
        return [token for part in parts for token in part]


def make_material(label: str, count: int, *, issuer: str = ISSUER) -> tuple[Material, Any]:
    """Generate a key for ``label`` and mint ``count`` tokens plus two warm-up tokens.

    Every token names ``issuer`` in ``iss``.
    """
    key = _private_key(label)
    pem = None
    if not isinstance(key, bytes):
        pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    material = Material(
        label=label,
        alg=ALGORITHMS[label],
        jwk=_public_jwk(label, key),
        pem=pem,
        secret=b64(key) if isinstance(key, bytes) else None,
        warmup=mint(label, key, 2, start=10_000_000, issuer=issuer),
        tokens=mint(label, key, count, issuer=issuer),
        issuer=issuer,
    )
    return material, key


class _JWKSHandler(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        return


_SERVERS: dict[str, str] = {}


def serve_jwks(material: Material) -> str:
    """Serve ``material.jwks`` from 127.0.0.1 in a daemon thread; return its URL.

    PyJWKClient only fetches over HTTP, so the peers get a real (local) server;
    it is fetched once during warm-up and then served from PyJWKClient's cache.
    """
    # Keyed by the key set itself: one process may check several materials of one label.
    body = json.dumps(material.jwks, sort_keys=True)
    if body in _SERVERS:
        return _SERVERS[body]
    handler = type("Handler", (_JWKSHandler,), {"body": body.encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    _SERVERS[body] = url
    return url


def hs_secret(material: Material) -> bytes:
    """The raw HS256 secret."""
    assert material.secret is not None
    return b64decode(material.secret)


def check_refuses(verify_batch: Any, material: Material) -> None:
    """Fail loudly unless ``verify_batch`` refuses a tampered token (it must check)."""
    try:
        verify_batch([material.tampered()])
    except Exception:
        return
    raise AssertionError("candidate accepted a tampered token")


def first_sub(tokens: Sequence[str]) -> str:
    """The ``sub`` of the first token (to check a candidate returned the right claims)."""
    return str(json.loads(b64decode(tokens[0].split(".")[1]))["sub"])
