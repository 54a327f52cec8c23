"""REST API v1 of the update stage: derive a version, read a version's lineage."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.derivations import selectors
from lifecycle.derivations.choices import DerivationMethod
from lifecycle.derivations.services import version_derive
from lifecycle.jobs.api.serializers import JobOut
from lifecycle.jobs.api.views import job_created
from registry import selectors as registry_selectors
from registry.api.base import ApiView, idempotent
from registry.api.serializers import StrictSerializer


class DeriveIn(StrictSerializer):
    method = serializers.ChoiceField(choices=DerivationMethod.values)
    params = serializers.DictField(required=False, default=dict)
    request_stage = serializers.ChoiceField(choices=["staging", "production"], required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    priority = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
    pool = serializers.CharField(required=False, default="default", max_length=64)


class LineageNodeOut(serializers.Serializer):
    version = serializers.IntegerField()
    stage = serializers.CharField()
    parent_version = serializers.IntegerField(allow_null=True)
    depth = serializers.IntegerField()
    run_id = serializers.CharField()
    digest = serializers.CharField()
    size_bytes = serializers.IntegerField()
    dataset = serializers.JSONField(allow_null=True)
    derivation = serializers.JSONField(allow_null=True)


class LineageEdgeOut(serializers.Serializer):
    parent = serializers.IntegerField()
    child = serializers.IntegerField()
    method = serializers.CharField(allow_null=True)


class LineageOut(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    derivation = serializers.JSONField(allow_null=True)
    ancestors = LineageNodeOut(many=True)
    children = serializers.JSONField()
    nodes = LineageNodeOut(many=True)
    edges = LineageEdgeOut(many=True)
    datasets = serializers.JSONField()
    runs = serializers.JSONField()
    pending = serializers.JSONField()


class DeriveView(ApiView):
    """Queue a job deriving a new version from this one (onnx, quantize, prune, distill,
    incremental); the new version's parent is this one."""

    @extend_schema(request=DeriveIn, responses={201: JobOut})
    def post(self, request: Request, name: str, version: int) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)

        def create(_: str | None) -> Response:
            data = DeriveIn(data=request.data)
            data.is_valid(raise_exception=True)
            job = version_derive(version=found, actor=request.user, **data.validated_data)
            return job_created(request, job.pk)

        return idempotent(request, create)


class LineageView(ApiView):
    """The version's parents, children, derivations, datasets and runs."""

    @extend_schema(responses=LineageOut)
    def get(self, request: Request, name: str, version: int) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)
        return Response(LineageOut(selectors.version_lineage(version=found)).data)
