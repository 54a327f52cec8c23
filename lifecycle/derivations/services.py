"""Derived versions: a job turns version v into a new version whose parent is v.

- ``version_derive`` queues the derivation job (``lifecycle.derivations.deriver``) on a
  worker, with the method's parameters validated first;
- ``derivation_outcome_apply`` (the outcome handler of ``derive`` jobs) registers the
  derived run through the registry's one registration path, with ``parent`` and the
  lineage as MLflow tags, records both versions' scores on the same dataset digest as
  evaluations and the measured latency as the derived version's metrics, moves it to
  ``evaluation`` and requests the stage it was derived for, where the update gates judge it;
- ``derivation_needed`` answers ``derivation_wanted``: a retraining schedule or a
  monitoring alert asks for a method on the production version.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from lifecycle.derivations import methods
from lifecycle.derivations.choices import DerivationMethod, DerivationState
from lifecycle.derivations.models import Derivation
from lifecycle.evaluation.measure import RECORDED
from lifecycle.evaluation.models import Evaluation
from lifecycle.evaluation.services import dataset_params, model_dataset
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.transitions import transition_request
from lifecycle.jobs.choices import JobKind, JobState
from lifecycle.jobs.models import Job
from lifecycle.jobs.services import job_submit
from registry.choices import MetricSource, Role, Stage
from registry.errors import Conflict, DomainError, InvalidInput
from registry.models import ModelVersion, RegisteredModel
from registry.permissions import require_role
from registry.services import metrics_record, model_version_register
from registry.services.datasets import dataset_in_team

logger = logging.getLogger(__name__)

DERIVER = ["python", "-m", "lifecycle.derivations.deriver"]


def lineage_tags(*, parent: ModelVersion, method: str, params: dict[str, Any], job: Job | None) -> dict[str, str]:
    """The tags that carry a derived version's lineage into MLflow's model registry."""
    tags = {
        "modelgate.parent_version": str(parent.version),
        "modelgate.parent_digest": parent.digest,
        "modelgate.derivation.method": method,
        "modelgate.derivation.params": json.dumps(params, sort_keys=True)[:512],
    }
    if job is not None:
        tags["modelgate.job"] = str(job.pk)
    return tags


def _prediction_source(model: RegisteredModel, source: dict[str, Any] | None) -> dict[str, Any] | None:
    """The window of the prediction log an incremental update reads its labelled rows
    from, fixed now, so that a retried job reads the same rows (the model's dataset,
    required by every derivation, gives their columns and classes)."""
    if not source:
        return None
    end = timezone.now()
    return {
        "source": source["source"],
        "model": model.name,
        "start": (end - timedelta(days=int(source["days"]))).isoformat(),
        "end": end.isoformat(),
        "min_rows": int(source["min_rows"]),
    }


def version_derive(
    *,
    version: ModelVersion,
    method: str,
    params: dict[str, Any] | None,
    actor: AbstractBaseUser,
    request_stage: str | None = None,
    reason: str = "",
    priority: int = 0,
    pool: str = "default",
) -> Job:
    """Queue a job deriving a new version from ``version`` by ``method``."""
    model = version.model
    require_role(actor, model.team, Role.DEVELOPER, action="deriving a version")
    dataset = model_dataset(model)
    if method not in DerivationMethod.values:
        raise InvalidInput(
            f"unknown method {method!r}; expected one of {', '.join(DerivationMethod.values)}",
            details={"method": "unknown method"},
        )
    try:
        clean = methods.params_check(method, params)
    except methods.MethodParamsError as exc:
        raise InvalidInput(f"invalid parameters for {method}: {exc}", details=exc.errors) from exc
    if request_stage not in (None, Stage.STAGING, Stage.PRODUCTION):
        raise InvalidInput("request_stage must be staging or production", details={"request_stage": "invalid"})
    if version.stage in (Stage.REJECTED,):
        raise Conflict(f"v{version.version} was rejected; derive from another version", code="rejected_parent")
    if not version.digest:
        raise Conflict(f"v{version.version} has no recorded digest to derive from", code="no_digest")
    new_dataset = None
    new_data = _prediction_source(model, clean.get("data")) if method == DerivationMethod.INCREMENTAL else None
    if method == DerivationMethod.INCREMENTAL and clean.get("dataset"):
        found = dataset_in_team(model.team, clean["dataset"])
        assert found is not None
        if not found.target:
            raise InvalidInput(f"dataset {found.name!r} has no target column", details={"params.dataset": "no target"})
        new_dataset = dataset_params(found)
    spec = {
        "entrypoint": DERIVER,
        "params": {
            "program": "deriver",
            "model": model.name,
            "task": model.task,
            "primary_metric": model.primary_metric,
            "dataset": dataset_params(dataset),
            "new_dataset": new_dataset,
            "new_data": new_data,
            "method": method,
            "method_params": clean,
            "parent": {"version": version.version, "artifact_uri": version.artifact_uri, "digest": version.digest},
            "seed": 42,
            "request_stage": request_stage,
        },
        "resources": {"cpus": 1, "memory_mb": 2048},
        "max_attempts": 2,
    }
    with transaction.atomic():
        job = job_submit(
            actor=actor,
            team=model.team,
            kind=JobKind.DERIVE,
            spec=spec,
            priority=priority,
            pool=pool,
            model=model,
            version=version,
        )
        derivation = Derivation.objects.create(
            model=model,
            parent=version,
            method=method,
            params=clean,
            parent_digest=version.digest,
            job=job,
            reason=reason[:500],
            created_by=actor,
        )
        audit_append(
            actor=actor,
            action="version.derive",
            object_type="version",
            object_id=f"{model.name}/{version.version}",
            model_name=model.name,
            after={"job": job.pk, "derivation": derivation.pk, "method": method, "params": clean},
            reason=reason,
        )
    return job


def _register(job: Job, derivation: Derivation, result: dict[str, Any]) -> ModelVersion:
    parent = derivation.parent
    return model_version_register(
        actor=job.created_by,
        model=job.model,
        run_id=result["run_id"],
        description=f"{derivation.get_method_display()} of v{parent.version} by job {job.pk}",
        tags=lineage_tags(parent=parent, method=derivation.method, params=derivation.params, job=job),
        parent_version=parent.version,
        dataset=job.model.dataset.name if job.model.dataset_id else None,
        request_key=f"job-{job.pk}",
    )


def derivation_outcome_apply(job: Job) -> None:
    """Register a finished derivation's run as a version beside its parent (or record why
    it failed)."""
    params = (job.spec or {}).get("params", {})
    if params.get("program") != "deriver":
        return
    derivation = Derivation.objects.select_related("parent", "model").filter(job=job).first()
    if derivation is None:
        return
    if job.state != JobState.SUCCEEDED or not (job.result or {}).get("run_id"):
        Derivation.objects.filter(pk=derivation.pk).update(state=DerivationState.FAILED)
        return
    result = job.result
    version = _register(job, derivation, result)
    digest = result["dataset_digest"]
    figures = result.get("figures", {})
    with transaction.atomic():
        metrics_record(
            version=version, metrics=result["metrics"], source=MetricSource.EVALUATION, dataset_digest=digest
        )
        metrics_record(
            version=derivation.parent,
            metrics=result["parent_metrics"],
            source=MetricSource.EVALUATION,
            dataset_digest=digest,
        )
        measured = {k: v for k, v in figures.get("derived", {}).items() if k in RECORDED and v is not None}
        # Measured by the job that evaluated it, on the same rows.
        metrics_record(version=version, metrics=measured, source=MetricSource.EVALUATION, dataset_digest=digest)
        primary = job.model.primary_metric
        Evaluation.objects.create(
            version=derivation.parent,
            job=job,
            role="parent",
            dataset_digest=digest,
            primary_metric=primary,
            metrics=result["parent_metrics"],
            details={"figures": figures.get("parent", {})},
        )
        Evaluation.objects.create(
            version=version,
            job=job,
            role="candidate",
            dataset_digest=digest,
            primary_metric=primary,
            metrics=result["metrics"],
            details={"figures": figures.get("derived", {}), "agreement": result.get("agreement", {})},
            compared_with=derivation.parent,
            deltas={k: {"delta": v} for k, v in result.get("deltas", {}).items()},
            mlflow_run_id=result["run_id"],
        )
        Derivation.objects.filter(pk=derivation.pk).update(
            version=version,
            state=DerivationState.REGISTERED,
            dataset_digest=digest,
            metric_deltas=result.get("deltas", {}),
            comparison=figures,
            agreement=result.get("agreement", {}),
            details={**result.get("details", {}), "flavor": result.get("flavor"), "split": result.get("split")},
        )
        audit_append(
            actor=job.created_by,
            action="version.derived",
            object_type="version",
            object_id=f"{job.model.name}/{version.version}",
            model_name=job.model.name,
            after={
                "parent": derivation.parent.version,
                "method": derivation.method,
                "dataset_digest": digest,
                "deltas": result.get("deltas", {}),
                "single_row_speedup": figures.get("single_row_speedup"),
            },
        )
    Job.objects.filter(pk=job.pk).update(result={**result, "version": version.version})
    if version.stage == Stage.TRAINING:
        transition_request(
            version=version, to=Stage.EVALUATION, reason=f"derived by job {job.pk}", actor=job.created_by
        )
    stage = params.get("request_stage")
    if stage:
        transition_request(
            version=version,
            to=stage,
            reason=f"{derivation.method} of v{derivation.parent.version}",
            actor=job.created_by,
        )


def model_derive_production(
    *, model: RegisteredModel, method: str, params: dict[str, Any] | None, actor: AbstractBaseUser, reason: str
) -> Job:
    """Derive from the model's production version (what a schedule or an alert asks for);
    the derived version is requested for production, through the gates."""
    production = ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).first()
    if production is None:
        raise Conflict(f"model {model.name!r} has no production version to update", code="no_production")
    return version_derive(
        version=production, method=method, params=params, actor=actor, request_stage=Stage.PRODUCTION, reason=reason
    )


def derivation_needed(
    *,
    model: RegisteredModel,
    method: str,
    params: dict[str, Any] | None,
    actor: AbstractBaseUser,
    reason: str,
    strict: bool = False,
    **_: Any,
) -> Job | None:
    """Receiver of ``lifecycle.governance.signals.derivation_wanted``: start the update a
    schedule or an alert asks for, or log why it cannot start (``strict``: raise it, for
    a caller that records the refusal, as an alert's action does)."""
    try:
        return model_derive_production(model=model, method=method, params=params, actor=actor, reason=reason)
    except DomainError as exc:
        if strict:
            raise
        logger.warning("the %s update of %s asked for (%s) did not start: %s", method, model, reason, exc)
        return None
