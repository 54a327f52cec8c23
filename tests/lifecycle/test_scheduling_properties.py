"""Property tests: invariants of a scheduling round on random clusters and queues."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.jobs.scheduling import (
    STRATEGIES,
    ClusterSnapshot,
    GpuSnapshot,
    JobRequest,
    PoolQuota,
    RunningJob,
    ScheduleResult,
    WorkerSnapshot,
    WorkerState,
    schedule,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
POOLS = ("p1", "p2")
TEAMS = ("t1", "t2", "t3")
GPU_KINDS = (("A100", 40960), ("A100", 81920), ("T4", 16384))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


ONLINE_MOSTLY = (WorkerState.ONLINE,) * 10 + (WorkerState.DRAINING, WorkerState.OFFLINE)
WORKER_LABELS = ({}, {"zone": "a"}, {"zone": "b"}, {"zone": "a", "disk": "ssd"})


@st.composite
def workers(draw: st.DrawFn, name: str, busy: bool) -> WorkerSnapshot:
    """A mostly online worker with 0-8 GPUs (sometimes mixed classes), some allocated.

    ``busy`` keeps every worker online in pool p1 so many jobs compete for it.
    """
    count = draw(st.integers(0, 8))
    base = draw(st.sampled_from(GPU_KINDS))
    # Sparse, shuffled indices catch code that assumes GPUs are numbered 0..n-1.
    indices = draw(st.permutations(range(count + 2)))[:count]
    if draw(st.integers(0, 4)) == 0:
        kinds = [draw(st.sampled_from(GPU_KINDS)) for _ in indices]
    else:
        kinds = [base] * count
    gpus = tuple(GpuSnapshot(i, *kind) for i, kind in zip(indices, kinds, strict=True))
    allocated = frozenset(i for i in indices if draw(st.integers(0, 3)) == 0)
    cpus = draw(st.sampled_from((4, 32, 128)))
    memory_mb = draw(st.sampled_from((8192, 131072, 262144)))
    return WorkerSnapshot(
        name=name,
        pool="p1" if busy else draw(st.sampled_from(("p1", "p1", "p2"))),
        gpus=gpus,
        cpus=cpus,
        memory_mb=memory_mb,
        labels=draw(st.sampled_from(WORKER_LABELS)),
        cost_per_gpu_hour=draw(st.sampled_from((0.0, 0.5, 1.0, 2.5))),
        state=WorkerState.ONLINE if busy else draw(st.sampled_from(ONLINE_MOSTLY)),
        allocated_gpu_indices=allocated,
        allocated_cpus=draw(st.sampled_from((0, 0, 2, cpus))),
        allocated_memory_mb=draw(st.sampled_from((0, 0, 4096, memory_mb))),
        running_jobs=draw(st.integers(0, 3)),
        backlog_s=draw(st.sampled_from((0.0, 600.0, 7200.0))),
    )


@st.composite
def jobs(draw: st.DrawFn, job_id: str, busy: bool) -> JobRequest:
    """A job of any shape, including gangs, deadlines, labels and impossible requests."""
    deadline_min = draw(st.sampled_from((None, None, -30, 30, 90, 600)))
    return JobRequest(
        id=job_id,
        team=draw(st.sampled_from(TEAMS)),
        pool="p1" if busy else draw(st.sampled_from(("p1",) * 8 + ("p2", "p2", "p-x"))),
        kind=draw(st.sampled_from(("train", "evaluate"))),
        model_name=draw(st.sampled_from((None, "m1", "m2"))),
        gpus=draw(st.integers(0, 4)),
        gpu_type=draw(st.sampled_from((None,) * 3 + ("A100", "a100", "T4", "H100"))),
        gpu_memory_mb=draw(st.sampled_from((None,) * 5 + (20000, 81920))),
        cpus=draw(st.sampled_from((0, 1, 4, 8))),
        memory_mb=draw(st.sampled_from((0, 1024, 16384))),
        nodes=draw(st.sampled_from((1,) * 8 + (2, 3))),
        priority=draw(st.integers(0, 5)),
        submitted_at=NOW - timedelta(minutes=draw(st.integers(0, 600))),
        deadline=None if deadline_min is None else NOW + timedelta(minutes=deadline_min),
        estimated_duration_s=draw(st.sampled_from((None, 60.0, 3600.0, 36000.0))),
        labels=draw(st.sampled_from(({},) * 5 + ({"zone": "a"},))),
    )


@st.composite
def rounds(
    draw: st.DrawFn,
) -> tuple[ClusterSnapshot, list[JobRequest], str, dict | None]:
    """A snapshot, a queue, a strategy name and its config."""
    busy = draw(st.booleans())
    fleet = tuple(draw(workers(f"w{i}", busy)) for i in range(draw(st.integers(2, 7))))
    queue = [draw(jobs(f"j{i}", busy)) for i in range(draw(st.integers(0, 16)))]
    quotas = tuple(
        PoolQuota(pool, team, limit)
        for pool in POOLS
        for team in TEAMS
        if (limit := draw(st.sampled_from((None,) * 4 + (0, 4, 8, 16)))) is not None
    )
    running = tuple(
        RunningJob(
            f"r{i}",
            draw(st.sampled_from(TEAMS)),
            draw(st.sampled_from(POOLS)),
            draw(st.integers(0, 6)),
        )
        for i in range(draw(st.integers(0, 4)))
    )
    history = {("train", "A100"): [1800.0, 5400.0], ("evaluate", "T4"): 600.0}
    strategy = draw(st.sampled_from(sorted(STRATEGIES)))
    config = None
    if strategy == "static":
        names = [w.name for w in fleet]
        keys = st.sampled_from(("t1", "t2", "m1", "m2"))
        config = {"assignments": draw(st.dictionaries(keys, st.lists(st.sampled_from(names), max_size=5)))}
    return ClusterSnapshot(fleet, quotas, running, history), queue, strategy, config


def check_round(
    snapshot: ClusterSnapshot,
    queue: list[JobRequest],
    result: ScheduleResult,
    config: dict | None,
) -> None:
    by_name = {w.name: w for w in snapshot.workers}
    by_id = {job.id: job for job in queue}

    decided = [p.job_id for p in result.placements] + [u.job_id for u in result.unplaceable]
    assert sorted(decided) == sorted(by_id), "every job is decided exactly once"

    taken = {name: set(w.allocated_gpu_indices) for name, w in by_name.items()}
    cpus = Counter[str]()
    memory = Counter[str]()
    team_gpus = Counter[tuple[str, str]]()
    for placement in result.placements:
        job = by_id[placement.job_id]
        assert len(placement.nodes) == job.nodes, "gangs are all or nothing"
        assert len(set(placement.workers)) == job.nodes, "gang members are distinct workers"
        assert [node.rank for node in placement.nodes] == list(range(job.nodes))
        team_gpus[(job.pool, job.team)] += job.gpus * job.nodes
        for node in placement.nodes:
            w = by_name[node.worker]
            assert w.state == WorkerState.ONLINE
            assert w.pool == job.pool
            assert all(w.labels.get(k) == v for k, v in job.labels.items())
            assert len(node.gpu_indices) == job.gpus
            assert len(set(node.gpu_indices)) == job.gpus
            inventory = {gpu.index: gpu for gpu in w.gpus}
            assert set(node.gpu_indices) <= set(inventory), "indices exist on the worker"
            assert not taken[w.name] & set(node.gpu_indices), "no index is handed out twice"
            taken[w.name] |= set(node.gpu_indices)
            classes = {(inventory[i].gpu_type, inventory[i].memory_mb) for i in node.gpu_indices}
            assert len(classes) <= 1, "one GPU class per node"
            for gpu_type, memory_mb in classes:
                assert job.gpu_type is None or gpu_type.casefold() == job.gpu_type.casefold()
                assert memory_mb >= (job.gpu_memory_mb or 0)
            cpus[w.name] += job.cpus
            memory[w.name] += job.memory_mb
            if config is not None:
                key = job.model_name if job.model_name in config["assignments"] else job.team
                assert w.name in config["assignments"][key], "static jobs stay on pinned workers"

    for name, w in by_name.items():
        assert cpus[name] <= max(0, w.cpus - w.allocated_cpus)
        assert memory[name] <= max(0, w.memory_mb - w.allocated_memory_mb)

    limits = {(q.pool, q.team): q.gpu_limit for q in snapshot.quotas}
    in_use = Counter[tuple[str, str]]()
    for running in snapshot.running:
        in_use[(running.pool, running.team)] += running.gpus
    for key, placed in team_gpus.items():
        if key in limits and placed:
            assert in_use[key] + placed <= limits[key], f"quota of {key} exceeded"


@FAST
@given(rounds())
def test_no_round_over_allocates_a_worker_exceeds_a_quota_or_splits_a_gang(
    case: tuple,
) -> None:
    snapshot, queue, strategy, config = case

    result = schedule(snapshot, queue, strategy, NOW, config=config)

    check_round(snapshot, queue, result, config)


@FAST
@given(rounds())
def test_jobs_left_waiting_reserved_nothing_for_the_jobs_after_them(
    case: tuple,
) -> None:
    snapshot, queue, strategy, config = case
    result = schedule(snapshot, queue, strategy, NOW, config=config)
    placed = {p.job_id for p in result.placements}

    # Had the waiting jobs (failed gangs included) taken anything, the placed
    # jobs would land differently once the waiting ones are left out.
    only_placed = schedule(snapshot, [j for j in queue if j.id in placed], strategy, NOW, config=config)

    assert only_placed.placements == result.placements
    assert all(u.reason for u in result.unplaceable), "every waiting job says why"
