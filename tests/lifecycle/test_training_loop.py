"""The loop design → training → evaluation → approval, with real job workers, a real
MLflow server (PostgreSQL store) and a real S3 endpoint: evaluation results decide the
gates."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from lifecycle.evaluation.models import Evaluation
from lifecycle.evaluation.services import evaluation_submit
from lifecycle.governance.models import Transition
from lifecycle.governance.services.transitions import transition_approve
from lifecycle.jobs.choices import JobState
from lifecycle.jobs.models import Job
from lifecycle.training.services import training_submit
from registry import storage
from registry.models import ModelVersion
from registry.services import dataset_create, model_create, team_ensure
from tests.lifecycle.workers import all_final, drive_scheduler, wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("mlflow"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("broker", ["redis"], indirect=True),
]

# Fast evaluations: the statistics are exercised, on a budget the CI box can afford.
QUICK = {"cv_folds": 2, "bootstrap_rounds": 50, "permutation_repeats": 1}
POLICY = {
    "rules": [
        {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.85, "stages": ["production"]},
        {"type": "beats_champion", "metric": "f1", "min_delta": 0.0, "stages": ["production"]},
        {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]},
    ]
}


@pytest.fixture
def workers(start_workers, live_services, s3_endpoint, settings):
    """Two CPU job workers that log to the test MLflow server and read the test S3."""
    return start_workers(
        ("trainer-1", "none", 0.1),
        ("trainer-2", "none", 0.1),
        extra_env={
            "MLFLOW_TRACKING_URI": live_services.url,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint.url,
            "AWS_ENDPOINT_URL": s3_endpoint.url,
            "MODELGATE_ARTIFACT_ROOT": settings.MODELGATE_ARTIFACT_ROOT,
            "MODELGATE_EVALUATION_CV_FOLDS": str(QUICK["cv_folds"]),
            "MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS": str(QUICK["bootstrap_rounds"]),
            "MODELGATE_EVALUATION_PERMUTATION_REPEATS": str(QUICK["permutation_repeats"]),
        },
    )


def _csv_dataset(s3_endpoint, owner, team, *, name: str, frame: pd.DataFrame, target: str):
    bucket = s3_endpoint.bucket("datasets")
    body = io.StringIO()
    frame.to_csv(body, index=False)
    s3_endpoint.client().put_object(Bucket=bucket, Key=f"{name}.csv", Body=body.getvalue().encode())
    return dataset_create(actor=owner.user, team=team, name=name, uri=f"s3://{bucket}/{name}.csv", target=target)


def _classifier_model(owner, s3_endpoint, *, name: str = "tumours"):
    team = team_ensure(name="fraud")
    data = load_breast_cancer(as_frame=True).frame
    dataset = _csv_dataset(s3_endpoint, owner, team, name=f"{name}-data", frame=data, target="target")
    return model_create(
        actor=owner.user,
        name=name,
        team=team,
        task="classification",
        primary_metric="f1",
        policy=POLICY,
        dataset=dataset.name,
    )


def _train(owner, model, estimator: str, params: dict, **extra) -> Job:
    return training_submit(actor=owner.user, model=model, estimator=estimator, estimator_params=params, **extra)


def _settled_request(model, version_number: int, timeout: float = 300) -> Transition:
    def found() -> bool:
        return (
            Transition.objects.filter(
                model=model,
                version__version=version_number,
                to_stage="production",
                status__in=["pending", "blocked", "applied"],
            ).exists()
            and not Job.objects.filter(model=model).exclude(state__in=["succeeded", "failed", "cancelled"]).exists()
        )

    wait_for(found, timeout=timeout, what=f"v{version_number}'s production request", tick=drive_scheduler)
    return Transition.objects.filter(model=model, version__version=version_number, to_stage="production").latest("id")


def test_a_trained_classifier_is_registered_evaluated_gated_approved_and_promoted(
    workers, owner, approver, s3_endpoint
):
    model = _classifier_model(owner, s3_endpoint)

    job = _train(
        owner,
        model,
        "LogisticRegression",
        {"C": 1.0, "max_iter": 3000},
        request_stage="production",
        git_commit="abc123",
    )
    request = _settled_request(model, 1)

    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED
    version = ModelVersion.objects.get(model=model, version=1)
    assert version.dataset.name == "tumours-data"
    assert version.tag_rows.get(key="git_commit").value == "abc123"
    evaluation = Evaluation.objects.get(version=version, role="candidate")
    assert evaluation.dataset_digest == model.dataset.digest
    assert {"accuracy", "f1", "roc_auc", "log_loss", "f1_macro", "f1_weighted"} <= set(evaluation.metrics)
    assert evaluation.details["ci"]["f1"]["low"] <= evaluation.metrics["f1"] <= evaluation.details["ci"]["f1"]["high"]
    assert evaluation.details["cv"]["folds"] == QUICK["cv_folds"]
    assert evaluation.plots == ["v1_confusion_matrix.png", "v1_roc.png", "v1_feature_importance.png"]
    assert request.status == "pending"
    gates = {gate["rule"]: gate for gate in request.gates}
    assert gates["metric_threshold"]["status"] == "passed"
    assert gates["metric_threshold"]["data"]["source"] == "evaluation"
    assert gates["approvals"]["status"] == "waiting"

    applied = transition_approve(transition=request, actor=approver.user, comment="looks good")

    assert applied.status == "applied"
    assert ModelVersion.objects.get(pk=version.pk).stage == "production"


def test_a_candidate_worse_than_the_champion_is_blocked_with_the_numbers(workers, owner, approver, s3_endpoint):
    model = _classifier_model(owner, s3_endpoint, name="tumours-b")
    _train(owner, model, "RandomForestClassifier", {"n_estimators": 60, "random_state": 0}, request_stage="production")
    transition_approve(transition=_settled_request(model, 1), actor=approver.user)

    # A depth-one tree is much worse than the forest on the same split.
    _train(owner, model, "DecisionTreeClassifier", {"max_depth": 1, "random_state": 0}, request_stage="production")
    request = _settled_request(model, 2)

    assert request.status == "blocked"
    gate = next(g for g in request.gates if g["rule"] == "beats_champion")
    assert gate["status"] == "failed"
    assert gate["data"]["candidate"] < gate["data"]["champion"]
    assert "champion" in gate["detail"] and f"{gate['data']['champion']:.4f}"[:5] in gate["detail"]
    evaluation = Evaluation.objects.get(version__model=model, version__version=2, role="candidate")
    assert evaluation.compared_with.version == 1
    assert evaluation.deltas["f1"]["delta"] < 0
    assert evaluation.deltas["f1"]["ci_low"] <= evaluation.deltas["f1"]["delta"] <= evaluation.deltas["f1"]["ci_high"]


def test_a_regressor_goes_through_the_same_loop(workers, owner, approver, s3_endpoint):
    from sklearn.datasets import load_diabetes

    team = team_ensure(name="fraud")
    dataset = _csv_dataset(
        s3_endpoint, owner, team, name="diabetes", frame=load_diabetes(as_frame=True).frame, target="target"
    )
    policy = {
        "rules": [
            {"type": "metric_threshold", "metric": "rmse", "op": "<=", "value": 80.0, "stages": ["production"]},
            {"type": "approvals", "count": 1, "stages": ["production"]},
        ]
    }
    model = model_create(
        actor=owner.user,
        name="progression",
        team=team,
        task="regression",
        primary_metric="rmse",
        policy=policy,
        dataset=dataset.name,
    )

    _train(owner, model, "Ridge", {"alpha": 1.0}, request_stage="production")
    request = _settled_request(model, 1)

    evaluation = Evaluation.objects.get(version__model=model, version__version=1)
    assert {"mae", "rmse", "r2"} <= set(evaluation.metrics)
    assert request.status == "pending"
    assert transition_approve(transition=request, actor=approver.user).status == "applied"


def test_a_sweep_of_six_training_jobs_keeps_the_best(workers, owner, s3_endpoint):
    model = _classifier_model(owner, s3_endpoint, name="tumours-sweep")

    sweep = _train(
        owner,
        model,
        "RandomForestClassifier",
        {"random_state": 0},
        evaluate=False,
        sweep={"method": "grid", "space": {"n_estimators": [2, 20, 60], "max_depth": [1, 4]}},
    )
    wait_for(all_final(sweep), timeout=400, what="the sweep", tick=drive_scheduler)

    finished = Job.objects.get(pk=sweep.pk)
    assert finished.state == JobState.SUCCEEDED
    children = finished.result["children"]
    assert len(children) == 6 and all(child["state"] == "succeeded" for child in children)
    assert finished.result["best_value"] == max(child["f1"] for child in children)
    version = ModelVersion.objects.get(model=model, version=1)
    assert version.run_id == finished.result["run_id"]
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_a_changed_dataset_gets_a_new_digest_and_the_champion_is_re_evaluated(workers, owner, approver, s3_endpoint):
    model = _classifier_model(owner, s3_endpoint, name="tumours-drift")
    _train(owner, model, "LogisticRegression", {"max_iter": 3000}, request_stage="production")
    transition_approve(transition=_settled_request(model, 1), actor=approver.user)
    old_digest = model.dataset.digest
    frame = load_breast_cancer(as_frame=True).frame.sample(frac=0.9, random_state=1)
    s3_endpoint.client().put_object(
        Bucket="datasets", Key="tumours-drift-data.csv", Body=frame.to_csv(index=False).encode()
    )

    _train(owner, model, "LogisticRegression", {"C": 0.5, "max_iter": 3000}, request_stage="production")
    request = _settled_request(model, 2)

    model.dataset.refresh_from_db()
    assert model.dataset.digest != old_digest
    champion_results = Evaluation.objects.filter(version__model=model, version__version=1).values_list(
        "dataset_digest", flat=True
    )
    assert set(champion_results) == {old_digest, model.dataset.digest}
    gate = next(g for g in request.gates if g["rule"] == "beats_champion")
    assert gate["data"]["dataset_digest"] == model.dataset.digest


def test_evaluating_a_version_whose_artifact_is_corrupt_fails_clearly_and_moves_nothing(
    workers, owner, approver, s3_endpoint
):
    model = _classifier_model(owner, s3_endpoint, name="tumours-corrupt")
    _train(owner, model, "LogisticRegression", {"max_iter": 3000}, evaluate=False)
    wait_for(
        lambda: ModelVersion.objects.filter(model=model, version=1, stage="evaluation").exists(),
        timeout=300,
        what="v1 registered",
        tick=drive_scheduler,
    )
    version = ModelVersion.objects.get(model=model, version=1)
    location = storage.parse_s3(version.artifact_uri)
    s3_endpoint.client().put_object(Bucket=location.bucket, Key=f"{location.key.rstrip('/')}/MLmodel", Body=b"tampered")

    job = evaluation_submit(actor=owner.user, version=version, extra=QUICK)
    wait_for(all_final(job), timeout=300, what="the evaluation", tick=drive_scheduler)

    failed = Job.objects.get(pk=job.pk)
    assert failed.state == JobState.FAILED
    log = "".join(failed.log_chunks.values_list("text", flat=True))
    assert "is corrupted" in log and "does not match" in log
    assert ModelVersion.objects.get(pk=version.pk).stage == "evaluation"
    assert not Evaluation.objects.filter(version=version).exists()
