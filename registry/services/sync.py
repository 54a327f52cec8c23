"""Versions registered straight into MLflow, brought into ModelGate's tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from registry import mlflow_gateway
from registry.design_gate import model_accepts_versions_require
from registry.errors import Conflict, DependencyUnavailable, InvalidInput, NotFound
from registry.models import RegisteredModel
from registry.services.validation import TAG_KEY_RE
from registry.services.versions import artifact_facts, version_row_write

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one ``mlflow_sync`` did: models looked at, versions imported, failures by version."""

    models: int = 0
    imported: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def mlflow_sync(*, model_names: list[str] | None = None) -> SyncReport:
    """Bring in versions registered straight into MLflow (``mlflow.register_model``).

    Idempotent: a version already here is left alone; one that fails (its artifact
    unreadable) is reported and tried again on the next run. A model still in design
    accepts no version, imported ones included: each of its new MLflow versions is
    reported as refused, with what its card lacks, and is imported by the first sync
    after its design is completed.
    """
    report = SyncReport()
    models = RegisteredModel.objects.select_related("team", "dataset").order_by("name")
    if model_names:
        models = models.filter(name__in=model_names)
    for model in models:
        report.models += 1
        try:
            remote = mlflow_gateway.model_versions(model.name)
        except NotFound:
            continue
        known = set(model.versions.values_list("version", flat=True))
        for mlflow_version in sorted(remote, key=lambda v: int(v.version)):
            number = int(mlflow_version.version)
            if number in known:
                continue
            label = f"{model.name} v{number}"
            try:
                model_accepts_versions_require(model, action=f"importing {label} from MLflow")
            except Conflict as exc:
                report.failed[label] = str(exc)
                continue
            try:
                uri = mlflow_gateway.model_version_download_uri(model.name, number)
                facts = artifact_facts(uri)
                if mlflow_version.run_id:
                    facts.metrics = mlflow_gateway.run_metrics(mlflow_version.run_id)
                tags = {
                    k: v
                    for k, v in (mlflow_version.tags or {}).items()
                    if not k.startswith("modelgate.") and TAG_KEY_RE.match(k)
                }
                version_row_write(
                    model=model,
                    number=number,
                    facts=facts,
                    source=mlflow_version.source,
                    run_id=mlflow_version.run_id or "",
                    description=mlflow_version.description or "",
                    tags=tags,
                    parent=None,
                    dataset=None,
                    actor=None,
                    action="version.sync",
                )
                report.imported.append(label)
            except (DependencyUnavailable, NotFound, InvalidInput) as exc:
                logger.warning("sync of %s failed: %s", label, exc)
                report.failed[label] = str(exc)
    return report
