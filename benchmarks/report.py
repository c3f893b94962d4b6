"""Results: the JSON file, a Markdown table with the targets beside the figures, a PNG chart."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import connections_cost, dpop_cost
from benchmarks.e2e import CONNECTIONS, JUDGED, TARGETS

PACKAGES = ("asgi-sso", "cryptography", "joserfc", "PyJWT", "python-jose", "Authlib",
            "starlette", "litestar", "fastapi", "uvicorn")  # fmt: skip

TARGETS_COLD = {"RS256": 0.70, "ES256": 0.80, "Ed25519": 0.85}


def machine() -> dict[str, Any]:
    """Where the run happened (the numbers mean little without it)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def _cell(case: dict[str, Any] | None) -> str:
    if not case:
        return "-"
    if "unsupported" in case:
        return "unsupported"
    if "mean_us" not in case:
        return "error"
    flag = " (unstable)" if case.get("warnings") else ""
    return f"{case['per_second']:,.0f} ({case['mean_us']:.1f} ± {case['stdev_us']:.1f} µs){flag}"


def _errors_and_warnings(cases: dict[str, dict[str, Any] | None]) -> list[str]:
    """A case that failed, and pyperf's instability warnings, one line each."""
    lines = []
    for name, case in cases.items():
        if case and "error" in case:
            lines.append(f"* {name}: not run: {case['error']}")
        for warning in (case or {}).get("warnings", ()):
            lines.append(f"* {name}: pyperf: {warning}")
    return ["", "Failures and pyperf's instability warnings:", "", *lines] if lines else []


def _verify_md(verify: dict[str, Any]) -> list[str]:
    labels = list(verify)
    names = list(dict.fromkeys(k for row in verify.values() for k in row))
    lines = [
        "## Verification (tokens per second; mean ± std dev per token; ratio to the "
        "raw-crypto floor)",
        "",
        "| candidate | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for name in names:
        cells = []
        for label in labels:
            case = verify[label].get(name)
            ratio = _get(case or {}, "ratio_to_floor")
            cells.append(_cell(case) + (f" **{ratio:.2f}x**" if ratio else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += _errors_and_warnings(
        {f"{label} {name}": case for label, row in verify.items() for name, case in row.items()}
    )
    lines += ["", "Targets:", ""]
    for label, target in TARGETS_COLD.items():
        ratio = _get(verify, label, "asgi_sso:cold", "ratio_to_floor")
        shown = f"{ratio:.2f}" if ratio else "n/a"
        verdict = _verdict(ratio >= target if ratio else None)
        lines.append(f"* cold {label} >= {target:.2f} of floor: {shown} — {verdict}")
    warm = _get(verify, "RS256", "asgi_sso:warm", "per_second")
    lines.append(
        f"* warm >= 500,000/s: {warm:,.0f}/s — {_verdict(warm >= 500_000)}"
        if warm
        else "* warm: n/a"
    )
    return lines


def _middleware_md(mw: dict[str, Any], verify: dict[str, Any]) -> list[str]:
    lines = [
        "## Middleware cost in-process (RS256; µs per request, mean ± std dev)",
        "",
        "| app:mode | µs/request | overhead over its bare framework |",
        "|---|---|---|",
    ]
    for key, case in mw.items():
        if "mean_us" not in case:
            lines.append(f"| {key} | {case.get('error', '-')} | |")
            continue
        over = case.get("overhead_us")
        over_s = "(baseline)"
        if over is not None:
            over_s = f"{over:+.1f} ± {case['overhead_stdev_us']:.1f} µs vs {case['baseline']}"
        flag = " (unstable)" if case.get("warnings") else ""
        lines.append(f"| {key} | {case['mean_us']:.1f} ± {case['stdev_us']:.1f}{flag} | {over_s} |")
    lines += _errors_and_warnings(mw)
    warm = _get(mw, "asgi_sso:warm", "overhead_us")
    cold = _get(mw, "asgi_sso:cold", "overhead_us")
    verify_us = _get(verify, "RS256", "asgi_sso:cold", "mean_us")
    lines += ["", "Targets:", ""]
    lines.append(
        f"* warm <= 5 µs over bare Starlette: {warm:.1f} µs — {_verdict(warm <= 5)}"
        if warm is not None else "* warm: n/a"
    )  # fmt: skip
    if cold is not None and verify_us:
        ratio = cold / verify_us
        lines.append(
            f"* cold <= 1.25x the cold verification cost ({verify_us:.1f} µs): "
            f"{cold:.1f} µs = {ratio:.2f}x — {_verdict(ratio <= 1.25)}"
        )
        lines += _cold_parts(mw, verify, cold, verify_us)
    return lines


def _cold_parts(mw: dict[str, Any], verify: dict[str, Any], cold: float, alone: float) -> list[str]:
    """What the diagnostic apps say about the cold overhead."""
    lines = []
    own = _get(mw, "asgi_sso_stubbed:cold", "overhead_us")
    if own is not None:
        lines.append(
            f"  * of which the middleware's own steps (verification stubbed): {own:.1f} µs; "
            f"verification inside the request loop: {cold - own:.1f} µs "
            f"(alone, in a tight loop: {alone:.1f} µs)"
        )
    by_hand = _get(mw, "verify_then_starlette:cold", "overhead_us")
    if by_hand is not None and by_hand > 0:
        lines.append(
            f"  * the same verifier called by hand before bare Starlette (no middleware): "
            f"{by_hand:.1f} µs = {by_hand / alone:.2f}x its tight-loop cost; against "
            f"that in-loop cost the middleware's overhead is {cold / by_hand:.2f}x"
        )
    floor_us = _get(verify, "RS256", "raw_crypto:cold", "mean_us")
    bound = _get(mw, "asgi_sso_signature_only:cold", "overhead_us")
    if bound is not None and floor_us:
        lines.append(
            f"  * a verifier doing nothing but the floor's signature check: {bound:.1f} µs "
            f"= {bound / floor_us:.2f}x the floor ({floor_us:.1f} µs), the least any "
            "verifier could reach here"
        )
    return lines


def _us(case: dict[str, Any] | None) -> str:
    if not case or "mean_us" not in case:
        return "error" if case else "-"
    flag = " (unstable)" if case.get("warnings") else ""
    return f"{case['mean_us']:.2f} ± {case['stdev_us']:.2f}{flag}"


def _connections_md(conn: dict[str, Any]) -> list[str]:
    counts, band = connections_cost.COUNTS, connections_cost.BAND
    lines = [
        f"## Connections: verification with {counts[0]:,} and {counts[1]:,} configured "
        "connections (RS256; µs per request, mean ± std dev)",
        "",
    ]
    if "cases" not in conn:
        return [*lines, f"Not run: {conn.get('error', 'n/a')}"]
    cases, ratios = conn["cases"], conn.get("ratios", {})
    lines += [
        "A request is the middleware's own step (extract the bearer token, verify it, check "
        "its connection is still in force, build the principal); every connection has its own "
        "issuer and key set, and the tokens belong to the one added last. Cold: tokens never "
        "seen before, a fresh middleware per pass; warm: a verified-token cache hit.",
        "",
        f"| mode | {counts[0]:,} | {counts[1]:,} | {counts[1]:,} / {counts[0]:,} "
        "| of the medians |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in connections_cost.MODES:
        cells = [_us(cases.get(f"{mode}:{n}")) for n in counts]
        ratio = ratios.get(mode, {})
        shown = f"{ratio['ratio']:.2f} ± {ratio['spread']:.2f}" if ratio else "n/a"
        median = ratio.get("median_ratio")
        lines.append(
            f"| {mode} | {cells[0]} | {cells[1]} | {shown} | "
            + (f"{median:.2f}" if median else "n/a")
            + " |"
        )
    lines += _errors_and_warnings(cases)
    lines += _reload_md(conn.get("reload", {}), counts)
    lines += ["", "Targets (issue 22: the figures must not depend on the count):", ""]
    for mode in connections_cost.MODES:
        ratio = _get(ratios, mode, "ratio")
        shown = f"{ratio:.2f}" if ratio else "n/a"
        verdict = _verdict(abs(ratio - 1) <= band if ratio else None)
        lines.append(
            f"* {mode}: {counts[1]:,} / {counts[0]:,} within 1 ± {band:.2f}: {shown} — {verdict}"
        )
    return lines


def _dpop_md(dpop: dict[str, Any]) -> list[str]:
    lines = [
        "## DPoP: a DPoP-bound request over a bearer one (µs per request, mean ± std dev)",
        "",
    ]
    if "cases" not in dpop:
        return [*lines, f"Not run: {dpop.get('error', 'n/a')}"]
    cases, ratios = dpop["cases"], dpop.get("ratios", {})
    lines += [
        "A request is the middleware's own step (extract, verify or answer from the "
        "verified-token cache, check the binding and the proof, build the principal); "
        "RS256 tokens, ES256 proofs, each proof signed before the timed loop. Cold: tokens "
        "never seen before, a fresh middleware per pass; warm: one cached token, a new "
        "proof per request (a proof is single-use, so its signature is checked every time).",
        "",
        "| mode | Bearer | DPoP | DPoP / Bearer | of the medians |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in dpop_cost.MODES:
        cells = [_us(cases.get(f"{kind}:{mode}")) for kind in dpop_cost.KINDS]
        ratio = ratios.get(mode, {})
        shown = f"{ratio['ratio']:.2f} ± {ratio['spread']:.2f}" if ratio else "n/a"
        median = ratio.get("median_ratio")
        lines.append(
            f"| {mode} | {cells[0]} | {cells[1]} | {shown} | "
            + (f"{median:.2f}" if median else "n/a")
            + " |"
        )
    return lines + _errors_and_warnings(cases)


def _reload_md(reload: dict[str, Any], counts: tuple[int, ...]) -> list[str]:
    """Wall-clock milliseconds of ``LiveConnections.reload()`` per snapshot size."""
    runs = [reload.get(str(n), {}) for n in counts]
    repeats = max((run.get("repeats", 0) for run in runs), default=0)
    lines = [
        "",
        f"A new snapshot (`LiveConnections.reload()` from a `StaticConnections` store; wall "
        f"clock, median of {repeats} in ms, min-max):",
        "",
        "| reload | " + " | ".join(f"{n:,} connection{'s' * (n != 1)}" for n in counts) + " |",
        "|---" + "|---:" * len(counts) + "|",
    ]
    labels = {
        "worker": "a worker's (admits each connection, hands them to the verifier)",
        "snapshot": "the snapshot alone",
    }
    for key, label in labels.items():
        cells = []
        for run in runs:
            figures = run.get(key)
            if figures is None:
                cells.append(f"not run: {run['error']}" if "error" in run else "-")
                continue
            cells.append(
                f"{figures['median_ms']:.2f} ({figures['min_ms']:.2f}-{figures['max_ms']:.2f})"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _e2e_md(stacks: dict[str, Any]) -> list[str]:
    if "error" in stacks:
        return ["## End to end (uvicorn + wrk)", "", f"Not run: {stacks['error']}"]
    lines: list[str] = []
    for number, (stack, e2e) in enumerate(stacks.items()):
        judged = " — the targets are judged here" if number == 0 else " — for reference"
        lines += [
            f"## End to end (uvicorn {stack}, 1 worker, wrk -t1 on 127.0.0.1, RS256){judged}",
            "",
            *_e2e_stack_md(e2e),
            "",
        ]
    return lines[:-1]


def _e2e_run(run: dict[str, Any] | None) -> tuple[str, str, str]:
    """(requests/s, requests per server CPU-s, p50 / p99 ms) of one wrk run."""
    if not run or "requests" not in run:
        return ((run or {}).get("error", "-"), "", "")
    reused = " (tokens reused)" if run.get("tokens_reused") else ""
    errors = f", {run['non2xx'] + run['errors']} failed" if run["non2xx"] + run["errors"] else ""
    cpu = run["requests_per_cpu_s"]
    return (
        f"{run['requests_per_s']:,.0f}{reused}{errors}",
        f"{cpu:,.0f}" if cpu else "-",
        f"{run['p50_us'] / 1000:.2f} / {run['p99_us'] / 1000:.2f}",
    )


def _e2e_stack_md(e2e: dict[str, Any]) -> list[str]:
    lines = [
        "| app:tokens | connections | requests/s (wall) | requests per server CPU-s "
        "| p50 / p99 latency (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, runs in e2e.items():
        for connections in CONNECTIONS:
            cells = _e2e_run(runs.get(f"c{connections}"))
            lines.append(f"| {key} | {connections} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Targets (ratio of requests per server CPU-second at {JUDGED[1:]} connections, "
        "same run; the wall-clock ratio after it):",
        "",
    ]
    for case, peer, target, text in TARGETS:
        judged = _get(e2e, case, "ratios", peer)
        if judged is None:
            lines.append(f"* {text}: n/a — n/a")
            continue
        lines.append(
            f"* {text}: {judged['cpu']:.2f}; wall {judged['wall']:.2f} — "
            f"{_verdict(judged['cpu'] >= target)}"
        )
    return lines


def _memory_md(mem: dict[str, Any]) -> list[str]:
    lines = ["## Memory of the verified-token cache", ""]
    if "traced_bytes" not in mem:
        return [*lines, f"Not run: {mem.get('error', 'n/a')}"]
    mb = mem["traced_bytes"] / 2**20
    return [
        *lines,
        f"* {mem['tokens']:,} cached tokens: {mb:.1f} MB traced (tracemalloc), "
        f"{mem['rss_bytes'] / 2**20:.1f} MB RSS delta, {mem['bytes_per_token']:,.0f} B/token"
        + (
            f", plus the admission filter's fixed {mem['filter_bytes'] / 2**20:.0f} MB"
            if "filter_bytes" in mem
            else ""
        ),
        f"* bounded: {mem['after_overflow']:,} entries after {mem['tokens'] * 3 // 2:,} tokens "
        f"into a cache of {mem['cache_size']:,}",
        f"* target 100k tokens <= 64 MB: projected {mem['projected_100k_mb']:.1f} MB — "
        f"{_verdict(mem['projected_100k_mb'] <= 64)}",
        "* each token string is created inside the measured window and dropped after its "
        "verification, so whatever the cache keeps of a token (the token itself included) counts",
    ]


def _refusals_md(refused: dict[str, Any]) -> list[str]:
    lines = ["## What refused requests leave behind", ""]
    if "requests" not in refused:
        return [*lines, f"Not run: {refused.get('error', 'n/a')}"]
    lines += [
        f"A fresh process per kind serves {3 * refused['requests']:,} different requests of "
        f"that kind. Kept: what the process holds after all of them (bounded caches full). "
        f"Per 1,000: growth over the last {refused['requests']:,}.",
        "",
        "| kind | kept (traced) | kept (RSS) | traced / 1,000 | RSS / 1,000 | µs / request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, case in refused.items():
        if not isinstance(case, dict):
            continue
        if "error" in case:
            lines.append(f"| {kind} | not run: {case['error']} | | |")
            continue
        kib = {k: f"{v / 1024:,.1f} KiB" for k, v in case.items() if "bytes" in k}
        lines.append(
            f"| {kind} | {kib['traced_kept_bytes']} | {kib['rss_kept_bytes']} "
            f"| {kib['traced_bytes_per_1000']} | {kib['rss_bytes_per_1000']} "
            f"| {case['us_per_request']:,.0f} |"
        )
    return lines


def _pyperf_options(results: dict[str, Any]) -> str:
    options = _get(results, "budget", "pyperf")
    return f"`{' '.join(options)}`" if options else "pyperf's defaults"


def _pyperf_files(results: dict[str, Any]) -> str:
    files = [f"`{p}`" for p in (results.get("pyperf_files") or {}).values() if p]
    return ", ".join(files) if files else "none"


def _run_note(results: dict[str, Any], suite: str) -> list[str]:
    """When ``suite`` was measured in a run of its own: that run's date, budget and load."""
    run = _get(results, "runs", suite)
    if not run or run["machine"]["date"] == _get(results, "machine", "date"):
        return []
    m = run["machine"]
    return [
        f"Measured in a run of its own: {m['date']} on {m['cpu']} ({m['cores']} cores, load "
        f"average at start {', '.join(f'{x:.2f}' for x in m['load_average'])}), budget "
        f"{run['budget_name']}, asgi-sso {m['packages'].get('asgi-sso', '?')}.",
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m = results["machine"]
    lines = [
        "# asgi_sso benchmark results",
        "",
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average'])}), Python {m['python']}, "
        f"{m['platform']}. Budget: {results.get('budget_name', '?')}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        "",
        "The verify, middleware, connections and dpop suites ran on pyperf (each case in its "
        f"own worker processes, loops calibrated; options: {_pyperf_options(results)}): "
        "figures are pyperf's mean ± standard deviation, ratios and overheads are taken "
        "against the floor or baseline of the same run, and a case pyperf finds unstable is "
        "marked. Their pyperf files: " + _pyperf_files(results) + ".",
        "",
    ]
    verify = results.get("verify", {})
    sections: list[tuple[str, Any]] = [
        ("verify", lambda: _verify_md(verify) if verify else []),
        ("middleware", lambda: _middleware_md(results["middleware"], verify)),
        ("connections", lambda: _connections_md(results["connections"])),
        ("dpop", lambda: _dpop_md(results["dpop"])),
        ("e2e", lambda: _e2e_md(results["e2e"])),
        ("memory", lambda: _memory_md(results["memory"])),
        ("refusals", lambda: _refusals_md(results["refusals"])),
    ]
    for suite, render in sections:
        if suite not in results:
            continue
        body: list[str] = render()
        if body:  # the note goes under the section's first heading
            lines += [*body[:2], *_run_note(results, suite), *body[2:], ""]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> bool:
    """Draw verification ratios to the floor and e2e throughput; ``False`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    verify = results.get("verify", {})
    stacks = results.get("e2e", {})
    stack = next((name for name, cases in stacks.items() if isinstance(cases, dict)), "")
    e2e = {
        k: v[JUDGED]
        for k, v in stacks.get(stack, {}).items()
        if isinstance(v, dict) and "requests" in v.get(JUDGED, {})
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    labels = list(verify)
    names = [
        n
        for n in dict.fromkeys(k for r in verify.values() for k in r)
        if n != "raw_crypto:cold" and not n.endswith(":warm")
    ]
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = [_get(verify, label, name, "ratio_to_floor") or 0 for label in labels]
        left.bar(
            [x + i * width for x in range(len(labels))], values, width, label=name.split(":")[0]
        )
    left.axhline(1.0, color="black", linewidth=0.8)
    left.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(labels))], labels)
    left.set_ylabel("throughput / raw-crypto floor (1.0 = only the signature check)")
    left.set_title("Cold verification, pyperf mean (higher is better)")
    left.legend(fontsize=8)
    keys = list(e2e)
    colors = ["tab:green" if k.startswith("asgi_sso") else "tab:gray" for k in keys]
    right.barh(keys, [e2e[k]["requests_per_cpu_s"] or 0 for k in keys], color=colors)
    right.invert_yaxis()
    right.set_xlabel("requests per server CPU-second (higher is better)")
    right.set_title(f"End to end behind uvicorn ({stack}) + wrk, {JUDGED[1:]} connections")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(results: dict[str, Any], out: Path) -> list[Path]:
    """Write results.json, results.md and (with matplotlib) results.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.md"]
    written[0].write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    written[1].write_text(markdown(results))
    if chart(results, out / "results.png"):
        written.append(out / "results.png")
    return written
