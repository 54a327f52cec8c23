"""The prediction log's pure core: flattening scoring bodies, masking personal data, the
bounded queue, and the Parquet store on a local directory."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.monitoring.prediction_log import (
    LoggedCall,
    PiiMasker,
    PredictionBuffer,
    call_rows,
    input_rows,
    output_values,
)
from lifecycle.monitoring.prediction_store import PredictionStore

MASKER = PiiMasker(b"test key")


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["a", "email"], "data": [[1, "x@y.org"], [2, "z@y.org"]]}},
        {"dataframe_records": [{"a": 1, "email": "x@y.org"}, {"a": 2, "email": "z@y.org"}]},
        {"instances": [{"a": 1, "email": "x@y.org"}, {"a": 2, "email": "z@y.org"}]},
        {"inputs": {"a": [1, 2], "email": ["x@y.org", "z@y.org"]}},
    ],
)
def test_every_scoring_form_flattens_to_the_same_rows(body):
    assert input_rows(json.dumps(body).encode()) == [{"a": 1, "email": "x@y.org"}, {"a": 2, "email": "z@y.org"}]


def test_a_tensor_body_is_named_by_position():
    assert input_rows({"instances": [[1.0, 2.0], [3.0, 4.0]]}) == [{"0": 1.0, "1": 2.0}, {"0": 3.0, "1": 4.0}]


@pytest.mark.parametrize("body", [b"not json", b'{"columns": []}', b"", b"\xff\xfe"])
def test_an_unreadable_body_has_no_rows(body):
    assert input_rows(body) is None


def test_answers_are_read_from_predictions_or_a_bare_list():
    assert output_values(b'{"predictions": [0, 1]}') == [0, 1]
    assert output_values(b"[0.5, 0.25]") == [0.5, 0.25]
    assert output_values(b'{"predictions": {"label": [1, 0], "score": [0.9, 0.2]}}') == [
        {"label": 1, "score": 0.9},
        {"label": 0, "score": 0.2},
    ]
    assert output_values(b'{"error_code": "BAD_REQUEST", "message": "no"}') is None


def _call(i: int = 0, **changes) -> LoggedCall:
    fields = {
        "request_id": f"r{i}",
        "model": "fraud/detector",
        "version": 1,
        "ts": datetime(2026, 12, 3, 9, 30, tzinfo=UTC),
        "latency_ms": 2.5,
        "status": 200,
        "input": json.dumps({"dataframe_records": [{"amount": i, "email": f"user{i}@example.org"}]}).encode(),
        "output": b'{"predictions": [{"label": 1, "email": "echo@example.org"}]}',
        "deployment_id": 4,
        "pii": ("email",),
    }
    fields.update(changes)
    return LoggedCall(**fields)


def test_pii_columns_are_hashed_in_inputs_and_answers_alike():
    (row,) = call_rows(_call(7), MASKER)
    features, prediction = json.loads(row["features"]), json.loads(row["prediction"])
    assert features["amount"] == 7
    assert features["email"] == MASKER.mask_value("user7@example.org")
    assert features["email"].startswith("pii:") and "example.org" not in row["features"]
    assert prediction["email"] == MASKER.mask_value("echo@example.org")
    # The same value hashes the same, another key hashes differently.
    assert MASKER.mask_value("a") == MASKER.mask_value("a") != PiiMasker(b"other").mask_value("a")


def test_an_unreadable_body_keeps_no_input_at_all():
    (row,) = call_rows(_call(input=b'{"email": "x@example.org" broken'), MASKER)
    assert row["features"] is None


def test_a_full_queue_drops_and_counts_instead_of_waiting():
    written: list[int] = []
    release = threading.Event()

    def slow_writer(batch):
        release.wait(5)
        written.append(len(batch))
        return len(batch)

    buffer = PredictionBuffer(writer=slow_writer, capacity=3, batch_size=100, flush_seconds=60)
    started = time.perf_counter()
    accepted = [buffer.offer(_call(i)) for i in range(10)]
    assert time.perf_counter() - started < 1.0
    assert accepted == [True] * 3 + [False] * 7
    assert buffer.counters.dropped == 7
    release.set()
    buffer.stop()
    assert written == [3]
    assert buffer.counters.written_calls == 3


def test_a_failing_store_loses_the_batch_counted_and_keeps_writing():
    calls = {"n": 0}

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("store down")
        return len(batch)

    buffer = PredictionBuffer(writer=flaky, capacity=100, batch_size=2, flush_seconds=60)
    for i in range(4):
        buffer.offer(_call(i))
    buffer.flush()
    assert buffer.counters.lost == 2 and buffer.counters.write_failures == 1
    assert buffer.counters.written_calls == 2


def test_the_flush_thread_writes_by_age(tmp_path: Path):
    store = PredictionStore(str(tmp_path), masker=MASKER)
    buffer = PredictionBuffer(writer=store.write_calls, capacity=100, batch_size=1000, flush_seconds=0.05)
    buffer.start()
    buffer.offer(_call(1, ts=datetime.now(UTC)))
    deadline = time.monotonic() + 5
    while buffer.counters.written_calls == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    buffer.stop()
    assert buffer.counters.written_calls == 1
    assert list(tmp_path.glob("predictions/model=fraud%2Fdetector/version=1/date=*/hour=*/*.parquet"))


def test_a_window_reads_its_own_hours_and_joins_the_newest_label(tmp_path: Path):
    store = PredictionStore(str(tmp_path), masker=MASKER)
    base = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    calls = [_call(i, ts=base + timedelta(minutes=20 * i), version=1 + i % 2) for i in range(6)]
    assert store.write_calls(calls) == 6
    store.write_labels(model="fraud/detector", labels=[{"request_id": "r0", "label": 0}], received_at=base)
    store.write_labels(
        model="fraud/detector", labels=[{"request_id": "r0", "label": 1}], received_at=base + timedelta(days=2)
    )

    frame = store.window(model="fraud/detector", start=base, end=base + timedelta(hours=1), labels=True)
    assert frame["request_id"].tolist() == ["r0", "r1", "r2"]
    assert frame["label"].tolist() == [1, None, None]
    assert frame["amount"].tolist() == [0, 1, 2]
    assert set(frame["email"]) == {MASKER.mask_value(f"user{i}@example.org") for i in range(3)}

    only_v2 = store.window(model="fraud/detector", start=base, end=base + timedelta(hours=3), version=2)
    assert only_v2["request_id"].tolist() == ["r1", "r3", "r5"]
    assert store.window(model="other", start=base, end=base + timedelta(hours=1)).empty
