"""Backup size and restore time of an installation with 10,000 versions.

The installation is the production layout on one machine: PostgreSQL for ModelGate
and for MLflow's registry (a SQL store of its own), artifacts on a moto S3 server. It
is seeded with ``--versions`` versions over ``--models`` models, each version with its
own small artifact on S3, two tags, a metric, an MLflow model version and an audit
record, and a production history per model. Then, each timed as the operator runs it:

- ``manage.py backup DEST`` on the seeded installation: time and size on disk;
- ``manage.py restore DEST`` into a second, empty installation (its own databases and
  bucket; the time includes ``migrate``);
- ``manage.py verify`` there: every artifact re-read against its digest, the audit chain.

Usage: ``python bench/backup.py [--versions 10000] [--models 10] [--keep-logs] [--profile]``;
``--profile`` runs each command under cProfile, its statistics kept with the logs.
Needs PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust) and ``moto_server`` in the
virtualenv. It reports figures and has no targets: it exits 0 when every step succeeded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3

from bench.harness.processes import (
    BIN,
    PG_HOST_PORT,
    REPO,
    Stack,
    child_env,
    free_port,
    isolate_this_process,
    port_open,
    run_with_stack,
)


def _installation_env(stack: Stack, label: str, s3_url: str) -> dict[str, str]:
    database = stack.create_database(label)
    mlflow_database = stack.create_database(f"{label}_mlflow")
    return child_env(
        {
            "DATABASE_URL": f"postgres://postgres@{PG_HOST_PORT}/{database}",
            "MLFLOW_TRACKING_URI": f"postgresql+psycopg://postgres@{PG_HOST_PORT}/{mlflow_database}",
            "MODELGATE_ARTIFACT_ROOT": f"s3://bench-{label}/root",
            "AWS_ENDPOINT_URL": s3_url,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "MODELGATE_VAR_DIR": str(stack.workdir / f"var-{label}"),
            "MODELGATE_ENV": "development",
            "LOG_LEVEL": "WARNING",
            # The machine's PostgreSQL is shared: a few connections per process at most.
            "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "4",
            "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "0",
        }
    )


def _manage(stack: Stack, env: dict[str, str], *args: str, profile: bool = False) -> tuple[float, str]:
    """Run one ``manage.py`` command as the operator does; with ``profile``, under
    cProfile, its statistics written to ``<workdir>/<command>.prof``."""
    python = (
        [sys.executable, "-m", "cProfile", "-o", str(stack.workdir / f"{args[0]}.prof")]
        if profile
        else [sys.executable]
    )
    started = time.perf_counter()
    done = subprocess.run(
        [*python, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _load() -> str:
    """The machine's load average (1, 5, 15 minutes), printed with each figure: the
    benchmark shares its cores with whatever else runs."""
    return "load " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(stack: Stack, *, versions: int, models: int, profile: bool = False) -> bool:
    isolate_this_process()
    port = free_port()
    moto = stack.start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], child_env({}))
    stack.wait_ready("moto", moto, lambda: port_open(port), timeout=60)
    s3_url = f"http://127.0.0.1:{port}"
    source = _installation_env(stack, "source", s3_url)
    target = _installation_env(stack, "target", s3_url)
    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1").create_bucket(Bucket="bench-target")

    print(f"seeding {versions} versions over {models} models ... ({_load()})", flush=True)
    migrate_seconds, _ = _manage(stack, source, "migrate", "--verbosity", "0")
    started = time.perf_counter()
    seeded = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--seed", str(versions), "--models", str(models)],
        cwd=REPO,
        env=source,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if seeded.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{seeded.stderr[-3000:]}")
    print(
        f"  migrate {migrate_seconds:.1f}s, seed {time.perf_counter() - started:.1f}s: {seeded.stdout.strip()} ({_load()})",
        flush=True,
    )

    backup = stack.workdir / "backup"
    backup_seconds, backup_line = _manage(stack, source, "backup", str(backup), profile=profile)
    backup_load = _load()
    sizes = {
        "database.jsonl": (backup / "database.jsonl").stat().st_size,
        "artifacts/": _size(backup / "artifacts"),
        "mlflow.json": (backup / "mlflow.json").stat().st_size,
    }
    total = _size(backup)
    print(f"backup : {backup_seconds:7.1f} s  {backup_line} ({backup_load})", flush=True)
    print(f"  size : {total / 1e6:7.1f} MB in all; " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    restore_seconds, restore_line = _manage(stack, target, "restore", str(backup), profile=profile)
    print(f"restore: {restore_seconds:7.1f} s  {restore_line} ({_load()})", flush=True)
    verify_seconds, verify_line = _manage(stack, target, "verify", profile=profile)
    print(f"verify : {verify_seconds:7.1f} s  {verify_line} ({_load()})", flush=True)
    return True


# --- seeding (runs in a process of its own, with the source installation's settings) ---------


def seed(*, versions: int, models: int) -> None:
    import hashlib
    import random
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from lifecycle.governance.models import ProductionRecord
    from lifecycle.governance.services.audit import audit_append
    from registry import mlflow_gateway, storage
    from registry.choices import Role, Stage
    from registry.models import Alias, ModelVersion, VersionMetric, VersionTag
    from registry.services import model_create, team_ensure
    from registry.services.teams import membership_set

    actor = get_user_model().objects.create_user("bench-owner")
    team = team_ensure(name="bench")
    membership_set(team=team, user=actor, role=Role.ADMIN)
    bucket = storage.parse_s3(settings.MODELGATE_ARTIFACT_ROOT).bucket
    client = storage.s3_client()
    client.create_bucket(Bucket=bucket)
    names = [f"bench-model-{index:02d}" for index in range(models)]
    rows = {name: model_create(actor=actor, name=name, team=team, primary_metric="f1") for name in names}
    per_model = {name: range(index, versions, models) for index, name in enumerate(names)}

    def artifact(name: str, index: int) -> dict:
        rng = random.Random(f"{name}/{index}")
        files = {"MLmodel": b"artifact_path: model\nflavors: {}\n", "model.pkl": rng.randbytes(2048)}
        key = f"root/models/{name}/{index}"
        for relative, data in files.items():
            client.put_object(Bucket=bucket, Key=f"{key}/{relative}", Body=data, **storage.sse_arguments())
        manifest = {r: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for r, d in files.items()}
        return {"uri": f"s3://{bucket}/{key}", "manifest": manifest}

    def mlflow_model(name: str) -> dict[int, dict]:
        mlflow_gateway.registered_model_ensure(name)
        made = {}
        for index in range(1, len(per_model[name]) + 1):
            made[index] = artifact(name, index)
            mlflow_gateway.client()._create_model_version(
                name=name, source=made[index]["uri"], tags={"team": "bench"}, await_creation_for=0
            )
        return made

    mlflow_gateway.registry_names(limit=1)  # creates MLflow's tables once, before the threads
    with ThreadPoolExecutor(max_workers=8) as pool:
        artifacts = dict(zip(names, pool.map(mlflow_model, names), strict=True))

    now = timezone.now()
    for name in names:
        model = rows[name]
        count = len(per_model[name])
        objects = [
            ModelVersion(
                model=model,
                version=index,
                stage=Stage.PRODUCTION if index == count else Stage.ARCHIVED,
                run_id="",
                source=artifacts[name][index]["uri"],
                artifact_uri=artifacts[name][index]["uri"],
                digest=storage.manifest_digest(artifacts[name][index]["manifest"]),
                size_bytes=storage.manifest_size(artifacts[name][index]["manifest"]),
                manifest=artifacts[name][index]["manifest"],
                created_by=actor,
            )
            for index in range(1, count + 1)
        ]
        created = ModelVersion.objects.bulk_create(objects, batch_size=1000)
        VersionTag.objects.bulk_create(
            [VersionTag(version=v, key=k, value=f"{k}-{v.version}") for v in created for k in ("team", "dataset")],
            batch_size=2000,
        )
        VersionMetric.objects.bulk_create(
            [
                VersionMetric(version=v, name="f1", value=0.8 + (v.version % 100) / 1000, source="run", recorded_at=now)
                for v in created
            ],
            batch_size=2000,
        )
        for version in created:
            audit_append(
                actor=actor,
                action="version.register",
                object_type="model_version",
                object_id=f"{name}/{version.version}",
                model_name=name,
                after={"version": version.version, "digest": version.digest},
            )
        spans = created[-3:]
        for position, version in enumerate(spans):
            ProductionRecord.objects.create(
                model=model,
                version=version,
                started_at=now - timedelta(days=len(spans) - position),
                ended_at=None if position == len(spans) - 1 else now - timedelta(days=len(spans) - position - 1),
                ended_reason="" if position == len(spans) - 1 else "replaced",
                started_by=actor,
            )
        Alias.objects.create(model=model, name="champion", version=created[-1])
        mlflow_gateway.alias_set(name, "champion", created[-1].version)
    print(f"{ModelVersion.objects.count()} versions, {len(names)} models")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="run backup, restore and verify under cProfile (kept with the logs)"
    )
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(versions=args.seed, models=args.models)
        return 0
    return run_with_stack(
        lambda stack: run(stack, versions=args.versions, models=args.models, profile=args.profile),
        keep_logs=args.keep_logs or args.profile,
    )


if __name__ == "__main__":
    sys.exit(main())
