"""REST API v1 for jobs, workers and pools."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.jobs import selectors
from lifecycle.jobs.api.serializers import JobCreateIn, JobLogOut, JobOut, PoolListOut, WorkerListOut
from lifecycle.jobs.choices import JOB_FINAL_STATES
from lifecycle.jobs.models import Job
from lifecycle.jobs.services import job_cancel, job_submit
from registry import selectors as registry_selectors
from registry.api.base import ApiView, idempotent
from registry.errors import InvalidInput


def job_created(request: Request, job_id: int) -> Response:
    """The 201 answer to a call that submitted a job: the job as its caller sees it."""
    return Response(JobOut(selectors.job_get(user=request.user, pk=job_id)).data, status=status.HTTP_201_CREATED)


class JobListView(ApiView):
    query_params_allowed = frozenset({"state", "model", "kind"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-id",)

    @extend_schema(
        parameters=[OpenApiParameter("state", str), OpenApiParameter("model", str), OpenApiParameter("kind", str)],
        responses=JobOut(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = selectors.job_list(
            user=request.user,
            state=request.query_params.get("state"),
            model=request.query_params.get("model"),
            kind=request.query_params.get("kind"),
        )
        return self.paginate(request, qs, lambda page: JobOut(page, many=True).data)

    @extend_schema(request=JobCreateIn, responses={201: JobOut})
    def post(self, request: Request) -> Response:
        def create(_: str | None) -> Response:
            data = JobCreateIn(data=request.data)
            data.is_valid(raise_exception=True)
            fields: dict[str, Any] = dict(data.validated_data)
            model = (
                registry_selectors.model_get(user=request.user, name=fields["model"]) if fields.get("model") else None
            )
            version = (
                registry_selectors.version_get(model=model, version=fields["version"])
                if model is not None and fields.get("version")
                else None
            )
            if fields.get("version") and model is None:
                raise InvalidInput("a version needs its model", details={"model": "required with version"})
            if model is not None:
                team = model.team
            elif fields.get("team"):
                team = registry_selectors.team_get(name=fields["team"])
            else:
                raise InvalidInput("give the job's team or model", details={"team": "required without model"})
            job = job_submit(
                actor=request.user,
                team=team,
                kind=fields["kind"],
                spec=fields["spec"],
                priority=fields["priority"],
                pool=fields["pool"],
                model=model,
                version=version,
                deadline=fields.get("deadline"),
            )
            return job_created(request, job.pk)

        return idempotent(request, create)


class JobDetailView(ApiView):
    @extend_schema(responses=JobOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobOut(selectors.job_get(user=request.user, pk=pk)).data)


class JobCancelView(ApiView):
    @extend_schema(request=None, responses=JobOut)
    def post(self, request: Request, pk: int) -> Response:
        job = job_cancel(actor=request.user, job=selectors.job_get(user=request.user, pk=pk))
        return Response(JobOut(selectors.job_get(user=request.user, pk=job.pk)).data)


class JobLogsView(ApiView):
    """``?offset=N`` returns the log from character N on, and ``next_offset`` to follow it."""

    query_params_allowed = frozenset({"offset"})

    @extend_schema(parameters=[OpenApiParameter("offset", int)], responses=JobLogOut)
    def get(self, request: Request, pk: int) -> Response:
        job: Job = selectors.job_get(user=request.user, pk=pk)
        raw = request.query_params.get("offset", "0")
        # isascii: "²".isdigit() is true, but int() refuses it.
        if not (raw.isascii() and raw.isdigit()):
            raise InvalidInput("offset must be a whole number", details={"offset": "not a number"})
        text, next_offset = selectors.job_log(job=job, offset=int(raw))
        complete = job.state in JOB_FINAL_STATES and next_offset >= job.log_size
        return Response(
            JobLogOut(
                {
                    "job": job.pk,
                    "state": job.state,
                    "offset": int(raw),
                    "next_offset": next_offset,
                    "text": text,
                    "complete": complete,
                }
            ).data
        )


class WorkerListView(ApiView):
    @extend_schema(responses=WorkerListOut)
    def get(self, request: Request) -> Response:
        return Response(WorkerListOut({"results": selectors.workers_with_load(), "next": None}).data)


class PoolListView(ApiView):
    @extend_schema(responses=PoolListOut)
    def get(self, request: Request) -> Response:
        return Response(PoolListOut({"results": selectors.pools_with_usage(), "next": None}).data)
