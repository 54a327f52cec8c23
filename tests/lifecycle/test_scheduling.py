"""Unit tests of the pure scheduling core: strategies, aging, quotas, gangs, reasons."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.jobs.scheduling import (
    STRATEGIES,
    ClusterSnapshot,
    GpuSnapshot,
    JobRequest,
    PoolQuota,
    ReasonCode,
    RoundRobinCursor,
    RunningJob,
    ScheduleResult,
    SchedulingPolicy,
    WorkerSnapshot,
    effective_priority,
    make_strategy,
    schedule,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def worker(
    name: str,
    gpus: int = 4,
    gpu_type: str = "A100",
    gpu_memory_mb: int = 81920,
    **fields: object,
) -> WorkerSnapshot:
    """A worker with ``gpus`` identical GPUs and roomy CPUs/memory unless overridden."""
    fields.setdefault("cpus", 64)
    fields.setdefault("memory_mb", 512_000)
    inventory = tuple(GpuSnapshot(i, gpu_type, gpu_memory_mb) for i in range(gpus))
    return WorkerSnapshot(name=name, gpus=inventory, **fields)  # type: ignore[arg-type]


def job(job_id: str, team: str = "vision", **fields: object) -> JobRequest:
    """A job submitted at ``NOW`` unless overridden."""
    fields.setdefault("submitted_at", NOW)
    return JobRequest(id=job_id, team=team, **fields)  # type: ignore[arg-type]


def cluster(*workers: WorkerSnapshot, **fields: object) -> ClusterSnapshot:
    return ClusterSnapshot(workers=workers, **fields)  # type: ignore[arg-type]


def placed_on(result: ScheduleResult) -> dict[str, tuple[str, ...]]:
    return {p.job_id: p.workers for p in result.placements}


def reason(result: ScheduleResult, job_id: str) -> str:
    waiting = result.reason_for(job_id)
    assert waiting is not None, f"{job_id} was placed: {result.placement_for(job_id)}"
    return waiting.reason


# --- strategies ---------------------------------------------------------------------


def test_static_strategy_places_jobs_only_on_workers_pinned_to_their_team() -> None:
    snap = cluster(worker("a"), worker("b"), worker("c"))
    jobs = [job("v1", gpus=2), job("v2", gpus=2), job("n1", team="nlp", gpus=1)]
    config = {"assignments": {"vision": ["b"], "nlp": ["c", "a"]}}

    result = schedule(snap, jobs, "static", NOW, config=config)

    assert placed_on(result) == {"v1": ("b",), "v2": ("b",), "n1": ("c",)}


def test_static_strategy_prefers_a_model_pin_over_the_team_pin() -> None:
    snap = cluster(worker("a"), worker("b"))
    config = {"assignments": {"vision": ["a"], "resnet50": ["b"]}}

    result = schedule(snap, [job("j", gpus=1, model_name="resnet50")], "static", NOW, config=config)

    assert placed_on(result) == {"j": ("b",)}


def test_static_strategy_leaves_unassigned_and_overflowing_jobs_waiting_with_reasons() -> None:
    snap = cluster(worker("a", gpus=2), worker("b", gpus=8))
    config = {"assignments": {"vision": ["a"]}}
    jobs = [job("big", gpus=4), job("stranger", team="nlp", gpus=1)]

    result = schedule(snap, jobs, "static", NOW, config=config)

    assert result.placements == ()
    assert "no worker with 4×GPU" in reason(result, "big")
    assert "pinned for 'vision'" in reason(result, "big")
    assert reason(result, "stranger") == "no static assignment for model None or team 'nlp'"
    assert result.reason_for("stranger").code == ReasonCode.NO_STATIC_ASSIGNMENT


def test_round_robin_rotates_across_feasible_workers_and_skips_those_that_do_not_fit() -> None:
    snap = cluster(worker("a"), worker("b", gpus=1), worker("c"))
    jobs = [job(f"j{i}", gpus=2, submitted_at=NOW - timedelta(seconds=10 - i)) for i in range(4)]

    result = schedule(snap, jobs, "round_robin", NOW)

    # b has a single GPU, so two-GPU jobs alternate between a and c.
    assert [p.master for p in result.placements] == ["a", "c", "a", "c"]
    assert result.cursor == RoundRobinCursor({"default": "c"})


def test_round_robin_resumes_after_the_cursor_the_caller_kept() -> None:
    snap = cluster(worker("a"), worker("b"), worker("c"))
    first = schedule(snap, [job("j1", gpus=1)], "round_robin", NOW)
    second = schedule(snap, [job("j2", gpus=1)], "round_robin", NOW, config={"cursor": first.cursor})
    third = schedule(snap, [job("j3", gpus=1)], "round_robin", NOW, config={"cursor": second.cursor})
    wrapped = schedule(snap, [job("j4", gpus=1)], "round_robin", NOW, config={"cursor": third.cursor})

    assert [r.placements[0].master for r in (first, second, third, wrapped)] == [
        "a",
        "b",
        "c",
        "a",
    ]
    assert first.cursor == RoundRobinCursor({"default": "a"})


def test_least_loaded_picks_the_worker_with_the_lowest_fraction_of_gpus_allocated() -> None:
    snap = cluster(
        worker("busy", gpus=4, allocated_gpu_indices=frozenset({0, 1}), running_jobs=1),
        worker("idle-ish", gpus=8, allocated_gpu_indices=frozenset({0, 1}), running_jobs=1),
    )

    result = schedule(snap, [job("j", gpus=1)], "least_loaded", NOW)

    assert placed_on(result) == {"j": ("idle-ish",)}
    assert result.placements[0].score == pytest.approx(0.25)
    assert "25% of GPUs allocated" in result.placements[0].reason


def test_least_loaded_breaks_ties_by_running_jobs_then_by_name() -> None:
    snap = cluster(
        worker("b", running_jobs=0),
        worker("a", running_jobs=2),
        worker("c", running_jobs=0),
    )

    result = schedule(snap, [job("j", gpus=1)], "least_loaded", NOW)

    assert placed_on(result) == {"j": ("b",)}


def test_least_loaded_spreads_a_round_because_each_placement_raises_the_load() -> None:
    snap = cluster(worker("a"), worker("b"))
    jobs = [job(f"j{i}", gpus=1, submitted_at=NOW - timedelta(seconds=10 - i)) for i in range(4)]

    result = schedule(snap, jobs, "least_loaded", NOW)

    assert [p.master for p in result.placements] == ["a", "b", "a", "b"]


def test_min_completion_time_uses_the_history_of_similar_jobs_per_gpu_type() -> None:
    snap = cluster(
        worker("a100", gpu_type="A100"),
        worker("h100", gpu_type="H100", backlog_s=600),
        duration_history={("train", "A100"): [7200, 3600], ("train", "H100"): 1800.0},
    )

    result = schedule(snap, [job("j", gpus=1, kind="train")], "min_completion_time", NOW)

    # A100: 5400 s expected, no backlog. H100: 1800 s + 600 s backlog = 2400 s.
    assert placed_on(result) == {"j": ("h100",)}
    assert result.placements[0].score == pytest.approx(2400)
    assert "30m on H100 (history of train)" in result.placements[0].reason


def test_min_completion_time_prefers_entrypoint_history_then_falls_back_to_the_estimate() -> None:
    snap = cluster(
        worker("a", gpu_type="A100", backlog_s=3000),
        worker("b", gpu_type="T4"),
        duration_history={("finetune.py", "A100"): [600.0], ("train", "T4"): [99999.0]},
    )
    by_entrypoint = job("e", gpus=1, kind="train", entrypoint="finetune.py", estimated_duration_s=10)
    by_estimate = job("x", gpus=1, kind="evaluate", estimated_duration_s=1000)

    result = schedule(snap, [by_entrypoint], "min_completion_time", NOW)
    # a: 3000 + 600 = 3600 s; b: T4 has only ("train", T4) history = 99999 s.
    assert placed_on(result) == {"e": ("a",)}

    result = schedule(snap, [by_estimate], "min_completion_time", NOW)
    # No history for evaluate: estimate 1000 s everywhere, so b's empty backlog wins.
    assert placed_on(result) == {"x": ("b",)}
    assert "job estimate" in result.placements[0].reason


def test_min_completion_time_adds_placed_work_to_the_backlog_within_a_round() -> None:
    snap = cluster(worker("a", gpus=2), worker("b", gpus=2, backlog_s=100))
    jobs = [
        job(
            f"j{i}",
            gpus=1,
            estimated_duration_s=1000,
            submitted_at=NOW - timedelta(seconds=9 - i),
        )
        for i in range(2)
    ]

    result = schedule(snap, jobs, "min_completion_time", NOW)

    # j0 lands on a (0 s backlog) and adds 1000 × 1/2 GPUs there; j1 then prefers b (100 s).
    assert [p.master for p in result.placements] == ["a", "b"]


def test_capability_filters_on_gpu_type_gpu_memory_and_labels() -> None:
    snap = cluster(
        worker("small", gpu_type="A100", gpu_memory_mb=40960, labels={"zone": "eu"}),
        worker("big-us", gpu_type="A100", gpu_memory_mb=81920, labels={"zone": "us"}),
        worker("big-eu", gpu_type="A100", gpu_memory_mb=81920, labels={"zone": "eu"}),
        worker("h100", gpu_type="H100", labels={"zone": "eu"}),
    )
    wanted = job("j", gpus=2, gpu_type="a100", gpu_memory_mb=60000, labels={"zone": "eu"})

    result = schedule(snap, [wanted], "capability", NOW)

    assert placed_on(result) == {"j": ("big-eu",)}


def test_capability_best_fit_leaves_the_fewest_free_gpus_then_least_spare_memory() -> None:
    snap = cluster(
        worker("eight", gpus=8),
        worker("three-big", gpus=3, gpu_memory_mb=81920),
        worker("three-small", gpus=3, gpu_memory_mb=40960),
        worker("four", gpus=4),
    )

    result = schedule(
        snap,
        [job("j", gpus=2, gpu_type="A100", gpu_memory_mb=30000)],
        "capability",
        NOW,
    )

    assert placed_on(result) == {"j": ("three-small",)}
    assert result.placements[0].score == 1.0
    assert "leaves 1 free A100 GPU" in result.placements[0].reason


def test_cost_picks_the_cheapest_worker_that_meets_the_deadline() -> None:
    snap = cluster(
        worker("cheap-but-busy", cost_per_gpu_hour=1.0, backlog_s=3 * 3600),
        worker("mid", cost_per_gpu_hour=2.0),
        worker("dear", cost_per_gpu_hour=5.0),
    )
    urgent = job("urgent", gpus=2, estimated_duration_s=3600, deadline=NOW + timedelta(hours=2))
    relaxed = job("relaxed", gpus=2, estimated_duration_s=3600)

    result = schedule(snap, [urgent, relaxed], "cost", NOW)

    assert placed_on(result) == {"urgent": ("mid",), "relaxed": ("cheap-but-busy",)}
    assert result.placement_for("urgent").score == pytest.approx(4.0)  # 2.0 × 2 GPUs × 1 h
    assert "before deadline" in result.placement_for("urgent").reason


def test_cost_says_so_when_no_worker_meets_the_deadline() -> None:
    snap = cluster(
        worker("cheap", cost_per_gpu_hour=1.0, backlog_s=7200),
        worker("dear", cost_per_gpu_hour=3.0, backlog_s=5400),
    )
    late = job("late", gpus=1, estimated_duration_s=3600, deadline=NOW + timedelta(hours=1))

    result = schedule(snap, [late], "cost", NOW)

    waiting = result.reason_for("late")
    assert waiting.code == ReasonCode.DEADLINE
    assert waiting.reason == (
        "no worker meets the deadline 2025-06-02 13:00+00:00 (cheapest finishes at 2025-06-02 15:00+00:00 on cheap)"
    )


def test_cost_reports_a_deadline_that_no_duration_could_meet() -> None:
    snap = cluster(worker("a", cost_per_gpu_hour=1.0))
    hopeless = job("h", gpus=1, estimated_duration_s=7200, deadline=NOW + timedelta(minutes=30))

    result = schedule(snap, [hopeless], "cost", NOW)

    assert reason(result, "h").startswith("no worker meets the deadline")


# --- queue order: priorities with aging ---------------------------------------------


def test_effective_priority_is_priority_plus_aging_points_per_interval_waited() -> None:
    policy = SchedulingPolicy(aging_points=1.0, aging_interval_s=300)
    waited_an_hour = job("j", priority=2, submitted_at=NOW - timedelta(hours=1))

    assert effective_priority(waited_an_hour, NOW, policy) == pytest.approx(2 + 12)
    capped = SchedulingPolicy(aging_points=1.0, aging_interval_s=300, aging_cap=5)
    assert effective_priority(waited_an_hour, NOW, capped) == pytest.approx(7)
    assert effective_priority(job("new", priority=2), NOW, policy) == 2


def test_an_old_low_priority_job_overtakes_a_new_high_priority_job_after_enough_waiting() -> None:
    snap = cluster(worker("only", gpus=1))
    policy = SchedulingPolicy(aging_points=1.0, aging_interval_s=300)
    new_high = job("new-high", gpus=1, priority=10, submitted_at=NOW)

    waited_a_bit = job("old-low", gpus=1, priority=0, submitted_at=NOW - timedelta(minutes=30))
    early = schedule(snap, [waited_a_bit, new_high], "least_loaded", NOW, policy=policy)
    assert placed_on(early) == {"new-high": ("only",)}

    waited_long = job("old-low", gpus=1, priority=0, submitted_at=NOW - timedelta(minutes=55))
    later = schedule(snap, [new_high, waited_long], "least_loaded", NOW, policy=policy)
    assert placed_on(later) == {"old-low": ("only",)}
    assert later.placements[0].effective_priority == pytest.approx(11)


def test_jobs_of_equal_effective_priority_go_in_submit_order() -> None:
    snap = cluster(worker("only", gpus=1))
    no_aging = SchedulingPolicy(aging_points=0.0)
    jobs = [
        job("second", submitted_at=NOW - timedelta(minutes=1), gpus=1),
        job("first", submitted_at=NOW - timedelta(minutes=2), gpus=1),
    ]

    result = schedule(snap, jobs, "least_loaded", NOW, policy=no_aging)

    assert placed_on(result) == {"first": ("only",)}


# --- quotas -------------------------------------------------------------------------


def test_a_job_waits_with_the_reason_when_its_team_quota_would_be_exceeded() -> None:
    snap = cluster(
        worker("a", gpus=8),
        worker("b", gpus=8),
        quotas=(PoolQuota("default", "vision", 8),),
        running=(RunningJob("r1", "vision", "default", 8),),
    )

    result = schedule(snap, [job("j", gpus=2), job("other", team="nlp", gpus=2)], "least_loaded", NOW)

    assert reason(result, "j") == (
        "team quota 8 GPUs reached (8 in use, job needs 2) for team 'vision' in pool 'default'"
    )
    assert result.reason_for("j").code == ReasonCode.QUOTA
    assert "other" in placed_on(result)


def test_team_quota_counts_placements_made_earlier_in_the_same_round() -> None:
    snap = cluster(
        worker("a", gpus=8),
        quotas=(PoolQuota("default", "vision", 4),),
        running=(RunningJob("r1", "vision", "default", 1),),
    )
    jobs = [job(f"j{i}", gpus=2, submitted_at=NOW - timedelta(seconds=9 - i)) for i in range(3)]

    result = schedule(snap, jobs, "capability", NOW)

    assert list(placed_on(result)) == ["j0"]
    assert reason(result, "j1").startswith("team quota 4 GPUs would be exceeded (3 in use, job needs 2)")


def test_quotas_apply_per_pool() -> None:
    snap = cluster(
        worker("a", pool="gpu-a"),
        worker("b", pool="gpu-b"),
        quotas=(PoolQuota("gpu-a", "vision", 0),),
    )

    result = schedule(
        snap,
        [job("a", pool="gpu-a", gpus=1), job("b", pool="gpu-b", gpus=1)],
        "least_loaded",
        NOW,
    )

    assert placed_on(result) == {"b": ("b",)}


# --- gangs --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_a_gang_is_placed_on_distinct_workers_with_the_master_at_rank_zero(
    strategy: str,
) -> None:
    snap = cluster(
        worker("a", gpus=8),
        worker("b", gpus=8),
        worker("c", gpus=8),
        worker("d", gpus=2),
    )
    config = {"assignments": {"vision": ["a", "b", "c", "d"]}} if strategy == "static" else None

    result = schedule(
        snap,
        [job("g", gpus=8, nodes=3, parallelism="data")],
        strategy,
        NOW,
        config=config,
    )

    [placement] = result.placements
    assert sorted(placement.workers) == ["a", "b", "c"]
    assert [node.rank for node in placement.nodes] == [0, 1, 2]
    assert placement.master == placement.nodes[0].worker
    assert all(node.gpu_indices == tuple(range(8)) for node in placement.nodes)


def test_a_gang_that_cannot_be_completed_reserves_nothing() -> None:
    snap = cluster(worker("a", gpus=8, gpu_type="H100"), worker("b", gpus=8, gpu_type="H100"))
    gang = job("gang", gpus=8, gpu_type="H100", nodes=4, priority=9)
    single = job("single", gpus=8, gpu_type="H100", priority=1)
    other = job("other", gpus=8, gpu_type="H100", priority=0)

    result = schedule(snap, [gang, single, other], "least_loaded", NOW)

    assert reason(result, "gang") == "gang needs 4 workers with 8×H100, only 2 available in pool 'default'"
    assert result.reason_for("gang").code == ReasonCode.GANG
    assert set(placed_on(result)) == {"single", "other"}


def test_a_gang_never_mixes_gpu_classes() -> None:
    snap = cluster(worker("a", gpus=4, gpu_type="A100"), worker("t", gpus=4, gpu_type="T4"))

    result = schedule(snap, [job("g", gpus=4, nodes=2)], "least_loaded", NOW)

    assert result.reason_for("g").reason.startswith("gang needs 2 workers with 4×GPU, only 1 available")


# --- feasibility and reasons ---------------------------------------------------------


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_draining_and_offline_workers_are_skipped(strategy: str) -> None:
    snap = cluster(
        worker("a-draining", state="draining", cost_per_gpu_hour=0.0),
        worker("b-offline", state="offline", cost_per_gpu_hour=0.0),
        worker("z-online", cost_per_gpu_hour=9.0, backlog_s=9999, running_jobs=5),
    )
    config = {"assignments": {"vision": ["a-draining", "b-offline", "z-online"]}} if strategy == "static" else None

    result = schedule(snap, [job("j", gpus=1)], strategy, NOW, config=config)

    assert placed_on(result) == {"j": ("z-online",)}


def test_a_pool_with_no_online_worker_is_named_in_the_reason() -> None:
    snap = cluster(
        worker("a", pool="gpu-a", state="draining"),
        worker("b", pool="gpu-a", state="offline"),
    )

    result = schedule(
        snap,
        [job("j", pool="gpu-a", gpus=1), job("k", pool="gpu-z", gpus=1)],
        "least_loaded",
        NOW,
    )

    assert reason(result, "j") == "no online worker in pool 'gpu-a' (1 draining, 1 offline)"
    assert reason(result, "k") == "no worker in pool 'gpu-z'"
    assert result.reason_for("j").code == ReasonCode.NO_ONLINE_WORKER


def test_reasons_name_what_is_missing() -> None:
    snap = cluster(
        worker("a", gpus=1, gpu_type="A100", cpus=8),
        worker(
            "b",
            gpus=4,
            gpu_type="T4",
            allocated_gpu_indices=frozenset({0, 1, 2}),
            cpus=8,
        ),
    )
    jobs = [
        job("two-a100", gpus=2, gpu_type="A100"),
        job("h100", gpus=1, gpu_type="H100"),
        job("two-t4", gpus=2, gpu_type="T4"),
        job("cpu-hungry", gpus=1, gpu_type="A100", cpus=32),
        job("labelled", gpus=1, gpu_type="A100", labels={"zone": "eu"}),
        job("roomy", gpus=1, gpu_type="A100", gpu_memory_mb=100_000),
    ]

    result = schedule(snap, jobs, "capability", NOW)

    assert reason(result, "two-a100") == "no worker with 2×A100 in pool 'default' (largest has 1)"
    assert result.reason_for("two-a100").code == ReasonCode.NOT_ENOUGH_GPUS
    assert reason(result, "h100").startswith("no worker with 1×H100 in pool 'default'")
    assert result.reason_for("h100").code == ReasonCode.NO_GPU_TYPE
    assert reason(result, "two-t4") == "no worker with 2×T4 free in pool 'default' (most free on one worker: 1)"
    assert reason(result, "cpu-hungry").startswith("no worker with 1×A100 free also has 32 CPUs")
    assert result.reason_for("cpu-hungry").code == ReasonCode.INSUFFICIENT_RESOURCES
    assert "labels zone=eu" in reason(result, "labelled")
    assert reason(result, "roomy").startswith("no worker with 1×A100 (≥ 100000 MiB)")


def test_invalid_requests_are_rejected_with_a_reason() -> None:
    snap = cluster(worker("a"))

    result = schedule(snap, [job("neg", gpus=-1), job("zero-nodes", nodes=0)], "least_loaded", NOW)

    assert {u.code for u in result.unplaceable} == {ReasonCode.INVALID_REQUEST}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_gpu_indices_never_overlap_within_a_round_or_with_allocated_ones(
    strategy: str,
) -> None:
    snap = cluster(
        worker("a", gpus=8, allocated_gpu_indices=frozenset({1, 4})),
        worker("b", gpus=4, allocated_gpu_indices=frozenset({0})),
    )
    jobs = [job(f"j{i}", gpus=1 + i % 3, submitted_at=NOW - timedelta(seconds=i)) for i in range(10)]
    config = {"assignments": {"vision": ["a", "b"]}} if strategy == "static" else None

    result = schedule(snap, jobs, strategy, NOW, config=config)

    taken = {"a": {1, 4}, "b": {0}}
    for placement in result.placements:
        for node in placement.nodes:
            assert not taken[node.worker] & set(node.gpu_indices)
            taken[node.worker] |= set(node.gpu_indices)
    assert taken == {"a": set(range(8)), "b": set(range(4))}


def test_cpu_only_jobs_are_placed_by_cpus_and_memory() -> None:
    snap = cluster(worker("a", gpus=0, cpus=4), worker("b", gpus=2, cpus=16))

    result = schedule(
        snap,
        [job("convert", kind="convert", cpus=8, memory_mb=1024)],
        "capability",
        NOW,
    )

    assert placed_on(result) == {"convert": ("b",)}
    assert result.placements[0].nodes[0].gpu_indices == ()


def test_the_round_leaves_its_inputs_untouched_and_is_deterministic() -> None:
    snap = cluster(worker("a", allocated_gpu_indices=frozenset({0})), worker("b"))
    cursor = RoundRobinCursor({"default": "a"})
    jobs = [job(f"j{i}", gpus=1) for i in range(5)]

    first = schedule(snap, jobs, "round_robin", NOW, config={"cursor": cursor})
    second = schedule(snap, jobs, "round_robin", NOW, config={"cursor": cursor})

    assert first == second
    assert cursor.positions == {"default": "a"}
    assert snap.workers[0].allocated_gpu_indices == frozenset({0})


def test_strategies_are_selected_by_name_and_unknown_names_are_refused() -> None:
    assert sorted(STRATEGIES) == [
        "capability",
        "cost",
        "least_loaded",
        "min_completion_time",
        "round_robin",
        "static",
    ]
    assert make_strategy("least_loaded").name == "least_loaded"
    with pytest.raises(ValueError, match="unknown strategy 'fastest'"):
        make_strategy("fastest")
    with pytest.raises(ValueError, match="bad config for strategy 'static'"):
        make_strategy("static", {"mapping": {}})
    with pytest.raises(ValueError, match="config only with a strategy name"):
        schedule(cluster(), [], make_strategy("cost"), NOW, config={"x": 1})


def test_a_worker_reporting_duplicate_gpu_indices_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate GPU indices"):
        WorkerSnapshot("w", gpus=(GpuSnapshot(0, "A100", 1), GpuSnapshot(0, "A100", 1)))


def test_the_scheduling_package_imports_without_django() -> None:
    code = "import sys, lifecycle.jobs.scheduling; sys.exit('django' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
