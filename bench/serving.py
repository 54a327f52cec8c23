"""The serving gateway's cost: calls through it against calls straight to the replica.

Run from the repository root::

    .venv/bin/python bench/serving.py [--calls 900] [--rounds 3] [--keep-logs]

It saves an iris classifier (``mlflow.sklearn.save_model``) and starts, on 127.0.0.1 and
stopped again at the end (also on Ctrl-C or an error), one replica (MLflow's scoring
server: the uvicorn app ``mlflow models serve --env-manager local`` runs) and the
gateway under uvicorn (``serving.app.create_app`` with a route table of one deployment
whose primary is that replica, read from a file, and a fixed ``serve`` token; the
registry's token check is cached in production too, so it is off the measured path).

Then, at 1 and at 8 client threads, the same scoring call (one row, ``dataframe_split``)
``--calls`` times through the gateway and straight to the replica, in alternating rounds,
and prints latency (p50/p95/p99), throughput and CPU per call, with two targets:
the gateway adds at most 2 ms to the p50 at 1 client, and its throughput at 8 clients
is at least 0.8x the replica's own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python only puts bench/ on the path; the package lives one level up.
sys.path.insert(0, str(ROOT))

from bench.harness.client import Session, expect, status_of  # noqa: E402 (the repository on the path first)
from bench.harness.cpu import CpuMeter  # noqa: E402
from bench.harness.load import compare  # noqa: E402
from bench.harness.processes import HOST, Stack, child_env, free_port, isolate_this_process, run_with_stack  # noqa: E402
from bench.harness.report import (  # noqa: E402
    Ratios,
    Target,
    Verdicts,
    machine_summary,
    mark,
    ratio_header,
    ratio_line,
    result_table,
)
from bench.harness.stats import Result  # noqa: E402

ROUTE_TABLE_FILE = "MODELGATE_BENCH_ROUTE_TABLE"
TOKEN = "bench-serve-token"
MODEL = "iris"
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
PAYLOAD = {"dataframe_split": {"columns": COLUMNS, "data": [[6.3, 3.3, 6.0, 2.5]]}}
CLIENTS = (1, 8)

TARGET_OVERHEAD = Target("p50 added", 2.0, higher_is_better=False, unit=" ms")
TARGET_THROUGHPUT = Target("throughput", 0.8, higher_is_better=True)


def gateway_app() -> Any:
    """The app the gateway process serves (``uvicorn --factory bench.serving:gateway_app``)."""
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
        source=static_source(document), authenticator=authenticate, settings=GatewaySettings.from_environment()
    )


def _save_model(path: Path) -> dict[str, Any]:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    signature = infer_signature(features, target)
    mlflow.sklearn.save_model(
        LogisticRegression(max_iter=1000).fit(features, target),
        str(path),
        signature=signature,
        pip_requirements=["scikit-learn"],
        serialization_format="cloudpickle",
    )
    return {"inputs": signature.inputs.to_dict()}


def _route_table(replica_url: str, signature: dict[str, Any]) -> dict[str, Any]:
    return {
        "revision": 1,
        "deployments": [
            {
                "id": 1,
                "model": MODEL,
                "name": "production",
                "default": True,
                "routes": [
                    {
                        "version": 1,
                        "weight": 1.0,
                        "mode": "primary",
                        "signature": signature,
                        "replicas": [{"id": 1, "url": replica_url, "healthy": True}],
                    }
                ],
            }
        ],
    }


def replica_start(stack: Stack, model_dir: Path) -> tuple[Any, str]:
    """MLflow's scoring server for the model saved in ``model_dir`` (the uvicorn app
    ``mlflow models serve --env-manager local`` runs), and its URL."""
    from mlflow.pyfunc import scoring_server

    port = free_port()
    process = stack.start(
        "replica",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "mlflow.pyfunc.scoring_server.app:app",
        ],
        child_env({scoring_server._SERVER_MODEL_PATH: str(model_dir)}),
    )
    return process, f"http://{HOST}:{port}"


def gateway_start(stack: Stack, name: str, factory: str, env: dict[str, str]) -> tuple[Any, str]:
    """A gateway process serving ``factory`` (``module:function``) as production runs it:
    uvicorn under uvloop and httptools. Returns the process and its URL."""
    port = free_port()
    process = stack.start(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        child_env(env),
    )
    return process, f"http://{HOST}:{port}"


def run(args: argparse.Namespace, stack: Stack) -> bool:
    load_at_start = os.getloadavg()[0]
    isolate_this_process()
    print(f"machine   : {machine_summary(load_at_start)}", flush=True)
    signature = _save_model(stack.workdir / "model")

    replica, replica_url = replica_start(stack, stack.workdir / "model")
    table_file = stack.workdir / "route-table.json"
    table_file.write_text(json.dumps(_route_table(replica_url, signature)))
    gateway, gateway_url = gateway_start(
        stack, "gateway", "bench.serving:gateway_app", {ROUTE_TABLE_FILE: str(table_file)}
    )
    stack.wait_ready("replica", replica, lambda: status_of(f"{replica_url}/ping", timeout=2) == 200, timeout=120)
    stack.wait_ready("gateway", gateway, lambda: status_of(f"{gateway_url}/serve/-/health", timeout=2) == 200, 60)

    direct_url = f"{replica_url}/invocations"
    through_url = f"{gateway_url}/serve/{MODEL}/invocations"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def direct(session: Session, index: int) -> None:
        expect(session.post(direct_url, json=PAYLOAD), 200)

    def through(session: Session, index: int) -> None:
        expect(session.post(through_url, json=PAYLOAD, headers=headers), 200)

    with Session() as session:
        same = (
            session.post(direct_url, json=PAYLOAD).json()
            == session.post(through_url, json=PAYLOAD, headers=headers).json()
        )
    if not same:
        raise RuntimeError("the gateway's answer differs from the replica's")

    meter = CpuMeter(stack)
    stack.closers.append(meter.close)
    results: list[Result] = []
    for clients in CLIENTS:
        print(f"measuring {args.calls} calls each at {clients} client(s)...", flush=True)
        results += compare(
            "invocations",
            clients,
            args.calls,
            {"gateway": through, "direct": direct},
            time_limit=args.time_limit,
            meter=meter,
            server_threads=8,
            rounds=args.rounds,
        )

    print()
    for line in result_table(results):
        print(line)
    print()
    judged = Verdicts()
    for line in ratio_header("gateway", "direct"):
        print(line)
    by_key = {(r.system, r.clients): r for r in results}
    for clients in CLIENTS:
        ours, theirs = by_key[("gateway", clients)], by_key[("direct", clients)]
        ratios = Ratios.of(ours, theirs)
        void = ours.void or theirs.void
        if clients == max(CLIENTS):
            passed = judged.judge(f"throughput at {clients}", TARGET_THROUGHPUT, ratios.throughput, void=void)
            print(ratio_line("invocations", clients, ratios, str(TARGET_THROUGHPUT), mark(passed)))
        else:
            print(ratio_line("invocations", clients, ratios, "(for information)", ""))
    print()
    for clients in CLIENTS:
        ours, theirs = by_key[("gateway", clients)], by_key[("direct", clients)]
        added = ours.pct(50) - theirs.pct(50)
        added_p95 = ours.pct(95) - theirs.pct(95)
        cpu_added = ours.cpu_per_request - theirs.cpu_per_request
        line = (
            f"gateway adds at {clients} client(s): p50 {added:+.2f} ms, p95 {added_p95:+.2f} ms, "
            f"CPU {cpu_added:+.2f} ms per call"
        )
        if clients == min(CLIENTS):
            passed = judged.judge(f"p50 added at {clients}", TARGET_OVERHEAD, added, void=ours.void or theirs.void)
            line += f"   {TARGET_OVERHEAD}: {mark(passed)}"
        print(line)
    print()
    print(judged.overall(f"failed: {', '.join(judged.failed)}" if judged.failed else ""))
    return judged.passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=900, help="calls per system and client count")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per measurement, at most")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    return run_with_stack(lambda stack: run(args, stack), keep_logs=args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
