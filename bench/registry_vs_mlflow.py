"""ModelGate's API against a bare MLflow tracking server, end to end, on this machine.

Run from the repository root::

    .venv/bin/python bench/registry_vs_mlflow.py            # 20,000 versions (a few minutes)
    .venv/bin/python bench/registry_vs_mlflow.py --quick    # 2,000 versions, fewer requests

It starts, all on 127.0.0.1 and all stopped again at the end (also on Ctrl-C or an
error): moto's S3 server, an ``mlflow server`` (backend store on a fresh PostgreSQL
database, artifacts on the moto S3, ``--no-serve-artifacts``) and ModelGate's API under
gunicorn (``config.wsgi:application``, its own fresh PostgreSQL database, pointed at
that MLflow server and S3). Both fresh databases are dropped at the end.

Then it measures, for both systems, with a fixed number of requests per measurement
spread over client threads (one ``Session`` each) and bounded in time:

1. registration from a source: MLflow ``model-versions/create`` with a source on S3
   (it records the pointer), against ModelGate ``POST /api/v1/models/{name}/versions/``
   with the same source, which reads and digests the artifact and makes that same
   MLflow call itself; a reference, not in OVERALL (ModelGate does all MLflow does here
   and more);
2. registration from a run, the way each system's users register one: runs logged with
   ``mlflow.sklearn.log_model`` (MLflow 3 logged models on S3), then
   ``mlflow.register_model("runs:/<run>/model", name)`` (MLflow's client: the
   registered model ensured, the run's logged model found, the version created and
   awaited, the logged model tagged with it) against ModelGate ``POST`` with
   ``run_id`` (the run's logged model found, its artifact read and digested, run
   metrics copied, the MLflow version created);
3. version search at ``--versions`` versions, by model name and by tag, first page of
   ``--page-size`` (MLflow ``max_results`` = ModelGate ``page_size``, both newest
   version first);
4. alias resolution.

and prints a table, the ratios ModelGate/MLflow and PASS/FAIL against the targets:
search and alias throughput >= 3x MLflow's, registration from a run within 1.5x
MLflow's latency (p50 and p95).

Every client connection, to either system and in MLflow's client, acknowledges each
response at once (``registry.quickack``): ``mlflow server`` holds a response's body
until its headers are acknowledged, which a Linux client on a kept-alive connection
delays by up to 40 ms, so that plain connections would time that wait, not MLflow.

The systems and how they are called are in ``registry_systems.py``, the seeding in
``registry_seed.py``; processes, client, load, CPU and verdicts in ``harness/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness.client import Session  # noqa: E402 (the repository on the path first)
from bench.harness.cpu import CpuMeter  # noqa: E402
from bench.harness.load import Call, compare  # noqa: E402
from bench.harness.processes import PG_ADMIN, PG_HOST_PORT, Stack, isolate_this_process, run_with_stack  # noqa: E402
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
from bench.registry_profile import report as profile_report  # noqa: E402
from bench.registry_profile import run_child  # noqa: E402
from bench.registry_seed import (  # noqa: E402
    SEARCH_MODEL,
    TAG_KEY,
    analyze,
    log_runs,
    seed_mlflow,
    seed_modelgate,
    small_model_files,
)
from bench.registry_systems import MlflowClients, ModelGate, Systems, start_systems  # noqa: E402

REG_MODEL_MLFLOW = "bench-register-mlflow"
REG_MODEL_MODELGATE = "bench-register-modelgate"
RUN_MODEL_MLFLOW = "bench-run-mlflow"
RUN_MODEL_MODELGATE = "bench-run-modelgate"
ALIAS = "bench"
PROFILED_REQUESTS = 40  # per read, timed and as many profiled


@dataclass(frozen=True)
class Plan:
    """How much to do: versions to seed and requests per measurement."""

    versions: int
    workers: int
    clients: int
    page_size: int
    register_requests: tuple[int, int]  # (1 client, --clients clients)
    runs: int  # MLflow runs logged for registration from a run
    search_requests: tuple[int, int]
    alias_requests: tuple[int, int]
    time_limit: float
    seed_threads: int
    threads: int
    reads_only: bool = False
    teams: int = 10


def plan_from(args: argparse.Namespace) -> Plan:
    quick = args.quick
    versions = args.versions if args.versions is not None else (2000 if quick else 20000)
    return Plan(
        versions=versions,
        workers=args.workers,
        clients=args.clients,
        page_size=args.page_size,
        register_requests=(45, 90) if quick else (60, 150),
        runs=16 if quick else 32,
        search_requests=(45, 120) if quick else (90, 240),
        alias_requests=(150, 450) if quick else (300, 900),
        time_limit=30.0 if quick else 60.0,
        seed_threads=args.seed_threads,
        threads=args.threads,
        reads_only=args.reads_only,
    )


# --- checks that both sides answer the same question -------------------------------------


def tag_search(team: str) -> str:
    """MLflow's filter for the versions of the search model with that team tag (the same
    question as ModelGate's ``/models/{name}/versions/?tag=``)."""
    return f"name='{SEARCH_MODEL}' AND tag.{TAG_KEY}='{team}'"


@dataclass
class Pages:
    """How each system names the first ``SEARCHED_PAGES`` pages of the search by name:
    ``None`` for the first, then MLflow's ``page_token`` / ModelGate's ``cursor``."""

    mlflow: list[str | None]
    modelgate: list[str | None]


SEARCHED_PAGES = 10
# ModelGate's metric filters (seeded values are uniform in 0.7..0.99: each matches 30-70%).
METRIC_FILTERS = ("f1>=0.8", "roc_auc>=0.8", "f1>=0.9", "roc_auc>=0.9", "f1<0.85")


def check_same_answers(systems: Systems, plan: Plan, alias_version: int) -> tuple[list[str], Pages]:
    """Both systems answer every question the reads ask with the same versions in the same
    order: each of the first pages by name, the first page of each tag value, the alias."""
    notes = []
    pages = Pages([None], [None])
    mlflow, modelgate = systems.mlflow, systems.modelgate
    with Session() as session:
        seen: list[int] = []
        for index in range(SEARCHED_PAGES):
            ml_body = mlflow.search(session, f"name='{SEARCH_MODEL}'", plan.page_size, pages.mlflow[-1]).json()
            mg_body = modelgate.versions(session, SEARCH_MODEL, plan.page_size, cursor=pages.modelgate[-1]).json()
            ml_numbers = [int(v["version"]) for v in ml_body["model_versions"]]
            mg_numbers = [v["version"] for v in mg_body["results"]]
            if ml_numbers != mg_numbers or len(ml_numbers) != plan.page_size:
                raise RuntimeError(
                    f"by name, page {index + 1}: MLflow {ml_numbers[:5]}... vs ModelGate {mg_numbers[:5]}..."
                )
            seen.extend(ml_numbers)
            if index + 1 < SEARCHED_PAGES:
                if not ml_body.get("next_page_token") or not mg_body.get("next"):
                    break
                pages.mlflow.append(ml_body["next_page_token"])
                pages.modelgate.append(parse_qs(urlsplit(mg_body["next"]).query)["cursor"][0])
        if seen != sorted(seen, reverse=True) or len(set(seen)) != len(seen):
            raise RuntimeError("by name: the pages overlap or are out of order")
        notes.append(
            f"by name: both return the same {len(pages.mlflow)} pages of {plan.page_size}, versions {seen[0]}..{seen[-1]}"
        )

        for team in (f"team-{n}" for n in range(plan.teams)):
            ml_page = mlflow.search(session, tag_search(team), plan.page_size).json()["model_versions"]
            mg_page = modelgate.versions(session, SEARCH_MODEL, plan.page_size, f"{TAG_KEY}:{team}").json()
            ml_numbers = [int(v["version"]) for v in ml_page]
            mg_numbers = [v["version"] for v in mg_page["results"]]
            if ml_numbers != mg_numbers or len(ml_numbers) != plan.page_size:
                raise RuntimeError(f"by tag {team}: MLflow {ml_numbers[:5]}... vs ModelGate {mg_numbers[:5]}...")
            if any(v["tags"].get(TAG_KEY) != team for v in mg_page["results"]):
                raise RuntimeError(f"by tag {team}: ModelGate returned a version without the tag")
        notes.append(f"by tag: both return the same first page of {plan.page_size} for each of {plan.teams} values")

        for metric in METRIC_FILTERS:
            name, op, bound = metric.partition(">=") if ">=" in metric else metric.partition("<")
            mg_page = modelgate.versions(session, SEARCH_MODEL, plan.page_size, metric=metric).json()["results"]
            numbers = [v["version"] for v in mg_page]
            within = [
                (v["metrics"][name] >= float(bound)) if op == ">=" else (v["metrics"][name] < float(bound))
                for v in mg_page
            ]
            if len(numbers) != plan.page_size or numbers != sorted(numbers, reverse=True) or not all(within):
                raise RuntimeError(f"by metric {metric}: ModelGate's page is short, unordered or outside the filter")
        notes.append(
            f"by metric: ModelGate's first page of {plan.page_size} for each of {len(METRIC_FILTERS)} filters is full, "
            "newest first, every version within the filter (MLflow has no metric filter on versions)"
        )

        ml_alias = int(mlflow.alias(session, SEARCH_MODEL, ALIAS).json()["model_version"]["version"])
        mg_alias = modelgate.alias(session, SEARCH_MODEL, ALIAS).json()["version"]
        if not ml_alias == mg_alias == alias_version:
            raise RuntimeError(f"alias: MLflow {ml_alias}, ModelGate {mg_alias}, expected {alias_version}")
        notes.append(f"alias {ALIAS!r}: both resolve to version {alias_version}")
    return notes, pages


# --- targets and verdicts ----------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """What one measurement is held to: ModelGate's figures over MLflow's against a target."""

    target: Target
    figures: Callable[[Ratios], tuple[float, ...]]
    concurrent_only: bool  # judged at --clients clients; the 1-client ratios are for information
    in_overall: bool = True  # False: a reference, judged and printed apart from OVERALL


READS = Goal(Target("throughput", 3.0, higher_is_better=True), lambda r: (r.throughput,), concurrent_only=True)
# A first read, with nothing kept by the process that serves it: judged at 1 client too.
COLD_READS = dataclasses.replace(READS, concurrent_only=False)
REGISTRATION = Goal(
    Target("latency p50 and p95", 1.5, higher_is_better=False), lambda r: (r.p50, r.p95), concurrent_only=False
)
# MLflow's create call records a pointer and reads nothing; ModelGate's registration
# reads and digests every file of the artifact besides.
REGISTRATION_FROM_SOURCE = Goal(
    Target("latency p50 and p95", 2.0, higher_is_better=False), lambda r: (r.p50, r.p95), concurrent_only=False
)

# None = shown for information only.
GOALS: dict[str, Goal | None] = {
    # MLflow's own registration of a version from a run (mlflow.register_model) against
    # ModelGate's: the same input, a registered version as the result.
    "register from run": REGISTRATION,
    # MLflow's bare create call against ModelGate's registration of the same source.
    "register from source": REGISTRATION_FROM_SOURCE,
    "search by name": READS,
    "search by tag": READS,
    "resolve alias": READS,
    # The same reads from ModelGate processes that keep no rendered version: every
    # version served from its stored document (or built, where that is behind).
    "by name, nothing kept": COLD_READS,
    "by tag, nothing kept": COLD_READS,
    # MLflow cannot filter versions by a metric: it is asked its nearest filtered search,
    # by tag, the same page size (README).
    "by metric, nothing kept": COLD_READS,
    "alias, nothing kept": COLD_READS,
}


def verdicts(results: list[Result], plan: Plan) -> tuple[list[str], Verdicts]:
    """The ratio lines with PASS/FAIL, and the verdicts for OVERALL."""
    by_key = {(r.system, r.what, r.clients): r for r in results}
    lines = ratio_header("ModelGate", "MLflow")
    judged = Verdicts()
    for what, goal in GOALS.items():
        for clients in (1, plan.clients):
            mg = by_key.get(("ModelGate", what, clients))
            ml = by_key.get(("MLflow", what, clients))
            if mg is None or ml is None:
                continue
            ratios = Ratios.of(mg, ml)
            if goal is None or (goal.concurrent_only and clients != plan.clients):
                lines.append(ratio_line(what, clients, ratios, "(for information)", ""))
                continue
            # An error or a measurement cut short on either side makes the comparison void:
            # the figures of the other side would then be set against a partial run.
            passed = judged.judge(
                f"{what} ({clients} clients)",
                goal.target,
                *goal.figures(ratios),
                void=mg.void or ml.void,
                counted=goal.in_overall,
            )
            if goal.in_overall:
                lines.append(ratio_line(what, clients, ratios, str(goal.target), mark(passed)))
            else:
                lines.append(
                    ratio_line(what, clients, ratios, f"{goal.target} (reference)", f"{mark(passed)} (not in OVERALL)")
                )
    return lines, judged


# --- the run --------------------------------------------------------------------------


def run(plan: Plan, stack: Stack) -> bool:
    load_at_start = os.getloadavg()[0]
    print(f"starting services (all on 127.0.0.1; load average {load_at_start:.1f}) ...", flush=True)
    systems = start_systems(stack, workers=plan.workers, threads=plan.threads, model_files=small_model_files())
    mlflow, modelgate = systems.mlflow, systems.modelgate
    meter = CpuMeter(stack)
    stack.closers.append(meter.close)
    results: list[Result] = []
    source = systems.source
    reg_tags = {"framework": "sklearn", "purpose": "bench"}

    with Session() as session:
        mlflow.create_model(session, REG_MODEL_MLFLOW)
        modelgate.create_model(session, REG_MODEL_MODELGATE)
        modelgate.create_model(session, SEARCH_MODEL)
        # One of each first: server workers import lazily, the first call is not typical.
        mlflow.create_version(session, REG_MODEL_MLFLOW, source, reg_tags)
        registered = modelgate.register(session, REG_MODEL_MODELGATE, source, reg_tags)
        registered_digest = modelgate.version(session, REG_MODEL_MODELGATE, registered).get("digest")

    def measured(what: str, totals: tuple[int, int], calls: dict[str, Call]) -> None:
        """Both systems at 1 and at ``plan.clients`` clients, printed as they finish."""
        for clients, total in zip((1, plan.clients), totals, strict=True):
            for result in compare(
                what,
                clients,
                total,
                calls,
                time_limit=plan.time_limit,
                meter=meter,
                server_threads=plan.workers * plan.threads,
            ):
                results.append(result)
                print("   ", result_table([result])[-1], flush=True)

    if plan.reads_only:
        print("\n[1], [2] registration: skipped (--reads-only)", flush=True)
    else:
        print("\n[1] registration from a source on S3", flush=True)
        measured(
            "register from source",
            plan.register_requests,
            {
                "MLflow": lambda s, i: mlflow.create_version(s, REG_MODEL_MLFLOW, source, reg_tags),
                "ModelGate": lambda s, i: modelgate.register(s, REG_MODEL_MODELGATE, source, reg_tags),
            },
        )

        print("\n[2] registration from a run", flush=True)
        run_ids = log_runs(systems, plan.runs)
        with Session() as session:
            modelgate.create_model(session, RUN_MODEL_MODELGATE)
        run_tags = {"framework": "sklearn", "purpose": "bench"}
        mlflow_clients = MlflowClients(plan.clients, mlflow.url, systems.s3_url)
        stack.closers.append(mlflow_clients.close)
        meter.client_pids.update(mlflow_clients.pids)
        print(f"  MLflow's client started in {len(mlflow_clients.pids)} processes", flush=True)
        measured(
            "register from run",
            plan.register_requests,
            {
                "MLflow": lambda s, i: mlflow_clients.register(run_ids[i % len(run_ids)], RUN_MODEL_MLFLOW, run_tags),
                "ModelGate": lambda s, i: modelgate.register_run(
                    s, RUN_MODEL_MODELGATE, run_ids[i % len(run_ids)], run_tags
                ),
            },
        )

    print(f"\n[3] seeding {plan.versions:,} versions of {SEARCH_MODEL!r}", flush=True)
    tags_by_version = seed_mlflow(mlflow, source, versions=plan.versions, teams=plan.teams, threads=plan.seed_threads)
    seeded = seed_modelgate(systems, tags_by_version)
    if seeded["digest"] != registered_digest:
        raise RuntimeError(f"bulk rows digest {seeded['digest']} != registered digest {registered_digest}")
    print(
        f"  the bulk rows carry the digest that registration through the API recorded for the same source "
        f"({seeded['digest'][:16]}..., {seeded['files']} files, {seeded['size']:,} bytes)",
        flush=True,
    )
    alias_version = max(tags_by_version) // 2 or 1
    with Session() as session:
        # ModelGate sets the alias in its own table and in MLflow (the same registered model).
        modelgate.set_alias(session, SEARCH_MODEL, ALIAS, alias_version)
    analyze(systems.mlflow_db, systems.modelgate_db)
    print("  VACUUM ANALYZE on both databases", flush=True)
    notes, pages = check_same_answers(systems, plan, alias_version)
    for note in notes:
        print(f"  same answer - {note}", flush=True)

    name_filter = f"name='{SEARCH_MODEL}'"
    teams = [f"team-{n}" for n in range(plan.teams)]

    def reads_of(gate: ModelGate, names: tuple[str, str, str]) -> list[tuple[str, tuple[int, int], Call, Call]]:
        """The three reads against ``gate``: by name (page i mod 10), by tag (value i mod
        10), the alias; MLflow asked the same each time."""
        by_name, by_tag, alias = names
        return [
            (
                by_name,
                plan.search_requests,
                lambda s, i: mlflow.search(s, name_filter, plan.page_size, pages.mlflow[i % len(pages.mlflow)]),
                lambda s, i: gate.versions(
                    s, SEARCH_MODEL, plan.page_size, cursor=pages.modelgate[i % len(pages.modelgate)]
                ),
            ),
            (
                by_tag,
                plan.search_requests,
                lambda s, i: mlflow.search(s, tag_search(teams[i % len(teams)]), plan.page_size),
                lambda s, i: gate.versions(s, SEARCH_MODEL, plan.page_size, f"{TAG_KEY}:{teams[i % len(teams)]}"),
            ),
            (
                alias,
                plan.alias_requests,
                lambda s, i: mlflow.alias(s, SEARCH_MODEL, ALIAS),
                lambda s, i: gate.alias(s, SEARCH_MODEL, ALIAS),
            ),
        ]

    cold = systems.modelgate_nothing_kept
    reads = reads_of(modelgate, ("search by name", "search by tag", "resolve alias")) + reads_of(
        cold, ("by name, nothing kept", "by tag, nothing kept", "alias, nothing kept")
    )
    reads.insert(
        -1,
        (
            "by metric, nothing kept",
            plan.search_requests,
            lambda s, i: mlflow.search(s, tag_search(teams[i % len(teams)]), plan.page_size),
            lambda s, i: cold.versions(s, SEARCH_MODEL, plan.page_size, metric=METRIC_FILTERS[i % len(METRIC_FILTERS)]),
        ),
    )
    print(f"\n[4] reads at {plan.versions:,} versions", flush=True)
    for what, totals, mlflow_call, modelgate_call in reads:
        measured(what, totals, {"MLflow": mlflow_call, "ModelGate": modelgate_call})

    print("\n[5] where a cold read's time goes (bench/registry_profile.py on the same database)", flush=True)
    try:
        breakdown = profile_report(
            run_child(
                systems.modelgate_env,
                [
                    "--model",
                    SEARCH_MODEL,
                    "--token",
                    systems.modelgate.token,
                    "--page-size",
                    str(plan.page_size),
                    "--requests",
                    str(PROFILED_REQUESTS),
                    "--cursors",
                    ",".join(cursor for cursor in pages.modelgate if cursor),
                    "--tag",
                    ",".join(f"{TAG_KEY}:{team}" for team in teams),
                    "--metric",
                    ",".join(METRIC_FILTERS),
                    "--alias",
                    ALIAS,
                ],
            ),
            PROFILED_REQUESTS,
        )
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        # The breakdown explains the figures; a failure to take it does not void them.
        breakdown = [f"the profile of cold reads failed: {exc}"]
    for line in breakdown:
        print(line, flush=True)

    return summary(plan, systems, results, load_at_start, breakdown)


def setup_lines(plan: Plan, systems: Systems, load_at_start: float) -> list[str]:
    """The machine, the database, the software, what was seeded and compared, and how."""
    with psycopg.connect(PG_ADMIN) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        shared_buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
    import django
    import mlflow.version

    return [
        f"machine   : {machine_summary(load_at_start)}",
        f"database  : PostgreSQL {pg_version} on {PG_HOST_PORT} (shared_buffers {shared_buffers}); "
        f"fresh databases {systems.mlflow_db} (MLflow) and {systems.modelgate_db} (ModelGate)",
        f"software  : Python {platform.python_version()}, MLflow {mlflow.version.VERSION} (mlflow server, uvicorn, "
        f"{plan.workers} workers, job execution off, SQLAlchemy pool 4+4 per store), Django {django.get_version()} under gunicorn "
        f"({plan.workers} gthread workers x {plan.threads} threads; for the 'nothing kept' rows a second one "
        "like it with MODELGATE_RENDERED_VERSIONS=0)",
        f"versions  : {plan.versions:,} of one model, tag {TAG_KEY} over {plan.teams} values "
        f"({plan.versions // plan.teams:,} versions each); page size {plan.page_size}; request i asks for page "
        f"i mod {SEARCHED_PAGES} by name, and for the first page of value i mod {plan.teams} by tag",
        f"clients   : 1 and {plan.clients} client threads in this process (a kept-alive http.client connection each); "
        f"MLflow's client (mlflow.register_model) in {plan.clients} processes of its own; "
        f"at most {plan.time_limit:.0f}s per measurement",
        f"seeding   : MLflow versions created through its REST API ({plan.seed_threads} threads); ModelGate's rows "
        "for the same versions bulk-inserted with the ORM, as registration writes them (manifest, digest, "
        "signature, tags; plus 2 run metrics each)",
        "compared  : registration from a source: MLflow model-versions/create vs ModelGate POST "
        "/models/{name}/versions/ {source}; from a run: mlflow.register_model('runs:/<run>/model') vs ModelGate POST "
        "{run_id}; search: MLflow model-versions/search max_results=page size, order_by version_number DESC vs ModelGate "
        "GET /models/{name}/versions/?page_size= (newest first); MLflow registered-models/alias vs "
        "ModelGate GET /models/{name}/aliases/{alias}/",
        "method    : each measurement = its requests in 3 alternating rounds (MLflow then ModelGate, then the other "
        "way round, ...), each after an uncounted warm-up (2 calls on each of workers x threads concurrent clients); latency = request sent to body read; req/s = requests / "
        "summed wall time of the rounds; CPU ms/req = user+system CPU of every process this run started (moto, "
        "mlflow server, gunicorn) and of the PostgreSQL backends of both databases during the rounds, per request "
        "(ModelGate's registration includes the MLflow and S3 work it causes)",
    ]


def summary(plan: Plan, systems: Systems, results: list[Result], load_at_start: float, breakdown: list[str]) -> bool:
    """Print the summary: setup, table, CPU by process, the cold reads' breakdown, ratios
    and verdicts, OVERALL."""
    print("\n" + "=" * 100)
    print("ModelGate vs MLflow - registry benchmark")
    print("=" * 100)
    for line in setup_lines(plan, systems, load_at_start):
        print(line)
    print()
    for line in result_table(results):
        print(line)
    print("(* = stopped by the time limit before all requests were made)")
    print()
    print(
        "CPU ms per request, by process (where the work of a request is done), and the clients' own (not in the table):"
    )
    for r in results:
        if r.ok:
            parts = ", ".join(f"{name} {cpu / r.ok * 1000:.1f}" for name, cpu in sorted(r.cpu_parts.items()) if cpu > 0)
            print(
                f"  {r.what:<20} {r.system:<10} {r.clients} client(s): {parts}; clients {r.client_cpu / r.ok * 1000:.1f}"
            )
    print()
    for line in breakdown:
        print(line)
    print()
    lines, judged = verdicts(results, plan)
    for line in lines:
        print(line)
    for r in results:
        if r.first_error:
            print(f"first error, {r.system} {r.what} ({r.clients} clients): {r.first_error}")
    print()
    if plan.reads_only:
        print("--reads-only: registration was not measured; OVERALL below judges the reads alone")
    print(
        judged.overall(
            "registration from a run judged against mlflow.register_model, from a source against MLflow's bare "
            "create call; reads judged with and without what each process keeps"
        )
    )
    return judged.passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=None, help="versions to seed (default 20,000; 2,000 --quick)")
    parser.add_argument("--quick", action="store_true", help="2,000 versions and fewer requests, for a fast check")
    parser.add_argument("--workers", type=int, default=4, help="server processes for each system (default 4)")
    parser.add_argument(
        "--threads", type=int, default=2, help="threads per gunicorn worker, a database connection each (default 2)"
    )
    parser.add_argument("--clients", type=int, default=8, help="client threads of the concurrent runs (default 8)")
    parser.add_argument("--page-size", type=int, default=100, help="search page size (default 100)")
    parser.add_argument("--seed-threads", type=int, default=8, help="threads creating MLflow versions (default 8)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs (path printed at the end)")
    parser.add_argument(
        "--reads-only",
        action="store_true",
        help="skip both registration measurements (OVERALL then judges the reads alone)",
    )
    args = parser.parse_args()
    plan = plan_from(args)
    if plan.versions < plan.page_size * plan.teams:
        parser.error(f"--versions must be at least {plan.page_size * plan.teams} (a full page for the tag search)")
    isolate_this_process()
    return run_with_stack(lambda stack: run(plan, stack), keep_logs=args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
