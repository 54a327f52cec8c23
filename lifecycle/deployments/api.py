"""REST API v1 of the deployment stage: deployments, their routes, replicas and revisions,
the change of their settings (PATCH), and the route changes (canary, shadow, promote,
abort, stop)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.deployments import kubernetes, selectors, services
from lifecycle.deployments.choices import DeploymentState, DeploymentTarget
from lifecycle.deployments.models import Deployment
from lifecycle.governance.api.serializers import TransitionOut
from registry import selectors as registry_selectors
from registry.api.base import ApiView, idempotent
from registry.api.serializers import StrictSerializer
from registry.errors import Conflict, InvalidInput


def _cache_field(**options: Any) -> serializers.BooleanField:
    return serializers.BooleanField(required=False, **options)


def _log_sample_rate_field(**options: Any) -> serializers.FloatField:
    return serializers.FloatField(required=False, min_value=0.0, max_value=1.0, **options)


def _monitor_every_minutes_field(**options: Any) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=services.MONITOR_EVERY_MINUTES_MAX, **options
    )


class DeploymentCreateIn(StrictSerializer):
    name = serializers.SlugField(required=False, default="production", max_length=64)
    target = serializers.ChoiceField(choices=DeploymentTarget.choices, required=False, default=DeploymentTarget.LOCAL)
    pool = serializers.CharField(required=False, allow_null=True, max_length=64)
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    alias = serializers.CharField(required=False, allow_null=True, max_length=64)
    replicas = serializers.IntegerField(required=False, default=1, min_value=1, max_value=services.MAX_REPLICAS)
    resources = serializers.DictField(required=False)
    cache = _cache_field(default=False)
    log_sample_rate = _log_sample_rate_field(default=1.0)
    monitor_every_minutes = _monitor_every_minutes_field()


class DeploymentSettingsIn(StrictSerializer):
    """A change of a deployment's settings (PATCH): any of them, checked as creation
    checks them."""

    cache = _cache_field()
    log_sample_rate = _log_sample_rate_field()
    monitor_every_minutes = _monitor_every_minutes_field(
        help_text="minutes per monitoring window; null: the server's default"
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class CanaryIn(StrictSerializer):
    version = serializers.IntegerField(min_value=1)
    weight = serializers.FloatField(min_value=0.0, max_value=1.0)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ShadowIn(StrictSerializer):
    version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ReasonIn(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RouteOut(serializers.Serializer):
    version = serializers.IntegerField(source="version.version")
    mode = serializers.CharField()
    weight = serializers.FloatField()
    started_at = serializers.DateTimeField()


class ReplicaOut(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(source="version.version")
    state = serializers.CharField()
    state_detail = serializers.CharField()
    url = serializers.CharField()
    host = serializers.CharField()
    job = serializers.IntegerField(source="job_id", allow_null=True)
    restarts = serializers.IntegerField()
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    ready_at = serializers.DateTimeField(allow_null=True)


class RevisionOut(serializers.Serializer):
    number = serializers.IntegerField()
    action = serializers.CharField()
    actor = serializers.CharField(source="actor.username", default=None, allow_null=True)
    reason = serializers.CharField()
    before = serializers.JSONField()
    after = serializers.JSONField()
    created_at = serializers.DateTimeField()


class DeploymentOut(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(source="model.name")
    name = serializers.CharField()
    target = serializers.CharField()
    pool = serializers.CharField()
    state = serializers.CharField()
    state_detail = serializers.CharField()
    follows_production = serializers.BooleanField()
    default = serializers.BooleanField(source="is_default")
    cache = serializers.BooleanField()
    log_sample_rate = serializers.FloatField()
    monitor_every_minutes = serializers.IntegerField(allow_null=True)
    monitor_due_at = serializers.DateTimeField(allow_null=True)
    replica_count = serializers.IntegerField(source="replicas")
    revision = serializers.IntegerField()
    routes = RouteOut(many=True)
    replicas = ReplicaOut(source="replica_set", many=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)


class DeploymentDetailOut(DeploymentOut):
    revisions = serializers.SerializerMethodField()

    def get_revisions(self, deployment: Deployment) -> list[dict[str, Any]]:
        return RevisionOut(selectors.deployment_revisions(deployment=deployment)[:100], many=True).data


def _detail(request: Request, pk: int, code: int = status.HTTP_200_OK) -> Response:
    return Response(DeploymentDetailOut(selectors.deployment_get(user=request.user, pk=pk)).data, status=code)


class DeploymentListView(ApiView):
    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-id",)

    @extend_schema(responses=DeploymentOut(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        qs = selectors.deployment_list(user=request.user, model=model)
        return self.paginate(request, qs, lambda page: DeploymentOut(page, many=True).data)

    @extend_schema(request=DeploymentCreateIn, responses={201: DeploymentDetailOut})
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)

        def create(_: str | None) -> Response:
            data = DeploymentCreateIn(data=request.data)
            data.is_valid(raise_exception=True)
            deployment = services.deployment_create(actor=request.user, model=model, **data.validated_data)
            return _detail(request, deployment.pk, status.HTTP_201_CREATED)

        return idempotent(request, create)


class DeploymentDetailView(ApiView):
    @extend_schema(responses=DeploymentDetailOut)
    def get(self, request: Request, pk: int) -> Response:
        return _detail(request, pk)

    @extend_schema(
        request=DeploymentSettingsIn,
        responses=DeploymentDetailOut,
        description="Change a deployment's monitoring windows, log sample rate or cache (developers); "
        "409 once it is stopped.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        deployment = selectors.deployment_get(user=request.user, pk=pk)
        data = DeploymentSettingsIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason", "")
        services.deployment_settings_update(actor=request.user, deployment=deployment, changes=changes, reason=reason)
        return _detail(request, pk)


class _RouteChangeView(ApiView):
    """A verb on a deployment: parse its body, call its one service, answer the deployment."""

    body: type[StrictSerializer]
    # The service of the verb, called as ``service(actor=, deployment=, **body)``.
    service: Callable[..., Any]

    def post(self, request: Request, pk: int) -> Response:
        data = self.body(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = selectors.deployment_get(user=request.user, pk=pk)
        type(self).service(actor=request.user, deployment=deployment, **data.validated_data)
        return _detail(request, pk)


@extend_schema_view(post=extend_schema(request=CanaryIn, responses=DeploymentDetailOut))
class CanaryView(_RouteChangeView):
    """Start a canary of a version at a weight, or change the weight of the running one."""

    body = CanaryIn
    service = services.canary_set


@extend_schema_view(post=extend_schema(request=ShadowIn, responses=DeploymentDetailOut))
class ShadowView(_RouteChangeView):
    body = ShadowIn
    service = services.shadow_set


@extend_schema_view(post=extend_schema(request=ReasonIn, responses=DeploymentDetailOut))
class AbortCanaryView(_RouteChangeView):
    body = ReasonIn
    service = services.canary_abort


@extend_schema_view(post=extend_schema(request=ReasonIn, responses=DeploymentDetailOut))
class StopView(_RouteChangeView):
    body = ReasonIn
    service = services.deployment_stop


class PromoteCanaryView(ApiView):
    """Request production for the canary's version: the transition with its gates."""

    @extend_schema(request=ReasonIn, responses=TransitionOut)
    def post(self, request: Request, pk: int) -> Response:
        data = ReasonIn(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = selectors.deployment_get(user=request.user, pk=pk)
        transition = services.canary_promote(actor=request.user, deployment=deployment, **data.validated_data)
        return Response(TransitionOut(transition).data)


# --- manifests for a cluster -----------------------------------------------------------------


class ManifestsQuery(StrictSerializer):
    flavor = serializers.ChoiceField(choices=kubernetes.FLAVORS, required=False, default="kserve")
    namespace = serializers.CharField(required=False, default=kubernetes.DEFAULT_NAMESPACE, max_length=63)
    image = serializers.CharField(required=False, default=kubernetes.DEFAULT_IMAGE, max_length=255)
    format = serializers.ChoiceField(choices=("yaml", "json"), required=False, default="yaml")


class ManifestsOut(serializers.Serializer):
    deployment = serializers.IntegerField()
    model = serializers.CharField()
    name = serializers.CharField()
    revision = serializers.IntegerField()
    flavor = serializers.CharField()
    namespace = serializers.CharField()
    notes = serializers.ListField(child=serializers.CharField())
    manifests = serializers.ListField(child=serializers.DictField())


class ManifestsYAMLRenderer(BaseRenderer):
    """The manifests as one multi-document YAML stream, the notes as comments above it."""

    media_type = "text/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        header = [
            f"{data['model']} / {data['name']} (deployment {data['deployment']}, revision {data['revision']}),"
            f" flavor {data['flavor']}, namespace {data['namespace']}",
            *data["notes"],
        ]
        return kubernetes.manifests_yaml(data["manifests"], header=header).encode()


class _ManifestsNegotiation(DefaultContentNegotiation):
    """An unknown ``?format=`` renders nothing: the view refuses it with a 400 naming the
    parameter, once the caller is authenticated (DRF would answer 404 before that)."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        if request.query_params.get("format") not in (None, "yaml", "json"):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)


def _manifests_description(deployment: Deployment, *, namespace: str, image: str) -> kubernetes.DeploymentDescription:
    return kubernetes.DeploymentDescription(
        model=deployment.model.name,
        name=deployment.name,
        namespace=namespace,
        id=deployment.pk,
        revision=deployment.revision,
        replicas=deployment.replicas,
        resources=deployment.resources or {},
        default=deployment.is_default,
        cache=deployment.cache,
        image=image,
        routes=tuple(
            kubernetes.RouteDescription(
                version=route.version.version,
                mode=route.mode,
                weight=route.weight,
                storage_uri=route.version.artifact_uri,
                signature=route.version.signature,
                digest=route.version.digest,
            )
            for route in deployment.routes.all()
        ),
    )


class ManifestsView(ApiView):
    """The deployment's routes as Kubernetes manifests: a KServe InferenceService
    (``flavor=kserve``) or Deployments, Services and the gateway's route table
    (``flavor=plain``). YAML for ``kubectl apply -f -``, or JSON with ``?format=json``."""

    query_params_allowed = frozenset({"flavor", "namespace", "image", "format"})
    renderer_classes = [ManifestsYAMLRenderer, JSONRenderer]
    content_negotiation_class = _ManifestsNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter("flavor", str, enum=list(kubernetes.FLAVORS)),
            OpenApiParameter("namespace", str),
            OpenApiParameter("image", str, description="serving image of the plain flavor; {model} and {version}"),
            OpenApiParameter("format", str, enum=["yaml", "json"]),
        ],
        responses={
            (200, "text/yaml"): OpenApiTypes.STR,
            (200, "application/json"): ManifestsOut,
            409: OpenApiResponse(description="the deployment is stopped, or a route cannot be rendered in this flavor"),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        query = ManifestsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        deployment = selectors.deployment_get(user=request.user, pk=pk)
        if deployment.state == DeploymentState.STOPPED:
            raise Conflict(f"deployment {deployment} is stopped; there is nothing to render", code="stopped")
        options = query.validated_data
        description = _manifests_description(deployment, namespace=options["namespace"], image=options["image"])
        try:
            manifests = kubernetes.render(description, flavor=options["flavor"])
        except kubernetes.ManifestError as exc:
            if exc.field in ManifestsQuery().fields:
                raise InvalidInput(exc.message, details={exc.field: exc.message}) from None
            # The deployment itself cannot be rendered (an artifact KServe cannot read, resources it has no
            # equivalent for): nothing in the request would change that.
            raise Conflict(str(exc), code="unrenderable") from None
        return Response(
            ManifestsOut(
                {
                    "deployment": deployment.pk,
                    "model": deployment.model.name,
                    "name": deployment.name,
                    "revision": deployment.revision,
                    "flavor": options["flavor"],
                    "namespace": options["namespace"],
                    "notes": kubernetes.notes(description, flavor=options["flavor"]),
                    "manifests": manifests,
                }
            ).data
        )

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400:
            # Errors keep the one JSON error format of the API, whatever was asked for.
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response
