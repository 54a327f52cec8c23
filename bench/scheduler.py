"""Benchmark of the scheduling core (``lifecycle.jobs.scheduling``), in-process.

Run from the repository root::

    python bench/scheduler.py                 # 10,000 jobs on 1,000 workers, every strategy
    python bench/scheduler.py --unique-shapes # defeat the per-round failure memo (worst case)
    python bench/scheduler.py --latency       # also section 2 (needs Redis and PostgreSQL)
    python bench/scheduler.py --latency --no-throughput   # section 2 alone

Section "throughput" times ``schedule()`` for one whole round per strategy on a
generated cluster (mixed A100/H100/L4/T4, 1-8 GPUs per worker, pools, team
quotas, gang jobs, deadlines) and reports placements per second next to
published anchors. The time includes building the capacity index and ordering
the queue, i.e. everything a real round pays for apart from reading the database.

Section "latency" (``--latency``) measures submit-to-running latency end to end: a
fresh PostgreSQL database (created, migrated, dropped at the end), Redis on
127.0.0.1:6379 (db 9, flushed before and after) as the broker, and real
``manage.py job_worker --scheduler`` processes. Small jobs are submitted through
``job_submit`` at a steady rate; the latency of a job runs from the commit of its
submission to the ``started_at`` its worker wrote when it claimed the job, and is
split at ``scheduled_at`` (when the pass that placed the job took the scheduling lock).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, Python only puts bench/ on the path; the package lives one level up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.processes import REPO, Stack, port_open
from bench.harness.report import Target, machine_summary, mark
from bench.harness.stats import percentile
from lifecycle.jobs.scheduling import (
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

TARGET_PLACEMENTS = Target("placements/s", 5000, higher_is_better=True, unit="")
# Published figures for orientation only; they are not re-measured here and
# cover more work per decision (RPCs, persistence) than this in-process core.
ANCHORS = (
    ("Slurm, published sustained throughput", "~500 jobs/s"),
    ("kube-scheduler, scheduler_perf runs", "~300-900 pods/s"),
    ("ModelGate target for this core", f">= {TARGET_PLACEMENTS.bound:,.0f} placements/s"),
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
        ok = TARGET_PLACEMENTS.met(row.placements_per_s)
        all_pass &= ok
        print(
            f"{row.strategy:<22}{row.placed:>8,}{row.waiting:>9,}{row.best_s * 1000:>10.1f}"
            f"{row.median_s * 1000:>11.1f}{row.decisions_per_s:>13,.0f}"
            f"{row.placements_per_s:>14,.0f}"
            f"  {mark(ok)}"
        )
    print()
    print("Anchors (published figures, not measured here):")
    for label, figure in ANCHORS:
        print(f"  {label:<40}{figure}")
    return all_pass


# --- Section 2: submit-to-running latency on real workers --------------------------

TARGET_P50 = Target("p50", 100.0, higher_is_better=False, inclusive=False, unit=" ms")
REDIS_URL = "redis://127.0.0.1:6379/9"
WARM_UP_JOBS = 6


def _flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


def _manage(env: dict[str, str], *argv: str, timeout: float) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(argv)} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def _close_django() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def _submit_stamped(submit) -> tuple[object, float]:
    """Submit in a transaction whose first after-commit hook notes the wall-clock time of
    the commit, before the submission's own hook kicks the scheduler."""
    from django.db import transaction

    stamp: list[float] = []
    with transaction.atomic():
        transaction.on_commit(lambda: stamp.append(time.time()))
        job = submit()
    return job, stamp[0]


def run_latency_section(args: argparse.Namespace) -> bool:
    """Section 2: submit-to-running latency with real workers. Returns whether p50 met the target."""
    print("== Submit-to-running latency (Redis broker, real job workers, PostgreSQL) ==")
    missing = [name for name, port in (("Redis", 6379), ("PostgreSQL", 5432)) if not port_open(port)]
    if missing:
        print(f"not run: {' and '.join(missing)} not answering on 127.0.0.1")
        return False
    # The workers, their logs and the scratch database; stopped and dropped at the end.
    stack = Stack(Path(tempfile.mkdtemp(prefix="modelgate-bench-")))
    deadline = time.monotonic() + args.latency_timeout
    load_at_start = os.getloadavg()[0]
    try:
        database = stack.create_database("scheduler")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
            "CELERY_BROKER_URL": REDIS_URL,
            "MODELGATE_VAR_DIR": str(stack.workdir / "var"),
            "MODELGATE_JOB_DIR": str(stack.workdir / "jobs"),
            "MODELGATE_WORKER_HEARTBEAT_SECONDS": "2",
            "MODELGATE_SCHEDULER_STRATEGY": args.latency_strategy,
        }
        stack.closers.append(_close_django)
        _flush_redis()
        _manage(env, "migrate", "--no-input", timeout=max(30.0, deadline - time.monotonic()))
        os.environ.update(env)
        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from lifecycle.jobs.choices import WorkerState
        from lifecycle.jobs.models import Job, Worker
        from lifecycle.jobs.services import job_submit
        from registry.services import membership_set, team_ensure

        names = [f"bench-w{i}" for i in range(args.latency_workers)]
        for name in names:
            worker = ["job_worker", "--name", name, "--gpus", "none", "--slots", str(args.latency_slots), "--scheduler"]
            stack.start(name, [sys.executable, "manage.py", *worker, "--loglevel", "WARNING"], env)
        stack.wait_for(
            lambda: Worker.objects.filter(name__in=names, state=WorkerState.ONLINE).count() == len(names),
            timeout=max(1.0, min(120.0, deadline - time.monotonic())),
            what="the workers to register",
        )
        time.sleep(1.0)  # their consumers attach to the queues just after they register

        user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
        team = team_ensure(name="bench")
        membership_set(user=user, team=team, role="developer")
        spec = {"entrypoint": ["true"], "resources": {"cpus": 0.1, "memory_mb": 16}, "max_attempts": 1}

        def submit():
            return job_submit(actor=user, team=team, kind="batch_infer", spec=spec)

        def started(ids: list[int]) -> bool:
            return Job.objects.filter(pk__in=ids, started_at__isnull=False).count() == len(ids)

        warm = [_submit_stamped(submit)[0].pk for _ in range(WARM_UP_JOBS)]
        stack.wait_for(lambda: started(warm), timeout=60, what="the warm-up jobs to start")

        committed: dict[int, float] = {}
        began = time.monotonic()
        for n in range(args.latency_jobs):
            pause = began + n / args.latency_rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            job, stamp = _submit_stamped(submit)
            committed[job.pk] = stamp
        submitting_s = time.monotonic() - began
        ids = list(committed)
        stack.wait_for(
            lambda: started(ids),
            timeout=max(1.0, deadline - time.monotonic()),
            what=f"{len(ids)} jobs to start",
        )
        rows = Job.objects.filter(pk__in=ids).values_list("pk", "scheduled_at", "started_at", "attempts")
        placed_ms, dispatched_ms, latency_ms = [], [], []
        retried = 0
        for pk, scheduled_at, started_at, attempts in rows:
            placed_ms.append((scheduled_at.timestamp() - committed[pk]) * 1000)
            dispatched_ms.append((started_at - scheduled_at).total_seconds() * 1000)
            latency_ms.append((started_at.timestamp() - committed[pk]) * 1000)
            retried += attempts > 1
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"not measured: {exc}")
        return False
    finally:
        stack.stop()
        try:
            _flush_redis()
        except Exception as exc:  # the rest is released already
            print(f"  cleanup step failed: {exc}", file=sys.stderr)
        shutil.rmtree(stack.workdir, ignore_errors=True)

    print(
        f"{len(latency_ms)} jobs (`true`, 0.1 CPU) submitted through job_submit at {args.latency_rate:g}/s "
        f"({submitting_s:.1f} s) after {WARM_UP_JOBS} warm-up jobs; {args.latency_workers} workers x "
        f"{args.latency_slots} slots, each also scheduling; strategy {args.latency_strategy}; "
        f"{retried} needed a second attempt"
    )
    print()
    print(f"{'leg':<36}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, values in (
        ("commit -> placed (scheduled_at)", placed_ms),
        ("placed -> claimed by a worker", dispatched_ms),
        ("commit -> running (started_at)", latency_ms),
    ):
        print(f"{label:<36}{percentile(values, 50):>9.1f}{percentile(values, 95):>9.1f}{max(values):>9.1f}")
    p50 = percentile(latency_ms, 50)
    ok = TARGET_P50.met(p50)
    print()
    # Every leg competes for the same CPUs as the database, the broker and the workers.
    print(f"host: {machine_summary(load_at_start)}")
    print(f"target: {TARGET_P50} submit-to-running -> {p50:.1f} ms {mark(ok)}")
    return ok


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
    parser.add_argument("--no-throughput", action="store_true", help="skip section 1")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="run section 2: submit-to-running latency on real workers (Redis db 9, a scratch PostgreSQL database)",
    )
    parser.add_argument("--latency-jobs", type=int, default=200, help="measured jobs (default 200)")
    parser.add_argument("--latency-rate", type=float, default=10.0, help="submissions per second (default 10)")
    parser.add_argument("--latency-workers", type=int, default=3, help="job worker processes (default 3)")
    parser.add_argument("--latency-slots", type=int, default=4, help="slots per worker (default 4)")
    parser.add_argument(
        "--latency-strategy",
        choices=sorted(set(STRATEGIES) - {"static"}),  # static needs per-team assignments
        default="least_loaded",
        help="(default least_loaded)",
    )
    parser.add_argument(
        "--latency-timeout", type=float, default=300.0, help="give up section 2 after this many seconds (default 300)"
    )
    args = parser.parse_args(argv)
    if args.latency_jobs < 1 or args.latency_rate <= 0 or args.latency_workers < 1 or args.latency_slots < 1:
        parser.error("--latency-jobs, --latency-rate, --latency-workers and --latency-slots must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark sections; exit status 1 if any section misses its target."""
    args = parse_args(argv)
    ok = True
    if not args.no_throughput:
        ok = run_throughput_section(args)
    if args.latency:
        if not args.no_throughput:
            print()
        ok = run_latency_section(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
