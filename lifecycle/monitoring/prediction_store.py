"""Where the prediction log lives: Parquet batches on the artifact store, read with DuckDB.
Pure (no Django): the gateway writes with it while the database is down.

Layout under the root (a local directory or ``s3://bucket/prefix``), Hive-style so that a
window reads only its own files::

    predictions/model=<name>/version=<v>/date=<YYYY-MM-DD>/hour=<HH>/<uuid>.parquet
    labels/model=<name>/date=<YYYY-MM-DD>/<uuid>.parquet

``version=0`` holds calls no version answered. A batch of calls becomes one file per
partition it touches. On S3 each file is written into memory and uploaded with one
``PutObject`` carrying the server-side encryption arguments the store was given
(``MODELGATE_S3_SSE``), which pyarrow's S3 filesystem cannot send; deletes go through
boto3 too (pyarrow's leave an empty directory marker object behind, written without the
header, which a bucket policy requiring encryption refuses). Reads and listings go through
pyarrow's filesystem. A label is a row ``(request_id, row, label, received_at)``; the
newest label of a prediction row wins, so a corrected label simply is sent again.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlparse

import boto3
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from lifecycle.monitoring.prediction_log import LoggedCall, PiiMasker, call_rows

PREDICTION_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("deployment_id", pa.int64()),
        ("mode", pa.string()),
        ("source", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("latency_ms", pa.float64()),
        ("status", pa.int32()),
        ("features", pa.string()),
        ("prediction", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("label", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
    ]
)
_PREDICTION_PARTITIONS = ds.partitioning(
    pa.schema([("version", pa.int64()), ("date", pa.string()), ("hour", pa.int32())]), flavor="hive"
)
_LABEL_PARTITIONS = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
# The columns every window has, before the features.
WINDOW_COLUMNS: tuple[str, ...] = (
    "request_id",
    "row",
    "deployment_id",
    "version",
    "mode",
    "source",
    "ts",
    "latency_ms",
    "status",
)


@dataclass(frozen=True)
class StoreLocation:
    filesystem: pafs.FileSystem
    base: str


def store_location(root: str, *, s3_endpoint: str | None = None, region: str = "us-east-1") -> StoreLocation:
    """The filesystem and base path of a root URI (``s3://bucket/prefix`` or a path)."""
    parsed = urlparse(root)
    if parsed.scheme == "s3":
        options: dict[str, Any] = {"region": region}
        if s3_endpoint:
            endpoint = urlparse(s3_endpoint)
            options["endpoint_override"] = endpoint.netloc or s3_endpoint
            options["scheme"] = endpoint.scheme or "https"
        return StoreLocation(pafs.S3FileSystem(**options), f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/"))
    path = parsed.path if parsed.scheme == "file" else root
    return StoreLocation(pafs.LocalFileSystem(), str(path).rstrip("/"))


def _segment(name: str) -> str:
    # Hive partition values are URI-encoded: a model name may hold any character.
    return quote(name, safe="")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _dates(start: datetime, end: datetime) -> list[str]:
    first, last = _utc(start).date(), _utc(end).date()
    days = (last - first).days
    return [(first + timedelta(days=i)).isoformat() for i in range(max(days, 0) + 1)]


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of a Parquet file, as the log stores them (zstd)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


class PredictionStore:
    """Writes and reads the prediction log under one root.

    ``sse``: the server-side encryption arguments of every object written on S3
    (``{"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": …}``; empty: none);
    ``s3_client``: the boto3 client that writes them (one is made from ``s3_endpoint``
    and ``region`` when none is given)."""

    def __init__(
        self,
        root: str,
        *,
        masker: PiiMasker,
        s3_endpoint: str | None = None,
        region: str = "us-east-1",
        sse: Mapping[str, str] | None = None,
        s3_client: Any = None,
    ) -> None:
        self.root = root
        self.masker = masker
        location = store_location(root, s3_endpoint=s3_endpoint, region=region)
        self.filesystem = location.filesystem
        self.base = location.base
        self._local = isinstance(self.filesystem, pafs.LocalFileSystem)
        self.sse = dict(sse or {})
        self._s3_client = s3_client
        self._s3_options = {"endpoint_url": s3_endpoint, "region_name": region}

    @property
    def on_s3(self) -> bool:
        return not self._local

    def _s3(self) -> Any:
        if self._s3_client is None:
            self._s3_client = boto3.client("s3", **self._s3_options)
        return self._s3_client

    # --- writing ---------------------------------------------------------------------

    def put_bytes(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` (``bucket/key`` on S3, with the encryption
        arguments). S3's failures are ``OSError``s, as pyarrow's are."""
        if self._local:
            with self.filesystem.open_output_stream(path) as stream:
                stream.write(data)
            return
        bucket, _, key = path.partition("/")
        try:
            self._s3().put_object(Bucket=bucket, Key=key, Body=data, **self.sse)
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"writing s3://{path} failed: {exc}") from exc

    def put_table(self, path: str, table: pa.Table) -> None:
        """Store ``table`` as a Parquet file at ``path``."""
        if self._local:
            pq.write_table(table, path, filesystem=self.filesystem, compression="zstd")
        else:
            self.put_bytes(path, parquet_bytes(table))

    def copy(self, source: str, target: str) -> None:
        """Copy the object at ``source`` to ``target`` (S3 only: a rename of pyarrow's
        filesystem copies without the encryption arguments)."""
        source_bucket, _, source_key = source.partition("/")
        bucket, _, key = target.partition("/")
        try:
            self._s3().copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key}, **self.sse
            )
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"copying s3://{source} to s3://{target} failed: {exc}") from exc

    def delete(self, path: str) -> None:
        """Delete the object at ``path`` (S3 only)."""
        bucket, _, key = path.partition("/")
        try:
            self._s3().delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"deleting s3://{path} failed: {exc}") from exc

    def delete_tree(self, directory: str) -> None:
        """Delete every object under ``directory`` (S3 only)."""
        bucket, _, prefix = directory.partition("/")
        client = self._s3()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"deleting s3://{directory}/ failed: {exc}") from exc

    def _write(self, directory: str, table: pa.Table) -> None:
        if self._local:
            self.filesystem.create_dir(directory, recursive=True)
        self.put_table(f"{directory}/{uuid.uuid4().hex}.parquet", table)

    def write_calls(self, calls: Iterable[LoggedCall]) -> int:
        """Write calls (masking PII as they are flattened); the number of rows written."""
        groups: dict[tuple[str, int, str, int], list[dict[str, Any]]] = defaultdict(list)
        for call in calls:
            moment = _utc(call.ts)
            key = (call.model, call.version or 0, moment.date().isoformat(), moment.hour)
            groups[key].extend(call_rows(call, self.masker))
        written = 0
        for (model, version, day, hour), rows in groups.items():
            table = pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA)
            directory = f"{self.base}/predictions/model={_segment(model)}/version={version}/date={day}/hour={hour:02d}"
            self._write(directory, table)
            written += len(rows)
        return written

    def write_labels(self, *, model: str, labels: Sequence[Mapping[str, Any]], received_at: datetime) -> int:
        """Write labels ``{request_id, row, label}`` received at one moment."""
        if not labels:
            return 0
        received = _utc(received_at)
        rows = [
            {
                "request_id": str(item["request_id"]),
                "row": int(item.get("row") or 0),
                "label": json.dumps(item["label"], separators=(",", ":")),
                "received_at": received,
            }
            for item in labels
        ]
        table = pa.Table.from_pylist(rows, schema=LABEL_SCHEMA)
        self._write(f"{self.base}/labels/model={_segment(model)}/date={received.date().isoformat()}", table)
        return len(rows)

    # --- reading ---------------------------------------------------------------------

    def _dataset(self, kind: str, model: str, partitioning: ds.Partitioning) -> ds.Dataset | None:
        directory = f"{self.base}/{kind}/model={_segment(model)}"
        info = self.filesystem.get_file_info(directory)
        if info.type == pafs.FileType.NotFound:
            return None
        return ds.dataset(
            directory,
            filesystem=self.filesystem,
            format="parquet",
            partitioning=partitioning,
            exclude_invalid_files=False,
        )

    def prediction_rows(
        self,
        *,
        model: str,
        start: datetime,
        end: datetime,
        version: int | None = None,
        deployment_id: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """The logged rows of ``[start, end)`` (raw: features and prediction as JSON text),
        every column or only ``columns``."""
        full = PREDICTION_SCHEMA.append(pa.field("version", pa.int64()))
        columns = list(columns) if columns is not None else full.names
        dataset = self._dataset("predictions", model, _PREDICTION_PARTITIONS)
        if dataset is None:
            return pa.Table.from_pylist([], schema=pa.schema([full.field(c) for c in columns]))
        start, end = _utc(start), _utc(end)
        where = ds.field("date").isin(_dates(start, end))
        where &= (ds.field("ts") >= pa.scalar(start, pa.timestamp("us", tz="UTC"))) & (
            ds.field("ts") < pa.scalar(end, pa.timestamp("us", tz="UTC"))
        )
        if version is not None:
            where &= ds.field("version") == version
        if deployment_id is not None:
            where &= ds.field("deployment_id") == deployment_id
        return dataset.to_table(columns=columns, filter=where)

    def label_rows(self, *, model: str, since: date | None = None) -> pa.Table:
        """The newest label of each prediction row (received on or after ``since``)."""
        dataset = self._dataset("labels", model, _LABEL_PARTITIONS)
        if dataset is None:
            return pa.Table.from_pylist([], schema=LABEL_SCHEMA)
        where = ds.field("date") >= since.isoformat() if since is not None else None
        table = dataset.to_table(columns=LABEL_SCHEMA.names, filter=where)
        connection = duckdb.connect()
        try:
            connection.register("labels", table)
            return connection.sql(
                """
                SELECT request_id, "row", label, received_at FROM labels
                QUALIFY row_number() OVER (PARTITION BY request_id, "row" ORDER BY received_at DESC) = 1
                """
            ).to_arrow_table()
        finally:
            connection.close()

    def label_arrivals(self, *, model: str, since: datetime) -> pa.Table:
        """The labels (``request_id, row, received_at``) received after ``since``."""
        dataset = self._dataset("labels", model, _LABEL_PARTITIONS)
        columns = ["request_id", "row", "received_at"]
        if dataset is None:
            return pa.Table.from_pylist([], schema=pa.schema([LABEL_SCHEMA.field(c) for c in columns]))
        since = _utc(since)
        where = (ds.field("date") >= since.date().isoformat()) & (
            ds.field("received_at") > pa.scalar(since, pa.timestamp("us", tz="UTC"))
        )
        return dataset.to_table(columns=columns, filter=where)

    def window(
        self,
        *,
        model: str,
        start: datetime,
        end: datetime,
        version: int | None = None,
        deployment_id: int | None = None,
        labels: bool = False,
    ) -> pd.DataFrame:
        """The window as a frame: ``WINDOW_COLUMNS``, one column per input feature,
        ``prediction`` and, with ``labels``, ``label`` (None where none came yet)."""
        predictions = self.prediction_rows(
            model=model, start=start, end=end, version=version, deployment_id=deployment_id
        )
        connection = duckdb.connect()
        try:
            connection.register("predictions", predictions)
            select = ", ".join(f'p."{c}"' for c in WINDOW_COLUMNS) + ", p.features, p.prediction"
            if labels:
                connection.register("labels", self.label_rows(model=model, since=_utc(start).date()))
                joined = connection.sql(
                    f"""SELECT {select}, l.label FROM predictions p
                        LEFT JOIN labels l ON l.request_id = p.request_id AND l."row" = p."row"
                        ORDER BY p.ts, p.request_id, p."row" """
                ).to_arrow_table()
            else:
                joined = connection.sql(
                    f'SELECT {select} FROM predictions p ORDER BY p.ts, p.request_id, p."row"'
                ).to_arrow_table()
        finally:
            connection.close()
        return _frame(joined, labels=labels)


def _loads(text: Any) -> Any:
    return None if text is None else json.loads(text)


def _frame(table: pa.Table, *, labels: bool) -> pd.DataFrame:
    base = table.select(list(WINDOW_COLUMNS)).to_pandas()
    features = [_loads(text) or {} for text in table.column("features").to_pylist()]
    frame = pd.DataFrame.from_records(features, index=base.index) if features else pd.DataFrame(index=base.index)
    taken = {*WINDOW_COLUMNS, "prediction", "label", "features"}
    frame.columns = [f"input.{c}" if c in taken else str(c) for c in frame.columns]
    result = pd.concat([base, frame], axis=1)
    # object columns: a missing label stays None, and 1 stays 1 rather than 1.0
    result["prediction"] = pd.Series(
        [_loads(text) for text in table.column("prediction").to_pylist()], index=base.index, dtype=object
    )
    if labels:
        result["label"] = pd.Series(
            [_loads(text) for text in table.column("label").to_pylist()], index=base.index, dtype=object
        )
    return result
