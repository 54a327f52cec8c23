"""The prediction log's cost and capacity (the ingestion part of ``bench/monitoring.py``).

Run from the repository root, alone or through ``bench/monitoring.py``::

    .venv/bin/python bench/monitoring_ingest.py [--section gateway|api|storage|all]
        [--calls 900] [--rounds 3] [--rows 1000000] [--keep-logs]

Sections:

``gateway``  one MLflow scoring server and two gateways in front of it, one writing every
             call to the prediction log (Parquet in a local directory, one PII column
             hashed) and one logging nothing; the same call through each, alternating
             rounds, at 1 and 8 clients. Prints the p50 a logged prediction adds (target:
             at most 0.5 ms at 1 client) and the rows per second logged at 8 clients
             (the gateway's own figures, read from its ``/metrics``).
``api``      ModelGate under gunicorn on an embedded SQLite database; batches of prediction
             records ``POST``ed to ``models/{name}/predictions/``: rows per second.
``storage``  the storage choice: ``--rows`` rows over one day and two versions written as
             Parquet batches and as a PostgreSQL table partitioned by day (COPY), then
             one hour of one version read back as a frame, and the whole day counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness.client import Session, expect, status_of  # noqa: E402
from bench.harness.cpu import CpuMeter  # noqa: E402
from bench.harness.load import compare, measure  # noqa: E402
from bench.harness.processes import (  # noqa: E402
    BIN,
    HOST,
    PG_HOST_PORT,
    Stack,
    child_env,
    free_port,
    isolate_this_process,
    run_with_stack,
)
from bench.harness.report import Target, Verdicts, machine_summary, mark, result_table  # noqa: E402
from bench.serving import (  # noqa: E402
    COLUMNS,
    MODEL,
    PAYLOAD,
    ROUTE_TABLE_FILE,
    TOKEN,
    _route_table,
    _save_model,
    gateway_start,
    replica_start,
)

LOG_DIR = "MODELGATE_BENCH_PREDICTION_LOG"
TARGET_LOGGED_P50 = Target("p50 added by logging", 0.5, higher_is_better=False, unit=" ms")
CLIENTS = (1, 8)
SECTIONS = ("gateway", "api", "storage")


# --- the gateways (uvicorn --factory) ------------------------------------------------


def _gateway(on_prediction: Any) -> Any:
    from serving.app import create_app
    from serving.route_table import static_source
    from serving.settings import GatewaySettings
    from serving.tokens import Principal, TokenRefused

    async def authenticate(plaintext: str) -> Principal:
        if plaintext == TOKEN:
            return Principal("bench", None, frozenset({"serve"}))
        raise TokenRefused("invalid token")

    document = json.loads(Path(os.environ[ROUTE_TABLE_FILE]).read_text())
    return create_app(
        source=static_source(document),
        authenticator=authenticate,
        settings=GatewaySettings.from_environment(),
        on_prediction=on_prediction,
    )


def logged_gateway_app() -> Any:
    """The gateway writing every call to a Parquet prediction log in ``$MODELGATE_BENCH_PREDICTION_LOG``."""
    from lifecycle.monitoring.prediction_log import PiiMasker
    from lifecycle.monitoring.prediction_store import PredictionStore
    from serving.prediction_logging import prediction_log_hook

    store = PredictionStore(os.environ[LOG_DIR], masker=PiiMasker(b"bench key"))
    return _gateway(prediction_log_hook(store.write_calls, capacity=100_000, batch_size=5_000, flush_seconds=2.0))


def plain_gateway_app() -> Any:
    """The same gateway with no prediction hook."""
    return _gateway(None)


def _metric(url: str, name: str, labels: dict[str, str] | None = None) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with Session() as session:
        text = expect(session.get(url), 200).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and all(
                sample.labels.get(k) == v for k, v in (labels or {}).items()
            ):
                total += sample.value
    return total


def hook_cost(calls: int, root: Path) -> tuple[float, float, float]:
    """The request path's share of logging, in process: p50 and p99 microseconds of one
    ``PredictionLogHook`` call (look-up, sample, queue) while its thread writes Parquet,
    and the rows per second that thread wrote."""
    from lifecycle.deployments.routing import parse_route_table
    from lifecycle.monitoring.prediction_log import PiiMasker
    from lifecycle.monitoring.prediction_store import PredictionStore
    from serving.prediction_hook import PredictionRecord
    from serving.prediction_logging import prediction_log_hook
    from serving.route_table import ServingTable

    document = _route_table("http://127.0.0.1:1", None)
    document["deployments"][0]["log"] = {"sample_rate": 1.0, "pii": [COLUMNS[0]]}
    table = ServingTable(routes=parse_route_table(document), schemas={})
    store = PredictionStore(str(root), masker=PiiMasker(b"bench key"))
    hook = prediction_log_hook(store.write_calls, capacity=calls, batch_size=5_000, flush_seconds=0.5)
    hook._table = lambda: table
    body = json.dumps(PAYLOAD).encode()
    records = [
        PredictionRecord(f"h{i}", 1, 1, "primary", 4.2, 200, body, b'{"predictions": [2]}') for i in range(calls)
    ]
    hook.start()
    timings = []
    began = time.perf_counter()
    for record in records:
        started = time.perf_counter_ns()
        hook(record)
        timings.append(time.perf_counter_ns() - started)
    hook.close()
    wall = time.perf_counter() - began
    timings.sort()
    return (
        timings[len(timings) // 2] / 1000,
        timings[int(len(timings) * 0.99)] / 1000,
        hook.buffer.counters.written_rows / wall,
    )


def section_gateway(args: argparse.Namespace, stack: Stack, judged: Verdicts) -> None:
    print("\n== gateway: a logged prediction against an unlogged one ==", flush=True)
    p50, p99, rate = hook_cost(50_000, stack.workdir / "hook-log")
    print(
        f"in process: the hook takes p50 {p50:.1f} us, p99 {p99:.1f} us per call on the request path; "
        f"its thread wrote {rate:.0f} rows/s (50000 calls, flattened, masked, Parquet)",
        flush=True,
    )
    signature = _save_model(stack.workdir / "model")
    replica, replica_url = replica_start(stack, stack.workdir / "model")
    document = _route_table(replica_url, signature)
    document["deployments"][0]["log"] = {"sample_rate": 1.0, "pii": [COLUMNS[0]]}
    table_file = stack.workdir / "route-table.json"
    table_file.write_text(json.dumps(document))
    log_dir = stack.workdir / "prediction-log"
    urls = {}
    for name, factory in (("logged", "logged_gateway_app"), ("plain", "plain_gateway_app")):
        process, urls[name] = gateway_start(
            stack,
            f"gateway-{name}",
            f"bench.monitoring_ingest:{factory}",
            {ROUTE_TABLE_FILE: str(table_file), LOG_DIR: str(log_dir)},
        )
        stack.wait_ready(
            f"gateway-{name}", process, lambda u=urls[name]: status_of(f"{u}/serve/-/health", timeout=2) == 200, 60
        )
    stack.wait_ready("replica", replica, lambda: status_of(f"{replica_url}/ping", timeout=2) == 200, timeout=120)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def call(url: str):
        def one(session: Session, index: int) -> None:
            expect(session.post(f"{url}/serve/{MODEL}/invocations", json=PAYLOAD, headers=headers), 200)

        return one

    meter = CpuMeter(stack)
    stack.closers.append(meter.close)
    results = []
    for clients in CLIENTS:
        print(f"measuring {args.calls} calls each at {clients} client(s)...", flush=True)
        results += compare(
            "invocations",
            clients,
            args.calls,
            {"logged": call(urls["logged"]), "plain": call(urls["plain"])},
            time_limit=args.time_limit,
            meter=meter,
            server_threads=8,
            rounds=args.rounds,
        )
    print()
    for line in result_table(results):
        print(line)
    by_key = {(r.system, r.clients): r for r in results}
    print()
    for clients in CLIENTS:
        logged, plain = by_key[("logged", clients)], by_key[("plain", clients)]
        added = logged.pct(50) - plain.pct(50)
        line = (
            f"logging adds at {clients} client(s): p50 {added:+.3f} ms, p95 {logged.pct(95) - plain.pct(95):+.3f} ms, "
            f"CPU {logged.cpu_per_request - plain.cpu_per_request:+.3f} ms per call"
        )
        if clients == 1:
            passed = judged.judge("logged p50 at 1", TARGET_LOGGED_P50, added, void=logged.void or plain.void)
            line += f"   {TARGET_LOGGED_P50}: {mark(passed)}"
        print(line)

    # Rows per second through the gateway: 8 clients for a fixed count, then the
    # gateway's own figures once its writer has flushed.
    metrics_url = f"{urls['logged']}/metrics"
    before = _metric(metrics_url, "modelgate_prediction_log_written_rows")
    burst = measure("logged", "burst", 8, args.calls * 2, call(urls["logged"]), time_limit=args.time_limit)
    stack.wait_for(
        lambda: (
            _metric(metrics_url, "modelgate_prediction_log_queued") == 0
            and _metric(metrics_url, "modelgate_prediction_log_written_rows") >= before + burst.ok
        ),
        timeout=60,
        what="the prediction log to flush",
    )
    written = _metric(metrics_url, "modelgate_prediction_log_written_rows") - before
    dropped = _metric(metrics_url, "modelgate_prediction_log_dropped")
    files = sum(1 for _ in log_dir.rglob("*.parquet"))
    print(
        f"\nvia the gateway at 8 clients: {burst.ok} calls in {burst.wall:.2f} s = {burst.ok / burst.wall:.0f} rows/s "
        f"logged ({written:.0f} rows written, {dropped:.0f} dropped, {files} Parquet files so far)",
        flush=True,
    )


# --- the batch API -------------------------------------------------------------------


def section_api(args: argparse.Namespace, stack: Stack, judged: Verdicts) -> None:
    print("\n== api: POST models/{name}/predictions/ (gunicorn, embedded SQLite) ==", flush=True)
    var_dir = stack.workdir / "modelgate-var"
    var_dir.mkdir(exist_ok=True)
    env = child_env(
        {
            "DATABASE_URL": f"sqlite:///{var_dir / 'modelgate.sqlite3'}",
            "MODELGATE_VAR_DIR": str(var_dir),
            "MODELGATE_ARTIFACT_ROOT": str(var_dir / "artifacts"),
            "MODELGATE_ENV": "development",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    python = str(BIN / "python")
    with stack.log("migrate").open("w") as log:
        subprocess.run(
            [python, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    issued = subprocess.run(
        [python, "manage.py", "issue_token", "bench", "--team", "bench", "--role", "admin"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = issued.stdout.strip().splitlines()[-1].strip()
    port = free_port()
    gunicorn = stack.start(
        "gunicorn",
        [
            str(BIN / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"{HOST}:{port}",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        env,
    )
    url = f"http://{HOST}:{port}/api/v1"
    stack.wait_ready("gunicorn", gunicorn, lambda: status_of(f"{url}/health", timeout=5) < 500, 60)
    headers = {"Authorization": f"Bearer {token}"}
    with Session() as session:
        expect(
            session.post(
                f"{url}/models/",
                json={"name": "bench-model", "team": "bench", "policy": {"pii": ["email"]}},
                headers=headers,
            ),
            201,
        )
    batch = args.batch
    now = datetime.now(UTC)

    def post(session: Session, index: int) -> None:
        records = [
            {
                "request_id": f"b{index}-{i}",
                "version": 1 + i % 2,
                "ts": (now - timedelta(seconds=i)).isoformat(),
                "latency_ms": 4.0,
                "inputs": {
                    "dataframe_records": [
                        {
                            **dict(zip(COLUMNS, PAYLOAD["dataframe_split"]["data"][0], strict=True)),
                            "email": f"user{i}@example.org",
                        }
                    ]
                },
                "outputs": {"predictions": [i % 3]},
            }
            for i in range(batch)
        ]
        expect(session.post(f"{url}/models/bench-model/predictions/", json=records, headers=headers), 202)

    measure("api", "warm-up", 2, 4, post, time_limit=args.time_limit)
    for clients in (1, 4):
        result = measure("api", "batches", clients, args.batches, post, time_limit=args.time_limit)
        rows = result.ok * batch
        print(
            f"batch API at {clients} client(s): {result.ok} batches of {batch} in {result.wall:.2f} s = "
            f"{rows / result.wall:.0f} rows/s (p50 {result.pct(50):.1f} ms per batch, {result.errors} errors)",
            flush=True,
        )


# --- storage: Parquet batches against a partitioned PostgreSQL table ----------------


def _calls(rows: int, start: datetime):
    from lifecycle.monitoring.prediction_log import LoggedCall

    step = 86_400 / rows
    for i in range(rows):
        features = {
            "amount": (i * 7919) % 1000 / 10,
            "country": ("fr", "de", "us", "jp")[i % 4],
            "email": f"u{i}@x.org",
        }
        yield LoggedCall(
            request_id=f"s{i}",
            model="bench",
            version=1 + i % 2,
            ts=start + timedelta(seconds=i * step),
            latency_ms=3.0 + i % 5,
            status=200,
            input={"dataframe_records": [features]},
            output=[i % 2],
            deployment_id=1,
            mode="primary",
            pii=("email",),
        )


def _directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def section_storage(args: argparse.Namespace, stack: Stack, judged: Verdicts) -> None:
    import duckdb
    import psycopg

    from lifecycle.monitoring.prediction_log import PiiMasker, call_rows
    from lifecycle.monitoring.prediction_store import PredictionStore

    rows = args.rows
    print(f"\n== storage: {rows} rows over one day, two versions ==", flush=True)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    masker = PiiMasker(b"bench key")
    hour = (start + timedelta(hours=13), start + timedelta(hours=14))

    root = stack.workdir / "parquet"
    store = PredictionStore(str(root), masker=masker)
    began = time.perf_counter()
    batch: list = []
    for call in _calls(rows, start):
        batch.append(call)
        if len(batch) == 5000:
            store.write_calls(batch)
            batch = []
    if batch:
        store.write_calls(batch)
    parquet_write = time.perf_counter() - began
    began = time.perf_counter()
    frame = store.window(model="bench", start=hour[0], end=hour[1], version=1)
    parquet_window = time.perf_counter() - began
    began = time.perf_counter()
    counted = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{root}/predictions/**/*.parquet', hive_partitioning = true)"
    ).fetchall()[0][0]
    parquet_count = time.perf_counter() - began
    parquet_bytes = _directory_bytes(root)

    database = stack.create_database("predlog")
    dsn = f"postgresql://postgres@{PG_HOST_PORT}/{database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """CREATE TABLE prediction_log (
                 request_id text, "row" int, model text, version int, deployment_id bigint, mode text, source text,
                 ts timestamptz NOT NULL, latency_ms double precision, status int, features jsonb, prediction jsonb
               ) PARTITION BY RANGE (ts)"""
        )
        for day in range(-1, 3):
            low, high = start + timedelta(days=day), start + timedelta(days=day + 1)
            conn.execute(
                f"CREATE TABLE prediction_log_{day + 1} PARTITION OF prediction_log "
                f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
            )
        conn.execute("CREATE INDEX ON prediction_log (model, version, ts)")
        began = time.perf_counter()
        with conn.cursor() as cursor:
            with cursor.copy(
                'COPY prediction_log (request_id, "row", model, version, deployment_id, mode, source, ts, latency_ms, '
                "status, features, prediction) FROM STDIN"
            ) as copy:
                for call in _calls(rows, start):
                    for r in call_rows(call, masker):
                        copy.write_row(
                            (
                                r["request_id"],
                                r["row"],
                                r["model"],
                                r["version"],
                                r["deployment_id"],
                                r["mode"],
                                r["source"],
                                r["ts"],
                                r["latency_ms"],
                                r["status"],
                                r["features"],
                                r["prediction"],
                            )
                        )
        conn.execute("ANALYZE prediction_log")
        postgres_write = time.perf_counter() - began
        began = time.perf_counter()
        import pandas as pd

        with conn.cursor() as cursor:
            cursor.execute(
                'SELECT request_id, "row", deployment_id, version, ts, latency_ms, status, features::text, '
                "prediction::text FROM prediction_log WHERE model = %s AND version = %s AND ts >= %s AND ts < %s "
                "ORDER BY ts",
                ("bench", 1, hour[0], hour[1]),
            )
            fetched = cursor.fetchall()
        pg_frame = pd.DataFrame.from_records([json.loads(f) for *_, f, _ in fetched])
        postgres_window = time.perf_counter() - began
        began = time.perf_counter()
        pg_count = conn.execute("SELECT count(*) FROM prediction_log").fetchone()[0]
        postgres_count = time.perf_counter() - began
        postgres_bytes = conn.execute(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'prediction_log'::regclass"
        ).fetchone()[0]
    assert counted == pg_count == rows and len(frame) == len(pg_frame), (counted, pg_count, len(frame), len(pg_frame))

    print(f"{'':22} {'write rows/s':>14} {'size MB':>9} {'1 h window s':>13} {'count(*) s':>11}")
    print(
        f"{'Parquet + DuckDB':22} {rows / parquet_write:14.0f} {parquet_bytes / 1e6:9.1f} {parquet_window:13.3f} {parquet_count:11.3f}"
    )
    print(
        f"{'PostgreSQL (COPY)':22} {rows / postgres_write:14.0f} {float(postgres_bytes) / 1e6:9.1f} {postgres_window:13.3f} {postgres_count:11.3f}"
    )
    print(f"(the 1 h window holds {len(frame)} rows of version 1; both written with the same flattening and masking)")


def run(args: argparse.Namespace, stack: Stack) -> bool:
    load_at_start = os.getloadavg()[0]
    isolate_this_process()
    print(f"machine   : {machine_summary(load_at_start)}", flush=True)
    judged = Verdicts()
    chosen = SECTIONS if args.section == "all" else (args.section,)
    for name in chosen:
        {"gateway": section_gateway, "api": section_api, "storage": section_storage}[name](args, stack, judged)
    print()
    print(judged.overall(f"failed: {', '.join(judged.failed)}" if judged.failed else ""))
    return judged.passed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--section", choices=(*SECTIONS, "all"), default="all")
    parser.add_argument("--calls", type=int, default=900, help="gateway calls per system and client count")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per gateway measurement")
    parser.add_argument("--batches", type=int, default=40, help="batch API requests per client count")
    parser.add_argument("--batch", type=int, default=1000, help="records per batch API request")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the storage comparison")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per measurement, at most")
    parser.add_argument("--keep-logs", action="store_true")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections (``argv`` defaults to the command line's)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_with_stack(lambda stack: run(args, stack), keep_logs=args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
