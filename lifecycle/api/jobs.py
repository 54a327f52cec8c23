"""REST API v1 for jobs, workers and pools."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.jobs import selectors
from lifecycle.jobs.models import Job, JobKind
from lifecycle.jobs.services import job_cancel, job_submit
from registry import selectors as registry_selectors
from registry.api.base import ApiView, idempotent
from registry.api.serializers import StrictSerializer
from registry.errors import InvalidInput


class JobCreateIn(StrictSerializer):
    kind = serializers.ChoiceField(choices=JobKind.choices)
    team = serializers.CharField(required=False, max_length=64)
    model = serializers.CharField(required=False, allow_null=True, max_length=128)
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    spec = serializers.JSONField()
    priority = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
    pool = serializers.CharField(required=False, default="default", max_length=64)
    deadline = serializers.DateTimeField(required=False, allow_null=True)


class JobOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    team = serializers.CharField(source="team.name")
    model = serializers.CharField(source="model.name", default=None)
    version = serializers.IntegerField(source="version.version", default=None)
    spec = serializers.JSONField()
    priority = serializers.IntegerField()
    pool = serializers.CharField(source="pool.name")
    state = serializers.CharField()
    state_detail = serializers.CharField()
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    assignment = serializers.JSONField()
    strategy = serializers.CharField()
    progress = serializers.FloatField()
    result = serializers.JSONField()
    exit_code = serializers.IntegerField(allow_null=True)
    cancel_requested = serializers.BooleanField()
    cost_estimate = serializers.FloatField(allow_null=True)
    cost_actual = serializers.FloatField(allow_null=True)
    log_size = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    scheduled_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()


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
            return Response(
                JobOut(selectors.job_get(user=request.user, pk=job.pk)).data, status=status.HTTP_201_CREATED
            )

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

    @extend_schema(parameters=[OpenApiParameter("offset", int)], responses=dict)
    def get(self, request: Request, pk: int) -> Response:
        job: Job = selectors.job_get(user=request.user, pk=pk)
        raw = request.query_params.get("offset", "0")
        # isascii: "²".isdigit() is true, but int() refuses it.
        if not (raw.isascii() and raw.isdigit()):
            raise InvalidInput("offset must be a whole number", details={"offset": "not a number"})
        text, next_offset = selectors.job_log(job=job, offset=int(raw))
        return Response(
            {
                "job": job.pk,
                "state": job.state,
                "offset": int(raw),
                "next_offset": next_offset,
                "text": text,
                "complete": job.state in {"succeeded", "failed", "cancelled"} and next_offset >= job.log_size,
            }
        )


class WorkerListView(ApiView):
    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        rows = selectors.workers_with_load()
        return Response(
            {
                "results": [
                    {
                        "name": row["worker"].name,
                        "hostname": row["worker"].hostname,
                        "pool": row["worker"].pool.name,
                        "state": row["worker"].state,
                        "gpus": row["worker"].gpus,
                        "inventory_source": row["worker"].inventory_source,
                        "cpus": row["worker"].cpus,
                        "memory_mb": row["worker"].memory_mb,
                        "labels": row["worker"].labels,
                        "cost_per_hour": row["worker"].cost_per_hour,
                        "slots": row["worker"].slots,
                        "gpus_in_use": row["gpus_in_use"],
                        "running_jobs": row["running_jobs"],
                        "load": row["load"],
                        "last_heartbeat": row["worker"].last_heartbeat,
                    }
                    for row in rows
                ],
                "next": None,
            }
        )


class PoolListView(ApiView):
    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response({"results": selectors.pools_with_usage(), "next": None})


class TrainIn(StrictSerializer):
    estimator = serializers.CharField(max_length=200)
    estimator_params = serializers.DictField(required=False)
    register = serializers.BooleanField(required=False, default=True)
    evaluate = serializers.BooleanField(required=False, default=True)
    parent_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    git_commit = serializers.CharField(required=False, allow_blank=True, max_length=64)
    seed = serializers.IntegerField(required=False, default=42)
    request_stage = serializers.ChoiceField(choices=["staging", "production"], required=False, allow_null=True)
    sweep = serializers.DictField(required=False, allow_null=True)
    priority = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
    pool = serializers.CharField(required=False, default="default", max_length=64)


class TrainView(ApiView):
    """Queue the built-in scikit-learn trainer (or a sweep of it) on the model's dataset."""

    @extend_schema(request=TrainIn, responses={201: JobOut})
    def post(self, request: Request, name: str) -> Response:
        from lifecycle.evaluation.services import training_submit

        model = registry_selectors.model_get(user=request.user, name=name)

        def create(_: str | None) -> Response:
            data = TrainIn(data=request.data)
            data.is_valid(raise_exception=True)
            job = training_submit(actor=request.user, model=model, **data.validated_data)
            return Response(
                JobOut(selectors.job_get(user=request.user, pk=job.pk)).data, status=status.HTTP_201_CREATED
            )

        return idempotent(request, create)


class RetrainIn(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class RetrainView(ApiView):
    """Retrain the production version's recipe on the latest data."""

    @extend_schema(request=RetrainIn, responses={201: JobOut})
    def post(self, request: Request, name: str) -> Response:
        from lifecycle.evaluation.services import model_retrain

        model = registry_selectors.model_get(user=request.user, name=name)

        def create(_: str | None) -> Response:
            data = RetrainIn(data=request.data)
            data.is_valid(raise_exception=True)
            job = model_retrain(actor=request.user, model=model, reason=data.validated_data.get("reason", ""))
            return Response(
                JobOut(selectors.job_get(user=request.user, pk=job.pk)).data, status=status.HTTP_201_CREATED
            )

        return idempotent(request, create)


class RetrainScheduleIn(StrictSerializer):
    cron = serializers.CharField(max_length=128)
    enabled = serializers.BooleanField(required=False, default=True)


class RetrainScheduleView(ApiView):
    @extend_schema(responses=dict)
    def get(self, request: Request, name: str) -> Response:
        from lifecycle.evaluation.models import RetrainSchedule

        model = registry_selectors.model_get(user=request.user, name=name)
        schedule = RetrainSchedule.objects.filter(model=model).first()
        if schedule is None:
            return Response({"cron": None, "enabled": False, "last_run_at": None, "last_job": None})
        return Response(
            {
                "cron": schedule.cron,
                "enabled": schedule.enabled,
                "last_run_at": schedule.last_run_at,
                "last_job": schedule.last_job_id,
            }
        )

    @extend_schema(request=RetrainScheduleIn, responses=dict)
    def put(self, request: Request, name: str) -> Response:
        from lifecycle.evaluation.services import retrain_schedule_set

        model = registry_selectors.model_get(user=request.user, name=name)
        data = RetrainScheduleIn(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = retrain_schedule_set(actor=request.user, model=model, **data.validated_data)
        return Response({"cron": schedule.cron, "enabled": schedule.enabled, "last_run_at": schedule.last_run_at})


class EvaluateView(ApiView):
    """Queue an evaluation of a version beside the champion; list its evaluations."""

    @extend_schema(responses=dict)
    def get(self, request: Request, name: str, version: int) -> Response:
        from lifecycle.evaluation.models import Evaluation

        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)
        rows = Evaluation.objects.filter(version=found).select_related("compared_with")[:50]
        return Response(
            {
                "results": [
                    {
                        "id": e.pk,
                        "job": e.job_id,
                        "role": e.role,
                        "dataset_digest": e.dataset_digest,
                        "primary_metric": e.primary_metric,
                        "metrics": e.metrics,
                        "details": e.details,
                        "compared_with": e.compared_with.version if e.compared_with_id else None,
                        "deltas": e.deltas,
                        "mlflow_run_id": e.mlflow_run_id,
                        "report_uri": e.report_uri,
                        "plots": e.plots,
                        "created_at": e.created_at,
                    }
                    for e in rows
                ],
                "next": None,
            }
        )

    @extend_schema(request=None, responses={201: JobOut})
    def post(self, request: Request, name: str, version: int) -> Response:
        from lifecycle.evaluation.services import evaluation_submit

        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)
        job = evaluation_submit(actor=request.user, version=found)
        return Response(JobOut(selectors.job_get(user=request.user, pk=job.pk)).data, status=status.HTTP_201_CREATED)
