"""A deployment rendered as Kubernetes manifests. Pure (no Django): it works on a plain
description of the deployment (``DeploymentDescription``, or the same as a dict).

Two flavors:

``kserve``
    One KServe ``InferenceService`` (``serving.kserve.io/v1beta1``) whose predictor is an
    MLflow model (``modelFormat.name: mlflow``) read from the version's artifact
    (``storageUri``). KServe's canary model differs from ModelGate's routes: an
    InferenceService holds ONE spec, and ``canaryTrafficPercent`` sends that share of
    traffic to the revision the spec creates while the last revision that was rolled out
    at 100% keeps the rest. So with a canary the spec is the canary's version and the
    primary is expected to be the revision already running (apply the manifest rendered
    before the canary started first). A shadow route becomes an InferenceService of its
    own that receives no traffic from KServe.

``plain``
    Without KServe: per route a ``Deployment`` of the serving image
    (``deploy/Dockerfile.serving``, MLflow's scoring server with the version baked in)
    and a ``Service`` in front of it, plus a ``ConfigMap`` holding the route table of
    the ModelGate gateway (the format of ``routing.py``) with each route's Service as its
    replica: the gateway applies the weights, the sticky request ids and the shadow copy,
    as it does for replicas on worker hosts. Kubernetes Services alone cannot split
    traffic by weight.

``render`` returns the manifests as a list of dicts; ``manifests_yaml`` turns them into
one multi-document YAML stream for ``kubectl apply -f -``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

FLAVORS: tuple[str, ...] = ("kserve", "plain")
ROUTE_MODES: tuple[str, ...] = ("primary", "canary", "shadow")
LIVE_MODES = frozenset({"primary", "canary"})

# What the serving image (deploy/Dockerfile.serving) listens on and answers health on.
SERVING_PORT = 8080
HEALTH_PATH = "/ping"
# The image's unprivileged user; the pods ask for it so that runAsNonRoot can be checked.
SERVING_UID = 10001
DEFAULT_IMAGE = "modelgate-serving/{model}:v{version}"
DEFAULT_NAMESPACE = "default"

LABEL_MODEL = "modelgate.io/model"
LABEL_DEPLOYMENT = "modelgate.io/deployment"
LABEL_VERSION = "modelgate.io/version"
LABEL_ROUTE = "modelgate.io/route"
ANNOTATION_PREFIX = "modelgate.io/"

KSERVE_API_VERSION = "serving.kserve.io/v1beta1"
# KServe names the predictor's Knative service and revisions after the InferenceService
# ("<name>-predictor-00001"), and the result must still be a DNS label of 63 characters.
KSERVE_NAME_MAX = 45
# Where KServe's storage initializer can read a model from.
KSERVE_STORAGE_SCHEMES = ("s3://", "gs://", "pvc://", "https://", "http://", "oci://")

# The same defaults the replicas of worker hosts get (lifecycle/deployments/services.py).
DEFAULT_RESOURCES: Mapping[str, Any] = {"cpus": 1, "memory_mb": 512}
RESOURCE_KEYS = frozenset({"cpus", "memory_mb", "gpus", "gpu_type", "gpu_memory_mb"})
# A scoring server may load a large model before /ping answers: five minutes.
STARTUP_PROBE_PERIOD_S = 5
STARTUP_PROBE_FAILURES = 60
WEIGHT_TOLERANCE = 1e-6

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ManifestError(ValueError):
    """A description that cannot be rendered; ``field`` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RouteDescription:
    """One route of the deployment: a version, its mode and share of live traffic."""

    version: int
    mode: str
    weight: float
    storage_uri: str
    signature: Mapping[str, Any] | None = None
    digest: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "routes") -> RouteDescription:
        if not isinstance(raw, Mapping):
            raise ManifestError(where, "a route is an object")
        try:
            return cls(
                version=raw["version"],
                mode=raw["mode"],
                weight=raw.get("weight", 0.0),
                storage_uri=raw.get("storage_uri", ""),
                signature=raw.get("signature"),
                digest=raw.get("digest", ""),
            )
        except KeyError as missing:
            raise ManifestError(f"{where}.{missing.args[0]}", "required") from None


@dataclass(frozen=True)
class DeploymentDescription:
    """What is rendered: the model, the deployment's name, routes, replicas and resources.

    ``id``, ``revision``, ``default`` and ``cache`` go into annotations and the route
    table; ``image`` is the serving image of the plain flavor, with ``{model}`` and
    ``{version}`` filled in per route."""

    model: str
    name: str
    routes: tuple[RouteDescription, ...]
    namespace: str = DEFAULT_NAMESPACE
    replicas: int = 1
    resources: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0
    revision: int = 0
    default: bool = True
    cache: bool = False
    image: str = DEFAULT_IMAGE

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DeploymentDescription:
        if not isinstance(raw, Mapping):
            raise ManifestError("deployment", "a deployment is an object")
        routes = raw.get("routes")
        if not isinstance(routes, Sequence) or isinstance(routes, str):
            raise ManifestError("routes", "a list of routes is required")
        known = {f for f in cls.__dataclass_fields__ if f != "routes"}
        unknown = sorted(set(raw) - known - {"routes"})
        if unknown:
            raise ManifestError(unknown[0], "unknown field")
        for required in ("model", "name"):
            if required not in raw:
                raise ManifestError(required, "required")
        return cls(
            routes=tuple(RouteDescription.from_dict(r, f"routes[{i}]") for i, r in enumerate(routes)),
            **{k: v for k, v in raw.items() if k in known},
        )


# --- names and labels --------------------------------------------------------------------


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dns_label(text: str, max_length: int = 63) -> str:
    """``text`` as a DNS-1035 label (lower case, digits and dashes, starting with a
    letter) of at most ``max_length`` characters. A name that had to change gets a hash
    of the original appended, so that different names stay different."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}".rstrip("-")
    if cleaned == text and len(cleaned) <= max_length:
        return cleaned
    suffix = _short_hash(text)
    return f"{cleaned[: max_length - len(suffix) - 1].rstrip('-')}-{suffix}"


def label_value(text: str) -> str:
    """``text`` as a label value: at most 63 of ``A-Za-z0-9-_.``, alphanumeric at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-_.")
    if cleaned == text and len(cleaned) <= 63:
        return cleaned
    suffix = _short_hash(text)
    return f"{cleaned[: 63 - len(suffix) - 1].rstrip('-_.')}-{suffix}".lstrip("-")


def _check_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE.match(namespace):
        raise ManifestError(
            "namespace", f"{namespace!r} is not a namespace name (lower case letters, digits and '-', up to 63)"
        )


# --- checking the description ----------------------------------------------------------------


def _check(description: DeploymentDescription) -> None:
    if not isinstance(description.model, str) or not description.model:
        raise ManifestError("model", "a model name is required")
    if not isinstance(description.name, str) or not description.name:
        raise ManifestError("name", "a deployment name is required")
    _check_namespace(description.namespace)
    if isinstance(description.replicas, bool) or not isinstance(description.replicas, int) or description.replicas < 1:
        raise ManifestError("replicas", f"must be a whole number of at least 1, not {description.replicas!r}")
    if not description.routes:
        raise ManifestError("routes", "a deployment needs a primary route")
    seen_modes: dict[str, int] = {}
    seen_versions: set[int] = set()
    for i, route in enumerate(description.routes):
        where = f"routes[{i}]"
        if isinstance(route.version, bool) or not isinstance(route.version, int) or route.version < 1:
            raise ManifestError(f"{where}.version", f"must be a positive whole number, not {route.version!r}")
        if route.mode not in ROUTE_MODES:
            raise ManifestError(f"{where}.mode", f"must be one of {', '.join(ROUTE_MODES)}, not {route.mode!r}")
        if isinstance(route.weight, bool) or not isinstance(route.weight, int | float):
            raise ManifestError(f"{where}.weight", f"must be a number, not {route.weight!r}")
        if not 0.0 <= route.weight <= 1.0 + WEIGHT_TOLERANCE:
            raise ManifestError(f"{where}.weight", f"must be between 0 and 1, not {route.weight}")
        if route.version in seen_versions:
            raise ManifestError(f"{where}.version", f"v{route.version} has more than one route")
        seen_versions.add(route.version)
        seen_modes[route.mode] = seen_modes.get(route.mode, 0) + 1
    if seen_modes.get("primary") != 1:
        raise ManifestError("routes", "a deployment has exactly one primary route")
    for mode in ("canary", "shadow"):
        if seen_modes.get(mode, 0) > 1:
            raise ManifestError("routes", f"a deployment has at most one {mode} route")
    live = sum(r.weight for r in description.routes if r.mode in LIVE_MODES)
    if abs(live - 1.0) > WEIGHT_TOLERANCE:
        raise ManifestError("routes", f"the weights of the primary and canary routes sum to {live}, not 1")


def _route(description: DeploymentDescription, mode: str) -> RouteDescription | None:
    return next((r for r in description.routes if r.mode == mode), None)


def _ordered_routes(description: DeploymentDescription) -> list[RouteDescription]:
    return sorted(description.routes, key=lambda r: ROUTE_MODES.index(r.mode))


def _quantity_cpu(cpus: float) -> str:
    millis = max(round(cpus * 1000), 1)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def container_resources(resources: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """ModelGate's resources (``cpus``, ``memory_mb``, ``gpus``) as a container's requests
    and limits. Memory is limited to what is requested, so that a pod is never killed
    for memory it was promised; GPUs are an extended resource, given as a limit.
    ``gpu_type`` and ``gpu_memory_mb`` have no equivalent that holds on every cluster
    (node labels differ): they are not rendered."""
    if not isinstance(resources, Mapping):
        raise ManifestError("resources", "must be an object")
    unknown = sorted(set(resources) - RESOURCE_KEYS)
    if unknown:
        raise ManifestError(f"resources.{unknown[0]}", f"unknown; expected {', '.join(sorted(RESOURCE_KEYS))}")
    merged = {**DEFAULT_RESOURCES, **resources}
    cpus, memory_mb, gpus = merged["cpus"], merged["memory_mb"], merged.get("gpus", 0)
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not math.isfinite(cpus) or cpus <= 0:
        raise ManifestError("resources.cpus", f"must be a positive number, not {cpus!r}")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 1:
        raise ManifestError("resources.memory_mb", f"must be a positive whole number, not {memory_mb!r}")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise ManifestError("resources.gpus", f"must be a whole number, not {gpus!r}")
    memory = f"{memory_mb}Mi"
    requests = {"cpu": _quantity_cpu(float(cpus)), "memory": memory}
    limits = {"memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits}


# --- KServe -------------------------------------------------------------------------------


def _kserve_name(description: DeploymentDescription, suffix: str = "") -> str:
    return dns_label(f"{description.model}-{description.name}{suffix}", KSERVE_NAME_MAX)


def _storage_uri(route: RouteDescription, where: str) -> str:
    uri = route.storage_uri or ""
    if not uri.startswith(KSERVE_STORAGE_SCHEMES):
        raise ManifestError(
            where,
            f"v{route.version}'s artifact is at {uri!r}, which KServe cannot read; it reads "
            f"{', '.join(KSERVE_STORAGE_SCHEMES)} (register versions from S3, or use the plain flavor)",
        )
    return uri


def _common_labels(description: DeploymentDescription) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelgate-serving",
        "app.kubernetes.io/managed-by": "modelgate",
        LABEL_MODEL: label_value(description.model),
        LABEL_DEPLOYMENT: label_value(description.name),
    }


def _annotations(description: DeploymentDescription | None = None, **values: Any) -> dict[str, str]:
    """``modelgate.io/`` annotations: the exact names (labels may have had to shorten
    them), the deployment's id and revision, and ``values``."""
    if description is not None:
        values = {
            "model-name": description.model,
            "deployment-name": description.name,
            "deployment-id": description.id,
            "revision": description.revision,
            **values,
        }
    return {f"{ANNOTATION_PREFIX}{key}": str(value) for key, value in values.items() if value not in (None, "")}


def canary_traffic_percent(weight: float) -> int:
    """A canary's weight as KServe's whole percent; a canary that takes any traffic
    keeps at least 1% and leaves the primary at least 1%."""
    return min(max(round(weight * 100), 1), 99)


def _inference_service(
    description: DeploymentDescription,
    route: RouteDescription,
    *,
    name: str,
    mode: str,
    canary_percent: int | None,
    primary: RouteDescription | None,
) -> dict[str, Any]:
    predictor: dict[str, Any] = {"minReplicas": description.replicas, "maxReplicas": description.replicas}
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    predictor["model"] = {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": _storage_uri(route, f"routes.{mode}.storage_uri"),
        "resources": container_resources(description.resources),
    }
    more: dict[str, Any] = {"storage-uri": route.storage_uri, "digest": route.digest}
    if primary is not None:
        more["primary-version"] = primary.version
        more["canary-weight"] = route.weight
    return {
        "apiVersion": KSERVE_API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": description.namespace,
            "labels": {**_common_labels(description), LABEL_VERSION: str(route.version), LABEL_ROUTE: mode},
            "annotations": _annotations(description, **more),
        },
        "spec": {"predictor": predictor},
    }


def render_kserve(description: DeploymentDescription) -> list[dict[str, Any]]:
    """The deployment as KServe InferenceServices: the live one (the primary's, or with a
    canary the canary's spec taking ``canaryTrafficPercent``), and one for a shadow."""
    _check(description)
    primary = _route(description, "primary")
    canary = _route(description, "canary")
    shadow = _route(description, "shadow")
    assert primary is not None  # _check guarantees it
    manifests = []
    if canary is not None and canary.weight > 0:
        manifests.append(
            _inference_service(
                description,
                canary,
                name=_kserve_name(description),
                mode="canary",
                canary_percent=canary_traffic_percent(canary.weight),
                primary=primary,
            )
        )
    else:
        manifests.append(
            _inference_service(
                description, primary, name=_kserve_name(description), mode="primary", canary_percent=None, primary=None
            )
        )
    if shadow is not None:
        manifests.append(
            _inference_service(
                description,
                shadow,
                name=_kserve_name(description, "-shadow"),
                mode="shadow",
                canary_percent=None,
                primary=None,
            )
        )
    return manifests


# --- plain Deployments and Services ---------------------------------------------------------


def workload_name(description: DeploymentDescription, version: int) -> str:
    """The Deployment and Service of a route: named after the version, not the mode, so
    that a canary promoted to primary keeps its pods."""
    return dns_label(f"{description.model}-{description.name}-v{version}")


def service_url(description: DeploymentDescription, version: int) -> str:
    return f"http://{workload_name(description, version)}.{description.namespace}.svc:{SERVING_PORT}"


def image_for(description: DeploymentDescription, version: int) -> str:
    try:
        return description.image.format(model=dns_label(description.model), version=version)
    except (KeyError, IndexError, ValueError) as exc:
        raise ManifestError("image", f"{description.image!r} may use only {{model}} and {{version}}: {exc}") from None


def _probe(*, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _deployment(description: DeploymentDescription, route: RouteDescription) -> dict[str, Any]:
    name = workload_name(description, route.version)
    # The selector of an apps/v1 Deployment cannot change, and a change of the pod
    # template's labels restarts every pod: both hold only what never changes for the
    # version (not its route, which a promotion changes).
    selector = {
        LABEL_MODEL: label_value(description.model),
        LABEL_DEPLOYMENT: label_value(description.name),
        LABEL_VERSION: str(route.version),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": description.namespace,
            "labels": {**_common_labels(description), LABEL_VERSION: str(route.version), LABEL_ROUTE: route.mode},
            "annotations": _annotations(description, weight=route.weight, **{"storage-uri": route.storage_uri}),
        },
        "spec": {
            "replicas": description.replicas,
            "selector": {"matchLabels": selector},
            # Never fewer ready pods than asked for while a new image rolls out.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": {**_common_labels(description), **selector},
                    # Not the revision: every route change would restart the pods.
                    "annotations": _annotations(**{"storage-uri": route.storage_uri, "digest": route.digest}),
                },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": SERVING_UID,
                        "runAsGroup": SERVING_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    # uvicorn finishes the requests in flight after SIGTERM.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "scoring-server",
                            "image": image_for(description, route.version),
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http", "containerPort": SERVING_PORT, "protocol": "TCP"}],
                            "startupProbe": _probe(period=STARTUP_PROBE_PERIOD_S, failures=STARTUP_PROBE_FAILURES),
                            "readinessProbe": _probe(period=5, failures=3),
                            "livenessProbe": _probe(period=10, failures=3, timeout=5),
                            "resources": container_resources(description.resources),
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _service(description: DeploymentDescription, route: RouteDescription) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": workload_name(description, route.version),
            "namespace": description.namespace,
            "labels": {**_common_labels(description), LABEL_VERSION: str(route.version), LABEL_ROUTE: route.mode},
            "annotations": _annotations(description),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {
                LABEL_MODEL: label_value(description.model),
                LABEL_DEPLOYMENT: label_value(description.name),
                LABEL_VERSION: str(route.version),
            },
            "ports": [{"name": "http", "port": SERVING_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def route_table(description: DeploymentDescription) -> dict[str, Any]:
    """The gateway's route table (``routing.py``'s format) for this deployment alone,
    each route's Service standing as its one replica."""
    _check(description)
    return {
        "revision": description.revision,
        "deployments": [
            {
                "id": description.id,
                "model": description.model,
                "name": description.name,
                "default": description.default,
                "state": "ready",
                "cache": description.cache,
                "routes": [
                    {
                        "version": route.version,
                        "weight": route.weight,
                        "mode": route.mode,
                        "signature": route.signature,
                        "replicas": [
                            {"id": route.version, "url": service_url(description, route.version), "healthy": True}
                        ],
                    }
                    for route in _ordered_routes(description)
                ],
            }
        ],
    }


ROUTE_TABLE_KEY = "route-table.json"


def render_plain(description: DeploymentDescription) -> list[dict[str, Any]]:
    """A Deployment and a Service per route, and the gateway's route table over them."""
    _check(description)
    manifests: list[dict[str, Any]] = []
    for route in _ordered_routes(description):
        manifests.append(_deployment(description, route))
        manifests.append(_service(description, route))
    manifests.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": dns_label(f"{description.model}-{description.name}-routes"),
                "namespace": description.namespace,
                "labels": _common_labels(description),
                "annotations": _annotations(description),
            },
            "data": {ROUTE_TABLE_KEY: json.dumps(route_table(description), indent=2, sort_keys=True)},
        }
    )
    return manifests


# --- both ----------------------------------------------------------------------------------


def describe(description: DeploymentDescription | Mapping[str, Any]) -> DeploymentDescription:
    return (
        description if isinstance(description, DeploymentDescription) else DeploymentDescription.from_dict(description)
    )


def render(description: DeploymentDescription | Mapping[str, Any], *, flavor: str = "kserve") -> list[dict[str, Any]]:
    """The deployment's manifests in ``flavor`` (``kserve`` or ``plain``)."""
    if flavor not in FLAVORS:
        raise ManifestError("flavor", f"must be one of {', '.join(FLAVORS)}, not {flavor!r}")
    described = describe(description)
    return render_kserve(described) if flavor == "kserve" else render_plain(described)


def notes(description: DeploymentDescription | Mapping[str, Any], *, flavor: str) -> list[str]:
    """What a person applying the manifests must know, in sentences."""
    described = describe(description)
    primary = _route(described, "primary")
    canary = _route(described, "canary")
    shadow = _route(described, "shadow")
    said: list[str] = []
    if flavor == "kserve":
        said.append(
            "KServe serves the MLflow model with its own MLflow runtime and the Open Inference Protocol "
            "(POST /v2/models/<name>/infer), not MLflow's /invocations."
        )
        if canary is not None and primary is not None and canary.weight > 0:
            percent = canary_traffic_percent(canary.weight)
            said.append(
                f"Canary: this spec is v{canary.version}'s and takes {percent}% of traffic; the remaining "
                f"{100 - percent}% stays on the last revision KServe rolled out at 100%, which must be "
                f"v{primary.version}. Canary rollouts need KServe's Serverless (Knative) mode."
            )
        if shadow is not None:
            said.append(
                f"Shadow: v{shadow.version} runs as its own InferenceService; KServe does not copy traffic to it."
            )
    else:
        said.append(
            "The Services do not split traffic: the ModelGate gateway does, following the route table in the "
            f"ConfigMap ({ROUTE_TABLE_KEY}). Each Deployment runs an image built with deploy/Dockerfile.serving."
        )
    return said


def manifests_yaml(manifests: Iterable[Mapping[str, Any]], *, header: Sequence[str] = ()) -> str:
    """One YAML stream, a document per manifest, after ``header`` as comment lines."""
    comment = "".join(f"# {' '.join(line.splitlines())}\n" for line in header)
    return comment + yaml.safe_dump_all(list(manifests), sort_keys=False, default_flow_style=False)
