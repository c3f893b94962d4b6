"""Suite ``e2e``: throughput and latency behind uvicorn (one worker), driven by ``wrk``.

Each app runs in a fresh uvicorn process per case and connection count; ``wrk``
drives it for a bounded time at 1 connection (latency of one client at a time) and
at 32 (a loaded server), with the same token every request (warm) or a Lua script
cycling through pre-minted RS256 tokens (unique). Reported per run: wall-clock
requests/s, requests per server CPU-second (the server's own CPU time, from
``/proc/<pid>/stat``, which other load on a shared machine disturbs less), and the
p50 and p99 latency (``wrk --latency``). The judged ratios (asgi_sso against a
peer) compare requests per server CPU-second at 32 connections, within one run.

Every case runs on two uvicorn stacks: ``httptools+uvloop`` (what
``uvicorn[standard]`` installs and production deployments run; the targets are
judged on it) and the pure-Python ``h11+asyncio``, whose slower HTTP parsing
weighs on every app alike and narrows all the ratios.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.fixtures import Material, make_material
from benchmarks.harness import ROOT, Budget, Progress, failure

STACKS = {
    "httptools+uvloop": ("--http", "httptools", "--loop", "uvloop"),
    "h11+asyncio": ("--http", "h11", "--loop", "asyncio"),
}
"""Server stack -> uvicorn options; the first one available is the one judged."""

CASES = (
    ("starlette", "warm"),
    ("asgi_sso", "warm"),
    ("asgi_sso", "unique"),
    ("starlette_pyjwt", "unique"),
    ("litestar", "warm"),
    ("litestar_jwt", "unique"),
    ("fastapi", "warm"),
    ("fastapi_pyjwt", "unique"),
)

CONNECTIONS = (1, 32)
"""wrk connection counts: one client at a time, and a loaded server."""
JUDGED = "c32"
"""The connection count whose throughput the targets judge."""

TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("asgi_sso:warm", "starlette:warm", 0.85, "warm >= 0.85 of bare Starlette"),
    ("asgi_sso:unique", "litestar_jwt:unique", 3.0, "unique >= 3x Litestar JWTAuth"),
    ("asgi_sso:unique", "fastapi_pyjwt:unique", 3.0, "unique >= 3x FastAPI Depends+PyJWT"),
)
"""(case, peer, least ratio, text): the judged ratios of requests per server CPU-second
at 32 connections."""

_LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""

_LUA_WARM = """
wrk.headers["Authorization"] = "Bearer {token}"
"""

_LUA_UNIQUE = """
local tokens = {{}}
for line in io.lines("{path}") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format("GET", "/", {{["Authorization"] = "Bearer " .. tokens[i]}})
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(url: str, token: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        if answer.status_code != 200:
            raise RuntimeError(f"warm-up answered {answer.status_code}")
        # A second request: asgi_sso stores a token from its second sighting on.
        answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2.0)
        if answer.status_code != 200:
            raise RuntimeError(f"warm-up answered {answer.status_code}")
        return
    raise RuntimeError("uvicorn did not start within 30 s")


def available_stacks() -> list[str]:
    """The server stacks whose packages are installed (h11 and asyncio always are)."""
    return [
        name
        for name, options in STACKS.items()
        if all(importlib.util.find_spec(module) for module in options[1::2])
    ]


def run_case(
    app: str,
    mode: str,
    material_path: Path,
    script: Path,
    budget: Budget,
    stack: str,
    connections: int,
) -> dict[str, Any]:
    """Start uvicorn with ``app`` on ``stack``, warm it up, run wrk against it, stop it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "BENCH_APP": app, "BENCH_MATERIAL": str(material_path)}
    command = [
        sys.executable, "-m", "uvicorn", "benchmarks.apps:factory", "--factory", *STACKS[stack],
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        material = Material.load(material_path)
        _wait_ready(url, material.warmup[0], proc)
        cpu0 = _cpu_seconds(proc.pid)
        wrk = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(budget.duration))}s",
             "--latency", "-s", str(script), url],
            capture_output=True, text=True, timeout=budget.duration + 60, check=True,
        )  # fmt: skip
        cpu = _cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    stats: dict[str, Any] = json.loads(wrk.stdout.strip().splitlines()[-1])
    seconds = stats["duration_us"] / 1e6
    stats["requests_per_s"] = stats["requests"] / seconds
    stats["server_cpu_s"] = cpu
    stats["requests_per_cpu_s"] = stats["requests"] / cpu if cpu else None
    if mode == "unique":
        stats["tokens"] = len(material.tokens)
        stats["tokens_reused"] = stats["requests"] > len(material.tokens)
    return stats


def run(budget: Budget, workdir: Path) -> dict[str, Any]:
    """Parent side: every app behind a fresh uvicorn per connection count, then ratios."""
    if shutil.which("wrk") is None:
        message = "wrk is not installed: apt-get install -y wrk"
        print(f"e2e skipped: {message}", file=sys.stderr)
        return {"error": message}
    material, _ = make_material("RS256", budget.e2e_tokens)
    path = workdir / "material-e2e.json"
    material.save(path)
    (workdir / "tokens.txt").write_text("\n".join(material.tokens) + "\n")
    warm, unique = workdir / "warm.lua", workdir / "unique.lua"
    warm.write_text(_LUA_WARM.format(token=material.warmup[0]) + _LUA_DONE)
    unique.write_text(_LUA_UNIQUE.format(path=workdir / "tokens.txt") + _LUA_DONE)
    results: dict[str, Any] = {}
    plan = [
        (stack, app, mode, connections)
        for stack in available_stacks()
        for app, mode in CASES
        for connections in CONNECTIONS
    ]
    progress = Progress(len(plan), "e2e")
    for stack, app, mode, connections in progress.over(
        plan, lambda c: f"{c[0]} {c[1]} {c[2]} c{c[3]}"
    ):
        script = warm if mode == "warm" else unique
        try:
            outcome = run_case(app, mode, path, script, budget, stack, connections)
        except Exception as exc:
            outcome = failure(exc)
        results.setdefault(stack, {}).setdefault(f"{app}:{mode}", {})[f"c{connections}"] = outcome
    return judge(results)


def judge(results: dict[str, Any]) -> dict[str, Any]:
    """Add to each case in :data:`TARGETS` its ratios to the peer at 32 connections.

    ``results`` maps stack -> ``"app:mode"`` -> ``"c1"``/``"c32"`` -> wrk figures.
    ``ratios[peer]`` holds ``cpu`` (requests per server CPU-second, judged) and ``wall``
    (requests per second); none when either run failed or measured no CPU time.
    """
    for cases in results.values():
        for key, peer, _, _ in TARGETS:
            ours = cases.get(key, {}).get(JUDGED, {})
            theirs = cases.get(peer, {}).get(JUDGED, {})
            if ours.get("requests_per_cpu_s") and theirs.get("requests_per_cpu_s"):
                cases[key].setdefault("ratios", {})[peer] = {
                    "cpu": ours["requests_per_cpu_s"] / theirs["requests_per_cpu_s"],
                    "wall": ours["requests_per_s"] / theirs["requests_per_s"],
                }
    return results
