"""Smoke tests of the benchmark runner: each suite runs end to end on a tiny budget, and
the figures the report shows are the ones pyperf measured (no timing asserts)."""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyperf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import connections_cost, dpop_cost, middleware_cost, verify_cost
from benchmarks.__main__ import budget_from, parse
from benchmarks._asgi_sso import AuthError
from benchmarks.apps import APPS, DIAGNOSTIC, STUBBED
from benchmarks.e2e import CASES, CONNECTIONS, TARGETS, available_stacks, judge
from benchmarks.fixtures import Material, b64decode, make_material
from benchmarks.harness import read_pyperf
from benchmarks.middleware_cost import _Exchange, _scope
from benchmarks.refusals import KINDS
from benchmarks.refusals import run_case as run_refusals_case
from benchmarks.report import markdown

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--quick", "--tokens", "20", "--pyperf=--debug-single-value"]
"""One worker process, one value of one loop per case: the pipeline, not the figures."""


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
    budget = budget_from(parse(["verify", *TINY]))
    assert (budget.tokens, budget.mw_requests, budget.e2e_tokens) == (20, 20, 100)
    assert budget.pyperf == ("--debug-single-value",)
    assert budget_from(parse(["--quick"])).pyperf == ("--processes", "3", "--values", "3")
    assert budget_from(parse([])).pyperf == ()  # pyperf's own defaults
    assert budget_from(parse([])).memory_tokens == 100_000


def test_material_round_trips_and_tampered_token_differs(tmp_path: Path) -> None:
    material, _ = make_material("ES256", 3)
    material.save(tmp_path / "m.json")
    loaded = Material.load(tmp_path / "m.json")
    assert loaded.tokens == material.tokens
    assert len(set(loaded.tokens)) == 3
    assert loaded.tampered() not in (*loaded.tokens, *loaded.warmup)


def test_every_suite_of_one_run_checks_its_peers_against_its_own_keys() -> None:
    # The parent checks the verify suite's RS256 material, then the middleware suite's
    # (a new key, the same label): each PyJWT peer must get the key set it was given.
    first, second = make_material("RS256", 1)[0], make_material("RS256", 1)[0]
    for material in (first, second):
        assert verify_cost.check(material, "pyjwt_", "cold") == {"name": "PyJWT + PyJWKClient"}
        assert middleware_cost.check(material, "starlette_pyjwt") == {}


@pytest.mark.slow
def test_verify_suite_runs_on_pyperf(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = run_runner("verify", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    for label in ("RS256", "ES256", "Ed25519", "HS256"):
        row = results["verify"][label]
        assert row["raw_crypto:cold"]["ratio_to_floor"] == pytest.approx(1.0)
        for name in ("asgi_sso:cold", "asgi_sso:warm", "pyjwt:cold", "joserfc:cold"):
            assert "error" not in row[name], (label, name, row[name])
            assert row[name]["per_second"] > 0
            assert row[name]["values"] == 1
    assert "unsupported" in results["verify"]["Ed25519"]["jose:cold"]
    # The kept pyperf file is pyperf's own: its tools read it.
    kept = out / results["pyperf_files"]["verify"]
    assert len(pyperf.BenchmarkSuite.load(str(kept)).get_benchmarks()) == 4 * 7 - 1
    compare = subprocess.run(
        [sys.executable, "-m", "pyperf", "compare_to", str(kept), str(kept)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert compare.returncode == 0, compare.stderr
    assert "RS256 asgi_sso_:cold" in compare.stdout
    table = (out / "results.md").read_text()
    assert "| asgi_sso:cold |" in table
    assert "Targets" in table
    assert table in proc.stdout


@pytest.mark.slow
def test_middleware_suite_runs_on_pyperf_and_merges_into_earlier_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    earlier = {"memory": {"error": "from an earlier run"}}
    (out / "results.json").write_text(json.dumps(earlier))
    proc = run_runner("middleware", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["memory"] == earlier["memory"]
    middleware = results["middleware"]
    assert set(middleware) == {f"{app}:{mode}" for app, mode in middleware_cost.CASES}
    for key, case in middleware.items():
        assert "error" not in case, (key, case)
        assert case["mean_us"] > 0
    assert middleware["asgi_sso:cold"]["baseline"] == "starlette"
    assert middleware["verify_then_starlette:cold"]["baseline"] == "starlette"
    assert (out / results["pyperf_files"]["middleware"]).exists()


@pytest.mark.slow
def test_connections_suite_runs_on_pyperf_and_keeps_the_earlier_runs_machine(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results"
    out.mkdir()
    earlier = {"machine": {**MACHINE, "date": "earlier"}, "memory": {"error": "earlier"}}
    (out / "results.json").write_text(json.dumps(earlier))
    proc = run_runner("connections", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["date"] == "earlier"
    assert results["memory"] == earlier["memory"]
    assert results["runs"]["connections"]["machine"]["date"] != "earlier"
    connections = results["connections"]
    assert set(connections["cases"]) == set(connections_cost.cases())
    for name, case in connections["cases"].items():
        assert "error" not in case, (name, case)
        assert case["values"] == 1
    assert set(connections["ratios"]) == set(connections_cost.MODES)
    for count in connections_cost.COUNTS:
        assert set(connections["reload"][str(count)]) >= {"worker", "snapshot"}
    kept = out / results["pyperf_files"]["connections"]
    assert len(pyperf.BenchmarkSuite.load(str(kept)).get_benchmarks()) == 4
    table = (out / "results.md").read_text()
    assert "| cold | " in table
    assert "Measured in a run of its own" in table


def _iss(token: str) -> str:
    return str(json.loads(b64decode(token.split(".")[1]))["iss"])


@pytest.mark.parametrize("count", connections_cost.COUNTS)
def test_connections_suite_times_tokens_of_the_last_connection_added(count: int) -> None:
    material, _ = make_material("RS256", 3, issuer=connections_cost.TARGET_ISSUER)
    items = connections_cost.connections(count)
    assert len(items) == count
    assert items[-1].id == connections_cost.TARGET
    assert {_iss(t) for t in material.tokens} == {items[-1].iss}
    assert len({c.iss for c in items}) == len({c.jwks_uri for c in items}) == count
    assert all(c.iss.startswith("https://") for c in items)
    # The parent's check: the middleware names the target, refuses a tampered token.
    assert connections_cost.check(material, count) == {}
    for mode in connections_cost.MODES:  # each case once, untimed; a refusal raises
        bench = connections_cost.Bench(material, count)
        try:
            connections_cost.time_func(bench, mode)(len(material.tokens))
        finally:
            bench.finish()
    reload = connections_cost.reload_cost(material, count, 1)
    assert "error" not in reload, reload
    assert set(reload) == {"connections", "repeats", "worker", "snapshot"}


def test_connections_suite_refuses_a_token_of_no_connection() -> None:
    # The timed step verifies for real: a token of an unconfigured issuer is refused.
    material, _ = make_material("RS256", 2, issuer="https://nobody.idp.bench.example")
    bench = connections_cost.Bench(material, 2)
    try:
        with pytest.raises(AuthError):
            connections_cost.time_func(bench, "cold")(2)
    finally:
        bench.finish()
    assert "error" in connections_cost.check(material, 2)


@given(st.floats(1.0, 1e3), st.floats(1.0, 1e3), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_connections_ratios_divide_the_many_by_the_one_of_the_same_run(
    one: float, many: float, one_cv: float, many_cv: float
) -> None:
    few, more = connections_cost.COUNTS
    results: dict[str, dict[str, Any]] = {case: {} for case in connections_cost.cases()}
    timed = {
        f"cold:{few}": {**_timed(one, one * one_cv), "median_us": one / 2},
        f"cold:{more}": {**_timed(many, many * many_cv), "median_us": many},
        f"warm:{few}": _timed(one),
    }
    judged = connections_cost.judge(results, list(results), timed)
    cold = judged["ratios"]["cold"]
    assert cold["ratio"] == pytest.approx(many / one)
    assert cold["spread"] == pytest.approx(many / one * (one_cv**2 + many_cv**2) ** 0.5)
    assert cold["median_ratio"] == pytest.approx(2 * many / one)
    assert "warm" not in judged["ratios"]  # its 1,000-connection case has no values
    assert "error" in judged["cases"][f"warm:{more}"]
    text = markdown({"machine": MACHINE, "connections": judged})
    row = f"| cold | {one:.2f} ± {one * one_cv:.2f} | {many:.2f} ± {many * many_cv:.2f} | "
    assert f"{row}{many / one:.2f} ± {cold['spread']:.2f} | {2 * many / one:.2f} |" in text
    met = abs(many / one - 1) <= connections_cost.BAND
    assert (f"* cold: 1,000 / 1 within 1 ± 0.10: {many / one:.2f} — met" in text) == met
    assert "* warm: 1,000 / 1 within 1 ± 0.10: n/a — n/a" in text


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_e2e_suite_reports_latency_at_1_and_32_connections(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = run_runner("e2e", *TINY, "--duration", "1", "--out", str(out), timeout=380)
    assert proc.returncode == 0, proc.stderr[-2000:]
    e2e = json.loads((out / "results.json").read_text())["e2e"]
    if not shutil.which("wrk"):
        assert "wrk" in e2e["error"]
        return
    assert list(e2e) == available_stacks()
    assert "h11+asyncio" in e2e
    for stack, cases in e2e.items():
        assert set(cases) == {f"{app}:{mode}" for app, mode in CASES}
        for key, runs in cases.items():
            for connections in CONNECTIONS:
                run = runs[f"c{connections}"]
                assert "error" not in run, (stack, key, connections, run)
                assert run["requests"] > 0
                assert run["non2xx"] == 0
                assert 0 < run["p50_us"] <= run["p99_us"]
        for key, peer, _, _ in TARGETS:
            assert cases[key]["ratios"][peer]["cpu"] > 0
    assert "| asgi_sso:unique | 32 |" in (out / "results.md").read_text()


@pytest.mark.slow
def test_memory_suite_runs_in_a_fresh_process(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = run_runner("memory", "--quick", "--memory-tokens", "300", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    memory = json.loads((out / "results.json").read_text())["memory"]
    assert memory["cached"] == 300
    assert memory["after_overflow"] <= memory["cache_size"]
    assert "memory" in proc.stderr  # the progress bar


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


def _pyperf_file(path: Path, cases: dict[str, list[float]]) -> Path:
    """A pyperf JSON file with one worker run per case (values in seconds)."""
    suite = pyperf.BenchmarkSuite([
        pyperf.Benchmark([pyperf.Run(values, metadata={"name": name, "loops": 1})])
        for name, values in cases.items()
    ])  # fmt: skip
    suite.dump(str(path))
    return path


VALUES = st.lists(st.floats(1e-5, 1e-2), min_size=2, max_size=8)


@settings(max_examples=25, deadline=None)
@given(VALUES)
def test_figures_are_pyperfs_mean_and_std_dev_with_its_warnings(values: list[float]) -> None:
    # A temporary directory per example: hypothesis runs the body many times.
    with tempfile.TemporaryDirectory() as tmp:
        figures = read_pyperf(_pyperf_file(Path(tmp) / "x.json", {"case": values}))["case"]
    assert figures["mean_us"] == pytest.approx(statistics.mean(values) * 1e6)
    assert figures["stdev_us"] == pytest.approx(statistics.stdev(values) * 1e6)
    assert figures["values"] == len(values)
    spread = statistics.stdev(values) / statistics.mean(values) >= 0.10
    assert any("standard deviation" in w for w in figures["warnings"]) == spread


def _timed(us: float, stdev: float = 0.0) -> dict[str, Any]:
    return {"mean_us": us, "stdev_us": stdev, "per_second": 1e6 / us, "warnings": []}


@given(st.floats(1.0, 1e4), st.floats(1.0, 1e4))
def test_verify_ratios_divide_the_floor_of_the_same_run(floor: float, ours: float) -> None:
    results = {
        "RS256": {"raw_crypto:cold": {"name": "floor"}, "asgi_sso:cold": {"name": "asgi_sso"}},
        "Ed25519": {"jose:cold": {"name": "python-jose", "unsupported": "no EdDSA"}},
    }
    ready = ["RS256 raw_crypto:cold", "RS256 asgi_sso_:cold"]
    timed = {ready[0]: _timed(floor), ready[1]: _timed(ours)}
    verify = verify_cost.judge(results, ready, timed)
    assert verify["RS256"]["raw_crypto:cold"]["ratio_to_floor"] == 1.0
    assert verify["RS256"]["asgi_sso:cold"]["ratio_to_floor"] == pytest.approx(floor / ours)
    assert "ratio_to_floor" not in verify["Ed25519"]["jose:cold"]
    text = markdown({"machine": MACHINE, "verify": verify})
    assert "| jose:cold | - | unsupported |" in text


def test_a_case_pyperf_did_not_measure_is_reported_as_failed() -> None:
    results = {"RS256": {"raw_crypto:cold": {"name": "floor"}, "asgi_sso:cold": {"name": "a"}}}
    ready = ["RS256 raw_crypto:cold", "RS256 asgi_sso_:cold"]
    verify = verify_cost.judge(results, ready, {ready[0]: _timed(30.0)})
    assert "error" in verify["RS256"]["asgi_sso:cold"]
    assert "ratio_to_floor" not in verify["RS256"]["asgi_sso:cold"]
    text = markdown({"machine": MACHINE, "verify": verify})
    assert "* RS256 asgi_sso:cold: not run: pyperf produced no values" in text


@given(st.floats(1.0, 1e3), st.floats(0.0, 1e3), st.floats(0.0, 50.0), st.floats(0.0, 50.0))
def test_middleware_overheads_subtract_the_baseline_of_the_same_run(
    base: float, extra: float, base_sd: float, sd: float
) -> None:
    results: dict[str, dict[str, Any]] = {"starlette:warm": {}, "asgi_sso:cold": {}}
    timed = {"starlette:warm": _timed(base, base_sd), "asgi_sso:cold": _timed(base + extra, sd)}
    judged = middleware_cost.judge(results, list(results), timed)
    case = judged["asgi_sso:cold"]
    assert case["overhead_us"] == pytest.approx(extra, abs=1e-9)
    assert case["overhead_stdev_us"] == pytest.approx((base_sd**2 + sd**2) ** 0.5)
    assert case["baseline"] == "starlette"
    assert "overhead_us" not in judged["starlette:warm"]


def test_pyperfs_instability_warnings_reach_the_report() -> None:
    unstable = {**_timed(50.0, 20.0), "warnings": ["the standard deviation (20 us) is 40%"]}
    text = markdown({"machine": MACHINE, "middleware": {"starlette:warm": unstable}})
    assert "| starlette:warm | 50.0 ± 20.0 (unstable) |" in text
    assert "* starlette:warm: pyperf: the standard deviation (20 us) is 40%" in text


def _served(rate: float) -> dict[str, Any]:
    return {
        "requests_per_cpu_s": rate,
        "requests_per_s": rate / 2,
        "requests": 1,
        "errors": 0,
        "non2xx": 0,
        "p50_us": 100,
        "p99_us": 900,
    }


@given(st.floats(1.0, 1e5), st.floats(1.0, 1e5), st.floats(1.0, 1e5))
def test_e2e_ratios_compare_32_connections_in_the_same_run(
    ours: float, theirs: float, one: float
) -> None:
    results = {
        "stack": {
            "asgi_sso:unique": {"c1": _served(one), "c32": _served(ours)},
            "litestar_jwt:unique": {"c1": _served(one), "c32": _served(theirs)},
            "fastapi_pyjwt:unique": {"c1": _served(one), "c32": {"error": "uvicorn exited"}},
        }
    }
    cases = judge(results)["stack"]
    ratios = cases["asgi_sso:unique"]["ratios"]
    assert ratios["litestar_jwt:unique"]["cpu"] == pytest.approx(ours / theirs)
    assert ratios["litestar_jwt:unique"]["wall"] == pytest.approx(ours / theirs)
    # A failed run of the peer leaves no ratio; only the judged pairs get one.
    assert "fastapi_pyjwt:unique" not in ratios
    assert "ratios" not in cases["litestar_jwt:unique"]
    text = markdown({"machine": MACHINE, "e2e": results})
    assert "| fastapi_pyjwt:unique | 32 | uvicorn exited |" in text
    assert "* unique >= 3x FastAPI Depends+PyJWT: n/a" in text


@pytest.mark.parametrize("kind", KINDS)
def test_refusals_suite_measures_each_kind_of_refused_request(kind: str) -> None:
    result = run_refusals_case({"kind": kind, "count": 30})
    assert result["requests"] == 30
    assert result["us_per_request"] > 0
    text = markdown({"machine": MACHINE, "refusals": {"requests": 30, kind: result}})
    assert f"| {kind} |" in text


def test_dpop_suite_checks_and_runs_each_case_once(tmp_path: Path) -> None:
    budget = budget_from(parse(["dpop", *TINY]))
    dpop_cost.prepare(budget, tmp_path)
    assert dpop_cost.check(tmp_path) == {}
    bench = dpop_cost.load(tmp_path)
    try:
        bound = bench.material["dpop"].tokens[0]
        assert b'"cnf"' in b64decode(bound.split(".")[1])
        assert b'"cnf"' not in b64decode(bench.material["bearer"].tokens[0].split(".")[1])
        for case in dpop_cost.cases():  # each case once, untimed; a refusal raises
            kind, _, mode = case.partition(":")
            assert dpop_cost.time_func(bench, kind, mode)(3) > 0
    finally:
        bench.finish()


@pytest.mark.slow
def test_dpop_suite_runs_on_pyperf_and_reports_ratios(tmp_path: Path) -> None:
    proc = run_runner("dpop", *TINY, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    dpop = results["dpop"]
    assert set(dpop["cases"]) == set(dpop_cost.cases())
    for name, case in dpop["cases"].items():
        assert "error" not in case, (name, case)
        assert case["values"] == 1
    assert set(dpop["ratios"]) == set(dpop_cost.MODES)
    kept = tmp_path / results["pyperf_files"]["dpop"]
    assert len(pyperf.BenchmarkSuite.load(str(kept)).get_benchmarks()) == 4
    assert "| warm | " in (tmp_path / "results.md").read_text()
