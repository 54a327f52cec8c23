"""Artifacts are written to S3 with server-side encryption (SSE-S3 or SSE-KMS, from
``MODELGATE_S3_SSE``), checked on the stored objects of a real S3 endpoint (moto's
server); reading them back still verifies every file against its digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from registry import storage
from registry.errors import ArtifactIntegrityError

pytestmark = pytest.mark.services

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/modelgate-artifacts"


@pytest.fixture
def s3_settings(settings, s3_endpoint):
    settings.AWS_ENDPOINT_URL = s3_endpoint.url
    storage._s3_client.cache_clear()
    yield settings
    storage._s3_client.cache_clear()


def model_directory(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    (path / "model.pkl").write_bytes(os.urandom(2048))
    (path / "nested").mkdir()
    (path / "nested" / "vocab.txt").write_text("a\nb\n")
    return path


@pytest.mark.parametrize(("sse", "kms_key"), [("AES256", ""), ("aws:kms", KMS_KEY)], ids=["sse-s3", "sse-kms"])
def test_every_stored_object_reports_the_configured_encryption(s3_settings, s3_endpoint, tmp_path, sse, kms_key):
    s3_settings.MODELGATE_S3_SSE = sse
    s3_settings.MODELGATE_S3_SSE_KMS_KEY_ID = kms_key
    bucket = s3_endpoint.bucket("modelgate-sse")
    prefix = f"artifacts/{uuid.uuid4().hex}"
    source = model_directory(tmp_path / "model")

    uri = storage.upload_directory(source, f"s3://{bucket}/{prefix}")

    client = s3_endpoint.client()
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert sorted(keys) == sorted(f"{prefix}/{name}" for name in ("MLmodel", "model.pkl", "nested/vocab.txt"))
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == sse, key
        if kms_key:
            assert head["SSEKMSKeyId"] == kms_key, key

    expected = storage.artifact_manifest(str(source))
    assert storage.artifact_manifest(uri) == expected
    downloaded = storage.artifact_download(uri, expected, tmp_path / "download")
    assert (downloaded / "model.pkl").read_bytes() == (source / "model.pkl").read_bytes()

    client.put_object(Bucket=bucket, Key=f"{prefix}/model.pkl", Body=b"swapped weights")
    with pytest.raises(ArtifactIntegrityError) as caught:
        storage.artifact_download(uri, expected, tmp_path / "second")
    assert caught.value.details["changed"] == ["model.pkl"]
    assert list((tmp_path / "second").iterdir()) == []


def test_encryption_arguments_follow_the_settings(s3_settings, s3_endpoint, tmp_path):
    s3_settings.MODELGATE_S3_SSE = ""
    assert storage.sse_arguments() == {}
    s3_settings.MODELGATE_S3_SSE = "aws:kms"
    s3_settings.MODELGATE_S3_SSE_KMS_KEY_ID = ""
    assert storage.sse_arguments() == {"ServerSideEncryption": "aws:kms"}, "the bucket's default KMS key"


def test_mlflow_uploads_from_modelgate_processes_get_the_same_encryption(tmp_path):
    script = "import django, os; django.setup(); print(os.environ['MLFLOW_S3_UPLOAD_EXTRA_ARGS'])"
    env = {
        **os.environ,
        "MODELGATE_S3_SSE": "aws:kms",
        "MODELGATE_S3_SSE_KMS_KEY_ID": KMS_KEY,
        "MODELGATE_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("MLFLOW_S3_UPLOAD_EXTRA_ARGS", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KMS_KEY,
    }


@pytest.mark.django_db
@pytest.mark.xdist_group("mlflow")
def test_a_version_registered_from_a_local_path_is_uploaded_by_mlflow_encrypted(
    live_services, s3_endpoint, monkeypatch, owner, fraud_model, tmp_path
):
    monkeypatch.setenv("MLFLOW_S3_UPLOAD_EXTRA_ARGS", json.dumps({"ServerSideEncryption": "AES256"}))
    source = model_directory(tmp_path / "model")
    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"source": str(source)}, format="json")
    assert response.status_code == 201, response.json()
    location = storage.parse_s3(response.json()["artifact_uri"])
    client = s3_endpoint.client()
    keys = [i["Key"] for i in client.list_objects_v2(Bucket=location.bucket, Prefix=location.key)["Contents"]]
    assert len(keys) == 3
    assert {client.head_object(Bucket=location.bucket, Key=key)["ServerSideEncryption"] for key in keys} == {"AES256"}
