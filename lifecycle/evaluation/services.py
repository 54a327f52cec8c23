"""Evaluation jobs that feed the gates, and what their results mean.

- ``evaluation_submit`` queues the evaluator for a candidate and the current champion
  on the same dataset digest;
- ``evaluation_outcome_apply`` (the outcome handler of ``evaluate`` jobs) turns its
  results into the versions' evaluation metrics, stores the deltas, and rechecks the
  candidate's open transitions;
- ``evaluation_needed`` starts an evaluation when a transition's gates ask for one.

Whether an evaluation measures latency and memory: the request says (``measure``), else
the installation (``MODELGATE_EVALUATION_MEASURE``); a model whose policy has a gate that
reads those figures (``max_latency_ms``, ``max_memory_mb``) is measured either way, and the
job's parameters say why (``measure_reason``), so such a gate never waits for a figure no
evaluation will take.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from lifecycle.evaluation.measure import RECORDED
from lifecycle.evaluation.models import Evaluation
from lifecycle.governance.choices import OPEN_TRANSITION_STATUSES
from lifecycle.governance.models import Transition
from lifecycle.governance.rules import MEASURED_RULE_TYPES
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.transitions import transition_request, transitions_recheck_for_version
from lifecycle.jobs.choices import JOB_FINAL_STATES, JobKind, JobState
from lifecycle.jobs.models import Job
from lifecycle.jobs.services import job_submit
from registry.choices import MetricSource, Role, Stage
from registry.errors import DomainError, InvalidInput
from registry.models import Dataset, ModelVersion, RegisteredModel
from registry.permissions import require_role
from registry.services import dataset_digest_refresh, metrics_record

logger = logging.getLogger(__name__)

EVALUATOR = ["python", "-m", "lifecycle.evaluation.evaluator"]


def dataset_params(dataset: Dataset) -> dict[str, Any]:
    """What a job needs to know of a dataset to read it."""
    return {
        "uri": dataset.uri,
        "format": dataset.format,
        "target": dataset.target,
        "digest": dataset.digest,
        "id": dataset.pk,
    }


def model_dataset(model: RegisteredModel) -> Dataset:
    """The model's dataset, or ``InvalidInput`` when it has none with a target column."""
    if not model.dataset_id or not model.dataset.target:
        raise InvalidInput(
            f"model {model.name!r} has no dataset with a target column; set one with PATCH models/{model.name}/",
            details={"dataset": "required"},
        )
    return model.dataset


def evaluation_measuring(*, model: RegisteredModel, measure: bool | None) -> dict[str, Any]:
    """The job parameters that say whether (and why) an evaluation of ``model`` measures
    latency and peak memory.

    ``measure`` is the request's own choice (``None``: the installation's,
    ``MODELGATE_EVALUATION_MEASURE``). A policy gate that reads the figures overrides a
    ``False``: the evaluation measures anyway, with ``measure_reason`` naming the gates,
    rather than leave them failing for want of a figure, or refuse an evaluation the
    other gates need."""
    wanted = settings.MODELGATE_EVALUATION_MEASURE if measure is None else measure
    rules = (model.policy or {}).get("rules") or []
    gates = sorted({rule.get("type") for rule in rules if rule.get("type") in MEASURED_RULE_TYPES})
    params: dict[str, Any] = {"measure": bool(wanted or gates)}
    if gates and not wanted:
        switch = "the request" if measure is False else "MODELGATE_EVALUATION_MEASURE"
        params["measure_reason"] = (
            f"measured although {switch} turns measuring off: the policy's {' and '.join(gates)} "
            f"gate{'s read' if len(gates) > 1 else ' reads'} the figures"
        )
    if "max_memory_mb" in gates:
        params["measure_memory"] = True
    return params


def evaluation_submit(
    *,
    actor: AbstractBaseUser,
    version: ModelVersion,
    request_stage: str | None = None,
    measure: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> Job:
    """Queue an evaluation of the version beside the current champion, on the model's dataset.

    ``measure``: whether to measure latency and peak memory (``None``: the installation's
    default); see ``evaluation_measuring`` for when a gate overrides it."""
    model = version.model
    require_role(actor, model.team, Role.DEVELOPER, action="evaluating a version")
    dataset = model_dataset(model)
    extra = dict(extra or {})
    measuring = evaluation_measuring(model=model, measure=extra.pop("measure", measure))
    versions = [
        {
            "version": version.version,
            "role": "candidate",
            "artifact_uri": version.artifact_uri,
            "digest": version.digest,
        }
    ]
    champion = ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).exclude(pk=version.pk).first()
    if champion is not None:
        versions.append(
            {
                "version": champion.version,
                "role": "champion",
                "artifact_uri": champion.artifact_uri,
                "digest": champion.digest,
            }
        )
    params = {
        "program": "evaluator",
        "model": model.name,
        "task": model.task,
        "primary_metric": model.primary_metric,
        "dataset": dataset_params(dataset),
        "versions": versions,
        "seed": 42,
        "cv_folds": settings.MODELGATE_EVALUATION_CV_FOLDS,
        "bootstrap_rounds": settings.MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS,
        "permutation_repeats": settings.MODELGATE_EVALUATION_PERMUTATION_REPEATS,
        "request_stage": request_stage,
        **extra,
        **measuring,
    }
    return job_submit(
        actor=actor,
        team=model.team,
        kind=JobKind.EVALUATE,
        spec={
            "entrypoint": EVALUATOR,
            "params": params,
            "resources": {"cpus": 1, "memory_mb": 2048},
            "max_attempts": 2,
        },
        model=model,
        version=version,
    )


def evaluation_pending(version: ModelVersion) -> bool:
    """Whether an evaluation job of the version is still to finish."""
    return Job.objects.filter(version=version, kind=JobKind.EVALUATE).exclude(state__in=JOB_FINAL_STATES).exists()


def evaluation_outcome_apply(job: Job) -> None:
    """Record a finished evaluation job's metrics on its versions, recheck the candidate's
    open transitions and request the stage it was evaluated for."""
    if job.state != JobState.SUCCEEDED or (job.spec or {}).get("params", {}).get("program") != "evaluator":
        return
    report = job.result or {}
    digest = report["dataset_digest"]
    dataset = job.model.dataset
    if dataset is not None and dataset.digest != digest:
        # The file changed since the digest was recorded: the new digest is the truth now,
        # and gates compare on it (the champion was evaluated on it in the same job).
        dataset_digest_refresh(dataset=dataset, digest=digest)
    roles = {str(entry["version"]): entry for entry in job.spec["params"]["versions"]}
    champion_number = next((int(v) for v, e in roles.items() if e.get("role") == "champion"), None)
    champion = (
        ModelVersion.objects.filter(model=job.model, version=champion_number).first() if champion_number else None
    )
    candidate: ModelVersion | None = None
    with transaction.atomic():
        for number, result in report.get("evaluations", {}).items():
            version = ModelVersion.objects.get(model=job.model, version=int(number))
            scalars = {
                k: v for k, v in result["metrics"].items() if isinstance(v, int | float) and not isinstance(v, bool)
            }
            figures = result.get("figures") or {}
            scalars.update({k: figures[k] for k in RECORDED if isinstance(figures.get(k), int | float)})
            metrics_record(version=version, metrics=scalars, source=MetricSource.EVALUATION, dataset_digest=digest)
            is_candidate = result.get("role") == "candidate"
            Evaluation.objects.create(
                version=version,
                job=job,
                role=result.get("role", "candidate"),
                dataset_digest=digest,
                primary_metric=report.get("primary_metric", ""),
                metrics=result["metrics"],
                details={k: v for k, v in result.items() if k not in {"metrics", "role"}},
                compared_with=champion if is_candidate else None,
                deltas=report.get("deltas", {}) if is_candidate else {},
                mlflow_run_id=report.get("mlflow_run_id", ""),
                report_uri=report.get("report_uri", ""),
                plots=[p for p in report.get("plots", []) if p.startswith(f"v{number}_")],
            )
            if is_candidate:
                candidate = version
        audit_append(
            actor=None,
            action="version.evaluated",
            object_type="job",
            object_id=job.pk,
            model_name=job.model.name,
            after={
                "versions": sorted(report.get("evaluations", {})),
                "dataset_digest": digest,
                "deltas": report.get("deltas"),
            },
        )
    if candidate is None:
        return
    transitions_recheck_for_version(version=candidate)
    stage = job.spec["params"].get("request_stage")
    if stage and candidate.stage not in (stage, Stage.PRODUCTION):
        if not Transition.objects.filter(
            version=candidate, to_stage=stage, status__in=OPEN_TRANSITION_STATUSES
        ).exists():
            transition_request(version=candidate, to=stage, reason=f"evaluated by job {job.pk}", actor=job.created_by)


def evaluation_needed(*, version: ModelVersion, actor: AbstractBaseUser | None, **_: Any) -> Job | None:
    """Start an evaluation for a transition whose gates need one, unless one is running
    (connected to ``lifecycle.governance.signals.evaluation_wanted``)."""
    if actor is None or not version.model.dataset_id or evaluation_pending(version):
        return None
    try:
        return evaluation_submit(actor=actor, version=version)
    except DomainError as exc:
        logger.info("no automatic evaluation for %s: %s", version, exc)
        return None
