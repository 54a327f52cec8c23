"""The prediction log's store as the settings configure it, for the services, selectors
and the serving gateway (which has Django's settings but asks the database nothing)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from functools import lru_cache

from django.conf import settings

from lifecycle.monitoring.prediction_log import PiiMasker
from lifecycle.monitoring.prediction_store import PredictionStore
from registry import storage
from registry.models import RegisteredModel


def prediction_log_root() -> str:
    """Where the log lives: ``MODELGATE_PREDICTION_LOG_ROOT``, else beside the artifacts."""
    configured = settings.MODELGATE_PREDICTION_LOG_ROOT
    return configured or f"{str(settings.MODELGATE_ARTIFACT_ROOT).rstrip('/')}/prediction-log"


def pii_key() -> bytes:
    """The key of the hash that replaces personal data."""
    configured = settings.MODELGATE_PII_KEY
    if configured:
        return configured.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"modelgate prediction log pii", hashlib.sha256).digest()


@lru_cache(maxsize=8)
def _store(
    root: str, endpoint: str | None, region: str, key: bytes, sse: tuple[tuple[str, str], ...]
) -> PredictionStore:
    return PredictionStore(
        root,
        masker=PiiMasker(key),
        s3_endpoint=endpoint,
        region=region,
        sse=dict(sse),
        s3_client=storage.s3_client() if storage.is_s3(root) else None,
    )


def prediction_store() -> PredictionStore:
    """The store of the current settings (one per root, endpoint, key and server-side
    encryption: ``MODELGATE_S3_SSE`` applies to the log's files as to artifacts)."""
    sse = tuple(sorted(storage.sse_arguments().items()))
    return _store(prediction_log_root(), settings.AWS_ENDPOINT_URL, settings.AWS_DEFAULT_REGION, pii_key(), sse)


def pii_columns(model: RegisteredModel) -> tuple[str, ...]:
    """The columns the model's policy marks as personal data."""
    policy = model.policy if isinstance(model.policy, Mapping) else {}
    return tuple(str(c) for c in policy.get("pii") or ())
