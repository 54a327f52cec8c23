"""Where the time of a cold registry read goes: each read through Django's WSGI handler
in one process that keeps nothing rendered (``MODELGATE_RENDERED_VERSIONS=0``), timed
plainly, then profiled and split by layer (Django, DRF, ORM, SQL, serializer, JSON).

Run from the repository root::

    .venv/bin/python bench/registry_profile.py                   # 2,000 versions in a fresh database
    .venv/bin/python bench/registry_profile.py --versions 20000 --requests 100

Standalone it creates a PostgreSQL database on 127.0.0.1:5432, migrates it, inserts
``--versions`` versions of one model in bulk (tags ``team`` over 10 values and
``framework``, metrics ``f1`` and ``roc_auc``) and stores their documents with the
services' own ``version_documents_refresh``, sets an alias, profiles, and drops the
database. ``registry_vs_mlflow.py`` runs the same profile (``--child``) on the database
it has seeded, and prints it with its results.

Each read is made ``--requests`` times without the profiler (wall and CPU time per
request, this process only: PostgreSQL's own work shows in the wall time) and as many
times under ``cProfile``. The profile's self time of every function is put in the layer
of its file; time in C functions (a socket read, a hash) goes to the layer that called
them. Profiling slows Python code more than C code: the shares are where the time goes,
the plain timings what it costs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness.processes import BIN, PG_HOST_PORT, Stack, child_env, run_with_stack  # noqa: E402
from bench.registry_seed import versions_bulk_insert  # noqa: E402

MODEL = "bench-profile"
TEAM = "bench"

# (layer, path fragments), first match wins; the fragments are matched against the
# profiled function's file name with '/' separators.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("SQL: driver and round trip", ("/psycopg/", "/psycopg_c/", "/psycopg_binary/", "/psycopg_pool/")),
    ("ORM: queries built, compiled, rows", ("/django/db/",)),
    (
        "serializer: versions built",
        (
            "/registry/version_documents.py",
            "/registry/api/serializers.py",
            "/rest_framework/serializers.py",
            "/rest_framework/fields.py",
        ),
    ),
    ("JSON encoding", ("/json/", "/rest_framework/renderers.py", "/rest_framework/utils/encoders.py")),
    ("DRF: view, auth, pagination", ("/rest_framework/", "/drf_spectacular/")),
    ("Django: handler, URLs, middleware", ("/django/",)),
    ("ModelGate: views, selectors, documents", ("/registry/", "/config/", "/lifecycle/")),
]
OTHER = "other (standard library)"


def layer_of(filename: str) -> str | None:
    path = filename.replace(os.sep, "/")
    for layer, fragments in LAYERS:
        if any(fragment in path for fragment in fragments):
            return layer
    if filename == "~" or filename.startswith("<"):
        return None  # a C function or generated code: its callers' layer
    return OTHER


def layer_split(profile: cProfile.Profile) -> dict[str, float]:
    """Self time by layer, C functions' time given to their callers' layers."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = defaultdict(float)

    def caller_layer(func: tuple[str, int, str], seen: frozenset) -> str:
        layer = layer_of(func[0])
        if layer is not None:
            return layer
        callers = stats.get(func, (0, 0, 0, 0, {}))[4]
        if not callers or func in seen:
            return OTHER
        # The caller that accounts for most of its time.
        top = max(callers.items(), key=lambda item: item[1][2])[0]
        return caller_layer(top, seen | {func})

    for func, (_, _, tottime, _, callers) in stats.items():
        layer = layer_of(func[0])
        if layer is not None:
            totals[layer] += tottime
            continue
        if not callers:
            totals[OTHER] += tottime
            continue
        for caller, (_, _, share, _) in callers.items():
            totals[caller_layer(caller, frozenset({func}))] += share
    return dict(totals)


def _environ(path: str, query: str, token: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def child(args: argparse.Namespace) -> None:
    """The profile itself, in a process configured by the environment (DATABASE_URL...)."""
    os.environ["MODELGATE_RENDERED_VERSIONS"] = "0"  # nothing kept: every read is a first read
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    from config.warmup import warm_up

    warm_up()
    handler = WSGIHandler()
    base = f"/api/v1/models/{args.model}"
    cursors = [c for c in (args.cursors or "").split(",") if c] or [""]
    reads: dict[str, list[tuple[str, str]]] = {
        "by name": [
            (f"{base}/versions/", f"page_size={args.page_size}" + (f"&cursor={c}" if c else "")) for c in cursors
        ],
        "by tag": [(f"{base}/versions/", f"page_size={args.page_size}&tag={t}") for t in args.tag.split(",")],
        "by metric": [(f"{base}/versions/", f"page_size={args.page_size}&metric={m}") for m in args.metric.split(",")],
        "alias": [(f"{base}/aliases/{args.alias}/", "")],
    }

    def once(path: str, query: str) -> tuple[str, bytes]:
        status: list[str] = []
        body = b"".join(handler(_environ(path, query, args.token), lambda s, h, *a: status.append(s)))
        return (status[0] if status else "no status"), body

    def call(path: str, query: str) -> bytes:
        status, body = once(path, query)
        for _ in range(20):
            # A shared PostgreSQL server can be out of connections for a moment (503).
            if not status.startswith("503"):
                break
            time.sleep(0.5)
            status, body = once(path, query)
        if not status.startswith("200"):
            raise RuntimeError(f"GET {path}?{query}: {status} {body[:300]!r}")
        return body

    rows = []
    for what, targets in reads.items():
        for path, query in targets:  # each once, uncounted: imports, prepared statements
            call(path, query)
        walls, cpus = [], []
        for index in range(args.requests):
            path, query = targets[index % len(targets)]
            wall, cpu = time.perf_counter(), time.process_time()
            call(path, query)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        profile = cProfile.Profile()
        profile.enable()
        for index in range(args.requests):
            path, query = targets[index % len(targets)]
            call(path, query)
        profile.disable()
        split = layer_split(profile)
        total = sum(split.values()) or 1.0
        rows.append(
            {
                "what": what,
                "wall_ms": statistics.median(walls) * 1000,
                "cpu_ms": statistics.mean(cpus) * 1000,
                "shares": {layer: seconds / total for layer, seconds in split.items()},
            }
        )
    print(json.dumps(rows))


def report(rows: list[dict[str, Any]], requests: int) -> list[str]:
    """The breakdown as a table: one column per read, one row per layer."""
    layers = [layer for layer, _ in LAYERS] + [OTHER]
    width = 40
    lines = [
        f"{'cold read (nothing kept), ' + str(requests) + ' requests each':<{width}}"
        + "".join(f"{row['what']:>12}" for row in rows),
        f"{'  wall ms per request (p50, this process)':<{width}}" + "".join(f"{row['wall_ms']:>12.2f}" for row in rows),
        f"{'  CPU ms per request (mean, this process)':<{width}}" + "".join(f"{row['cpu_ms']:>12.2f}" for row in rows),
        "  share of profiled time:",
    ]
    for layer in layers:
        lines.append(
            f"    {layer:<{width - 4}}" + "".join(f"{row['shares'].get(layer, 0) * 100:>11.1f}%" for row in rows)
        )
    return lines


def run_child(env: dict[str, str], argv: list[str], timeout: float = 600) -> list[dict[str, Any]]:
    """Run ``child`` in a fresh interpreter with ``env``; its rows."""
    done = subprocess.run(
        [str(BIN / "python"), str(Path(__file__).resolve()), "--child", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the profile failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def seed(env: dict[str, str], versions: int) -> None:
    """Versions of MODEL inserted in bulk, with their documents stored by the services' code."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections, transaction

    from registry.models import ModelVersion, RegisteredModel, Team
    from registry.services import alias_point

    team = Team.objects.get(name=TEAM)
    user = get_user_model().objects.get(username="bench")
    model = RegisteredModel.objects.create(name=MODEL, team=team, primary_metric="f1", created_by=user)
    manifest = {
        name: {"sha256": f"{index:064x}", "size": 1000 + index}
        for index, name in enumerate(("MLmodel", "model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt"))
    }
    try:
        versions_bulk_insert(
            model=model,
            user=user,
            numbers=list(range(1, versions + 1)),
            tags=lambda number: {"team": f"team-{number % 10}", "framework": "sklearn"},
            source="s3://bench/model",
            artifact_uri="s3://bench/model",
            digest="d" * 64,
            size_bytes=15000,
            manifest=manifest,
            signature={"inputs": [{"type": "double", "name": "amount"}], "outputs": [{"type": "long"}]},
        )
        with transaction.atomic():
            alias_point(model=model, name="bench", version=ModelVersion.objects.get(model=model, version=versions // 2))
    finally:
        connections.close_all()


def standalone(args: argparse.Namespace, stack: Stack) -> bool:
    database = stack.create_database("profile")
    env = child_env(
        {
            "DATABASE_URL": f"postgres://postgres@{PG_HOST_PORT}/{database}",
            "MODELGATE_ENV": "development",
            "MODELGATE_VAR_DIR": str(stack.workdir),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    python = str(BIN / "python")
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
    issued = subprocess.run(
        [python, "manage.py", "issue_token", "bench", "--team", TEAM, "--role", "admin"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = issued.stdout.strip().splitlines()[-1].strip()
    started = time.perf_counter()
    seed(env, args.versions)
    print(f"{args.versions:,} versions with their documents in {time.perf_counter() - started:.1f}s", flush=True)
    import psycopg

    with psycopg.connect(f"postgresql://postgres@{PG_HOST_PORT}/{database}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    rows = run_child(
        env,
        [
            "--model",
            MODEL,
            "--token",
            token,
            "--page-size",
            str(args.page_size),
            "--requests",
            str(args.requests),
            "--tag",
            ",".join(f"team:team-{n}" for n in range(10)),
            "--metric",
            "f1>=0.9,roc_auc>=0.8",
            "--alias",
            "bench",
        ],
    )
    print(f"load average {os.getloadavg()[0]:.1f}")
    for line in report(rows, args.requests):
        print(line)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=50, help="requests per read, timed and profiled (default 50)")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=MODEL, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--cursors", default="", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="team:team-0", help=argparse.SUPPRESS)
    parser.add_argument("--metric", default="f1>=0.9", help=argparse.SUPPRESS)
    parser.add_argument("--alias", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    return run_with_stack(lambda stack: standalone(args, stack), keep_logs=args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
