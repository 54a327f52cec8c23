"""The prediction log's rows: what one scoring call becomes once it is logged. Pure (no
Django): the gateway runs it in its flush thread, the batch API in a request.

A call's JSON body is flattened into one row per input row, whatever MLflow scoring form
it used (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``), and its
answer (``{"predictions": [...]}`` or a bare list) into one prediction per row. Columns the
model's policy names as personal data (``"pii": ["email", "name"]``) are replaced by a keyed
hash before a row leaves this module: the same value always hashes the same (so drift and
joins still work on it), the value itself is never written, and a body that cannot be read
as one of the forms keeps no input at all, since it cannot be masked column by column.

``PredictionBuffer`` is what the request path touches: ``offer`` appends to a bounded queue
and returns at once; a full queue drops the call and counts it. A daemon thread takes the
queue in batches (by size or age) and hands each batch to a writer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

MASK_PREFIX = "pii:"
# Hex digits of the HMAC kept: 64 bits, enough that two values do not collide in practice.
MASK_DIGITS = 16


@dataclass(frozen=True)
class LoggedCall:
    """One scoring call as the log keeps it, before flattening."""

    request_id: str
    model: str
    version: int | None
    ts: datetime
    latency_ms: float
    status: int
    input: bytes | str | Mapping[str, Any] | Sequence[Any] | None
    output: bytes | str | Mapping[str, Any] | Sequence[Any] | None
    deployment_id: int | None = None
    mode: str | None = None
    source: str = "gateway"
    pii: tuple[str, ...] = ()


# The columns of a prediction row, in the order they are written.
ROW_COLUMNS: tuple[str, ...] = (
    "request_id",
    "row",
    "model",
    "version",
    "deployment_id",
    "mode",
    "source",
    "ts",
    "latency_ms",
    "status",
    "features",
    "prediction",
)


class PiiMasker:
    """Replaces the values of the named columns by ``pii:<hmac-sha256 prefix>``."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a PII masking key must not be empty")
        self._key = key

    def mask_value(self, value: Any) -> str | None:
        if value is None:
            return None
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:MASK_DIGITS]
        return MASK_PREFIX + digest

    def mask(self, row: dict[str, Any], columns: Iterable[str]) -> dict[str, Any]:
        for column in columns:
            if column in row:
                row[column] = self.mask_value(row[column])
        return row


def _decoded(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body).decode("utf-8", errors="strict")
    if isinstance(body, str):
        if not body.strip():
            return None
        return json.loads(body)
    return body


def _rows_of_tensor(values: Sequence[Any]) -> list[dict[str, Any]]:
    rows = []
    for value in values:
        if isinstance(value, Mapping):
            rows.append(dict(value))
        elif isinstance(value, list | tuple):
            rows.append({str(i): v for i, v in enumerate(value)})
        else:
            rows.append({"0": value})
    return rows


def _rows_of_columns(columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``{"a": [1, 3], "b": [2.5, 0.1]}`` as rows; a scalar column is one row's value."""
    lengths = {len(v) for v in columns.values() if isinstance(v, list | tuple)}
    if not lengths:
        return [dict(columns)]
    count = max(lengths)
    return [
        {
            name: (values[i] if i < len(values) else None) if isinstance(values, list | tuple) else values
            for name, values in columns.items()
        }
        for i in range(count)
    ]


def input_rows(payload: Any) -> list[dict[str, Any]] | None:
    """The rows of an MLflow scoring body (decoded JSON or its bytes), or None when it has
    none of the scoring forms."""
    try:
        payload = _decoded(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(payload, list):
        return _rows_of_tensor(payload)
    if not isinstance(payload, Mapping):
        return None
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, Mapping) or not isinstance(split.get("data"), list):
            return None
        columns = [str(c) for c in split.get("columns") or ()]
        rows = []
        for values in split["data"]:
            values = values if isinstance(values, list | tuple) else [values]
            names = columns or [str(i) for i in range(len(values))]
            rows.append(dict(zip(names, values, strict=False)))
        return rows
    if "dataframe_records" in payload:
        records = payload["dataframe_records"]
        return _rows_of_tensor(records) if isinstance(records, list) else None
    for form in ("instances", "inputs"):
        if form in payload:
            value = payload[form]
            if isinstance(value, list):
                return _rows_of_tensor(value)
            if isinstance(value, Mapping):
                return _rows_of_columns(value)
            return None
    return None


def output_values(payload: Any) -> list[Any] | None:
    """The predictions of a scoring answer, one per input row, or None when unreadable."""
    try:
        payload = _decoded(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(payload, Mapping):
        if "predictions" in payload:
            payload = payload["predictions"]
        elif "error" in payload or "error_code" in payload:
            return None
    if isinstance(payload, Mapping):
        # A column-oriented answer ({"label": [..], "score": [..]}) as one value per row.
        return _rows_of_columns(payload)
    if isinstance(payload, list):
        return list(payload)
    return None


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=True)


def _prediction_text(value: Any, pii: Sequence[str], masker: PiiMasker) -> str | None:
    if isinstance(value, Mapping):
        value = masker.mask(dict(value), pii)
    return _json_text(value)


def call_rows(call: LoggedCall, masker: PiiMasker) -> list[dict[str, Any]]:
    """The rows one call is written as: one per input row (at least one per call, so a
    refused or unreadable call is still counted), PII columns masked."""
    inputs = input_rows(call.input)
    outputs = output_values(call.output) if call.status < 400 else None
    count = max(len(inputs or ()), len(outputs or ()), 1)
    common = {
        "request_id": call.request_id,
        "model": call.model,
        "version": call.version,
        "deployment_id": call.deployment_id,
        "mode": call.mode,
        "source": call.source,
        "ts": call.ts,
        "latency_ms": float(call.latency_ms)
        if call.latency_ms is not None and math.isfinite(call.latency_ms)
        else None,
        "status": int(call.status),
    }
    rows = []
    for i in range(count):
        features = None
        if inputs is not None and i < len(inputs):
            features = _json_text(masker.mask(inputs[i], call.pii))
        prediction = None
        if outputs is not None and i < len(outputs):
            prediction = _prediction_text(outputs[i], call.pii, masker)
        rows.append({**common, "row": i, "features": features, "prediction": prediction})
    return rows


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BufferCounters:
    offered: int = 0
    dropped: int = 0
    written_calls: int = 0
    written_rows: int = 0
    write_failures: int = 0
    # Calls lost because their batch could not be written.
    lost: int = 0
    batches: int = 0


BatchWriter = Callable[[list[LoggedCall]], int]


@dataclass
class PredictionBuffer:
    """A bounded queue of calls and the thread that writes them in batches.

    ``offer`` is the only method the request path calls: a ``deque.append`` under the
    GIL, no lock, no I/O. ``writer`` receives a batch of calls and returns the rows it
    wrote; it runs on the flush thread only, so a slow store never slows a prediction (the
    queue fills, and what does not fit is dropped and counted)."""

    writer: BatchWriter
    capacity: int = 100_000
    batch_size: int = 5_000
    flush_seconds: float = 2.0
    counters: BufferCounters = field(default_factory=BufferCounters)

    def __post_init__(self) -> None:
        self._queue: deque[LoggedCall] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def depth(self) -> int:
        return len(self._queue)

    def offer(self, call: LoggedCall) -> bool:
        """Queue a call for writing; False (and counted) when the queue is full."""
        self.counters.offered += 1
        if len(self._queue) >= self.capacity:
            self.counters.dropped += 1
            return False
        self._queue.append(call)
        if len(self._queue) >= self.batch_size:
            self._wake.set()
        return True

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="prediction-log-flush", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write everything queued now, in batches; the rows written."""
        written = 0
        while self._queue:
            written += self._write_batch()
        return written

    def _take(self) -> list[LoggedCall]:
        batch = []
        queue = self._queue
        while queue and len(batch) < self.batch_size:
            batch.append(queue.popleft())
        return batch

    def _write_batch(self) -> int:
        batch = self._take()
        if not batch:
            return 0
        try:
            rows = self.writer(batch)
        except Exception as exc:
            # The calls' contents are never logged: they may hold personal data.
            self.counters.write_failures += 1
            self.counters.lost += len(batch)
            logger.warning("the prediction log could not write a batch of %s calls: %r", len(batch), type(exc))
            return 0
        self.counters.batches += 1
        self.counters.written_calls += len(batch)
        self.counters.written_rows += rows
        return rows

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stopping.is_set():
            self._wake.wait(timeout=self.flush_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            now = time.monotonic()
            if len(self._queue) >= self.batch_size or (self._queue and now - last >= self.flush_seconds):
                while len(self._queue) >= self.batch_size:
                    self._write_batch()
                if self._queue and now - last >= self.flush_seconds:
                    self._write_batch()
                last = time.monotonic()
