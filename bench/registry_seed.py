"""What ``registry_vs_mlflow.py`` registers and reads: the model directory on S3, MLflow
runs with logged models, and the versions of the searched model in both systems.

The searched versions are created in MLflow through its REST API (most of a full run's
time); ModelGate's rows for the same version numbers are inserted in bulk with the ORM,
as registration writes them, with the artifact facts computed by registration's own code.
"""

from __future__ import annotations

import http.client
import os
import pickle
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.harness.client import Session
from bench.harness.processes import PG_HOST_PORT
from bench.registry_systems import Mlflow, Systems
from registry import quickack  # no Django in it

SEARCH_MODEL = "bench-search"
TAG_KEY = "team"
RUN_EXPERIMENT = "bench-runs"


def small_model_files() -> dict[str, bytes]:
    """A small MLflow-style model directory (about 20 kB), the same bytes every run."""
    rng = random.Random(7)
    weights = {"coef": [[rng.gauss(0, 1) for _ in range(32)] for _ in range(40)], "intercept": [0.1, -0.2]}
    mlmodel = """artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.9
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.0
mlflow_version: 3.1.0
model_size_bytes: 20000
signature:
  inputs: '[{"type": "double", "name": "amount", "required": true}, {"type": "double",
    "name": "age_days", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
"""
    return {
        "MLmodel": mlmodel.encode(),
        "model.pkl": pickle.dumps(weights, protocol=5),
        "conda.yaml": b"channels: [conda-forge]\ndependencies: [python=3.11.9, pip, {pip: [mlflow==3.1.0, scikit-learn==1.5.0]}]\n",
        "python_env.yaml": b"python: 3.11.9\nbuild_dependencies: [pip]\ndependencies: [-r requirements.txt]\n",
        "requirements.txt": b"mlflow==3.1.0\nscikit-learn==1.5.0\n",
    }


def log_runs(systems: Systems, count: int) -> list[str]:
    """``count`` MLflow runs as a data scientist logs them: a scikit-learn classifier
    trained on the breast cancer dataset, its metrics, and the model logged with
    ``mlflow.sklearn.log_model`` (an MLflow 3 logged model, artifacts on the moto S3)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from mlflow.utils.logging_utils import disable_logging
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score

    os.environ["MLFLOW_S3_ENDPOINT_URL"] = systems.s3_url
    mlflow.set_tracking_uri(systems.mlflow.url)
    quickack.install_for_mlflow()  # as in ModelGate's processes: no delayed-acknowledgement waits
    mlflow.set_experiment(RUN_EXPERIMENT)
    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    started = time.perf_counter()
    run_ids = []
    for index in range(count):
        classifier = LogisticRegression(C=0.5 + index / count, max_iter=5000).fit(features, labels)
        predicted = classifier.predict(features)
        with mlflow.start_run() as run:
            mlflow.log_metrics(
                {
                    "f1": f1_score(labels, predicted),
                    "roc_auc": roc_auc_score(labels, classifier.predict_proba(features)[:, 1]),
                }
            )
            mlflow.sklearn.log_model(
                classifier,
                name="model",
                signature=infer_signature(features.head(5), predicted[:5]),
                pip_requirements=["scikit-learn", "mlflow"],
            )
        run_ids.append(run.info.run_id)
    disable_logging()  # MLflow's client prints lines per registration (log_model re-enables them)
    print(f"  {count} runs logged with mlflow.sklearn.log_model in {time.perf_counter() - started:.0f}s", flush=True)
    return run_ids


def seed_mlflow(mlflow: Mlflow, source: str, *, versions: int, teams: int, threads: int) -> dict[int, str]:
    """``versions`` versions of SEARCH_MODEL through MLflow's REST API, in ``threads`` threads,
    tag TAG_KEY spread over ``teams`` values.

    Returns ``{version number: team tag}`` so that ModelGate's rows carry the same tags.
    """
    with Session() as session:
        mlflow.create_model(session, SEARCH_MODEL)
    lock = threading.Lock()
    next_index = 0
    tags_by_version: dict[int, str] = {}
    failures: list[str] = []
    started = time.perf_counter()
    step = max(1, versions // 10)

    def worker() -> None:
        nonlocal next_index
        with Session() as session:
            while True:
                with lock:
                    if next_index >= versions or len(failures) > 20:
                        return
                    index = next_index
                    next_index += 1
                team = f"team-{index % teams}"
                for attempt in range(5):
                    try:
                        number = mlflow.create_version(
                            session, SEARCH_MODEL, source, {TAG_KEY: team, "framework": "sklearn"}
                        )
                        break
                    except (RuntimeError, OSError, http.client.HTTPException) as exc:
                        # Concurrent creates can collide on the next version number.
                        if attempt == 4:
                            with lock:
                                failures.append(str(exc))
                            return
                        time.sleep(0.05 * (attempt + 1))
                with lock:
                    tags_by_version[number] = team
                    done = len(tags_by_version)
                if done % step == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"    MLflow: {done:,}/{versions:,} versions ({rate:,.0f}/s)", flush=True)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if failures:
        raise RuntimeError(f"seeding MLflow failed {len(failures)} times; first: {failures[0]}")
    elapsed = time.perf_counter() - started
    print(
        f"  MLflow: {len(tags_by_version):,} versions created through its REST API in {elapsed:.0f}s "
        f"({len(tags_by_version) / elapsed:,.0f}/s, {threads} threads)",
        flush=True,
    )
    return tags_by_version


def versions_bulk_insert(
    *,
    model: Any,
    user: Any,
    numbers: list[int],
    tags: Callable[[int], dict[str, str]],
    source: str,
    artifact_uri: str,
    digest: str,
    size_bytes: int,
    manifest: dict[str, Any],
    signature: dict[str, Any] | None,
    batch: int = 2000,
) -> None:
    """Version rows of ``model`` numbered ``numbers``, inserted in bulk with the ORM (Django
    set up by the caller), 2,000 to a transaction: each with ``tags(number)``, ``f1`` and
    ``roc_auc`` values with source ``run`` (as a version registered from a run has), and
    its stored document, written in the same transaction as registration writes it."""
    from django.db import transaction
    from django.utils import timezone

    from registry.choices import MetricSource
    from registry.models import ModelVersion, VersionMetric, VersionTag
    from registry.services import version_documents_refresh

    rng = random.Random(11)
    for offset in range(0, len(numbers), batch):
        with transaction.atomic():
            now = timezone.now()
            rows = ModelVersion.objects.bulk_create(
                ModelVersion(
                    model=model,
                    version=number,
                    source=source,
                    run_id="",
                    artifact_uri=artifact_uri,
                    digest=digest,
                    size_bytes=size_bytes,
                    manifest=manifest,
                    signature=signature,
                    description="",
                    created_by=user,
                )
                for number in numbers[offset : offset + batch]
            )
            VersionTag.objects.bulk_create(
                VersionTag(version=row, key=key, value=value)
                for row in rows
                for key, value in tags(row.version).items()
            )
            VersionMetric.objects.bulk_create(
                VersionMetric(
                    version=row,
                    name=name,
                    value=round(rng.uniform(0.7, 0.99), 4),
                    source=MetricSource.RUN,
                    recorded_at=now,
                )
                for row in rows
                for name in ("f1", "roc_auc")
            )
            version_documents_refresh(versions=rows)


def seed_modelgate(systems: Systems, tags_by_version: dict[int, str]) -> dict[str, Any]:
    """ModelGate's rows for the same versions, inserted in bulk with the ORM.

    Each row is what ``POST /models/{name}/versions/`` writes for this source: the
    artifact's manifest, digest, size and signature computed by the same code
    (``registry.services.artifact_facts``), the same tags, created_by; plus two metric
    values with source ``run``, as a version registered from a run carries them, and the
    version's stored document (``version_documents_refresh``, as every write stores it).
    No audit records: the read path does not read them.
    """
    os.environ.update(systems.modelgate_env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from registry.models import RegisteredModel
    from registry.services import artifact_facts

    started = time.perf_counter()
    facts = artifact_facts(systems.source)
    try:
        versions_bulk_insert(
            model=RegisteredModel.objects.get(name=SEARCH_MODEL),
            user=get_user_model().objects.get(username="bench"),
            numbers=sorted(tags_by_version),
            tags=lambda number: {TAG_KEY: tags_by_version[number], "framework": "sklearn"},
            source=systems.source,
            artifact_uri=facts.uri,
            digest=facts.digest,
            size_bytes=facts.size,
            manifest=facts.manifest,
            signature=facts.signature,
        )
    finally:
        connections.close_all()
    elapsed = time.perf_counter() - started
    print(
        f"  ModelGate: {len(tags_by_version):,} version rows (+ tags, metrics, stored documents) bulk-inserted "
        f"in {elapsed:.1f}s",
        flush=True,
    )
    return {"digest": facts.digest, "files": len(facts.manifest), "size": facts.size}


def analyze(*databases: str) -> None:
    """Fresh planner statistics on both databases after the bulk load (same for both)."""
    for database in databases:
        with psycopg.connect(f"postgresql://postgres@{PG_HOST_PORT}/{database}", autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
