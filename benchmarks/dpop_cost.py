"""Suite ``dpop``: what a DPoP-bound request costs over a bearer one, on pyperf.

RFC 9449 moves a signature check onto every request: the proof is single-use, so
the verified-token cache, which spares a warm bearer request its signature check,
cannot spare a DPoP request its proof. A loop is one request through the step an
``SSOMiddleware`` takes for it (extract, verify or answer from the cache, check the
token's binding and the proof, build the principal), with the issuer at
``dpop="allow"`` for both kinds. Tokens are RS256, proofs ES256 (the common client
choice). Cold: tokens never seen before, a fresh middleware per pass; warm: one
cached token, a new proof for every request. Every proof is signed before the timed
loop. Ratios divide the DPoP mean by the bearer mean of the same run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pyperf
from joserfc.jwk import ECKey

from benchmarks._asgi_sso import (
    AuthError,
    DPoPClient,
    Issuer,
    Limits,
    SSOMiddleware,
    authenticate,
)
from benchmarks.fixtures import AUDIENCE, ISSUER, JWKS_URI, Material, make_material, mint
from benchmarks.harness import (
    Budget,
    failure,
    ratio_of,
    read_pyperf,
    run_pyperf,
    suite_runner,
)

KINDS = ("bearer", "dpop")
MODES = ("cold", "warm")
BEARER, BOUND, KEY = "material-dpop-bearer.json", "material-dpop-bound.json", "dpop-key.json"
URL = "https://api.bench.example/things"
CHUNK = 5_000
"""Warm requests prepared at once (each with its own proof), in bounded memory."""


def cases() -> list[str]:
    """The pyperf benchmark names, e.g. ``dpop:warm``, in report order."""
    return [f"{kind}:{mode}" for mode in MODES for kind in KINDS]


def scope(token: str, proof: str | None) -> dict[str, Any]:
    """A request's scope: ``Bearer`` without a proof, ``DPoP`` and its header with one."""
    headers = [(b"host", b"api.bench.example")]
    if proof is None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    else:
        headers += [(b"authorization", f"DPoP {token}".encode()), (b"dpop", proof.encode())]
    return {"type": "http", "method": "GET", "scheme": "https", "path": "/things",
            "root_path": "", "query_string": b"", "headers": headers}  # fmt: skip


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the suite times the middleware's step, never the app")


class Bench:
    """Middlewares with a DPoP-enabled issuer, driven on one event loop."""

    def __init__(self, bearer: Material, bound: Material, client: DPoPClient) -> None:
        self.material = {"bearer": bearer, "dpop": bound}
        self.client = client
        self.loop = asyncio.new_event_loop()
        self.warm: dict[str, SSOMiddleware] = {}

    def scopes(self, kind: str, tokens: Sequence[str]) -> list[dict[str, Any]]:
        """One request per token; a DPoP one with a proof signed now (untimed)."""
        if kind == "bearer":
            return [scope(t, None) for t in tokens]
        return [scope(t, self.client.proof("GET", URL, t)) for t in tokens]

    def app(self, kind: str) -> SSOMiddleware:
        """A started middleware whose keys are fetched (its warm-up token seen twice)."""
        body = self.material[kind].jwks

        def answer(request: httpx.Request) -> httpx.Response:
            ok = str(request.url) == JWKS_URI
            return httpx.Response(200, json=body) if ok else httpx.Response(404)

        app = SSOMiddleware(
            _inner,
            [Issuer(issuer=ISSUER, audience=AUDIENCE, jwks_uri=JWKS_URI, dpop="allow")],
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
            # Room for every proof of a long warm run: a full memory would answer 503.
            limits=Limits(token_cache_size=100_000, dpop_replay_size=10_000_000),
        )
        self.loop.run_until_complete(app.startup())
        warmup = self.material[kind].warmup[0]
        self.serve(app, self.scopes(kind, [warmup, warmup]))  # cached from the second sighting
        return app

    def serve(self, app: SSOMiddleware, scopes: Sequence[dict[str, Any]]) -> float:
        """Seconds spent authenticating ``scopes`` one after the other (raises on a refusal)."""
        step: Callable[[Any], Awaitable[Any]] = authenticate(app)

        async def serve() -> float:
            started = pyperf.perf_counter()
            for each in scopes:
                await step(each)
            return pyperf.perf_counter() - started

        return self.loop.run_until_complete(serve())

    def close(self, app: SSOMiddleware) -> None:
        """Stop the middleware's background work and close its HTTP client."""
        self.loop.run_until_complete(app.shutdown())
        self.loop.run_until_complete(app.http_client.aclose())

    def finish(self) -> None:
        """Close the warm middlewares and the event loop."""
        for app in self.warm.values():
            self.close(app)
        self.warm.clear()
        self.loop.close()


def time_func(bench: Bench, kind: str, mode: str) -> Callable[[int], float]:
    """pyperf's ``time_func(loops)``: seconds spent authenticating ``loops`` requests."""

    def timed(loops: int) -> float:
        total = 0.0
        if mode == "warm":
            if kind not in bench.warm:  # one cache per worker process, primed once
                bench.warm[kind] = bench.app(kind)
            token = bench.material[kind].warmup[0]
            for start in range(0, loops, CHUNK):
                scopes = bench.scopes(kind, [token] * min(CHUNK, loops - start))
                total += bench.serve(bench.warm[kind], scopes)
            return total
        tokens = bench.material[kind].tokens
        for start in range(0, loops, len(tokens)):
            scopes = bench.scopes(kind, tokens[: min(len(tokens), loops - start)])
            app = bench.app(kind)  # fresh: no timed token seen before
            total += bench.serve(app, scopes)
            bench.close(app)
        return total

    return timed


def load(directory: Path) -> Bench:
    """The bench over the material the parent wrote to ``directory``."""
    key = ECKey.import_key(json.loads((directory / KEY).read_text()))
    client = DPoPClient(key=key)
    return Bench(Material.load(directory / BEARER), Material.load(directory / BOUND), client)


def main() -> None:
    """The pyperf script: ``--case dpop:warm`` for each case to time."""
    runner, args = suite_runner("benchmarks.dpop_cost")
    for case in args.case:
        kind, _, mode = case.partition(":")
        bench = load(Path(args.material_dir))
        runner.bench_time_func(case, time_func(bench, kind, mode))
        bench.finish()


def prepare(budget: Budget, workdir: Path) -> None:
    """Parent side: a DPoP key, bearer tokens and tokens bound to that key (one issuer key)."""
    client = DPoPClient()
    bearer, key = make_material("RS256", budget.tokens)
    cnf = client.cnf()
    bound = dataclasses.replace(
        bearer,
        tokens=mint("RS256", key, budget.tokens, start=20_000_000, extra=cnf),
        warmup=mint("RS256", key, 2, start=30_000_000, extra=cnf),
    )
    bearer.save(workdir / BEARER)
    bound.save(workdir / BOUND)
    (workdir / KEY).write_text(json.dumps(client.key.as_dict(private=True)))


def check(workdir: Path) -> dict[str, Any]:
    """Parent side, before timing: ``{}``, or why the suite cannot run.

    A bound token passes with a proof and is refused without one or with a replayed
    proof; a bearer token passes as ``Bearer``.
    """
    bench = load(workdir)
    try:
        bearer, dpop = bench.app("bearer"), bench.app("dpop")
        token = bench.material["dpop"].tokens[0]
        bench.serve(bearer, bench.scopes("bearer", bench.material["bearer"].tokens[:1]))
        (proved,) = bench.scopes("dpop", [token])
        bench.serve(dpop, [proved])
        for refused in (scope(token, None), proved):
            try:
                bench.serve(dpop, [refused])
            except AuthError:
                continue
            raise AssertionError("a bound token was accepted without a fresh proof")
        bench.close(bearer)
        bench.close(dpop)
    except Exception as exc:
        return failure(exc)
    finally:
        bench.finish()
    return {}


def run(budget: Budget, workdir: Path) -> tuple[dict[str, Any], Path]:
    """Parent side: mint, check, time every case on pyperf, compare DPoP with bearer."""
    prepare(budget, workdir)
    checked = check(workdir)
    results: dict[str, dict[str, Any]] = {case: dict(checked) for case in cases()}
    ready = [] if checked else cases()
    path = run_pyperf("benchmarks.dpop_cost", workdir, ready, budget.pyperf)
    timed = read_pyperf(path)
    for case in ready:
        results[case].update(timed.get(case, {"error": "pyperf produced no values"}))
    ratios: dict[str, dict[str, float]] = {}
    for mode in MODES:
        ratio = ratio_of(results[f"bearer:{mode}"], results[f"dpop:{mode}"])
        if ratio is not None:
            ratios[mode] = ratio
    return {"cases": results, "ratios": ratios}, path


if __name__ == "__main__":
    main()
