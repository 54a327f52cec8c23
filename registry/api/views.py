"""REST API v1 of the registry: thin views that parse, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from kombu import Connection
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from registry import mlflow_gateway, selectors, storage
from registry.api import documents
from registry.api.base import ApiView, idempotent
from registry.api.serializers import (
    AliasSetIn,
    ConfigOut,
    DatasetCreateIn,
    DatasetOut,
    HealthOut,
    ModelCreateIn,
    ModelDetailOut,
    ModelOut,
    ModelUpdateIn,
    VersionCreateIn,
    VersionDownloadOut,
    VersionOut,
    VersionVerifyOut,
)
from registry.errors import InvalidInput, NotFound
from registry.redaction import redact
from registry.services.aliases import alias_delete, alias_set
from registry.services.datasets import dataset_create
from registry.services.models import model_create, model_update
from registry.services.versions import model_version_register


def _broker_check() -> str:
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:  # kombu raises transport-specific errors
        return f"unreachable: {exc}"[:300]


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error means the same thing here
        return f"unreachable: {exc}"[:300]


class HealthView(ApiView):
    """Liveness and dependencies; no authentication. 503 only when the database is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: HealthOut, 503: HealthOut})
    def get(self, request: Request) -> Response:
        # No authentication here: an error naming a URL shows it without its password.
        checks = {
            "database": redact(_database_check()),
            "broker": redact(_broker_check()),
            "mlflow": redact(mlflow_gateway.health()),
            "artifacts": redact(storage.store_check()),
        }
        healthy = all(value == "ok" for value in checks.values())
        code = status.HTTP_200_OK if checks["database"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(HealthOut({"status": "ok" if healthy else "degraded", "checks": checks}).data, status=code)


class ConfigView(ApiView):
    """Where clients log runs and where artifacts live."""

    @extend_schema(responses=ConfigOut)
    def get(self, request: Request) -> Response:
        return Response(
            ConfigOut(
                {
                    # A password in the URL is the server's, not the caller's.
                    "mlflow_tracking_uri": redact(settings.MLFLOW_TRACKING_URI),
                    "artifact_store": settings.MODELGATE_ARTIFACT_ROOT,
                    "s3_endpoint_url": settings.AWS_ENDPOINT_URL,
                    "api_version": "v1",
                }
            ).data
        )


class ModelListView(ApiView):
    query_params_allowed = frozenset({"team", "search", "tag"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("name",)

    @extend_schema(
        parameters=[
            OpenApiParameter("team", str),
            OpenApiParameter("search", str),
            OpenApiParameter("tag", str, many=True),
        ],
        responses=ModelOut(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = selectors.model_list(
            user=request.user,
            team=request.query_params.get("team"),
            search=request.query_params.get("search"),
            tags=request.query_params.getlist("tag"),
        )
        return self.paginate(request, qs, lambda page: ModelOut(page, many=True).data)

    @extend_schema(request=ModelCreateIn, responses={201: ModelDetailOut})
    def post(self, request: Request) -> Response:
        def create(_: str | None) -> Response:
            data = ModelCreateIn(data=request.data)
            data.is_valid(raise_exception=True)
            fields = dict(data.validated_data)
            model = model_create(actor=request.user, team=selectors.team_get(name=fields.pop("team")), **fields)
            return Response(ModelDetailOut(model).data, status=status.HTTP_201_CREATED)

        return idempotent(request, create)


class ModelDetailView(ApiView):
    @extend_schema(responses=ModelDetailOut)
    def get(self, request: Request, name: str) -> Response:
        return Response(ModelDetailOut(selectors.model_get(user=request.user, name=name)).data)

    @extend_schema(request=ModelUpdateIn, responses=ModelDetailOut)
    def patch(self, request: Request, name: str) -> Response:
        model = selectors.model_get(user=request.user, name=name)
        data = ModelUpdateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason", "")
        model = model_update(actor=request.user, model=model, changes=changes, reason=reason)
        return Response(ModelDetailOut(model).data)


_VERSION_ORDERINGS = {
    "version": ("version",),
    "-version": ("-version",),
    "created_at": ("created_at", "version"),
    "-created_at": ("-created_at", "-version"),
}


class VersionListView(ApiView):
    query_params_allowed = frozenset({"stage", "tag", "metric", "ordering"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        raw = request.query_params.get("ordering", "-version")
        if raw not in _VERSION_ORDERINGS:
            raise InvalidInput(
                f"ordering {raw!r} is not one of {', '.join(_VERSION_ORDERINGS)}",
                details={"ordering": "unknown ordering"},
            )
        return _VERSION_ORDERINGS[raw]

    @extend_schema(
        parameters=[
            OpenApiParameter("stage", str),
            OpenApiParameter("tag", str, many=True, description="key:value"),
            OpenApiParameter("metric", str, many=True, description="e.g. f1>=0.9"),
            OpenApiParameter("ordering", str, enum=list(_VERSION_ORDERINGS)),
        ],
        responses=VersionOut(many=True),
    )
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_pk_get(user=request.user, name=name)
        ordering = self.cursor_ordering(request)
        qs = selectors.version_filter(
            model=model,
            stage=request.query_params.get("stage"),
            tags=request.query_params.getlist("tag"),
            metrics=request.query_params.getlist("metric"),
        )
        paginator = self.pagination_class()
        position = [field.lstrip("-") for field in ordering]
        refs = paginator.paginate_queryset(selectors.version_refs(qs, position=position), request, view=self)
        return documents.version_page_response(
            refs, next_link=paginator.get_next_link(), previous_link=paginator.get_previous_link()
        )

    @extend_schema(request=VersionCreateIn, responses={201: VersionOut})
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(user=request.user, name=name)

        def register(request_key: str | None) -> Response:
            data = VersionCreateIn(data=request.data)
            data.is_valid(raise_exception=True)
            version = model_version_register(
                actor=request.user, model=model, request_key=request_key, **data.validated_data
            )
            return Response(VersionOut(version).data, status=status.HTTP_201_CREATED)

        return idempotent(request, register)


class VersionDetailView(ApiView):
    @extend_schema(responses=VersionOut)
    def get(self, request: Request, name: str, version: int) -> HttpResponse:
        return documents.version_response(selectors.version_ref_find(user=request.user, name=name, version=version))


class VersionDownloadView(ApiView):
    """Presigned URLs for each file of the artifact, with the digests to check them by."""

    @extend_schema(responses=VersionDownloadOut)
    def get(self, request: Request, name: str, version: int) -> Response:
        model = selectors.model_get(user=request.user, name=name)
        found = selectors.version_get(model=model, version=version)
        expires = settings.MODELGATE_PRESIGN_EXPIRY_SECONDS
        urls = storage.presigned_urls(found.artifact_uri, found.manifest, expires_in=expires) or {}
        files = [
            {"path": path, "sha256": entry["sha256"], "size": entry["size"], "url": urls.get(path)}
            for path, entry in sorted(found.manifest.items())
        ]
        return Response(
            VersionDownloadOut(
                {
                    "artifact_uri": found.artifact_uri,
                    "digest": found.digest,
                    "expires_in": expires if urls else None,
                    "files": files,
                }
            ).data
        )


class VersionVerifyView(ApiView):
    """Re-read the artifact and compare it with the digest recorded at registration.

    A POST because it does work, but it changes nothing: read-only tokens may call it.
    """

    reads_only = True

    @extend_schema(request=None, responses=VersionVerifyOut)
    def post(self, request: Request, name: str, version: int) -> Response:
        model = selectors.model_get(user=request.user, name=name)
        found = selectors.version_get(model=model, version=version)
        report = storage.artifact_verify(found.artifact_uri, found.manifest)
        return Response(VersionVerifyOut({"expected_digest": found.digest, **report}).data)


class AliasView(ApiView):
    @extend_schema(responses=VersionOut)
    def get(self, request: Request, name: str, alias: str) -> HttpResponse:
        return documents.version_response(selectors.alias_ref_find(user=request.user, name=name, alias=alias))

    @extend_schema(request=AliasSetIn, responses=VersionOut)
    def put(self, request: Request, name: str, alias: str) -> Response:
        model = selectors.model_get(user=request.user, name=name)
        data = AliasSetIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            target = selectors.version_get(model=model, version=data.validated_data["version"])
        except NotFound as exc:
            raise InvalidInput(exc.message, details={"version": "unknown version"}) from exc
        alias_set(actor=request.user, model=model, name=alias, version=target)
        return Response(VersionOut(selectors.alias_resolve(model=model, alias=alias)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str, alias: str) -> Response:
        model = selectors.model_get(user=request.user, name=name)
        alias_delete(actor=request.user, model=model, name=alias)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetListView(ApiView):
    query_params_allowed = frozenset({"team"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-id",)

    @extend_schema(parameters=[OpenApiParameter("team", str)], responses=DatasetOut(many=True))
    def get(self, request: Request) -> Response:
        qs = selectors.dataset_list(user=request.user, team=request.query_params.get("team"))
        return self.paginate(request, qs, lambda page: DatasetOut(page, many=True).data)

    @extend_schema(request=DatasetCreateIn, responses={201: DatasetOut})
    def post(self, request: Request) -> Response:
        def create(_: str | None) -> Response:
            data = DatasetCreateIn(data=request.data)
            data.is_valid(raise_exception=True)
            fields: dict[str, Any] = dict(data.validated_data)
            dataset = dataset_create(actor=request.user, team=selectors.team_get(name=fields.pop("team")), **fields)
            return Response(DatasetOut(dataset).data, status=status.HTTP_201_CREATED)

        return idempotent(request, create)


class DatasetDetailView(ApiView):
    @extend_schema(responses=DatasetOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(DatasetOut(selectors.dataset_get(user=request.user, pk=pk)).data)
