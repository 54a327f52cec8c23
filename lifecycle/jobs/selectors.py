"""Read queries about jobs, workers and pools."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from lifecycle.jobs.choices import JOB_ACTIVE_STATES, JobState
from lifecycle.jobs.models import Job, JobLogChunk, PoolQuota, ResourcePool, Worker
from registry.errors import InvalidInput, NotFound
from registry.permissions import visible_team_ids

User = AbstractBaseUser | AnonymousUser


def jobs_visible_to(user: User) -> QuerySet[Job]:
    qs = Job.objects.select_related("team", "pool", "model", "version", "created_by")
    teams = visible_team_ids(user)
    return qs if teams is None else qs.filter(team_id__in=teams)


def job_list(
    *, user: User, state: str | None = None, model: str | None = None, kind: str | None = None
) -> QuerySet[Job]:
    qs = jobs_visible_to(user)
    if state:
        if state not in JobState.values:
            raise InvalidInput(
                f"unknown state {state!r}; expected one of {', '.join(JobState.values)}", details={"state": "unknown"}
            )
        qs = qs.filter(state=state)
    if model:
        qs = qs.filter(model__name=model)
    if kind:
        qs = qs.filter(kind=kind)
    return qs


def job_get(*, user: User, pk: Any) -> Job:
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"no job {pk!r}") from None
    job = jobs_visible_to(user).filter(pk=key).first()
    if job is None:
        raise NotFound(f"no job {pk!r}")
    return job


def job_log(*, job: Job, offset: int, limit: int = 256 * 1024) -> tuple[str, int]:
    """The log text from ``offset`` (characters) on, and the offset to ask for next."""
    if offset < 0:
        raise InvalidInput("offset must be at least 0", details={"offset": "negative"})
    chunks = JobLogChunk.objects.filter(job=job, offset__gte=0).order_by("offset")
    first = chunks.filter(offset__lte=offset).order_by("-offset").values_list("offset", flat=True).first() or 0
    text = "".join(chunks.filter(offset__gte=first).values_list("text", flat=True)[:2000])
    piece = text[offset - first : offset - first + limit]
    return piece, offset + len(piece)


def workers_with_load() -> list[dict[str, Any]]:
    workers = list(Worker.objects.select_related("pool"))
    used: dict[str, list[int]] = defaultdict(list)
    running: dict[str, list[int]] = defaultdict(list)
    for job in Job.objects.filter(state__in=JOB_ACTIVE_STATES).only("id", "assignment"):
        for node in job.assignment:
            used[node["worker"]].extend(node["gpus"])
            running[node["worker"]].append(job.pk)
    return [
        {
            "worker": w,
            "gpus_in_use": sorted(used[w.name]),
            "running_jobs": running[w.name],
            "load": len(used[w.name]) / len(w.gpus) if w.gpus else len(running[w.name]) / max(w.slots, 1),
        }
        for w in workers
    ]


def pools_with_usage() -> list[dict[str, Any]]:
    usage: dict[tuple[str, str], int] = defaultdict(int)
    for job in Job.objects.filter(state__in=JOB_ACTIVE_STATES).select_related("pool", "team"):
        usage[(job.pool.name, job.team.name)] += sum(len(n["gpus"]) for n in job.assignment)
    result = []
    for pool in ResourcePool.objects.prefetch_related("workers"):
        quotas = {q.team.name: q.gpu_limit for q in PoolQuota.objects.filter(pool=pool).select_related("team")}
        teams = sorted({team for (p, team) in usage if p == pool.name} | set(quotas))
        result.append(
            {
                "name": pool.name,
                "description": pool.description,
                "workers": [w.name for w in pool.workers.all()],
                "gpus": sum(len(w.gpus) for w in pool.workers.all()),
                "teams": [
                    {"team": t, "gpu_limit": quotas.get(t), "gpus_in_use": usage.get((pool.name, t), 0)} for t in teams
                ],
            }
        )
    return result
