"""The design card's latency and memory budgets, end to end: completing design seeds a
``max_latency_ms`` gate (and ``max_memory_mb`` and ``input_schema`` ones), the evaluation
job on a real worker measures the trained version (p50/p95 of one row and of a batch, peak
memory, as a derivation measures them), a version slower than the budget is blocked with
the numbers, and its peak memory is judged against the memory budget."""

from __future__ import annotations

import io

import pytest
from sklearn.datasets import load_breast_cancer

from lifecycle.design.services import design_card_update, model_design_complete
from lifecycle.evaluation.models import Evaluation
from lifecycle.governance.models import Transition
from lifecycle.training.services import training_submit
from registry.models import ModelVersion
from registry.services import dataset_create, model_create, team_ensure
from tests.lifecycle.workers import drive_scheduler, wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("mlflow"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("broker", ["redis"], indirect=True),
]

# A budget no model meets: one microsecond for a row.
BUDGET_MS = 0.001
# A memory budget a 20-tree forest meets.
MEMORY_BUDGET_MB = 512


@pytest.fixture
def workers(start_workers, live_services, s3_endpoint, settings):
    """Two CPU job workers that log to the test MLflow server and read the test S3, with
    quick evaluations."""
    return start_workers(
        ("evaluator-1", "none", 0.1),
        ("evaluator-2", "none", 0.1),
        extra_env={
            "MLFLOW_TRACKING_URI": live_services.url,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint.url,
            "AWS_ENDPOINT_URL": s3_endpoint.url,
            "MODELGATE_ARTIFACT_ROOT": settings.MODELGATE_ARTIFACT_ROOT,
            "MODELGATE_EVALUATION_CV_FOLDS": "2",
            "MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS": "20",
            "MODELGATE_EVALUATION_PERMUTATION_REPEATS": "1",
        },
    )


def _designed_model(owner, s3_endpoint):
    team = team_ensure(name="fraud")
    frame = load_breast_cancer(as_frame=True).frame
    bucket = s3_endpoint.bucket("datasets")
    body = io.StringIO()
    frame.to_csv(body, index=False)
    s3_endpoint.client().put_object(Bucket=bucket, Key="budget.csv", Body=body.getvalue().encode())
    dataset = dataset_create(
        actor=owner.user, team=team, name="budget-data", uri=f"s3://{bucket}/budget.csv", target="target"
    )
    model = model_create(actor=owner.user, name="tumours-budget", team=team, stage="design", policy={"rules": []})
    card = {
        "intended_use": "Flag tumours for a second reading.",
        "out_of_scope_uses": ["diagnosis without a radiologist"],
        "owner": "imaging@example.com",
        "task": "classification",
        "input_schema": [{"name": c, "type": "double"} for c in frame.columns if c != "target"],
        "output_schema": [{"name": "target", "type": "long"}],
        "datasets": [{"name": dataset.name, "role": "training"}, {"name": dataset.name, "role": "evaluation"}],
        "success_criteria": [{"metric": "f1", "op": ">=", "value": 0.5}],
        "risks": ["a missed malignant tumour"],
        "fairness": "Not applicable: no person is described by the features.",
        "resource_budget": {"latency_p95_ms": BUDGET_MS, "memory_mb": MEMORY_BUDGET_MB, "artifact_mb": 20},
    }
    design_card_update(model=model, card=card, actor=owner.user, expected_revision=0)
    return model_design_complete(model=model, actor=owner.user, reason="card reviewed")


def test_a_version_slower_than_the_cards_latency_budget_is_blocked_with_the_measured_numbers(
    workers, owner, s3_endpoint
):
    model = _designed_model(owner, s3_endpoint)
    seeded = {rule["type"]: {k: v for k, v in rule.items() if k != "stages"} for rule in model.policy["rules"]}
    assert seeded["max_latency_ms"] == {"type": "max_latency_ms", "percentile": 95, "value": BUDGET_MS, "batch": False}
    assert seeded["max_memory_mb"] == {"type": "max_memory_mb", "value": MEMORY_BUDGET_MB}

    training_submit(
        actor=owner.user,
        model=model,
        estimator="RandomForestClassifier",
        estimator_params={"n_estimators": 20, "random_state": 0},
        request_stage="staging",
    )
    wait_for(
        lambda: Transition.objects.filter(model=model, to_stage="staging").exists(),
        timeout=400,
        what="v1's staging request after its evaluation",
        tick=drive_scheduler,
    )

    version = ModelVersion.objects.get(model=model, version=1)
    figures = Evaluation.objects.get(version=version, role="candidate").details["figures"]
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p95_ms"]
    assert 0 < figures["batch_latency_p50_ms"] <= figures["batch_latency_p95_ms"]
    assert figures["batch_rows"] == 1000 and figures["model_bytes"] > 0
    assert figures["peak_memory_mb"] is not None and figures["peak_memory_mb"] >= 0
    measured = version.metric_rows.get(name="latency_p95_ms", is_current=True)
    assert measured.value == pytest.approx(figures["latency_p95_ms"]) and measured.source == "evaluation"
    request = Transition.objects.get(model=model, to_stage="staging")
    assert request.status == "blocked"
    gate = next(g for g in request.gates if g["rule"] == "max_latency_ms")
    assert gate["status"] == "failed"
    assert gate["data"] == {"metric": "latency_p95_ms", "max_ms": BUDGET_MS, "value_ms": pytest.approx(measured.value)}
    assert "over the limit" in gate["detail"] and "single-row latency" in gate["detail"]
    # The memory budget is judged on the peak memory the same evaluation measured.
    memory = next(g for g in request.gates if g["rule"] == "max_memory_mb")
    peak = version.metric_rows.get(name="peak_memory_mb", is_current=True).value
    assert peak == pytest.approx(figures["peak_memory_mb"])
    assert memory["status"] == "passed" and memory["data"]["value_mb"] == pytest.approx(peak)
    assert memory["detail"].startswith("peak memory ") and memory["detail"].endswith(" MB is within 512 MB")
    # The card's input schema is a gate too: the forest's signature takes its 30 columns.
    schema = next(g for g in request.gates if g["rule"] == "input_schema")
    assert schema["status"] == "passed" and schema["data"]["missing"] == schema["data"]["unexpected"] == []
    assert ModelVersion.objects.get(pk=version.pk).stage == "evaluation"
