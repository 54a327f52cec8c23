"""REST API v1 of the training and update stage: train, retrain, the retraining schedule."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.jobs.api.serializers import JobOut
from lifecycle.jobs.api.views import job_created
from lifecycle.training import selectors
from lifecycle.training.services import model_retrain, retrain_schedule_set, training_submit
from registry import selectors as registry_selectors
from registry.api.base import ApiView, idempotent
from registry.api.serializers import StrictSerializer


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


class RetrainIn(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class RetrainScheduleIn(StrictSerializer):
    cron = serializers.CharField(max_length=128)
    enabled = serializers.BooleanField(required=False, default=True)
    method = serializers.CharField(required=False, allow_blank=True, default="", max_length=16)
    method_params = serializers.DictField(required=False, default=dict)


class RetrainScheduleOut(serializers.Serializer):
    cron = serializers.CharField(allow_null=True)
    enabled = serializers.BooleanField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_job = serializers.IntegerField(source="last_job_id", allow_null=True)
    method = serializers.CharField(default="")
    method_params = serializers.JSONField(default=dict)


class RetrainScheduleSetOut(serializers.Serializer):
    cron = serializers.CharField()
    enabled = serializers.BooleanField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    method = serializers.CharField()
    method_params = serializers.JSONField()


class TrainView(ApiView):
    """Queue the built-in scikit-learn trainer (or a sweep of it) on the model's dataset."""

    @extend_schema(request=TrainIn, responses={201: JobOut})
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)

        def create(_: str | None) -> Response:
            data = TrainIn(data=request.data)
            data.is_valid(raise_exception=True)
            job = training_submit(actor=request.user, model=model, **data.validated_data)
            return job_created(request, job.pk)

        return idempotent(request, create)


class RetrainView(ApiView):
    """Retrain the production version's recipe on the latest data."""

    @extend_schema(request=RetrainIn, responses={201: JobOut})
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)

        def create(_: str | None) -> Response:
            data = RetrainIn(data=request.data)
            data.is_valid(raise_exception=True)
            job = model_retrain(actor=request.user, model=model, reason=data.validated_data.get("reason", ""))
            return job_created(request, job.pk)

        return idempotent(request, create)


class RetrainScheduleView(ApiView):
    @extend_schema(responses=RetrainScheduleOut)
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        schedule = selectors.retrain_schedule_of(model=model)
        if schedule is None:
            return Response(
                RetrainScheduleOut({"cron": None, "enabled": False, "last_run_at": None, "last_job_id": None}).data
            )
        return Response(RetrainScheduleOut(schedule).data)

    @extend_schema(request=RetrainScheduleIn, responses=RetrainScheduleSetOut)
    def put(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        data = RetrainScheduleIn(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = retrain_schedule_set(actor=request.user, model=model, **data.validated_data)
        return Response(RetrainScheduleSetOut(schedule).data)
