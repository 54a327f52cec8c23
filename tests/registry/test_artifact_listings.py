"""Listing many S3 artifacts at once (what backup and verify read) gives each artifact
exactly the objects a listing of it alone gives, with one request per parent prefix;
an upload checked against a manifest sends nothing that does not match it. On a real S3
endpoint (moto's server)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from registry import storage
from registry.errors import ArtifactIntegrityError

pytestmark = pytest.mark.services


@pytest.fixture
def s3_settings(settings, s3_endpoint):
    settings.AWS_ENDPOINT_URL = s3_endpoint.url
    settings.MODELGATE_S3_SSE = ""
    storage._s3_client.cache_clear()
    yield settings
    storage._s3_client.cache_clear()


@pytest.fixture
def list_requests(s3_settings) -> list[str]:
    """The prefixes of every ListObjectsV2 request ModelGate's S3 client sends."""
    seen: list[str] = []
    storage.s3_client().meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", lambda params, **kwargs: seen.append(params.get("Prefix", ""))
    )
    return seen


def put(client, bucket: str, key: str, body: bytes = b"bytes") -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body)


def test_artifacts_sharing_a_parent_are_listed_together_and_each_gets_exactly_its_own_objects(
    s3_endpoint, list_requests
):
    bucket = s3_endpoint.bucket("modelgate-listings")
    parent = f"models/{uuid.uuid4().hex}"
    client = s3_endpoint.client()
    for key in ("1/MLmodel", "1/model.pkl", "1/nested/vocab.txt", "10/MLmodel", "2", "README"):
        put(client, bucket, f"{parent}/{key}")
    uris = {name: f"s3://{bucket}/{parent}/{name}" for name in ("1", "10", "2", "3")}

    found = storage.s3_listings(uris.values())

    assert list_requests == [f"{parent}/"], "one listing of the parent for all four artifacts"
    assert sorted(found[uris["1"]]) == [
        ("MLmodel", f"{parent}/1/MLmodel"),
        ("model.pkl", f"{parent}/1/model.pkl"),
        ("nested/vocab.txt", f"{parent}/1/nested/vocab.txt"),
    ], "version 10's objects are not version 1's"
    assert found[uris["10"]] == [("MLmodel", f"{parent}/10/MLmodel")]
    assert found[uris["2"]] == [("", f"{parent}/2")], "a single-object artifact"
    assert found[uris["3"]] == [], "a missing artifact has no objects"
    for name in ("1", "10", "2"):
        assert sorted(found[uris[name]]) == sorted(storage._s3_keys(storage.parse_s3(uris[name])))


def test_a_parent_crowded_with_other_objects_is_listed_artifact_by_artifact(s3_endpoint, list_requests, monkeypatch):
    monkeypatch.setattr(storage, "_FOREIGN_KEYS_ALLOWED", 0)
    bucket = s3_endpoint.bucket("modelgate-listings")
    parent = f"runs/{uuid.uuid4().hex}"
    client = s3_endpoint.client()
    for key in ("a/MLmodel", "b/MLmodel", *(f"log-{n}.txt" for n in range(25))):
        put(client, bucket, f"{parent}/{key}")

    found = storage.s3_listings([f"s3://{bucket}/{parent}/a", f"s3://{bucket}/{parent}/b"])

    assert found == {
        f"s3://{bucket}/{parent}/a": [("MLmodel", f"{parent}/a/MLmodel")],
        f"s3://{bucket}/{parent}/b": [("MLmodel", f"{parent}/b/MLmodel")],
    }
    assert list_requests[0] == f"{parent}/"
    assert sorted(list_requests[1:]) == [f"{parent}/a/", f"{parent}/b/"], "given up on the parent, then one each"


def test_a_verification_from_a_listing_still_names_the_file_that_changed(s3_endpoint, s3_settings, tmp_path):
    bucket = s3_endpoint.bucket("modelgate-listings")
    prefix = f"models/{uuid.uuid4().hex}/1"
    client = s3_endpoint.client()
    put(client, bucket, f"{prefix}/MLmodel", b"artifact_path: model\n")
    put(client, bucket, f"{prefix}/model.pkl", b"weights")
    uri = f"s3://{bucket}/{prefix}"
    expected = storage.artifact_manifest(uri)
    put(client, bucket, f"{prefix}/model.pkl", b"other weights")

    (listing,) = storage.s3_listings([uri]).values()
    report = storage.artifact_verify(uri, expected, listing=listing)

    assert (report["valid"], report["changed"]) == (False, ["model.pkl"])


def model_directory(path: Path) -> Path:
    (path / "nested").mkdir(parents=True)
    (path / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    (path / "model.pkl").write_bytes(b"weights")
    (path / "nested" / "vocab.txt").write_text("a\nb\n")
    return path


def test_an_upload_checked_against_its_manifest_sends_every_file_that_matches(s3_endpoint, s3_settings, tmp_path):
    source = model_directory(tmp_path / "model")
    uri = f"s3://{s3_endpoint.bucket('modelgate-listings')}/restored/{uuid.uuid4().hex}"

    storage.upload_directory(source, uri, expected=storage.artifact_manifest(str(source)))

    assert storage.artifact_manifest(uri) == storage.artifact_manifest(str(source))


def test_an_upload_checked_against_its_manifest_refuses_a_changed_or_extra_file(s3_endpoint, s3_settings, tmp_path):
    source = model_directory(tmp_path / "model")
    expected = storage.artifact_manifest(str(source))
    bucket = s3_endpoint.bucket("modelgate-listings")
    (source / "model.pkl").write_bytes(b"not the recorded weights")

    with pytest.raises(ArtifactIntegrityError) as changed:
        storage.upload_directory(source, f"s3://{bucket}/restored/{uuid.uuid4().hex}", expected=expected)
    assert changed.value.details == {"changed": ["model.pkl"]}

    (source / "model.pkl").write_bytes(b"weights")
    (source / "extra.txt").write_text("not registered")
    target = f"restored/{uuid.uuid4().hex}"
    with pytest.raises(ArtifactIntegrityError) as extra:
        storage.upload_directory(source, f"s3://{bucket}/{target}", expected=expected)
    assert extra.value.details["unexpected"] == ["extra.txt"]
    assert "Contents" not in s3_endpoint.client().list_objects_v2(Bucket=bucket, Prefix=target), "nothing sent"
