"""Benchmark of the scheduling core (``lifecycle.scheduling``), in-process.

Run from the repository root::

    python bench/scheduler.py                 # 10,000 jobs on 1,000 workers, every strategy
    python bench/scheduler.py --unique-shapes # defeat the per-round failure memo (worst case)

Section "throughput" times ``schedule()`` for one whole round per strategy on a
generated cluster (mixed A100/H100/L4/T4, 1-8 GPUs per worker, pools, team
quotas, gang jobs, deadlines) and reports placements per second next to
published anchors. The time includes building the capacity index and ordering
the queue, i.e. everything a real round pays for apart from reading the database.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, Python only puts bench/ on the path; the package lives one level up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle.scheduling import (
    STRATEGIES,
    ClusterSnapshot,
    GpuSnapshot,
    JobRequest,
    PoolQuota,
    RunningJob,
    WorkerSnapshot,
    WorkerState,
    schedule,
)

TARGET_PLACEMENTS_PER_S = 5000
# Published figures for orientation only; they are not re-measured here and
# cover more work per decision (RPCs, persistence) than this in-process core.
ANCHORS = (
    ("Slurm, published sustained throughput", "~500 jobs/s"),
    ("kube-scheduler, scheduler_perf runs", "~300-900 pods/s"),
    ("ModelGate target for this core", f">= {TARGET_PLACEMENTS_PER_S:,} placements/s"),
)

GPU_KINDS = (  # (type, memory_mb, price per GPU-hour, weight)
    ("A100", 40960, 1.60, 2),
    ("A100", 81920, 2.20, 3),
    ("H100", 81920, 3.50, 2),
    ("L4", 24576, 0.80, 3),
    ("T4", 16384, 0.35, 2),
)
POOLS = ("gpu-a", "gpu-b", "gpu-c", "batch")
TEAMS = ("vision", "nlp", "speech", "recsys", "search", "ads", "research", "platform")
KINDS = ("train", "evaluate", "compress", "convert", "deploy", "batch_infer", "retrain")
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Workload:
    """A generated cluster, queue and static assignment for one benchmark run."""

    snapshot: ClusterSnapshot
    jobs: list[JobRequest]
    static_assignments: dict[str, list[str]]

    def describe(self) -> str:
        """One line on the size of the workload."""
        workers = self.snapshot.workers
        gpus = sum(len(w.gpus) for w in workers)
        free = sum(len(w.gpus) - len(w.allocated_gpu_indices) for w in workers if w.state == WorkerState.ONLINE)
        gangs = sum(job.nodes > 1 for job in self.jobs)
        deadlines = sum(job.deadline is not None for job in self.jobs)
        wanted = sum(job.gpus * job.nodes for job in self.jobs)
        shapes = len(
            {
                (
                    j.pool,
                    j.gpus,
                    j.gpu_type,
                    j.gpu_memory_mb,
                    j.cpus,
                    j.memory_mb,
                    j.nodes,
                )
                for j in self.jobs
            }
        )
        return (
            f"{len(self.jobs):,} queued jobs ({gangs} gangs, {deadlines} with deadlines, "
            f"{wanted:,} GPUs wanted, {shapes:,} request shapes) on {len(workers):,} workers "
            f"({gpus:,} GPUs, {free:,} free on online workers), {len(POOLS)} pools, "
            f"{len(TEAMS)} teams with quotas"
        )


def generate(workers: int, jobs: int, seed: int, unique_shapes: bool) -> Workload:
    """Build a reproducible cluster and queue; ``unique_shapes`` makes every request distinct."""
    rng = random.Random(seed)
    kinds = [kind for kind in GPU_KINDS for _ in range(kind[3])]
    snaps: list[WorkerSnapshot] = []
    running: list[RunningJob] = []
    pool_gpus = dict.fromkeys(POOLS, 0)
    for n in range(workers):
        gpu_type, memory_mb, price, _ = rng.choice(kinds)
        count = rng.randint(1, 8)
        pool = POOLS[n % len(POOLS)]
        pool_gpus[pool] += count
        allocated = frozenset(rng.sample(range(count), rng.randint(0, count // 2)))
        state = rng.choices((WorkerState.ONLINE, WorkerState.DRAINING, WorkerState.OFFLINE), (94, 4, 2))[0]
        if allocated:
            running.append(RunningJob(f"running-{n}", rng.choice(TEAMS), pool, len(allocated)))
        snaps.append(
            WorkerSnapshot(
                name=f"{pool}-{gpu_type.lower()}-{n:04d}",
                pool=pool,
                gpus=tuple(GpuSnapshot(i, gpu_type, memory_mb) for i in range(count)),
                cpus=count * rng.choice((8, 12, 16)),
                memory_mb=count * rng.choice((65536, 131072)),
                labels={
                    "zone": rng.choice(("eu", "us")),
                    "disk": rng.choice(("ssd", "nvme")),
                },
                cost_per_gpu_hour=round(price * rng.uniform(0.85, 1.15), 3),
                state=state,
                allocated_gpu_indices=allocated,
                allocated_cpus=len(allocated) * 8,
                allocated_memory_mb=len(allocated) * 65536,
                running_jobs=1 if allocated else 0,
                backlog_s=rng.choice((0.0, 0.0, 600.0, 1800.0, 3600.0)),
            )
        )
    quotas = [
        PoolQuota(pool, team, max(4, int(pool_gpus[pool] * rng.uniform(0.08, 0.3)))) for pool in POOLS for team in TEAMS
    ]
    history = {
        (kind, gpu_type): [rng.uniform(600, 14400) for _ in range(rng.randint(1, 20))]
        for kind in KINDS
        for gpu_type, *_ in GPU_KINDS
        if rng.random() < 0.7
    }
    models = [f"model-{i:02d}" for i in range(40)]
    queue: list[JobRequest] = []
    for n in range(jobs):
        gang = rng.random() < 0.05
        gpus = rng.choice((4, 8)) if gang else rng.choices((0, 1, 2, 4, 8), (5, 40, 25, 20, 10))[0]
        per_gpu = max(1, gpus)
        queue.append(
            JobRequest(
                id=f"job-{n:05d}",
                team=rng.choice(TEAMS),
                pool=rng.choice(POOLS),
                kind=rng.choice(KINDS),
                model_name=rng.choice(models),
                gpus=gpus,
                gpu_type=rng.choice(("A100", "H100", "L4", "T4")) if rng.random() < 0.7 else None,
                gpu_memory_mb=rng.choice((40960, 81920)) if rng.random() < 0.15 else None,
                cpus=per_gpu * rng.choice((4, 8)),
                memory_mb=per_gpu * rng.choice((16384, 32768)) + (n if unique_shapes else 0),
                nodes=rng.randint(2, 4) if gang else 1,
                parallelism="data" if gang else "none",
                priority=rng.randint(0, 10),
                submitted_at=NOW - timedelta(seconds=rng.uniform(0, 86400)),
                deadline=NOW + timedelta(hours=rng.uniform(0.5, 12)) if rng.random() < 0.2 else None,
                estimated_duration_s=rng.uniform(300, 7200) if rng.random() < 0.5 else None,
                labels={"zone": "eu"} if rng.random() < 0.05 else {},
            )
        )
    names = [w.name for w in snaps]
    static = {team: rng.sample(names, len(names) * 2 // 5) for team in TEAMS}
    static.update({model: rng.sample(names, 20) for model in rng.sample(models, 5)})
    snapshot = ClusterSnapshot(tuple(snaps), tuple(quotas), tuple(running), history)
    return Workload(snapshot, queue, static)


@dataclass(frozen=True)
class ThroughputRow:
    """Measured figures of one strategy."""

    strategy: str
    placed: int
    waiting: int
    best_s: float
    median_s: float

    @property
    def placements_per_s(self) -> float:
        """Placements divided by the wall time of the fastest round."""
        return self.placed / self.best_s

    @property
    def decisions_per_s(self) -> float:
        """Jobs decided (placed or left waiting with a reason) per second."""
        return (self.placed + self.waiting) / self.best_s


def measure(workload: Workload, strategy: str, repeats: int) -> ThroughputRow:
    """Time ``repeats`` full rounds of ``strategy`` on the same inputs."""
    config = {"assignments": workload.static_assignments} if strategy == "static" else None
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = schedule(workload.snapshot, workload.jobs, strategy, NOW, config=config)
        times.append(time.perf_counter() - start)
    assert result is not None
    return ThroughputRow(
        strategy,
        len(result.placements),
        len(result.unplaceable),
        min(times),
        statistics.median(times),
    )


def run_throughput_section(args: argparse.Namespace) -> bool:
    """Section 1: in-process placements/s per strategy. Returns whether all met the target."""
    workload = generate(args.workers, args.jobs, args.seed, args.unique_shapes)
    print("== Scheduling core throughput (single thread, in-process) ==")
    print(workload.describe())
    print(
        f"seed {args.seed}, best of {args.repeats} rounds per strategy"
        + (", every request shape unique (failure memo defeated)" if args.unique_shapes else "")
    )
    print()
    header = f"{'strategy':<22}{'placed':>8}{'waiting':>9}{'best ms':>10}{'median ms':>11}"
    header += f"{'decisions/s':>13}{'placements/s':>14}  vs target"
    print(header)
    all_pass = True
    for name in args.strategies:
        row = measure(workload, name, args.repeats)
        ok = row.placements_per_s >= TARGET_PLACEMENTS_PER_S
        all_pass &= ok
        print(
            f"{row.strategy:<22}{row.placed:>8,}{row.waiting:>9,}{row.best_s * 1000:>10.1f}"
            f"{row.median_s * 1000:>11.1f}{row.decisions_per_s:>13,.0f}"
            f"{row.placements_per_s:>14,.0f}"
            f"  {'PASS' if ok else 'FAIL'}"
        )
    print()
    print("Anchors (published figures, not measured here):")
    for label, figure in ANCHORS:
        print(f"  {label:<40}{figure}")
    return all_pass


# A submit-to-running latency section (real Celery workers, job submitted through
# the API until the worker reports it running) belongs beside
# run_throughput_section as its own function called from main(). It is not
# written yet; nothing in this file measures it.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="queued jobs (default 10000)")
    parser.add_argument("--workers", type=int, default=1_000, help="workers (default 1000)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per strategy (default 5)")
    parser.add_argument("--seed", type=int, default=7, help="workload seed (default 7)")
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=sorted(STRATEGIES),
        default=list(STRATEGIES),
        help="strategies to run (default all)",
    )
    parser.add_argument(
        "--unique-shapes",
        action="store_true",
        help="give every job a distinct memory request so no failure is memoised",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark sections; exit status 1 if any strategy misses the target."""
    args = parse_args(argv)
    ok = run_throughput_section(args)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
