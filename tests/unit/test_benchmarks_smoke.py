"""Smoke test of the benchmark runner: it runs end to end on a tiny budget (no timing asserts)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import middleware_cost, verify_cost
from benchmarks.__main__ import budget_from, parse
from benchmarks.apps import APPS, DIAGNOSTIC, STUBBED
from benchmarks.e2e import CASES, TARGETS, available_stacks, judge, median_run
from benchmarks.fixtures import Material, make_material
from benchmarks.middleware_cost import _Exchange, _scope
from benchmarks.refusals import KINDS
from benchmarks.refusals import run_case as run_refusals_case
from benchmarks.report import STEADY, disturbance, markdown

ROOT = Path(__file__).resolve().parents[2]


def run_runner(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quick_budget_overrides() -> None:
    budget = budget_from(parse(["verify", "--quick", "--tokens", "7", "--repeats", "1"]))
    assert (budget.tokens, budget.mw_requests, budget.repeats) == (7, 7, 1)
    assert budget_from(parse([])).memory_tokens == 100_000


def test_material_round_trips_and_tampered_token_differs(tmp_path: Path) -> None:
    material, _ = make_material("ES256", 3)
    material.save(tmp_path / "m.json")
    loaded = Material.load(tmp_path / "m.json")
    assert loaded.tokens == material.tokens
    assert len(set(loaded.tokens)) == 3
    assert loaded.tampered() not in (*loaded.tokens, *loaded.warmup)


@pytest.mark.slow
def test_runner_runs_every_suite_on_a_tiny_budget(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["all", "--quick", "--tokens", "20", "--repeats", "1", "--duration", "1"]
    proc = run_runner(*args, "--memory-tokens", "300", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"machine", "verify", "middleware", "e2e", "memory"}

    for label in ("RS256", "ES256", "Ed25519", "HS256"):
        row = results["verify"][label]
        assert row["raw_crypto:cold"]["ratio_to_floor"] == pytest.approx(1.0)
        for name in ("asgi_sso:cold", "asgi_sso:warm", "pyjwt:cold", "joserfc:cold"):
            assert "error" not in row[name], (label, name, row[name])
            assert row[name]["cpu"]["per_second"] > 0
    assert "unsupported" in results["verify"]["Ed25519"]["jose:cold"]

    for key, case in results["middleware"].items():
        assert "error" not in case, (key, case)
    assert results["middleware"]["asgi_sso:cold"]["baseline"] == "starlette"
    assert results["middleware"]["verify_then_starlette:cold"]["baseline"] == "starlette"

    if shutil.which("wrk"):
        assert list(results["e2e"]) == available_stacks()
        assert "h11+asyncio" in results["e2e"]
        for stack, cases in results["e2e"].items():
            assert len(cases) == len(CASES)
            for key, case in cases.items():
                assert "error" not in case, (stack, key, case)
                assert case["requests"] > 0
                assert case["non2xx"] == 0
            for key, peer, _, _ in TARGETS:
                assert cases[key]["ratios"][peer]["rounds"] == 1
    else:
        assert "wrk" in results["e2e"]["error"]

    # Every timed repeat went through the quiet gate (with no wait budget: probed only).
    tallies = results["quiet"]["suites"]
    assert set(tallies) == (
        {"verify", "middleware", "e2e"} if shutil.which("wrk") else {"verify", "middleware"}
    )
    assert all(t["waited_s"] == 0 for t in tallies.values())
    assert tallies["verify"]["quiet"] + tallies["verify"]["unquiet"] == sum(
        case["repeats"]
        for row in results["verify"].values()
        for case in row.values()
        if "cpu" in case
    )

    memory = results["memory"]
    assert memory["cached"] == 300
    assert memory["after_overflow"] <= memory["cache_size"]

    table = (out / "results.md").read_text()
    assert "| asgi_sso:cold |" in table
    assert "Targets" in table
    assert "Quiet spells: each timed repeat" in table
    assert table in proc.stdout
    assert "verify" in proc.stderr  # the progress bar


MACHINE = {
    "date": "today",
    "cpu": "cpu",
    "cores": 2,
    "load_average": (0.0, 0.0, 0.0),
    "python": "3.11",
    "platform": "linux",
    "packages": {},
}


def test_report_renders_partial_results() -> None:
    results = {
        "machine": MACHINE,
        "e2e": {"error": "wrk is not installed: apt-get install -y wrk"},
        "memory": {"error": "worker failed"},
    }
    text = markdown(results)
    assert "Not run: wrk is not installed" in text
    assert "Not run: worker failed" in text


def _status(app: Any, token: str) -> int:
    exchange = _Exchange()
    asyncio.run(app(_scope(token), exchange.receive, exchange.send))
    return exchange.status


def test_diagnostic_apps_do_what_their_figures_claim() -> None:
    # Synchronous: the stubbed builders run their own event loop (as in a worker).
    material, _ = make_material("RS256", 1)
    token, tampered = material.tokens[0], material.tampered()
    # The stub skips verification: even a tampered token passes.
    assert _status(APPS["asgi_sso_stubbed"](material), tampered) == 200
    assert _status(APPS["asgi_sso_signature_only"](material), token) == 200
    # Verification by hand (no middleware) verifies fully.
    by_hand = APPS["verify_then_starlette"](material)
    assert _status(by_hand, token) == 200
    assert _status(by_hand, tampered) == 401


def test_diagnostic_apps_are_never_compared_end_to_end() -> None:
    assert set(APPS) >= DIAGNOSTIC >= STUBBED
    assert not DIAGNOSTIC & {app for app, _ in CASES}


@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=7))
def test_an_e2e_case_reports_its_median_round_and_the_spread(rates: list[float]) -> None:
    outcomes = [{"requests_per_cpu_s": r, "requests": i} for i, r in enumerate(rates)]
    chosen = median_run(outcomes)
    ranked = sorted(rates)
    assert chosen["requests_per_cpu_s"] == ranked[(len(rates) - 1) // 2]
    assert chosen["cpu_min"] == ranked[0]
    assert chosen["cpu_max"] == ranked[-1]
    assert chosen["rounds"] == len(rates)
    assert outcomes[chosen["requests"]]["requests_per_cpu_s"] == chosen["requests_per_cpu_s"]
    broken = [*outcomes, {"error": "uvicorn exited with 1"}]
    assert median_run(broken) == {"error": "uvicorn exited with 1"}


def _served(rate: float) -> dict[str, Any]:
    return {"requests_per_cpu_s": rate, "requests_per_s": rate / 2, "requests": 1}


@given(st.lists(st.tuples(st.floats(1.0, 1e5), st.floats(1.0, 1e5)), min_size=1, max_size=6))
def test_e2e_ratios_are_taken_within_a_round(pairs: list[tuple[float, float]]) -> None:
    # Each round: asgi_sso, then Litestar; a slow round slows both alike.
    runs = {
        ("stack", "asgi_sso:unique"): [_served(ours) for ours, _ in pairs],
        ("stack", "litestar_jwt:unique"): [_served(theirs) for _, theirs in pairs],
    }
    cases = judge(runs)["stack"]
    judged = cases["asgi_sso:unique"]["ratios"]["litestar_jwt:unique"]
    ratios = sorted(ours / theirs for ours, theirs in pairs)
    assert judged["cpu"] == ratios[(len(ratios) - 1) // 2]
    assert (judged["cpu_min"], judged["cpu_max"]) == (ratios[0], ratios[-1])
    assert judged["wall"] == pytest.approx(judged["cpu"])
    assert judged["rounds"] == len(pairs)
    # Only the judged pairs get ratios; a failed round of the peer leaves none.
    assert "ratios" not in cases["litestar_jwt:unique"]
    runs[("stack", "litestar_jwt:unique")][-1] = {"error": "uvicorn exited with 1"}
    assert "ratios" not in judge(runs)["stack"]["asgi_sso:unique"]


def _timed(us: float) -> dict[str, Any]:
    return {"cpu": {"median_us": us, "min_us": us, "max_us": us, "per_second": 1e6 / us}}


@given(st.lists(st.tuples(st.floats(1.0, 1e4), st.floats(1.0, 1e4)), min_size=1, max_size=5))
def test_verify_ratios_are_taken_within_a_round(pairs: list[tuple[float, float]]) -> None:
    # Each round: the floor, then the candidate; a slow round slows both alike.
    runs = {
        ("RS256", "raw_crypto:cold"): [_timed(f) for f, _ in pairs],
        ("RS256", "asgi_sso:cold"): [_timed(c) for _, c in pairs],
    }
    row = verify_cost.judge(runs)["RS256"]
    ratios = sorted(f / c for f, c in pairs)
    case = row["asgi_sso:cold"]
    assert case["ratio_to_floor"] == ratios[(len(ratios) - 1) // 2]
    assert (case["ratio_to_floor_min"], case["ratio_to_floor_max"]) == (ratios[0], ratios[-1])
    assert case["rounds"] == len(pairs)
    # The reported time is the chosen round's, so the table's figures agree.
    chosen = [c for f, c in pairs if f / c == case["ratio_to_floor"]]
    assert case["cpu"]["median_us"] in chosen
    floor = row["raw_crypto:cold"]
    assert floor["ratio_to_floor"] == 1.0
    assert floor["round_us"] == sorted(f for f, _ in pairs)[(len(pairs) - 1) // 2]


def test_a_failed_round_decides_the_case() -> None:
    runs = {
        ("RS256", "raw_crypto:cold"): [_timed(30.0), _timed(31.0)],
        ("RS256", "asgi_sso:cold"): [_timed(40.0), {"error": "worker failed: boom"}],
    }
    assert verify_cost.judge(runs)["RS256"]["asgi_sso:cold"] == {"error": "worker failed: boom"}
    failed = {"starlette:warm": [_timed(10.0)], "asgi_sso:cold": [{"error": "x"}]}
    assert middleware_cost.judge(failed)["asgi_sso:cold"] == {"error": "x"}


@given(st.lists(st.tuples(st.floats(1.0, 1e3), st.floats(0.0, 1e3)), min_size=1, max_size=5))
def test_middleware_overheads_are_taken_within_a_round(rounds: list[tuple[float, float]]) -> None:
    runs = {
        "starlette:warm": [_timed(base) for base, _ in rounds],
        "asgi_sso:cold": [_timed(base + extra) for base, extra in rounds],
    }
    case = middleware_cost.judge(runs)["asgi_sso:cold"]
    overheads = sorted((base + extra) - base for base, extra in rounds)
    assert case["overhead_us"] == overheads[(len(overheads) - 1) // 2]
    assert case["baseline"] == "starlette"
    assert case["rounds"] == len(rounds)


@given(st.lists(st.floats(1.0, 1e4), min_size=1, max_size=7))
def test_a_reference_that_moved_between_rounds_flags_its_verdict(rounds: list[float]) -> None:
    # The floor's code is the same in every round: its spread is the machine's.
    runs = {
        ("RS256", "raw_crypto:cold"): [_timed(us) for us in rounds],
        ("RS256", "asgi_sso:cold"): [_timed(us * 1.4) for us in rounds],
    }
    verify = verify_cost.judge(runs)
    warning = disturbance(verify["RS256"]["raw_crypto:cold"], "the RS256 floor")
    moved = max(rounds) / min(rounds) - 1
    assert (warning is not None) == (len(rounds) > 1 and moved > STEADY)
    text = markdown({"machine": MACHINE, "verify": verify})
    assert ("**disturbed:** the RS256 floor" in text) == (warning is not None)
    if warning is not None:
        assert f"{min(rounds):.1f} to {max(rounds):.1f} µs" in warning


@pytest.mark.parametrize("kind", KINDS)
def test_refusals_suite_measures_each_kind_of_refused_request(kind: str) -> None:
    result = run_refusals_case({"kind": kind, "count": 30})
    assert result["requests"] == 30
    assert result["us_per_request"] > 0
    text = markdown({"machine": MACHINE, "refusals": {"requests": 30, kind: result}})
    assert f"| {kind} |" in text
