"""Artifacts are written to S3 with server-side encryption (SSE-S3 or SSE-KMS, from
``MODELGATE_S3_SSE``), checked on the stored objects of a real S3 endpoint (moto's
server); reading them back still verifies every file against its digest."""

from __future__ import annotations

import os
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
