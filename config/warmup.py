"""What a server process does once when it starts rather than in its first requests.

Without it, the first request each gunicorn worker serves pays for importing every
view and the MLflow client and for building the S3 client: half a second, which shows
in every latency percentile of a freshly started or recycled worker. Nothing here
connects anywhere; a dependency that is down is found by the request that needs it.
What is loaded then is frozen for the garbage collector.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import sys

from django.conf import settings

log = logging.getLogger(__name__)

# Modules MLflow's client tries to import on every call to learn whether it runs on
# Databricks, in Spark or in a notebook; where one is not installed, each try searches
# the whole import path again (about 2 ms of stat calls per MLflow call).
MLFLOW_PROBED_MODULES = ("dbruntime", "IPython", "pyspark")


def absent_modules_remembered(names: tuple[str, ...] = MLFLOW_PROBED_MODULES) -> list[str]:
    """Mark the ``names`` that are not installed as absent in ``sys.modules``, so that
    importing one fails at once (``ModuleNotFoundError``, as before) instead of after a
    search. Installed ones are left alone. Returns the names marked."""
    marked = []
    for name in names:
        if name in sys.modules:
            continue
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]
            marked.append(name)
    return marked


def warm_up() -> None:
    from django.urls import get_resolver

    from registry import mlflow_gateway, storage

    get_resolver().url_patterns  # noqa: B018 (imports every view module)
    absent_modules_remembered()
    try:
        mlflow = mlflow_gateway.client()
        if settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://")):
            # Resolving the registry store scans the installed plugins' entry points (tens
            # of ms) on a client's first registry call; for a tracking server it does no
            # I/O (a database store would open its database here).
            mlflow._get_registry_client()
        if storage.is_s3(settings.MODELGATE_ARTIFACT_ROOT) or settings.AWS_ENDPOINT_URL:
            storage.s3_client()
    except Exception:  # the request that needs the client reports the real error
        log.warning("warming up the MLflow and S3 clients failed", exc_info=True)
    # What is loaded by now lives as long as the process: out of the garbage collector's
    # way, so that its full passes over the heap (tens of ms with MLflow, boto3 and
    # Django loaded) no longer land in the middle of requests.
    gc.collect()
    gc.freeze()
