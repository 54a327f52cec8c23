"""Registration against a real MLflow server (PostgreSQL store) and a real S3 endpoint."""

from __future__ import annotations

import hashlib
import json
import socket

import mlflow
import pytest
import requests
from django.core.management import call_command
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from registry import storage
from registry.errors import ArtifactIntegrityError
from registry.models import ModelVersion

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("mlflow"), pytest.mark.django_db]


def _trained_run(experiment: str = "fraud-training") -> str:
    data = load_breast_cancer()
    model = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("f1", f1_score(data.target, model.predict(data.data)))
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(data.data, model.predict(data.data)))
    return run.info.run_id


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_logged_with_sklearn_is_registered_with_the_same_number_as_in_mlflow(live_services, owner, fraud_model):
    run_id = _trained_run()

    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": run_id}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == 1
    assert body["stage"] == "training"
    assert len(body["digest"]) == 64
    assert body["signature"]["inputs"][0]["type"] == "tensor"
    assert body["metrics"]["f1"] > 0.9
    assert body["metric_records"][0]["source"] == "run"
    assert body["created_by"] == "owner"
    in_mlflow = MlflowClient(live_services.url).get_model_version(fraud_model.name, "1")
    assert in_mlflow.run_id == run_id
    assert int(in_mlflow.version) == body["version"]


def test_the_logged_model_lists_the_versions_registered_from_it_as_with_mlflow_register_model(
    live_services, owner, fraud_model
):
    # MLflow's server records the link when a version is created with the logged
    # model's id (which ModelGate passes): the MLflow UI shows it on the model's page.
    run_id = _trained_run()
    url = f"/api/v1/models/{fraud_model.name}/versions/"
    client = MlflowClient(live_services.url)
    model_id = client.get_run(run_id).outputs.model_outputs[0].model_id

    assert owner.client.post(url, {"run_id": run_id}, format="json").status_code == 201
    assert owner.client.post(url, {"run_id": run_id}, format="json").status_code == 201

    linked = json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"])
    assert [(entry["name"], int(entry["version"])) for entry in linked] == [
        (fraud_model.name, 1),
        (fraud_model.name, 2),
    ]


def test_a_run_with_two_logged_models_registers_the_one_named_by_artifact_path(
    live_services, owner, fraud_model, monkeypatch
):
    data = load_breast_cancer()
    mlflow.set_experiment("fraud-training")
    with mlflow.start_run() as run:
        for name, c in (("model", 1.0), ("challenger", 0.1)):
            estimator = LogisticRegression(C=c, max_iter=5000).fit(data.data, data.target)
            mlflow.sklearn.log_model(estimator, name=name)
    url = f"/api/v1/models/{fraud_model.name}/versions/"
    client = MlflowClient(live_services.url)
    outputs = {
        client.get_logged_model(o.model_id).name: o.model_id
        for o in client.get_run(run.info.run_id).outputs.model_outputs
    }
    searches = []
    search = MlflowClient.search_logged_models
    monkeypatch.setattr(MlflowClient, "search_logged_models", lambda *a, **k: searches.append(k) or search(*a, **k))

    named = owner.client.post(url, {"run_id": run.info.run_id, "artifact_path": "challenger"}, format="json")
    searched_for_named = len(searches)
    missing = owner.client.post(url, {"run_id": run.info.run_id, "artifact_path": "nothing"}, format="json")

    assert named.status_code == 201, named.json()
    chosen = client.get_logged_model(outputs["challenger"]).artifact_location
    assert ModelVersion.objects.get(model=fraud_model, version=1).artifact_uri == chosen
    assert client.get_model_version(fraud_model.name, "1").source == chosen
    assert searched_for_named == 0  # the run's outputs name its models: no search of the experiment
    assert searches  # a path none of them has: the experiment is searched before answering 400
    assert missing.status_code == 400
    assert "logged no model at artifact path 'nothing'" in missing.json()["error"]["message"]
    assert ModelVersion.objects.filter(model=fraud_model).count() == 1


def test_a_model_that_names_the_run_as_its_source_without_being_its_output_is_found(
    live_services, owner, fraud_model, tmp_path
):
    data = load_breast_cancer()
    estimator = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    mlflow.sklearn.save_model(estimator, tmp_path / "saved")
    mlflow.set_experiment("fraud-training")
    with mlflow.start_run() as run:
        mlflow.log_metric("f1", 0.93)
    client = MlflowClient(live_services.url)
    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id, name="model", source_run_id=run.info.run_id
    )
    client.log_model_artifacts(logged.model_id, str(tmp_path / "saved"))
    assert not client.get_run(run.info.run_id).outputs.model_outputs

    response = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": run.info.run_id}, format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["metrics"]["f1"] == 0.93
    artifact_location = client.get_logged_model(logged.model_id).artifact_location
    assert ModelVersion.objects.get(model=fraud_model, version=1).artifact_uri == artifact_location
    assert client.get_model_version(fraud_model.name, "1").source == artifact_location


def test_version_registered_straight_into_mlflow_appears_after_sync_once(live_services, owner, fraud_model):
    run_id = _trained_run()
    owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": run_id}, format="json")
    second_run = _trained_run()
    logged = MlflowClient(live_services.url).search_logged_models(
        experiment_ids=[mlflow.get_run(second_run).info.experiment_id], filter_string=f"source_run_id = '{second_run}'"
    )[0]
    mlflow.register_model(f"models:/{logged.model_id}", fraud_model.name)

    call_command("sync_mlflow")
    call_command("sync_mlflow")

    listed = owner.client.get(f"/api/v1/models/{fraud_model.name}/versions/").json()["results"]
    assert [v["version"] for v in listed] == [2, 1]
    assert listed[0]["run_id"] == second_run
    assert listed[0]["created_by"] is None
    assert len(listed[0]["digest"]) == 64
    assert ModelVersion.objects.filter(model=fraud_model).count() == 2


def test_a_sync_refuses_versions_of_a_model_in_design_until_its_design_is_completed(live_services, owner, fraud_model):
    from registry.models import RegisteredModel
    from registry.services.sync import mlflow_sync

    run_id = _trained_run()
    logged = MlflowClient(live_services.url).search_logged_models(
        experiment_ids=[mlflow.get_run(run_id).info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )[0]
    mlflow.register_model(f"models:/{logged.model_id}", fraud_model.name)
    RegisteredModel.objects.filter(pk=fraud_model.pk).update(stage="design")

    refused = mlflow_sync(model_names=[fraud_model.name])

    assert refused.imported == []
    reason = refused.failed[f"{fraud_model.name} v1"]
    assert "importing fraud-detector v1 from MLflow is refused" in reason and "design" in reason
    assert not ModelVersion.objects.filter(model=fraud_model).exists()

    RegisteredModel.objects.filter(pk=fraud_model.pk).update(stage="active")
    assert mlflow_sync(model_names=[fraud_model.name]).imported == [f"{fraud_model.name} v1"]


def test_alias_set_through_modelgate_resolves_in_mlflow(live_services, owner, fraud_model):
    run_id = _trained_run()
    owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": run_id}, format="json")

    response = owner.client.put(f"/api/v1/models/{fraud_model.name}/aliases/candidate/", {"version": 1}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["aliases"] == ["candidate"]
    resolved = MlflowClient(live_services.url).get_model_version_by_alias(fraud_model.name, "candidate")
    assert resolved.version == "1"
    loaded = mlflow.pyfunc.load_model(f"models:/{fraud_model.name}@candidate")
    assert len(loaded.predict(load_breast_cancer().data[:3])) == 3
    assert owner.client.get(f"/api/v1/models/{fraud_model.name}/aliases/candidate/").json()["version"] == 1


def test_champion_alias_cannot_be_moved_by_hand(live_services, owner, fraud_model):
    owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": _trained_run()}, format="json")

    response = owner.client.put(f"/api/v1/models/{fraud_model.name}/aliases/champion/", {"version": 1}, format="json")

    assert response.status_code == 409
    assert "stage transition" in response.json()["error"]["message"]


def test_download_verifies_the_digest_and_a_corrupted_object_is_reported(
    live_services, s3_endpoint, owner, fraud_model, tmp_path
):
    owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": _trained_run()}, format="json")
    version = ModelVersion.objects.get(model=fraud_model, version=1)
    assert owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/1/verify/").json()["valid"] is True
    files = owner.client.get(f"/api/v1/models/{fraud_model.name}/versions/1/download/").json()["files"]
    mlmodel_file = next(f for f in files if f["path"] == "MLmodel")
    assert hashlib.sha256(requests.get(mlmodel_file["url"], timeout=10).content).hexdigest() == mlmodel_file["sha256"]
    assert (
        storage.artifact_download(version.artifact_uri, version.manifest, tmp_path / "ok").joinpath("MLmodel").exists()
    )

    location = storage.parse_s3(version.artifact_uri)
    s3_endpoint.client().put_object(Bucket=location.bucket, Key=f"{location.key.rstrip('/')}/MLmodel", Body=b"tampered")

    report = owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/1/verify/").json()
    assert report["valid"] is False
    assert report["changed"] == ["MLmodel"]
    with pytest.raises(ArtifactIntegrityError) as raised:
        storage.artifact_download(version.artifact_uri, version.manifest, tmp_path / "bad")
    assert raised.value.details["changed"] == ["MLmodel"]
    assert not (tmp_path / "bad" / "MLmodel").exists()


def test_s3_down_during_registration_answers_503_and_a_retry_creates_exactly_one_version(
    live_services, settings, owner, fraud_model
):
    run_id = _trained_run()
    working_endpoint = settings.AWS_ENDPOINT_URL
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{_closed_port()}"
    headers = {"HTTP_IDEMPOTENCY_KEY": "ci-build-42"}
    url = f"/api/v1/models/{fraud_model.name}/versions/"

    down = owner.client.post(url, {"run_id": run_id}, format="json", **headers)

    assert down.status_code == 503, down.json()
    assert down.json()["error"]["details"]["dependency"] == "artifacts"
    assert not ModelVersion.objects.filter(model=fraud_model).exists()
    assert MlflowClient(live_services.url).search_model_versions(f"name = '{fraud_model.name}'") == []

    settings.AWS_ENDPOINT_URL = working_endpoint
    retried = owner.client.post(url, {"run_id": run_id}, format="json", **headers)
    replayed = owner.client.post(url, {"run_id": run_id}, format="json", **headers)

    assert retried.status_code == 201, retried.json()
    assert replayed.status_code == 201
    assert replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == retried.json()
    assert ModelVersion.objects.filter(model=fraud_model).count() == 1
    assert len(MlflowClient(live_services.url).search_model_versions(f"name = '{fraud_model.name}'")) == 1


def test_mlflow_down_during_registration_answers_503_and_writes_nothing(live_services, settings, owner, fraud_model):
    run_id = _trained_run()
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{_closed_port()}"
    url = f"/api/v1/models/{fraud_model.name}/versions/"

    down = owner.client.post(url, {"run_id": run_id}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert down.status_code == 503, down.json()
    assert down.json()["error"]["details"]["dependency"] == "mlflow"
    assert not ModelVersion.objects.filter(model=fraud_model).exists()

    settings.MLFLOW_TRACKING_URI = live_services.url
    retried = owner.client.post(url, {"run_id": run_id}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert retried.status_code == 201
    assert ModelVersion.objects.filter(model=fraud_model).count() == 1


def test_a_retry_after_a_lost_response_adopts_the_mlflow_version_instead_of_creating_another(
    live_services, monkeypatch, owner, fraud_model
):
    from registry.errors import DependencyUnavailable
    from registry.services import versions

    run_id = _trained_run()
    original = versions.version_row_write

    def database_blip(**kwargs):
        raise DependencyUnavailable("database", "connection lost")

    monkeypatch.setattr(versions, "version_row_write", database_blip)
    url = f"/api/v1/models/{fraud_model.name}/versions/"
    assert owner.client.post(url, {"run_id": run_id}, format="json", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 503
    monkeypatch.setattr(versions, "version_row_write", original)

    retried = owner.client.post(url, {"run_id": run_id}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    assert retried.status_code == 201
    assert retried.json()["version"] == 1
    assert len(MlflowClient(live_services.url).search_model_versions(f"name = '{fraud_model.name}'")) == 1


def test_unknown_run_id_is_a_400_naming_the_run(live_services, owner, fraud_model):
    response = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": "0123456789abcdef0123456789abcdef"}, format="json"
    )

    assert response.status_code == 400
    assert "0123456789abcdef0123456789abcdef" in response.json()["error"]["message"]


def test_a_model_directory_on_s3_is_registered_from_its_source_uri(
    live_services, s3_endpoint, owner, fraud_model, tmp_path
):
    data = load_breast_cancer()
    local = tmp_path / "exported"
    mlflow.sklearn.save_model(LogisticRegression(max_iter=5000).fit(data.data, data.target), str(local))
    uri = storage.upload_directory(local, f"s3://{s3_endpoint.bucket('modelgate')}/exports/fraud-1")

    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"source": uri}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["source"] == uri
    assert MlflowClient(live_services.url).get_model_version(fraud_model.name, "1").source == uri


def test_a_local_model_directory_is_imported_into_mlflow_and_registered(live_services, owner, fraud_model, tmp_path):
    data = load_breast_cancer()
    local = tmp_path / "exported"
    mlflow.sklearn.save_model(LogisticRegression(max_iter=5000).fit(data.data, data.target), str(local))

    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"source": str(local)}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["artifact_uri"].startswith("s3://")
    assert body["run_id"]
    assert owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/1/verify/").json()["valid"] is True
