"""Human reasons for jobs that found no worker.

Only called after the fast search failed, so it may look harder than the search
does; the scheduler memoises its answer per request shape for the round.
"""

from __future__ import annotations

from lifecycle.jobs.scheduling.capacity import ALL_WORKERS, CapacityIndex, WorkerGroup
from lifecycle.jobs.scheduling.context import Request
from lifecycle.jobs.scheduling.outcome import ReasonCode
from lifecycle.jobs.scheduling.snapshot import WorkerState

__all__ = ["describe_shape", "diagnose_capacity"]


def describe_shape(req: Request) -> str:
    """What one node of the job needs, e.g. ``2×A100 (≥ 40000 MiB)`` or ``4 CPUs and 8192 MiB``."""
    job = req.job
    if req.gpus > 0:
        text = f"{req.gpus}×{job.gpu_type or 'GPU'}"
        if req.gpu_memory_mb:
            text += f" (≥ {req.gpu_memory_mb} MiB)"
        return text
    return f"{req.cpus:g} CPUs and {req.memory_mb} MiB"


def diagnose_capacity(index: CapacityIndex, req: Request, groups: list[WorkerGroup]) -> tuple[ReasonCode, str]:
    """Why no worker (or not enough for a gang) fits the request, most basic cause first."""
    code, reason = _single_node(index, req, groups)
    if req.nodes > 1:
        shape = describe_shape(req)
        available = req.available
        if available == 0:
            return (
                ReasonCode.GANG,
                f"gang needs {req.nodes} workers with {shape}, none available: {reason}",
            )
        head = f"gang needs {req.nodes} workers with {shape}"
        text = f"{head}, only {available} available{_scope(req)}"
        return ReasonCode.GANG, text
    return code, reason


def _scope(req: Request) -> str:
    if req.view == ALL_WORKERS:
        return f" in pool {req.job.pool!r}"
    return f" among workers pinned for {req.view!r} in pool {req.job.pool!r}"


def _single_node(index: CapacityIndex, req: Request, groups: list[WorkerGroup]) -> tuple[ReasonCode, str]:
    pool = req.job.pool
    states = index.pool_states.get(pool)
    if not states:
        return ReasonCode.NO_ONLINE_WORKER, f"no worker in pool {pool!r}"
    if not states.get(WorkerState.ONLINE):
        others = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        return (
            ReasonCode.NO_ONLINE_WORKER,
            f"no online worker in pool {pool!r} ({others})",
        )
    if req.view != ALL_WORKERS and (req.view, pool) not in index.cpu_groups:
        return (
            ReasonCode.NO_ONLINE_WORKER,
            f"none of the workers pinned for {req.view!r} is online in pool {pool!r}",
        )

    shape = describe_shape(req)
    scope = _scope(req)
    if req.gpus > 0:
        if not groups:
            return (
                ReasonCode.NO_GPU_TYPE,
                f"no worker with {shape}{scope} (no such GPUs online there)",
            )
        largest = max(group.largest for group in groups)
        if largest < req.gpus:
            return (
                ReasonCode.NOT_ENOUGH_GPUS,
                f"no worker with {shape}{scope} (largest has {largest})",
            )
        most_free = max(group.max_free for group in groups)
        if most_free < req.gpus:
            return ReasonCode.NO_FREE_GPUS, (
                f"no worker with {shape} free{scope} (most free on one worker: {max(most_free, 0)})"
            )

    # Enough GPUs somewhere: count which other requirement each such worker misses.
    have = short_cpus = short_memory = lack_labels = 0
    workers = index.workers
    for group in groups:
        for bucket in group.buckets[req.gpus :]:
            for entry in bucket:
                worker = workers[entry[-1]]
                have += 1
                short_cpus += worker.cpus_free < req.cpus
                short_memory += worker.memory_free < req.memory_mb
                lack_labels += bool(req.labels) and not worker.has_labels(req.labels)
    wanted = []
    if short_cpus:
        wanted.append(f"{req.cpus:g} CPUs")
    if short_memory:
        wanted.append(f"{req.memory_mb} MiB memory")
    if lack_labels:
        wanted.append("labels " + ", ".join(f"{key}={value}" for key, value in req.labels))
    missing = " and ".join(wanted) or "the requested resources"
    head = f"no worker with {shape} free also has {missing}" if req.gpus > 0 else f"no worker has {missing} free"
    noun = "have the GPUs" if req.gpus > 0 else "online"
    return ReasonCode.INSUFFICIENT_RESOURCES, (
        f"{head}{scope} ({have} {noun}: {short_cpus} short of CPUs, "
        f"{short_memory} short of memory, {lack_labels} missing labels)"
    )
