"""The prediction log's Parquet files on S3 carry the server-side encryption of
``MODELGATE_S3_SSE`` (SSE-S3 or SSE-KMS), as artifacts do: the batches the gateway and
the ingestion API write, the labels, and what compaction writes (the merged file, its
manifest and the compacted file it becomes), checked on the stored objects of a real S3
endpoint (moto's server). Compaction and retention delete without leaving a directory
marker (an object written without the header) behind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.monitoring import store as log_store
from lifecycle.monitoring.prediction_log import LoggedCall
from lifecycle.monitoring.prediction_upkeep import MANIFEST, MERGING_PREFIX, PredictionLogUpkeep
from registry import storage
from tests.lifecycle.monitoring.logged_calls import logged_calls

pytestmark = pytest.mark.services

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/modelgate-prediction-log"
MODEL = "fraud-detector"
HOUR = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def log_on_s3(settings, s3_endpoint):
    """The log under a fresh prefix of a bucket of the test's S3 endpoint."""
    settings.AWS_ENDPOINT_URL = s3_endpoint.url
    bucket = s3_endpoint.bucket("modelgate-log-sse")
    prefix = f"prediction-log-{uuid.uuid4().hex}"
    settings.MODELGATE_PREDICTION_LOG_ROOT = f"s3://{bucket}/{prefix}"
    storage._s3_client.cache_clear()
    log_store._store.cache_clear()
    yield bucket, prefix
    storage._s3_client.cache_clear()
    log_store._store.cache_clear()


def calls(prefix: str, count: int, at: datetime = HOUR) -> list[LoggedCall]:
    return logged_calls(model=MODEL, start=at, count=count, prefix=prefix, step=timedelta(minutes=1))


def objects(s3_endpoint, bucket: str, prefix: str) -> dict[str, dict]:
    """Every stored object of the log, with its encryption as S3 reports it."""
    client = s3_endpoint.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    return {
        item["Key"].removeprefix(f"{prefix}/"): client.head_object(Bucket=bucket, Key=item["Key"]) for item in listed
    }


def assert_encrypted(found: dict[str, dict], sse: str, kms_key: str) -> None:
    assert found
    for key, head in found.items():
        assert head.get("ServerSideEncryption") == sse, key
        if kms_key:
            assert head.get("SSEKMSKeyId") == kms_key, key


def request_ids(store) -> list[str]:
    table = store.prediction_rows(model=MODEL, start=HOUR, end=HOUR + timedelta(hours=1), columns=["request_id"])
    return sorted(table.column("request_id").to_pylist())


class StopsBeforeRename(PredictionLogUpkeep):
    """A compaction whose worker is killed after the manifest and the merged file are
    stored and the sources deleted, before the merged file takes its name."""

    def _move(self, source: str, target: str) -> None:
        raise OSError("worker killed")


@pytest.mark.parametrize(("sse", "kms_key"), [("AES256", ""), ("aws:kms", KMS_KEY)], ids=["sse-s3", "sse-kms"])
def test_every_prediction_log_object_reports_the_configured_encryption(settings, s3_endpoint, log_on_s3, sse, kms_key):
    settings.MODELGATE_S3_SSE = sse
    settings.MODELGATE_S3_SSE_KMS_KEY_ID = kms_key
    bucket, prefix = log_on_s3
    store = log_store.prediction_store()
    for batch in range(3):
        assert store.write_calls(calls(f"b{batch}", 4)) == 4
    store.write_labels(model=MODEL, labels=[{"request_id": "b0-0", "label": 1}], received_at=HOUR)
    old = HOUR - timedelta(days=40)
    store.write_calls(calls("old", 2, at=old))
    expected = request_ids(store)
    assert len(expected) == 12

    written = objects(s3_endpoint, bucket, prefix)
    assert len(written) == 5  # three batches of predictions in one hour, one 40 days older, one of labels
    assert_encrypted(written, sse, kms_key)

    # A compaction killed before its rename leaves the merged file and its manifest.
    with pytest.raises(OSError, match="worker killed"):
        StopsBeforeRename(store).compact(closed_before=HOUR + timedelta(days=3))
    halfway = objects(s3_endpoint, bucket, prefix)
    names = {key.rsplit("/", 1)[-1] for key in halfway}
    assert MANIFEST in names and any(name.startswith(MERGING_PREFIX) for name in names)
    assert_encrypted(halfway, sse, kms_key)

    report = PredictionLogUpkeep(store).compact(closed_before=HOUR + timedelta(days=3))

    assert report.partitions_recovered == 1
    compacted = objects(s3_endpoint, bucket, prefix)
    hour_files = [key for key in compacted if f"date={HOUR.date().isoformat()}/hour=" in key]
    assert len(hour_files) == 1 and hour_files[0].rsplit("/", 1)[-1].startswith("compacted-")
    assert_encrypted(compacted, sse, kms_key)
    assert request_ids(store) == expected

    PredictionLogUpkeep(store).expire(older_than=(HOUR - timedelta(days=30)).date())

    kept = objects(s3_endpoint, bucket, prefix)
    assert not [key for key in kept if f"date={old.date().isoformat()}" in key]
    assert len(kept) == 2  # the compacted hour and the labels
    assert_encrypted(kept, sse, kms_key)


def test_without_the_setting_the_log_is_written_without_the_header(settings, s3_endpoint, log_on_s3):
    settings.MODELGATE_S3_SSE = ""
    bucket, prefix = log_on_s3
    store = log_store.prediction_store()
    store.write_calls(calls("plain", 2))
    written = objects(s3_endpoint, bucket, prefix)
    assert len(written) == 1
    assert all("ServerSideEncryption" not in head for head in written.values())
    assert request_ids(store) == ["plain-0", "plain-1"]
