"""Suite ``refusals``: what refused requests leave behind, measured in a fresh process.

One :class:`~asgi_sso.SSOMiddleware` (an RS256 issuer, browser sign-in with a
server-side :class:`~asgi_sso.MemorySessionStore`, an enabled
:class:`~asgi_sso.AuditLogger`) answers ``count`` requests of each kind
below, every one different and every one refused (or, for ``/login``, a redirect
that nobody follows). Reported per kind: what the process keeps after all
``3 * count`` requests (RSS and ``tracemalloc``: the bounded caches, full), the
growth per 1,000 requests over the last ``count`` of them (after ``2 * count``
filled every bounded cache: what *keeps* growing, about zero for a kind that
costs constant memory), and the mean wall time per request.

Kinds: a malformed token; a bad signature under a random ``kid`` (unknown to the
JWKS, so it meets the negative cache); a token from an unknown issuer; a ``kid``
longer than ``Limits.max_kid_length``; a 100 KB path through the audit log; an
anonymous ``GET /auth/login``.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import resource
import secrets
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import Budget, Progress, run_isolated

ISS = "https://idp.bench"
KINDS = (
    "malformed_token",
    "random_kid",
    "unknown_issuer",
    "long_kid",
    "long_path_audit",
    "anonymous_login",
)
_LONG_PATH = 100 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _app() -> Any:
    from benchmarks._asgi_sso import (
        AuditLogger,
        Backends,
        Issuer,
        LoginConfig,
        MemorySessionStore,
        Secret,
        SSOMiddleware,
        generate_key,
        public_jwk,
    )

    key = generate_key("RS256", kid="k1")
    discovery = {
        "issuer": ISS,
        "jwks_uri": ISS + "/jwks",
        "authorization_endpoint": ISS + "/authorize",
        "token_endpoint": ISS + "/token",
    }

    def idp(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jwks"):
            return httpx.Response(200, json={"keys": [public_jwk(key)]})
        return httpx.Response(200, json=discovery)

    logger = logging.getLogger("asgi_sso.bench.audit")
    logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return SSOMiddleware(
        inner,
        [Issuer(issuer=ISS, audience="api", jwks_uri=ISS + "/jwks", client_id="web")],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(idp)),
        login=LoginConfig(
            issuer=ISS,
            client_id="web",
            client_secret=Secret(secrets.token_bytes(32)),
            cookie_secrets=(Secret(secrets.token_bytes(32)),),
        ),
        backends=Backends(sessions=MemorySessionStore()),
        event_sinks=[AuditLogger(logger)],
    )


def _segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    # These refusals come before the signature check: any signature will do.
    return f"{_segment(header)}.{_segment(claims)}.{secrets.token_urlsafe(256)}"


def _request(kind: str, n: int) -> tuple[str, bytes | None]:
    """(path, ``Authorization`` value) of request ``n`` of ``kind``."""
    now = int(time.time())
    claims = {"iss": ISS, "sub": f"user-{n}", "aud": "api", "exp": now + 3600, "iat": now}
    header = {"alg": "RS256", "typ": "JWT"}
    if kind == "malformed_token":
        return "/api", f"Bearer not.a-token.{n}-{secrets.token_urlsafe(24)}".encode()
    if kind == "random_kid":
        token = _token({**header, "kid": secrets.token_urlsafe(12)}, claims)
    elif kind == "unknown_issuer":
        token = _token({**header, "kid": "k1"}, {**claims, "iss": f"https://idp{n}.example"})
    elif kind == "long_kid":
        token = _token({**header, "kid": f"{n}-" + "k" * 1000}, claims)
    elif kind == "long_path_audit":
        return f"/{n}/" + "eyJ" * (_LONG_PATH // 3), None
    elif kind == "anonymous_login":
        return "/auth/login", None
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return "/api", f"Bearer {token}".encode()


def _scope(path: str, authorization: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"app.bench"), (b"accept", b"application/json")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("203.0.113.9", 50000),
        "server": ("app.bench", 443),
    }


async def _serve(app: Any, requests: list[tuple[str, bytes | None]]) -> dict[int, int]:
    statuses: dict[int, int] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    for path, authorization in requests:
        await app(_scope(path, authorization), receive, send)
    return statuses


def _measure(kind: str, count: int, memory: Callable[[], int]) -> tuple[int, int, float]:
    """What ``memory()`` grew by over all ``3 * count`` requests (what refusals keep,
    bounded caches full), over the last ``count`` alone (after ``2 * count`` filled
    every bounded cache and let the dicts behind them reach their steady size), and
    the wall time of those last ``count`` requests."""
    warmup = [_request(kind, n) for n in range(2 * count)]
    window = [_request(kind, n) for n in range(2 * count, 3 * count)]
    loop = asyncio.new_event_loop()
    app = _app()
    loop.run_until_complete(app.startup())
    gc.collect()
    start = memory()
    loop.run_until_complete(_serve(app, warmup))
    gc.collect()
    before = memory()
    started = time.perf_counter()
    statuses = loop.run_until_complete(_serve(app, window))
    seconds = time.perf_counter() - started
    gc.collect()
    after = memory()
    if len(statuses) != 1 or (statuses.get(401) or statuses.get(302)) != count:
        raise RuntimeError(f"{kind}: unexpected answers {statuses}")
    loop.close()
    return after - start, after - before, seconds


def run_case(task: dict[str, Any]) -> dict[str, Any]:
    """Worker side: RSS growth, then traced growth, of one kind of refused request."""
    kind: str = task["kind"]
    count: int = task["count"]
    rss_kept, rss, seconds = _measure(kind, count, _rss_bytes)
    # Traced from before the app exists: an entry a bounded cache drops is then
    # subtracted when its replacement is counted.
    tracemalloc.start()
    kept, traced, _ = _measure(kind, count, lambda: tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    return {
        "kind": kind,
        "requests": count,
        "rss_kept_bytes": rss_kept,
        "traced_kept_bytes": kept,
        "rss_bytes_per_1000": rss * 1000 / count,
        "traced_bytes_per_1000": traced * 1000 / count,
        "us_per_request": seconds / count * 1e6,
    }


def run(budget: Budget, workdir: Path) -> dict[str, Any]:
    """Parent side: one fresh process per kind (bytes are counted; times are indicative)."""
    count = max(1000, budget.memory_tokens // 10)
    progress = Progress(len(KINDS), "refusals")
    results: dict[str, Any] = {"requests": count}
    for kind in progress.over(list(KINDS), lambda k: f"{count:,} x {k}"):
        results[kind] = run_isolated({"suite": "refusals", "kind": kind, "count": count})
    return results
