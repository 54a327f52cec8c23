"""What a server process does once when it starts rather than in its first requests.

Without it, the first request each gunicorn worker serves pays for importing every
view and the MLflow client and for building the S3 client: half a second, which shows
in every latency percentile of a freshly started or recycled worker. Nothing here
connects anywhere; a dependency that is down is found by the request that needs it.
What is loaded then is frozen for the garbage collector.
"""

from __future__ import annotations

import gc
import logging

from django.conf import settings

log = logging.getLogger(__name__)


def warm_up() -> None:
    from django.urls import get_resolver

    from registry import mlflow_gateway, storage

    get_resolver().url_patterns  # noqa: B018 (imports every view module)
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
