"""Derived versions end to end: a trained version on a real worker, derived by each method
on another job, registered in a real MLflow (S3 artifacts) with its lineage, scored beside
its parent on the same dataset digest, and judged by the update gates."""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from lifecycle.derivations.models import Derivation
from lifecycle.evaluation.models import Evaluation
from lifecycle.governance.models import Transition
from lifecycle.jobs.models import Job
from lifecycle.training.services import training_submit
from registry.models import ModelVersion
from registry.services import dataset_create, model_create, team_ensure
from tests.conftest import require_service
from tests.lifecycle.workers import drive_scheduler, wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("mlflow"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("broker", ["redis"], indirect=True),
]


def _model(owner, s3_endpoint, *, name: str, policy: dict | None = None):
    team = team_ensure(name="fraud")
    frame = load_breast_cancer(as_frame=True).frame
    bucket = s3_endpoint.bucket("datasets")
    body = io.StringIO()
    frame.to_csv(body, index=False)
    s3_endpoint.client().put_object(Bucket=bucket, Key=f"{name}.csv", Body=body.getvalue().encode())
    dataset = dataset_create(
        actor=owner.user, team=team, name=f"{name}-data", uri=f"s3://{bucket}/{name}.csv", target="target"
    )
    return model_create(
        actor=owner.user,
        name=name,
        team=team,
        task="classification",
        primary_metric="f1",
        policy=policy or {"rules": []},
        dataset=dataset.name,
    )


def _trained(owner, model, estimator: str, params: dict) -> ModelVersion:
    training_submit(actor=owner.user, model=model, estimator=estimator, estimator_params=params, evaluate=False)
    wait_for(
        lambda: ModelVersion.objects.filter(model=model, version=1, stage="evaluation").exists(),
        timeout=300,
        what="v1 trained and registered",
        tick=drive_scheduler,
    )
    return ModelVersion.objects.get(model=model, version=1)


def _derive(owner, version: ModelVersion, body: dict) -> Job:
    answer = owner.client.post(
        f"/api/v1/models/{version.model.name}/versions/{version.version}/derive/", body, format="json"
    )
    assert answer.status_code == 201, answer.content
    return Job.objects.get(pk=answer.json()["id"])


def _settled(*jobs: Job, timeout: float = 400) -> list[Derivation]:
    ids = [job.pk for job in jobs]
    wait_for(
        lambda: (
            Derivation.objects.filter(job_id__in=ids, state="failed").count()
            + Derivation.objects.filter(job_id__in=ids, state="registered").exclude(version__stage="training").count()
            == len(ids)
        ),
        timeout=timeout,
        what="the derivations",
        tick=drive_scheduler,
    )
    found = {d.job_id: d for d in Derivation.objects.filter(job_id__in=ids).select_related("version", "parent")}
    return [found[i] for i in ids]


def test_an_onnx_version_of_a_forest_predicts_as_its_parent_and_carries_its_lineage_into_mlflow(
    workers, owner, s3_endpoint
):
    model = _model(owner, s3_endpoint, name="tumours-onnx")
    parent = _trained(owner, model, "RandomForestClassifier", {"n_estimators": 30, "random_state": 0})

    (derivation,) = _settled(_derive(owner, parent, {"method": "onnx"}))

    assert derivation.state == "registered", Job.objects.get(pk=derivation.job_id).state_detail
    child = derivation.version
    assert child.version == 2 and child.parent_id == parent.pk and child.stage == "evaluation"
    assert derivation.parent_digest == parent.digest
    assert derivation.agreement["label_agreement"] == 1.0
    assert derivation.agreement["max_abs_probability_diff"] <= 1e-5
    assert abs(derivation.metric_deltas["f1"]) <= 1e-9
    figures = derivation.comparison
    for side in ("parent", "derived"):
        assert figures[side]["latency_p50_ms"] > 0 and figures[side]["batch_latency_p95_ms"] > 0
        assert figures[side]["model_bytes"] > 0 and figures[side]["batch_rows"] == 1000
    # Both scored on the same dataset digest, as evaluations.
    candidate = Evaluation.objects.get(version=child, role="candidate")
    assert candidate.compared_with_id == parent.pk
    assert candidate.dataset_digest == Evaluation.objects.get(version=parent, role="parent").dataset_digest
    assert child.metric_rows.filter(name="latency_p95_ms", source="evaluation").exists()

    client = MlflowClient()
    tags = client.get_model_version(model.name, "2").tags
    assert tags["modelgate.parent_version"] == "1"
    assert tags["modelgate.derivation.method"] == "onnx"
    assert tags["modelgate.parent_digest"] == parent.digest
    assert "onnx" in mlflow.models.get_model_info(f"models:/{model.name}/2").flavors
    # MLflow's own pyfunc loader serves it through onnxruntime with the parent's labels.
    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(50).astype(np.float32)
    served = mlflow.pyfunc.load_model(f"models:/{model.name}/2").predict(frame)
    parent_labels = mlflow.sklearn.load_model(f"models:/{model.name}/1").predict(frame.to_numpy(np.float64))
    assert np.array_equal(np.asarray(served["label"]).ravel(), parent_labels)

    lineage = owner.client.get(f"/api/v1/models/{model.name}/versions/2/lineage/").json()
    assert [a["version"] for a in lineage["ancestors"]] == [1]
    assert lineage["edges"] == [{"parent": 1, "child": 2, "method": "onnx"}]
    assert lineage["derivation"]["method"] == "onnx"
    assert lineage["datasets"][0]["name"] == "tumours-onnx-data"
    assert {r["version"] for r in lineage["runs"]} == {1, 2}
    assert owner.client.get(f"/api/v1/models/{model.name}/versions/1/lineage/").json()["children"] == [
        {"version": 2, "stage": "evaluation", "method": "onnx"}
    ]


def test_a_quantized_mlp_stays_within_the_metric_bound_and_a_latency_gate_blocks_it_with_the_numbers(
    workers, owner, s3_endpoint
):
    policy = {
        "rules": [
            {"type": "max_metric_drop", "metric": "f1", "vs": "parent", "value": 0.02, "stages": ["staging"]},
            {"type": "max_latency_ms", "percentile": 95, "value": 0.000001, "stages": ["staging"]},
            {"type": "max_artifact_mb", "value": 20, "stages": ["staging"]},
        ]
    }
    model = _model(owner, s3_endpoint, name="tumours-int8", policy=policy)
    parent = _trained(
        owner, model, "MLPClassifier", {"hidden_layer_sizes": [64, 64], "max_iter": 500, "random_state": 0}
    )

    (derivation,) = _settled(_derive(owner, parent, {"method": "quantize", "request_stage": "staging"}))

    assert derivation.state == "registered", Job.objects.get(pk=derivation.job_id).state_detail
    assert derivation.version.parent_id == parent.pk
    assert derivation.comparison["derived"]["model_bytes"] < derivation.comparison["parent"]["model_bytes"]
    wait_for(
        lambda: Transition.objects.filter(version=derivation.version, to_stage="staging").exists(),
        timeout=60,
        what="the staging request",
    )
    request = Transition.objects.get(version=derivation.version, to_stage="staging")
    assert request.status == "blocked"
    gates = {gate["rule"]: gate for gate in request.gates}
    drop = gates["max_metric_drop"]
    assert drop["status"] == "passed" and drop["data"]["drop"] <= 0.02
    assert drop["data"]["reference"] == pytest.approx(
        derivation.version.parent.metric_rows.get(name="f1", is_current=True).value
    )
    latency = gates["max_latency_ms"]
    assert latency["status"] == "failed"
    assert latency["data"]["value_ms"] == pytest.approx(derivation.comparison["derived"]["latency_p95_ms"])
    assert "over the limit" in latency["detail"] and "ms" in latency["detail"]
    size = gates["max_artifact_mb"]
    assert size["status"] == "passed" and size["data"]["size_bytes"] == derivation.version.size_bytes
    assert ModelVersion.objects.get(pk=derivation.version.pk).stage == "evaluation"


def test_prune_distill_and_incremental_each_register_a_child_of_the_forest(workers, owner, s3_endpoint):
    model = _model(owner, s3_endpoint, name="tumours-family")
    parent = _trained(owner, model, "RandomForestClassifier", {"n_estimators": 40, "random_state": 0})

    jobs = [
        _derive(owner, parent, {"method": "prune", "params": {"sparsity": 0.5}}),
        _derive(owner, parent, {"method": "distill", "params": {"student": "tree", "max_depth": 3}}),
        _derive(owner, parent, {"method": "incremental", "params": {"add_estimators": 10}}),
    ]
    prune, distill, incremental = _settled(*jobs, timeout=600)

    for derivation in (prune, distill, incremental):
        assert derivation.state == "registered", Job.objects.get(pk=derivation.job_id).state_detail
        assert derivation.version.parent_id == parent.pk
        assert set(derivation.metric_deltas) >= {"f1", "accuracy"}
    assert prune.details["trees_before"] == 40 and prune.details["trees_after"] == 20
    assert distill.details["student"] == "DecisionTreeClassifier"
    assert distill.comparison["derived"]["model_bytes"] < distill.comparison["parent"]["model_bytes"]
    assert incremental.details["how"].startswith("warm_start")
    lineage = owner.client.get(f"/api/v1/models/{model.name}/versions/1/lineage/").json()
    assert sorted((e["child"], e["method"]) for e in lineage["edges"]) == sorted(
        (d.version.version, d.method) for d in (prune, distill, incremental)
    )
    tags = MlflowClient().get_model_version(model.name, str(distill.version.version)).tags
    assert tags["modelgate.derivation.method"] == "distill"
    assert '"max_depth": 3' in tags["modelgate.derivation.params"]


def test_a_torch_mlp_trained_here_is_exported_to_onnx_and_pruned_on_the_worker(workers, owner, s3_endpoint):
    try:
        import torch
    except ImportError:
        require_service("torch (requirements-train.txt)", False)
    from registry.services import model_version_register

    model = _model(owner, s3_endpoint, name="tumours-torch")
    frame = load_breast_cancer(as_frame=True).frame
    x = frame.drop(columns=["target"]).to_numpy(np.float32).copy()
    y = frame["target"].to_numpy()
    torch.manual_seed(0)
    # The scaling is the first layer, so the module takes the dataset's raw columns.
    scale = torch.nn.Linear(30, 30)
    with torch.no_grad():
        scale.weight.copy_(torch.diag(torch.from_numpy(1.0 / x.std(0))))
        scale.bias.copy_(torch.from_numpy(-x.mean(0) / x.std(0)))
    scale.requires_grad_(False)
    module = torch.nn.Sequential(scale, torch.nn.Linear(30, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer.step()
    with mlflow.start_run() as run:
        mlflow.pytorch.log_model(module.eval(), name="model", serialization_format="pickle")
    parent = model_version_register(actor=owner.user, model=model, run_id=run.info.run_id, dataset=model.dataset.name)

    onnx_child, pruned = _settled(
        _derive(owner, parent, {"method": "onnx"}),
        _derive(owner, parent, {"method": "prune", "params": {"sparsity": 0.3}}),
        timeout=600,
    )

    assert onnx_child.state == "registered", Job.objects.get(pk=onnx_child.job_id).state_detail
    assert onnx_child.details["flavor"] == "onnx" and onnx_child.agreement["max_abs_probability_diff"] <= 1e-5
    assert "onnx" in mlflow.models.get_model_info(f"models:/{model.name}/{onnx_child.version.version}").flavors
    assert pruned.state == "registered", Job.objects.get(pk=pruned.job_id).state_detail
    assert pruned.details["flavor"] == "pytorch" and 0.29 <= pruned.details["zero_fraction"] <= 0.31
    assert abs(pruned.metric_deltas["f1"]) <= 0.05
    assert {onnx_child.version.parent_id, pruned.version.parent_id} == {parent.pk}
