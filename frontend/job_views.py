"""The web UI's jobs and workers pages, and the JSON view that the job page's log
poller calls.

As everywhere in the UI: what a user sees comes from ``lifecycle.jobs.selectors``
(``jobs_visible_to`` scoping: another team's job answers 404), and what they do goes
through ``lifecycle.jobs.services`` (``job_cancel`` refuses with 403 whoever may not).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from frontend import selectors as ui_selectors
from frontend.affordances import can_cancel_job
from frontend.job_specs import spec_summary
from frontend.views import page_view, paginate
from lifecycle.jobs import selectors as job_selectors
from lifecycle.jobs import services as job_services
from lifecycle.jobs.choices import JOB_FINAL_STATES, JobKind, JobState, WorkerState
from lifecycle.jobs.models import Job
from registry.errors import DomainError, InvalidInput

# The job page opens on the log's last 64 KiB characters; the poller follows from there.
LOG_TAIL_CHARS = 64 * 1024

View = Callable[..., HttpResponse]


def json_view(view: View) -> View:
    """For the page's scripts: 401 without a session (a fetch should not follow a
    redirect to the login page), and a domain error as ``{"error", "code"}`` with its
    status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"error": "log in to follow this job", "code": "not_authenticated"}, status=401)
        try:
            return view(request, *args, **kwargs)
        except DomainError as error:
            return JsonResponse(
                {"error": error.message, "code": error.code, "details": error.details},
                status=error.status,
                encoder=DjangoJSONEncoder,
            )

    return wrapper


def _log_complete(job: Job, next_offset: int) -> bool:
    """Nothing more will be written: the job is over and the reader has all of its log.
    (The state is read before the log, and a job's last lines are written before it is
    marked finished, so a final state here means the log read after it is whole.)"""
    return job.state in JOB_FINAL_STATES and next_offset >= job.log_size


# --- jobs ----------------------------------------------------------------------------


@require_GET
@page_view
def job_list(request: HttpRequest) -> HttpResponse:
    """Queue (queued, scheduled, running) and history (finished) of my teams' jobs;
    filters ``state``, ``model`` and ``kind``; each list paginated on its own."""
    filters = {name: request.GET.get(name, "").strip() for name in ("state", "model", "kind")}
    jobs = job_selectors.job_list(
        user=request.user,
        state=filters["state"] or None,
        model=filters["model"] or None,
        kind=filters["kind"] or None,
    )
    state = filters["state"]
    return render(
        request,
        "frontend/job_list.html",
        {
            "nav": "jobs",
            "queue": paginate(request, ui_selectors.jobs_open(jobs)),
            "history": paginate(request, ui_selectors.jobs_finished(jobs), param="history_page"),
            "show_queue": not state or state in ui_selectors.OPEN_JOB_STATES,
            "show_history": not state or state in ui_selectors.FINAL_JOB_STATES,
            "filters": filters,
            "filtered": any(filters.values()),
            "states": JobState.choices,
            "kinds": JobKind.choices,
            "model_names": ui_selectors.model_names_visible_to(request.user),
            "workers_registered": ui_selectors.any_worker_registered(),
        },
    )


@require_GET
@page_view
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = job_selectors.job_get(user=request.user, pk=pk)
    start = max(job.log_size - LOG_TAIL_CHARS, 0)
    text, next_offset = job_selectors.job_log(job=job, offset=start)
    return render(
        request,
        "frontend/job_detail.html",
        {
            "nav": "jobs",
            "job": job,
            "spec": spec_summary(job.spec),
            "log_text": text,
            "log_start": start,
            "log_next": next_offset,
            "log_complete": _log_complete(job, next_offset),
            "can_cancel": can_cancel_job(request.user, job),
            "children": ui_selectors.job_children(user=request.user, job=job),
            "final": job.state in JOB_FINAL_STATES,
        },
    )


@require_GET
@never_cache
@json_view
def job_log(request: HttpRequest, pk: int) -> HttpResponse:
    """``?offset=N``: the log from character N on, ``next_offset`` to ask for next, and
    the job's state and progress; ``complete`` once nothing more will come."""
    job = job_selectors.job_get(user=request.user, pk=pk)
    raw = request.GET.get("offset", "0")
    # isascii: "²".isdigit() is true, but int() refuses it.
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput("offset must be a whole number", details={"offset": "not a number"})
    offset = int(raw)
    text, next_offset = job_selectors.job_log(job=job, offset=offset)
    return JsonResponse(
        {
            "job": job.pk,
            "offset": offset,
            "text": text,
            "next_offset": next_offset,
            "more": next_offset < job.log_size,
            "state": job.state,
            "state_label": job.get_state_display(),
            "state_detail": job.state_detail,
            "progress": job.progress,
            "attempts": job.attempts,
            "cancel_requested": job.cancel_requested,
            "complete": _log_complete(job, next_offset),
        }
    )


@require_POST
@page_view
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = job_selectors.job_get(user=request.user, pk=pk)
    cancelled = job_services.job_cancel(actor=request.user, job=job)
    if cancelled.state == JobState.CANCELLED:
        messages.success(request, f"Cancelled job #{cancelled.pk} before it started.")
    else:
        messages.info(
            request,
            f"Asked job #{cancelled.pk} to stop: its runner stops the process "
            "(SIGTERM, then SIGKILL after the grace period) and the job ends as cancelled.",
        )
    return redirect("frontend:job-detail", pk=cancelled.pk)


# --- workers and pools ---------------------------------------------------------------


def _worker_rows(request: HttpRequest) -> list[dict[str, Any]]:
    """Each worker with its GPUs marked in use, and its running jobs split into those
    the user may open (links) and a count of the others."""
    rows = job_selectors.workers_with_load()
    running = sorted({pk for row in rows for pk in row["running_jobs"]})
    visible = ui_selectors.job_ids_visible_to(request.user, running)
    stale_before = timezone.now() - timedelta(seconds=settings.MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS)
    for row in rows:
        worker = row["worker"]
        in_use = set(row["gpus_in_use"])
        jobs = list(dict.fromkeys(row["running_jobs"]))
        row["gpus"] = [{**gpu, "in_use": gpu.get("index") in in_use} for gpu in worker.gpus]
        row["visible_jobs"] = [pk for pk in jobs if pk in visible]
        row["other_jobs"] = len(jobs) - len(row["visible_jobs"])
        row["stale"] = worker.state != WorkerState.OFFLINE and worker.last_heartbeat < stale_before
    return rows


def _pool_rows() -> list[dict[str, Any]]:
    pools = job_selectors.pools_with_usage()
    for pool in pools:
        for team in pool["teams"]:
            limit = team["gpu_limit"]
            team["share"] = team["gpus_in_use"] / limit if limit else None
            team["over"] = limit is not None and team["gpus_in_use"] > limit
    return pools


@require_GET
@page_view
def workers(request: HttpRequest) -> HttpResponse:
    """Every worker's inventory and load, and the pools with each team's quota and use."""
    return render(
        request,
        "frontend/workers.html",
        {
            "nav": "workers",
            "workers": _worker_rows(request),
            "pools": _pool_rows(),
            "heartbeat_timeout": settings.MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS,
        },
    )
