"""Deployments rendered for a Kubernetes cluster: a KServe InferenceService, or plain
Deployments and Services with the gateway's route table, and the endpoint that serves
them.

Nothing here talks to a cluster. The plain manifests are checked against the official
Kubernetes client's models (``kubernetes`` 37: pydantic models that refuse unknown fields,
wrong types and missing required fields), and must serialize back unchanged. No package
ships KServe's schema without its whole model server (the ``kserve`` SDK pulls in gRPC,
FastAPI, pandas and more), so the InferenceService is checked against a JSON Schema
written below from KServe's v1beta1 API reference, with additional properties refused,
and its Kubernetes parts (metadata, resources) against the client's models.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import pytest
import yaml
from kubernetes.client import ApiClient, V1ConfigMap, V1Deployment, V1ObjectMeta, V1ResourceRequirements, V1Service

from lifecycle.deployments import kubernetes
from lifecycle.deployments.kubernetes import DeploymentDescription, ManifestError, RouteDescription
from lifecycle.deployments.routing import parse_route_table

REPO = Path(__file__).resolve().parents[2]
SERVING_DOCKERFILE = REPO / "deploy" / "Dockerfile.serving"

PRIMARY_URI = "s3://mlflow/1/0a1b/artifacts/model"
CANARY_URI = "s3://mlflow/1/2c3d/artifacts/model"
SHADOW_URI = "s3://mlflow/1/4e5f/artifacts/model"

DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

# --- what the manifests are checked against ---------------------------------------------------

CLIENT_MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("apps/v1", "Deployment"): V1Deployment,
    ("v1", "Service"): V1Service,
    ("v1", "ConfigMap"): V1ConfigMap,
}


def client_model(manifest: dict[str, Any]) -> Any:
    """The manifest as the Kubernetes client's model, refusing what the API would."""
    model = CLIENT_MODELS.get((manifest.get("apiVersion"), manifest.get("kind")))
    assert model is not None, f"no Kubernetes model for {manifest.get('apiVersion')} {manifest.get('kind')}"
    parsed = model.model_validate(manifest)
    # Nothing was dropped or coerced on the way in: it serializes back to what was rendered.
    assert ApiClient().sanitize_for_serialization(parsed) == manifest
    return parsed


_QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"}
# From KServe's v1beta1 API reference: InferenceService, InferenceServiceSpec,
# PredictorSpec (ComponentExtensionSpec: minReplicas, maxReplicas, canaryTrafficPercent),
# ModelSpec (modelFormat, protocolVersion, storageUri, runtime; a container's resources)
# and ModelFormat. Only what ModelGate may render is allowed; anything else is refused.
INFERENCE_SERVICE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["predictor"],
            "properties": {
                "predictor": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["model"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
                        "serviceAccountName": {"type": "string"},
                        "model": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["modelFormat", "storageUri"],
                            "properties": {
                                "modelFormat": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["name"],
                                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                                },
                                "protocolVersion": {"enum": ["v1", "v2", "grpc-v2"]},
                                "storageUri": {"type": "string", "pattern": r"^(s3|gs|pvc|https?|oci)://."},
                                "runtime": {"type": "string"},
                                "resources": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "requests": {"type": "object", "additionalProperties": _QUANTITY},
                                        "limits": {"type": "object", "additionalProperties": _QUANTITY},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def check_inference_service(manifest: dict[str, Any]) -> None:
    jsonschema.validate(manifest, INFERENCE_SERVICE_SCHEMA, cls=jsonschema.Draft202012Validator)
    V1ObjectMeta.model_validate(manifest["metadata"])
    predictor = manifest["spec"]["predictor"]
    V1ResourceRequirements.model_validate(predictor["model"].get("resources", {}))
    assert predictor.get("minReplicas", 0) <= predictor.get("maxReplicas", predictor.get("minReplicas", 0))


# --- descriptions -----------------------------------------------------------------------------


def route(version: int, mode: str, weight: float, uri: str = PRIMARY_URI, **more: Any) -> RouteDescription:
    return RouteDescription(version=version, mode=mode, weight=weight, storage_uri=uri, **more)


def described(*routes: RouteDescription, **fields: Any) -> DeploymentDescription:
    base: dict[str, Any] = {
        "model": "fraud-detector",
        "name": "production",
        "namespace": "ml-serving",
        "id": 7,
        "revision": 4,
        "replicas": 2,
        "resources": {"cpus": 0.5, "memory_mb": 1024},
    }
    return DeploymentDescription(routes=routes or (route(2, "primary", 1.0),), **{**base, **fields})


def with_canary(weight: float = 0.2) -> DeploymentDescription:
    return described(route(2, "primary", 1.0 - weight), route(3, "canary", weight, CANARY_URI))


def with_everything() -> DeploymentDescription:
    return described(
        route(2, "primary", 0.8, signature={"inputs": "[]"}, digest="a" * 64),
        route(3, "canary", 0.2, CANARY_URI),
        route(4, "shadow", 0.0, SHADOW_URI),
        resources={"cpus": 2, "memory_mb": 4096, "gpus": 1},
    )


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


# --- KServe -----------------------------------------------------------------------------------


def test_kserve_with_a_20_percent_canary_renders_canary_traffic_percent_20():
    (service,) = kubernetes.render(with_canary(0.2), flavor="kserve")
    check_inference_service(service)
    predictor = service["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    # KServe's spec is the canary's; the last revision rolled out at 100% keeps the rest.
    assert predictor["model"]["storageUri"] == CANARY_URI
    assert service["metadata"]["labels"][kubernetes.LABEL_VERSION] == "3"
    assert service["metadata"]["labels"][kubernetes.LABEL_ROUTE] == "canary"
    assert service["metadata"]["annotations"]["modelgate.io/primary-version"] == "2"
    assert "    canaryTrafficPercent: 20\n" in kubernetes.manifests_yaml([service])


def test_kserve_without_a_canary_serves_the_primary_as_an_mlflow_model():
    (service,) = kubernetes.render(described(), flavor="kserve")
    check_inference_service(service)
    predictor = service["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert predictor["model"]["modelFormat"] == {"name": "mlflow"}
    assert predictor["model"]["protocolVersion"] == "v2"
    assert predictor["model"]["storageUri"] == PRIMARY_URI
    assert predictor["minReplicas"] == predictor["maxReplicas"] == 2
    assert service["metadata"]["namespace"] == "ml-serving"


def test_kserve_keeps_the_inference_service_name_when_a_canary_starts_so_that_kserve_splits_it():
    before = kubernetes.render(described(), flavor="kserve")[0]["metadata"]["name"]
    during = kubernetes.render(with_canary(), flavor="kserve")[0]["metadata"]["name"]
    assert before == during


def test_kserve_runs_a_shadow_as_an_inference_service_of_its_own():
    manifests = kubernetes.render(with_everything(), flavor="kserve")
    assert len(manifests) == 2
    shadow = manifests[1]
    check_inference_service(shadow)
    assert shadow["metadata"]["labels"][kubernetes.LABEL_ROUTE] == "shadow"
    assert shadow["spec"]["predictor"]["model"]["storageUri"] == SHADOW_URI
    assert "canaryTrafficPercent" not in shadow["spec"]["predictor"]
    assert shadow["metadata"]["name"] != manifests[0]["metadata"]["name"]
    notes = " ".join(kubernetes.notes(with_everything(), flavor="kserve"))
    assert "does not copy traffic" in notes and "80%" in notes


@pytest.mark.parametrize(
    ("weight", "percent"), [(0.2, 20), (0.5, 50), (0.004, 1), (0.999, 99), (0.125, 12), (0.355, 36)]
)
def test_a_canary_weight_becomes_a_whole_percent_that_leaves_both_sides_some_traffic(weight, percent):
    assert kubernetes.canary_traffic_percent(weight) == percent


def test_every_kserve_manifest_has_the_inference_service_shape():
    for description in (described(), with_canary(), with_everything()):
        for manifest in kubernetes.render(description, flavor="kserve"):
            check_inference_service(manifest)
            assert DNS_1035_LABEL.match(manifest["metadata"]["name"])
            assert len(manifest["metadata"]["name"]) <= kubernetes.KSERVE_NAME_MAX


def _rename(path: list[str], old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(manifest: dict[str, Any]) -> None:
        node = manifest
        for key in path:
            node = node[key]
        node[new] = node.pop(old)

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            _rename(["spec", "predictor"], "canaryTrafficPercent", "canaryTrafficPercentage"), id="misspelled"
        ),
        pytest.param(_rename(["spec", "predictor", "model"], "storageUri", "storageURI"), id="wrong-case"),
        pytest.param(_rename(["spec"], "predictor", "predictors"), id="unknown-component"),
        pytest.param(lambda m: m["spec"]["predictor"].update(canaryTrafficPercent="20"), id="percent-as-text"),
        pytest.param(lambda m: m["spec"]["predictor"].update(canaryTrafficPercent=120), id="percent-over-100"),
        pytest.param(lambda m: m["spec"]["predictor"]["model"].pop("modelFormat"), id="no-model-format"),
        pytest.param(lambda m: m["spec"]["predictor"]["model"].update(storageUri="/var/lib/x"), id="local-path"),
        pytest.param(
            lambda m: m["spec"]["predictor"]["model"]["resources"]["requests"].update(cpu=0.5), id="cpu-as-number"
        ),
        pytest.param(lambda m: m["metadata"].update(lables={"a": "b"}), id="misspelled-metadata"),
    ],
)
def test_a_broken_inference_service_is_caught(mutate):
    manifest = copy.deepcopy(kubernetes.render(with_canary(), flavor="kserve")[0])
    check_inference_service(manifest)
    mutate(manifest)
    with pytest.raises((jsonschema.ValidationError, pydantic.ValidationError)):
        check_inference_service(manifest)


def test_kserve_refuses_an_artifact_the_cluster_cannot_read():
    with pytest.raises(ManifestError) as refused:
        kubernetes.render(described(route(2, "primary", 1.0, "/var/lib/modelgate/artifacts/2")), flavor="kserve")
    assert refused.value.field == "routes.primary.storage_uri"
    assert "KServe cannot read" in refused.value.message


# --- plain Deployments and Services -----------------------------------------------------------


def test_plain_renders_one_deployment_and_service_per_route_valid_per_the_client_models():
    manifests = kubernetes.render(with_everything(), flavor="plain")
    deployments, services = by_kind(manifests, "Deployment"), by_kind(manifests, "Service")
    assert len(deployments) == len(services) == 3
    assert len(by_kind(manifests, "ConfigMap")) == 1
    for manifest in manifests:
        client_model(manifest)
    routes = {d["metadata"]["labels"][kubernetes.LABEL_VERSION]: d["metadata"]["labels"] for d in deployments}
    assert {v: labels[kubernetes.LABEL_ROUTE] for v, labels in routes.items()} == {
        "2": "primary",
        "3": "canary",
        "4": "shadow",
    }
    for labels in routes.values():
        assert labels[kubernetes.LABEL_MODEL] == "fraud-detector"
    for deployment in deployments:
        parsed = client_model(deployment)
        assert parsed.spec.replicas == 2
        (container,) = parsed.spec.template.spec.containers
        assert container.resources.requests == {"cpu": "2", "memory": "4096Mi"}
        assert container.resources.limits == {"memory": "4096Mi", "nvidia.com/gpu": "1"}


def test_plain_services_select_their_deployments_pods_and_probes_ask_the_scoring_server():
    manifests = kubernetes.render(with_everything(), flavor="plain")
    for deployment, service in zip(by_kind(manifests, "Deployment"), by_kind(manifests, "Service"), strict=True):
        assert deployment["metadata"]["name"] == service["metadata"]["name"]
        pod = deployment["spec"]["template"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert service["spec"]["selector"] == selector
        (container,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": kubernetes.SERVING_PORT} == {"http": 8080}
        assert service["spec"]["ports"][0]["targetPort"] in ports
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/ping", "port": "http"}
        assert container["image"] == f"modelgate-serving/fraud-detector:v{selector[kubernetes.LABEL_VERSION]}"


def test_plain_pods_run_as_the_user_of_the_serving_image():
    (user,) = [line.split()[1] for line in SERVING_DOCKERFILE.read_text().splitlines() if line.startswith("USER ")]
    uid = int(user.split(":")[0])
    (deployment,) = by_kind(kubernetes.render(described(), flavor="plain"), "Deployment")
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == uid != 0


def test_the_plain_route_table_is_one_the_gateway_reads_pointing_at_the_services():
    description = with_everything()
    manifests = kubernetes.render(description, flavor="plain")
    (config_map,) = by_kind(manifests, "ConfigMap")
    table = parse_route_table(json.loads(config_map["data"][kubernetes.ROUTE_TABLE_KEY]))
    (deployment,) = table.deployments
    assert (deployment.id, deployment.model, deployment.name) == (7, "fraud-detector", "production")
    assert [(r.version, r.mode, r.weight) for r in deployment.routes] == [
        (2, "primary", 0.8),
        (3, "canary", 0.2),
        (4, "shadow", 0.0),
    ]
    assert deployment.routes[0].signature == {"inputs": "[]"}
    services = {s["metadata"]["name"] for s in by_kind(manifests, "Service")}
    for served in deployment.routes:
        (replica,) = served.replicas
        host, port = replica.url.removeprefix("http://").split(":")
        name, namespace, _ = host.split(".")
        assert name in services and namespace == "ml-serving" and int(port) == kubernetes.SERVING_PORT


def test_a_promoted_canary_keeps_its_deployment_and_pods():
    during = by_kind(kubernetes.render(with_canary(), flavor="plain"), "Deployment")
    after = by_kind(kubernetes.render(described(route(3, "primary", 1.0, CANARY_URI)), flavor="plain"), "Deployment")
    canary = next(d for d in during if d["metadata"]["labels"][kubernetes.LABEL_VERSION] == "3")
    (promoted,) = after
    assert promoted["metadata"]["name"] == canary["metadata"]["name"]
    # Same selector (immutable) and same pod template (a change would restart every pod).
    assert promoted["spec"]["selector"] == canary["spec"]["selector"]
    assert promoted["spec"]["template"] == canary["spec"]["template"]
    assert promoted["metadata"]["labels"][kubernetes.LABEL_ROUTE] == "primary"


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        pytest.param("Deployment", lambda m: _container(m)["ports"][0].update(containerPortt=8080), id="misspelled"),
        pytest.param("Deployment", lambda m: m["spec"].update(replica=2), id="unknown-field"),
        pytest.param("Deployment", lambda m: m["spec"].update(replicas="2"), id="number-as-text"),
        pytest.param("Deployment", lambda m: _container(m).pop("name"), id="container-without-name"),
        pytest.param(
            "Deployment", lambda m: _container(m)["resources"]["requests"].update(cpu=0.5), id="cpu-as-number"
        ),
        pytest.param("Deployment", lambda m: _container(m)["readinessProbe"].update(httpGet=[]), id="wrong-shape"),
        pytest.param("Service", lambda m: m["spec"]["ports"][0].update(targetport="http"), id="wrong-case"),
        pytest.param("Service", lambda m: m["metadata"].update(label={}), id="misspelled-metadata"),
    ],
)
def test_a_broken_manifest_is_caught_by_the_client_models(kind, mutate):
    (manifest,) = by_kind(kubernetes.render(described(), flavor="plain"), kind)
    manifest = copy.deepcopy(manifest)
    client_model(manifest)
    mutate(manifest)
    with pytest.raises(pydantic.ValidationError):
        client_model(manifest)


@pytest.mark.parametrize("model", ["Fraud_Detector.V2", "9-lives", "x" * 128, "fraud detector (eu)", "ünïcode"])
def test_names_and_labels_of_any_model_name_are_valid_kubernetes_names(model):
    description = dataclasses.replace(with_everything(), model=model)
    for flavor in kubernetes.FLAVORS:
        for manifest in kubernetes.render(description, flavor=flavor):
            name = manifest["metadata"]["name"]
            assert DNS_1035_LABEL.match(name) and len(name) <= 63, name
            for value in manifest["metadata"]["labels"].values():
                assert LABEL_VALUE.match(value), value
            assert manifest["metadata"]["annotations"]["modelgate.io/model-name"] == model
            if manifest["kind"] in ("Deployment", "Service", "ConfigMap"):
                client_model(manifest)
            else:
                check_inference_service(manifest)


def test_names_that_differ_only_in_what_kubernetes_refuses_stay_different():
    assert kubernetes.dns_label("Fraud") != kubernetes.dns_label("fraud")
    assert kubernetes.dns_label("a_b") != kubernetes.dns_label("a-b")
    assert kubernetes.dns_label("x" * 70 + "1") != kubernetes.dns_label("x" * 70 + "2")
    assert kubernetes.label_value("a b") != kubernetes.label_value("a-b")


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}),
        (
            {"cpus": 0.25, "memory_mb": 1536},
            {"requests": {"cpu": "250m", "memory": "1536Mi"}, "limits": {"memory": "1536Mi"}},
        ),
        (
            {"cpus": 4, "gpus": 2, "gpu_type": "A100"},
            {"requests": {"cpu": "4", "memory": "512Mi"}, "limits": {"memory": "512Mi", "nvidia.com/gpu": "2"}},
        ),
    ],
)
def test_resources_become_a_containers_requests_and_limits(resources, expected):
    assert kubernetes.container_resources(resources) == expected
    V1ResourceRequirements.model_validate(expected)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"resources": {"disk_gb": 10}}, "resources.disk_gb", id="unknown-resource"),
        pytest.param({"resources": {"cpus": 0}}, "resources.cpus", id="no-cpu"),
        pytest.param({"namespace": "ML_Serving"}, "namespace", id="bad-namespace"),
        pytest.param({"replicas": 0}, "replicas", id="no-replicas"),
        pytest.param({"image": "registry/{team}:v{version}"}, "image", id="unknown-placeholder"),
        pytest.param({"routes": (route(2, "canary", 1.0),)}, "routes", id="no-primary"),
        pytest.param({"routes": (route(2, "primary", 0.5), route(3, "canary", 0.2))}, "routes", id="weights-not-1"),
        pytest.param({"routes": (route(2, "primary", 1.0), route(2, "shadow", 0.0))}, "routes[1].version", id="twice"),
        pytest.param({"routes": (route(2, "mirror", 1.0),)}, "routes[0].mode", id="unknown-mode"),
    ],
)
def test_a_description_that_cannot_be_rendered_names_the_field(change, field):
    description = dataclasses.replace(described(), **change)
    with pytest.raises(ManifestError) as refused:
        kubernetes.render(description, flavor="plain")
    assert refused.value.field == field


def test_an_unknown_flavor_is_refused_naming_flavor():
    with pytest.raises(ManifestError) as refused:
        kubernetes.render(described(), flavor="helm")
    assert refused.value.field == "flavor"


def test_a_description_given_as_a_dict_renders_as_the_dataclass_does():
    as_dict = {
        "model": "fraud-detector",
        "name": "production",
        "namespace": "ml-serving",
        "id": 7,
        "revision": 4,
        "replicas": 2,
        "resources": {"cpus": 0.5, "memory_mb": 1024},
        "routes": [
            {"version": 2, "mode": "primary", "weight": 0.8, "storage_uri": PRIMARY_URI},
            {"version": 3, "mode": "canary", "weight": 0.2, "storage_uri": CANARY_URI},
        ],
    }
    for flavor in kubernetes.FLAVORS:
        assert kubernetes.render(as_dict, flavor=flavor) == kubernetes.render(with_canary(), flavor=flavor)
    with pytest.raises(ManifestError) as refused:
        kubernetes.render({**as_dict, "replica": 2})
    assert refused.value.field == "replica"


def test_the_yaml_stream_holds_one_document_per_manifest_after_the_notes_as_comments():
    manifests = kubernetes.render(with_everything(), flavor="plain")
    text = kubernetes.manifests_yaml(manifests, header=["first note", "second note"])
    assert text.startswith("# first note\n# second note\n")
    assert list(yaml.safe_load_all(text)) == manifests


# --- the endpoint -------------------------------------------------------------------------------


@pytest.fixture
def cluster_deployment(monkeypatch, owner, approver, fraud_model):
    """A deployment for a cluster: v1 in production as primary, v2 a canary at 20%."""
    from lifecycle.deployments import services
    from lifecycle.governance.services.transitions import transition_request
    from lifecycle.jobs import dispatch
    from registry.choices import Stage
    from registry.models import ModelVersion
    from tests.registry.factories import version_create

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)
    v1 = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    v2 = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.95})
    for version, uri in ((v1, PRIMARY_URI), (v2, CANARY_URI)):
        ModelVersion.objects.filter(pk=version.pk).update(artifact_uri=uri)
    transition = transition_request(version=v1, to=Stage.PRODUCTION, reason="first", actor=owner.user)
    assert transition.status == "applied", transition.status_detail
    deployment = services.deployment_create(actor=owner.user, model=fraud_model, target="kubernetes", replicas=2)
    return services.canary_set(actor=approver.user, deployment=deployment, version=2, weight=0.2)


def manifests_url(deployment: Any, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/api/v1/deployments/{deployment.pk}/manifests/" + (f"?{params}" if params else "")


@pytest.mark.django_db
def test_the_endpoint_answers_yaml_that_parses_into_the_kserve_canary(viewer, cluster_deployment):
    response = viewer.client.get(manifests_url(cluster_deployment, namespace="ml-serving"))
    assert response.status_code == 200, response.content[:2000]
    assert response["Content-Type"].startswith("text/yaml")
    text = response.content.decode()
    assert text.startswith("# fraud-detector / production")
    (service,) = list(yaml.safe_load_all(text))
    check_inference_service(service)
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert service["spec"]["predictor"]["model"]["storageUri"] == CANARY_URI
    assert service["metadata"]["namespace"] == "ml-serving"
    assert service["metadata"]["annotations"]["modelgate.io/revision"] == str(cluster_deployment.revision)


@pytest.mark.django_db
def test_the_endpoint_answers_json_with_the_plain_manifests_valid_per_the_client_models(owner, cluster_deployment):
    response = owner.client.get(
        manifests_url(cluster_deployment, flavor="plain", format="json", image="reg.example.com/{model}:v{version}")
    )
    assert response.status_code == 200, response.json()
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["deployment"], body["flavor"], body["namespace"]) == (cluster_deployment.pk, "plain", "default")
    assert body["notes"]
    for manifest in body["manifests"]:
        client_model(manifest)
    deployments = by_kind(body["manifests"], "Deployment")
    assert sorted(_container(d)["image"] for d in deployments) == [
        "reg.example.com/fraud-detector:v1",
        "reg.example.com/fraud-detector:v2",
    ]


@pytest.mark.django_db
def test_another_teams_deployment_is_404(outsider, cluster_deployment):
    response = outsider.client.get(manifests_url(cluster_deployment))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_an_anonymous_caller_is_refused(anonymous, cluster_deployment):
    assert anonymous.get(manifests_url(cluster_deployment)).status_code == 401


@pytest.mark.django_db
def test_a_bad_flavor_is_a_400_naming_flavor(owner, cluster_deployment):
    response = owner.client.get(manifests_url(cluster_deployment, flavor="helm"))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "flavor" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"namespace": "Not_A_Namespace"}, "namespace"),
        ({"format": "xml"}, "format"),
        ({"image": "{team}:latest"}, "image"),
        ({"flavour": "plain"}, "flavour"),
    ],
)
@pytest.mark.django_db
def test_a_bad_parameter_is_a_400_naming_it(owner, cluster_deployment, query, field):
    response = owner.client.get(manifests_url(cluster_deployment, flavor="plain", **query))
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]


@pytest.mark.django_db
def test_an_artifact_kserve_cannot_read_is_a_409_while_plain_still_renders(owner, cluster_deployment):
    from registry.models import ModelVersion

    ModelVersion.objects.filter(model=cluster_deployment.model, version=2).update(artifact_uri="/srv/artifacts/2")
    refused = owner.client.get(manifests_url(cluster_deployment, flavor="kserve"))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "unrenderable"
    assert owner.client.get(manifests_url(cluster_deployment, flavor="plain")).status_code == 200


@pytest.mark.django_db
def test_a_stopped_deployment_renders_nothing(approver, cluster_deployment):
    from lifecycle.deployments import services

    services.deployment_stop(actor=approver.user, deployment=cluster_deployment, reason="moved to the cluster")
    response = approver.client.get(manifests_url(cluster_deployment))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stopped"
