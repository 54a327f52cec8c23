"""Which of the registry benchmark's ratios are judged, against what, and which count in
OVERALL (``bench/registry_vs_mlflow.py``), on made-up results."""

from __future__ import annotations

from types import SimpleNamespace

from bench.harness.stats import Result
from bench.registry_vs_mlflow import GOALS, plan_from, verdicts

PLAN = plan_from(
    SimpleNamespace(
        quick=True, versions=None, workers=4, clients=8, page_size=100, seed_threads=8, threads=2, reads_only=False
    )
)


def _result(system: str, what: str, clients: int, latency_ms: float, *, wall: float = 1.0, errors: int = 0) -> Result:
    latencies = [latency_ms / 1000] * 10
    return Result(system, what, clients, 10, latencies, errors, wall, False, "boom" if errors else None, cpu=0.01)


def _results(**overrides: tuple[float, float]) -> list[Result]:
    """Every measurement at 1 and 8 clients; ModelGate 4x faster and at a quarter of the
    latency unless ``overrides`` gives ``{what: (ModelGate latency ms, its wall s)}``."""
    results = []
    for what in GOALS:
        for clients in (1, PLAN.clients):
            key = what.replace(" ", "_").replace(",", "")
            latency, wall = overrides.get(key, (2.5, 0.25))
            results.append(_result("MLflow", what, clients, 10.0))
            results.append(_result("ModelGate", what, clients, latency, wall=wall))
    return results


def _line(lines: list[str], what: str, clients: int) -> str:
    return next(line for line in lines if line.startswith(f"{what:<24} {clients:>7} "))


def test_everything_met_passes_and_judges_reads_only_at_the_concurrent_clients():
    lines, judged = verdicts(_results(), PLAN)
    assert judged.passed
    assert _line(lines, "search by name", 8).endswith("throughput >= 3x                   PASS")
    assert "(for information)" in _line(lines, "search by name", 1)
    assert _line(lines, "register from run", 1).rstrip().endswith("latency p50 and p95 <= 1.5x        PASS")
    # A first read, nothing kept, is judged at 1 client as well.
    assert _line(lines, "alias, nothing kept", 1).endswith("throughput >= 3x                   PASS")
    assert _line(lines, "by metric, nothing kept", 8).endswith("throughput >= 3x                   PASS")


def test_slow_registration_from_a_run_fails_overall():
    _, judged = verdicts(_results(register_from_run=(16.0, 0.25)), PLAN)
    assert not judged.passed
    assert judged.failed == ["register from run (1 clients)", "register from run (8 clients)"]


def test_reads_under_three_times_fail_overall():
    _, judged = verdicts(_results(resolve_alias=(2.5, 0.5)), PLAN)  # 2x MLflow's throughput
    assert judged.failed == ["resolve alias (8 clients)"]


def test_registration_from_a_source_over_twice_the_bare_create_fails_overall():
    lines, judged = verdicts(_results(register_from_source=(25.0, 0.25)), PLAN)  # 2.5x MLflow's latency
    assert judged.failed == ["register from source (1 clients)", "register from source (8 clients)"]
    assert _line(lines, "register from source", 1).rstrip().endswith("latency p50 and p95 <= 2x          FAIL")


def test_a_cold_read_under_three_times_fails_overall_even_at_one_client():
    _, judged = verdicts(_results(by_tag_nothing_kept=(5.0, 0.5)), PLAN)  # 2x MLflow's throughput
    assert judged.failed == ["by tag, nothing kept (1 clients)", "by tag, nothing kept (8 clients)"]


def test_an_error_on_either_side_fails_the_target():
    results = _results()
    mlflow_alias = next(r for r in results if (r.system, r.what, r.clients) == ("MLflow", "resolve alias", 8))
    mlflow_alias.errors = 1
    _, judged = verdicts(results, PLAN)
    assert judged.failed == ["resolve alias (8 clients)"]
