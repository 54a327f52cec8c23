"""The round's working copy of free capacity, indexed so a job finds fits fast.

A round must never hand the same GPU index to two jobs, so placements update a
mutable copy of every online worker. To avoid scanning all workers per job, the
copy is indexed:

* a *GPU class* is ``(gpu type, memory per GPU)``; a job's GPUs on one worker are
  always of one class, because data-parallel ranks run at the pace of the
  slowest GPU and mixed-memory shards do not fit the same batch;
* workers are grouped by ``(view, pool, class)``; a *view* is the strategy's
  notion of eligible workers and their order (``static`` has one per mapping
  entry, every other strategy one view of all workers);
* inside a group, ``buckets[k]`` holds the workers with exactly ``k`` free GPUs
  of that class, as a list sorted by the strategy's key. A job needing ``g``
  GPUs only looks at buckets ``k >= g`` and, within each, takes the first entry
  that also fits CPUs, memory and labels, which is that bucket's best worker.

Resources only shrink during a round, which is what makes the index (and the
scheduler's memo of failed request shapes) sound.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence

from lifecycle.jobs.scheduling.snapshot import ClusterSnapshot, WorkerSnapshot, WorkerState

__all__ = [
    "ALL_WORKERS",
    "CPU_TYPE",
    "CapacityIndex",
    "EntryKey",
    "GpuClass",
    "WorkerGroup",
    "WorkingWorker",
]

#: ``(casefolded gpu type, memory_mb per GPU)``.
GpuClass = tuple[str, int]

#: Type key of the CPU-only group (jobs asking for zero GPUs), also used for history lookups.
CPU_TYPE = "cpu"

#: View id of strategies that consider every worker.
ALL_WORKERS = "*"

#: ``(worker, rank in view, gpu class or None) -> sort key`` (lower is preferred).
EntryKey = Callable[["WorkingWorker", int, "GpuClass | None"], tuple]


class WorkingWorker:
    """Mutable free capacity of one online worker during a round."""

    __slots__ = (
        "allocated_gpus",
        "backlog_s",
        "class_size",
        "cost_per_gpu_hour",
        "cpus_free",
        "free",
        "idx",
        "labels",
        "memberships",
        "memory_free",
        "name",
        "pool",
        "running_jobs",
        "snapshot",
        "total_gpus",
        "type_label",
    )

    def __init__(self, idx: int, snap: WorkerSnapshot) -> None:
        self.idx = idx
        self.name = snap.name
        self.pool = snap.pool
        self.labels = snap.labels
        self.snapshot = snap
        self.cpus_free = max(0.0, snap.cpus - snap.allocated_cpus)
        self.memory_free = max(0, snap.memory_mb - snap.allocated_memory_mb)
        self.free: dict[GpuClass, list[int]] = {}
        self.class_size: dict[GpuClass, int] = {}
        self.type_label: dict[GpuClass, str] = {}
        allocated = snap.allocated_gpu_indices
        for gpu in sorted(snap.gpus, key=lambda g: g.index):
            cls = (gpu.gpu_type.casefold(), gpu.memory_mb)
            self.class_size[cls] = self.class_size.get(cls, 0) + 1
            self.type_label.setdefault(cls, gpu.gpu_type)
            free = self.free.setdefault(cls, [])
            if gpu.index not in allocated:
                free.append(gpu.index)
        self.total_gpus = len(snap.gpus)
        # Indices the worker reports as allocated but not in its inventory are ignored.
        self.allocated_gpus = self.total_gpus - sum(len(v) for v in self.free.values())
        self.running_jobs = snap.running_jobs
        self.backlog_s = float(snap.backlog_s)
        self.cost_per_gpu_hour = float(snap.cost_per_gpu_hour)
        self.memberships: list[list] = []

    @property
    def load(self) -> float:
        """Fraction of GPUs allocated (of CPUs for GPU-less workers)."""
        if self.total_gpus:
            return self.allocated_gpus / self.total_gpus
        cpus = self.snapshot.cpus
        return 1.0 - self.cpus_free / cpus if cpus else 0.0

    def has_labels(self, required: tuple[tuple[str, str], ...]) -> bool:
        """Whether every required ``(key, value)`` is among the worker's labels."""
        labels = self.labels
        return all(labels.get(key) == value for key, value in required)


class WorkerGroup:
    """Workers of one ``(view, pool, GPU class)``, bucketed by free GPUs of the class.

    ``gpu_class`` is ``None`` for the CPU group, which holds every worker of the
    view and pool in ``buckets[0]`` and serves jobs asking for zero GPUs.
    """

    __slots__ = (
        "buckets",
        "gpu_class",
        "largest",
        "max_free",
        "memory_mb",
        "pool",
        "type_key",
        "type_label",
        "view",
    )

    def __init__(self, view: Hashable, pool: str, gpu_class: GpuClass | None, type_label: str) -> None:
        self.view = view
        self.pool = pool
        self.gpu_class = gpu_class
        self.type_key = gpu_class[0] if gpu_class else CPU_TYPE
        self.type_label = type_label
        self.memory_mb = gpu_class[1] if gpu_class else 0
        self.buckets: list[list[tuple]] = [[]]
        self.max_free = -1
        self.largest = 0

    def _bucket(self, k: int) -> list[tuple]:
        buckets = self.buckets
        while len(buckets) <= k:
            buckets.append([])
        return buckets[k]

    def add(self, k: int, entry: tuple) -> None:
        """Insert a worker's entry into bucket ``k``, keeping the bucket sorted."""
        insort(self._bucket(k), entry)
        self.max_free = max(self.max_free, k)

    def remove(self, k: int, entry: tuple) -> None:
        """Take a worker's entry out of bucket ``k``."""
        bucket = self.buckets[k]
        del bucket[bisect_left(bucket, entry)]
        if k == self.max_free and not bucket:
            buckets = self.buckets
            while k >= 0 and not buckets[k]:
                k -= 1
            self.max_free = k


class CapacityIndex:
    """Online workers' free capacity, grouped and bucketed for one strategy's views.

    ``views`` maps a view id to the worker names it admits, in preference order,
    or ``None`` for all workers in snapshot order. ``entry_key`` gives a worker's
    sort key inside a bucket; it is recomputed whenever the worker changes.
    """

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        views: Mapping[Hashable, Sequence[str] | None],
        entry_key: EntryKey,
    ) -> None:
        self.entry_key = entry_key
        self.workers: list[WorkingWorker] = []
        self.by_name: dict[str, WorkingWorker] = {}
        self.pool_states: dict[str, Counter[str]] = {}
        for snap in snapshot.workers:
            self.pool_states.setdefault(snap.pool, Counter())[snap.state] += 1
            if snap.state != WorkerState.ONLINE or snap.name in self.by_name:
                continue
            worker = WorkingWorker(len(self.workers), snap)
            self.workers.append(worker)
            self.by_name[snap.name] = worker

        self.groups: dict[tuple[Hashable, str], list[WorkerGroup]] = {}
        self.cpu_groups: dict[tuple[Hashable, str], WorkerGroup] = {}
        self.view_sizes: dict[Hashable, int] = {}
        self._lookup_cache: dict[tuple, list[WorkerGroup]] = {}
        for view, names in views.items():
            self._build_view(view, names)

    def _build_view(self, view: Hashable, names: Sequence[str] | None) -> None:
        if names is None:
            members = self.workers
        else:
            seen: set[str] = set()
            members = []
            for name in names:
                worker = self.by_name.get(name)
                if worker is not None and name not in seen:
                    seen.add(name)
                    members.append(worker)
        self.view_sizes[view] = len(members)
        pending: dict[tuple, tuple[WorkerGroup, dict[int, list[tuple]]]] = {}
        entry_key = self.entry_key
        for rank, worker in enumerate(members):
            targets: list[tuple[GpuClass | None, str, int]] = [(None, CPU_TYPE, 0)]
            for cls, free in worker.free.items():
                targets.append((cls, worker.type_label[cls], len(free)))
            for cls, label, k in targets:
                slot = pending.get((worker.pool, cls))
                if slot is None:
                    slot = pending[(worker.pool, cls)] = (
                        WorkerGroup(view, worker.pool, cls, label),
                        {},
                    )
                group, entries = slot
                if cls is not None:
                    group.largest = max(group.largest, worker.class_size[cls])
                # Class groups never serve zero-GPU requests, so full workers stay out of them.
                if cls is not None and k == 0:
                    worker.memberships.append([group, None, 0, rank])
                    continue
                entry = (*entry_key(worker, rank, cls), worker.idx)
                entries.setdefault(k, []).append(entry)
                worker.memberships.append([group, entry, k, rank])
        for (pool, cls), (group, entries) in sorted(pending.items(), key=_group_order):
            for k, bucket in entries.items():
                bucket.sort()
                group._bucket(k).extend(bucket)
                group.max_free = max(group.max_free, k)
            if cls is None:
                self.cpu_groups[(view, pool)] = group
            else:
                self.groups.setdefault((view, pool), []).append(group)

    def groups_for(
        self, view: Hashable, pool: str, gpus: int, type_key: str | None, memory_mb: int
    ) -> list[WorkerGroup]:
        """Groups of ``view`` in ``pool`` whose class can serve the request.

        Zero-GPU requests get the CPU group; otherwise classes of the wanted type
        (any type if ``type_key`` is ``None``) with at least ``memory_mb`` per GPU.
        """
        cache_key = (view, pool, gpus > 0, type_key, memory_mb)
        found = self._lookup_cache.get(cache_key)
        if found is None:
            if gpus <= 0:
                cpu = self.cpu_groups.get((view, pool))
                found = [cpu] if cpu is not None else []
            else:
                found = [
                    group
                    for group in self.groups.get((view, pool), ())
                    if (type_key is None or group.type_key == type_key) and group.memory_mb >= memory_mb
                ]
            self._lookup_cache[cache_key] = found
        return found

    def commit(
        self,
        worker: WorkingWorker,
        gpu_class: GpuClass | None,
        gpus: int,
        cpus: float,
        memory_mb: int,
        backlog_add: float,
    ) -> tuple[int, ...]:
        """Take resources on ``worker`` for one node of a job; returns the GPU indices.

        The lowest free indices of the class are taken so assignments are
        deterministic and easy to read in ``CUDA_VISIBLE_DEVICES``.
        """
        taken: tuple[int, ...] = ()
        if gpus > 0 and gpu_class is not None:
            free = worker.free[gpu_class]
            taken = tuple(free[:gpus])
            del free[:gpus]
            worker.allocated_gpus += gpus
        worker.cpus_free -= cpus
        worker.memory_free -= memory_mb
        worker.running_jobs += 1
        worker.backlog_s += backlog_add
        self._rekey(worker)
        return taken

    def _rekey(self, worker: WorkingWorker) -> None:
        entry_key = self.entry_key
        for membership in worker.memberships:
            group, old_entry, old_k, rank = membership
            cls = group.gpu_class
            new_k = len(worker.free[cls]) if cls is not None else 0
            if cls is not None and new_k == 0:
                new_entry = None
            else:
                new_entry = (*entry_key(worker, rank, cls), worker.idx)
            if new_entry == old_entry and new_k == old_k:
                continue
            if old_entry is not None:
                group.remove(old_k, old_entry)
            if new_entry is not None:
                group.add(new_k, new_entry)
            membership[1] = new_entry
            membership[2] = new_k


def _group_order(item: tuple) -> tuple:
    (pool, cls), _ = item
    # The CPU group (class None) sorts first; classes sort by type then memory.
    return (pool, cls is not None, cls or ("", 0))
