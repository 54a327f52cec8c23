"""REST API v1 of the evaluation stage: evaluate a version beside the champion, list its evaluations."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.evaluation import selectors
from lifecycle.evaluation.services import evaluation_submit
from lifecycle.jobs.api.serializers import JobOut, unpaged
from lifecycle.jobs.api.views import job_created
from registry import selectors as registry_selectors
from registry.api.base import ApiView
from registry.api.serializers import StrictSerializer


class EvaluationOut(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.IntegerField(source="job_id", allow_null=True)
    role = serializers.CharField()
    dataset_digest = serializers.CharField()
    primary_metric = serializers.CharField()
    metrics = serializers.JSONField()
    details = serializers.JSONField()
    compared_with = serializers.IntegerField(source="compared_with.version", default=None, allow_null=True)
    deltas = serializers.JSONField()
    mlflow_run_id = serializers.CharField()
    report_uri = serializers.CharField()
    plots = serializers.JSONField()
    created_at = serializers.DateTimeField()


EvaluationListOut = unpaged(EvaluationOut, "EvaluationListOut")


class EvaluateIn(StrictSerializer):
    """``measure``: whether to measure latency and peak memory (absent or null: the
    installation's ``MODELGATE_EVALUATION_MEASURE``); a latency or memory gate in the
    model's policy has the version measured either way."""

    measure = serializers.BooleanField(required=False, allow_null=True, default=None)


class EvaluateView(ApiView):
    """Queue an evaluation of a version beside the champion; list its evaluations."""

    @extend_schema(responses=EvaluationListOut)
    def get(self, request: Request, name: str, version: int) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)
        return Response(EvaluationListOut({"results": selectors.evaluations_of(version=found), "next": None}).data)

    @extend_schema(request=EvaluateIn, responses={201: JobOut})
    def post(self, request: Request, name: str, version: int) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)
        data = EvaluateIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = evaluation_submit(actor=request.user, version=found, measure=data.validated_data["measure"])
        return job_created(request, job.pk)
