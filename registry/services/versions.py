"""Model versions: what registration learns from an artifact, the version row written
once MLflow has its version, and the metric values recorded for it.

External systems are called before the database transaction that records their result,
so a failure of MLflow or S3 leaves nothing half-written here; an MLflow version whose
database row was never written is picked up by ``mlflow_sync``, never lost.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from registry import mlflow_gateway, storage
from registry.choices import MetricSource, Role
from registry.design_gate import model_accepts_versions_require
from registry.errors import InvalidInput, NotFound
from registry.models import Dataset, ModelVersion, RegisteredModel, VersionMetric, VersionTag
from registry.permissions import require_role
from registry.services.changes import change_announce, tags_replace
from registry.services.datasets import dataset_in_team
from registry.services.validation import RUN_ID_RE, tags_validate
from registry.version_documents import version_documents_refresh

_YAML_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _signature_from_mlmodel(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        # libyaml's safe loader where it is built in: ten times the pure-Python one.
        document = yaml.load(raw, Loader=_YAML_SAFE_LOADER) or {}
    except yaml.YAMLError:
        return None
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(signature, dict):
        return None
    parsed: dict[str, Any] = {}
    for part in ("inputs", "outputs", "params"):
        value = signature.get(part)
        if isinstance(value, str):
            try:
                parsed[part] = json.loads(value)
            except json.JSONDecodeError:
                parsed[part] = value
        elif value is not None:
            parsed[part] = value
    return parsed or None


@dataclass
class ArtifactFacts:
    """What registration learns by reading an artifact once."""

    uri: str
    manifest: dict[str, Any]
    digest: str
    size: int
    signature: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def artifact_facts(uri: str) -> ArtifactFacts:
    """Read the artifact at ``uri`` once: its manifest (a sha256 and size per file),
    digest, total size and the signature its ``MLmodel`` declares."""
    scan = storage.artifact_scan(uri, keep={"MLmodel"})
    manifest = scan.manifest
    signature = _signature_from_mlmodel(scan.kept["MLmodel"]) if "MLmodel" in scan.kept else None
    return ArtifactFacts(uri, manifest, storage.manifest_digest(manifest), storage.manifest_size(manifest), signature)


def metrics_record(
    *,
    version: ModelVersion,
    metrics: dict[str, float],
    source: str,
    dataset_digest: str = "",
    at: datetime | None = None,
) -> None:
    """Record metric values as the version's current ones, keeping the earlier values."""
    if not metrics:
        return
    with transaction.atomic():
        _metric_rows_insert(version=version, metrics=metrics, source=source, dataset_digest=dataset_digest, at=at)
        version_documents_refresh(versions=[version])


def _metric_rows_insert(
    *, version: ModelVersion, metrics: dict[str, float], source: str, dataset_digest: str, at: datetime | None
) -> None:
    at = at or timezone.now()
    VersionMetric.objects.filter(version=version, name__in=list(metrics), is_current=True).update(is_current=False)
    rows = []
    for name, value in metrics.items():
        rows.append(
            VersionMetric(
                version=version,
                name=name,
                value=float(value),
                source=source,
                dataset_digest=dataset_digest,
                recorded_at=at,
            )
        )
    VersionMetric.objects.bulk_create(rows)


def _parent_in_model(model: RegisteredModel, parent_version: Any) -> ModelVersion | None:
    if parent_version in (None, ""):
        return None
    try:
        number = int(parent_version)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            "parent_version must be a version number", details={"parent_version": "not a number"}
        ) from exc
    parent = ModelVersion.objects.filter(model=model, version=number).first()
    if parent is None:
        raise InvalidInput(
            f"model {model.name!r} has no version {number}", details={"parent_version": "unknown version"}
        )
    return parent


def version_snapshot(version: ModelVersion) -> dict[str, Any]:
    """A version as the audit trail records it before and after a change."""
    return {
        "model": version.model.name,
        "version": version.version,
        "stage": version.stage,
        "status": version.status,
        "digest": version.digest,
        "run_id": version.run_id,
        "source": version.source,
    }


def version_row_write(
    *,
    model: RegisteredModel,
    number: int,
    facts: ArtifactFacts,
    source: str,
    run_id: str,
    description: str,
    tags: dict[str, str],
    parent: ModelVersion | None,
    dataset: Dataset | None,
    actor: AbstractBaseUser | None,
    action: str,
) -> ModelVersion:
    """Insert the version row (or complete the one ``mlflow_sync`` inserted first)."""
    with transaction.atomic():
        version, created = ModelVersion.objects.select_for_update().get_or_create(
            model=model,
            version=number,
            defaults={
                "source": source,
                "run_id": run_id,
                "artifact_uri": facts.uri,
                "digest": facts.digest,
                "size_bytes": facts.size,
                "manifest": facts.manifest,
                "signature": facts.signature,
                "description": description,
                "parent": parent,
                "dataset": dataset,
                "created_by": actor,
            },
        )
        if not created and actor is not None:
            version.description = description or version.description
            version.parent = parent or version.parent
            version.dataset = dataset or version.dataset
            version.created_by = version.created_by or actor
            version.save()
        if created:
            # A new row has no tags or metrics yet: inserted in one statement each.
            VersionTag.objects.bulk_create(VersionTag(version=version, key=k, value=v) for k, v in tags.items())
            _metric_rows_insert(
                version=version,
                metrics=facts.metrics or {},
                source=MetricSource.RUN,
                dataset_digest=dataset.digest if dataset else "",
                at=None,
            )
        elif tags:
            tags_replace(VersionTag, "version", version, {**dict(version.tag_rows.values_list("key", "value")), **tags})
        if created:
            change_announce(action, actor=actor, target=version, before=None, after=version_snapshot(version))
        version_documents_refresh(versions=[version])
    return version


def model_version_register(
    *,
    actor: AbstractBaseUser,
    model: RegisteredModel,
    run_id: str | None = None,
    source: str | None = None,
    artifact_path: str | None = None,
    description: str = "",
    tags: Any = None,
    parent_version: Any = None,
    dataset: str | None = None,
    request_key: str | None = None,
) -> ModelVersion:
    """Register a version from an MLflow run or from an artifact URI.

    Reads the artifact once (digest, manifest, signature), creates the MLflow model
    version with the same number, then records everything in one transaction.
    """
    require_role(actor, model.team, Role.DEVELOPER, action="registering a version")
    model_accepts_versions_require(model, action="registering a version")
    if bool(run_id) == bool(source):
        raise InvalidInput(
            "give exactly one of run_id or source",
            details={"run_id": "give run_id or source", "source": "give run_id or source"},
        )
    clean_tags = tags_validate(tags)
    parent = _parent_in_model(model, parent_version)
    dataset_obj = dataset_in_team(model.team, dataset)
    retry_possible = request_key is not None
    request_key = request_key or uuid.uuid4().hex
    model_id: str | None = None
    if run_id:
        if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
            raise InvalidInput(f"run_id {run_id!r} is not an MLflow run id", details={"run_id": "malformed"})
        found = mlflow_gateway.run_model(run_id, artifact_path=artifact_path)
        model_id = found.model_id
        mlflow_source = found.source
        facts = artifact_facts(found.source)
        facts.metrics = found.metrics
        recorded_source = f"runs:/{run_id}"
    else:
        assert source is not None
        if not isinstance(source, str) or len(source) > 1024:
            raise InvalidInput("source must be a URI of at most 1024 characters", details={"source": "invalid"})
        # Checked before reading: any other scheme would be fetched through MLflow first.
        if not storage.is_s3(source) and storage.local_path(source) is None:
            raise InvalidInput(
                f"source {source!r} must be an s3:// URI or a path on the server",
                details={"source": "unsupported scheme"},
            )
        storage.local_source_check(source, field="source")
        try:
            facts = artifact_facts(source)
        except NotFound as exc:
            raise InvalidInput(f"no artifact at {source!r}", details={"source": "no artifact there"}) from exc
        except InvalidInput as exc:
            raise InvalidInput(f"source: {exc.message}", details={"source": "invalid"}) from exc
        recorded_source = source
        if storage.is_s3(source):
            mlflow_source = source
        else:
            run_id, mlflow_source = mlflow_gateway.source_import(
                Path(storage.local_path(source) or source), model_name=model.name
            )
            facts.uri = mlflow_source
    created = mlflow_gateway.model_version_create(
        name=model.name,
        source=mlflow_source,
        run_id=run_id,
        model_id=model_id,
        request_key=request_key,
        tags=clean_tags,
        adopt=retry_possible,
    )
    return version_row_write(
        model=model,
        number=int(created.version),
        facts=facts,
        source=recorded_source,
        run_id=run_id or "",
        description=description or "",
        tags=clean_tags,
        parent=parent,
        dataset=dataset_obj,
        actor=actor,
        action="version.register",
    )
