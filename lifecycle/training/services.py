"""Training jobs and the update stage's retraining.

- ``training_submit`` queues the built-in scikit-learn trainer (or a sweep of it);
  ``training_outcome_apply`` (the outcome handler of ``train`` and ``retrain`` jobs)
  registers a successful run as a new version (lineage: parent version, dataset digest,
  git commit), moves it to ``evaluation`` and has it evaluated; a sweep keeps its best.
- ``model_retrain`` retrains the production version's recipe on the latest data, and
  ``retrains_due`` runs the cron-like retraining schedules (a schedule naming a
  derivation method asks the update stage for it through ``derivation_wanted``).
"""

from __future__ import annotations

import itertools
import logging
import random
from datetime import datetime
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from lifecycle.evaluation.services import dataset_params, evaluation_submit, model_dataset
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.transitions import transition_request
from lifecycle.governance.signals import derivation_wanted
from lifecycle.jobs.choices import JOB_FINAL_STATES, JobKind, JobState
from lifecycle.jobs.models import Job
from lifecycle.jobs.services import job_submit
from lifecycle.metric_direction import default_direction
from lifecycle.training.models import RetrainSchedule
from registry.choices import Role, Stage
from registry.design_gate import model_accepts_versions_require
from registry.errors import Conflict, DependencyUnavailable, DomainError, InvalidInput
from registry.models import ModelVersion, RegisteredModel
from registry.permissions import require_role
from registry.services import model_version_register

logger = logging.getLogger(__name__)

TRAINER = ["python", "-m", "lifecycle.training.sklearn_trainer"]
MAX_SWEEP_CHILDREN = 64
# The update stage's derivation methods a schedule may name (a plain copy of
# lifecycle.derivations.choices.DerivationMethod, which sits above this stage; a test
# checks they agree). Their parameters are checked by the update stage when it runs.
UPDATE_METHODS = ("onnx", "quantize", "prune", "distill", "incremental")


def _sweep_points(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameter sets of a grid or random sweep: ``{"method": "grid"|"random",
    "space": {"n_estimators": [50, 100]}, "count": 6, "seed": 0}``."""
    space = sweep.get("space")
    if not isinstance(space, dict) or not space or not all(isinstance(v, list) and v for v in space.values()):
        raise InvalidInput(
            "sweep.space must map each parameter to a non-empty list of values", details={"sweep.space": "invalid"}
        )
    names = sorted(space)
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n] for n in names))]
    method = sweep.get("method", "grid")
    if method == "grid":
        points = grid
    elif method == "random":
        count = sweep.get("count")
        if not isinstance(count, int) or count < 1:
            raise InvalidInput("a random sweep needs a positive count", details={"sweep.count": "required"})
        points = random.Random(sweep.get("seed", 0)).sample(grid, min(count, len(grid)))
    else:
        raise InvalidInput(f"sweep.method {method!r} must be grid or random", details={"sweep.method": "invalid"})
    if len(points) > MAX_SWEEP_CHILDREN:
        raise InvalidInput(
            f"a sweep may have at most {MAX_SWEEP_CHILDREN} points, not {len(points)}", details={"sweep": "too large"}
        )
    return points


def training_submit(
    *,
    actor: AbstractBaseUser,
    model: RegisteredModel,
    estimator: str,
    estimator_params: dict[str, Any] | None = None,
    register: bool = True,
    evaluate: bool = True,
    parent_version: int | None = None,
    git_commit: str = "",
    seed: int = 42,
    request_stage: str | None = None,
    sweep: dict[str, Any] | None = None,
    kind: str = JobKind.TRAIN,
    priority: int = 0,
    pool: str = "default",
    resources: dict[str, Any] | None = None,
) -> Job:
    """Queue a training job (or a sweep fanning out training jobs) for a model."""
    require_role(actor, model.team, Role.DEVELOPER, action="training a model")
    model_accepts_versions_require(model, action="training a model")
    dataset = model_dataset(model)
    if request_stage not in (None, Stage.STAGING, Stage.PRODUCTION):
        raise InvalidInput("request_stage must be staging or production", details={"request_stage": "invalid"})
    if parent_version is not None and not model.versions.filter(version=parent_version).exists():
        raise InvalidInput(
            f"model {model.name!r} has no version {parent_version}", details={"parent_version": "unknown"}
        )
    params = {
        "program": "sklearn_trainer",
        "model": model.name,
        "task": model.task,
        "primary_metric": model.primary_metric,
        "estimator": estimator,
        "estimator_params": estimator_params or {},
        "dataset": dataset_params(dataset),
        "seed": seed,
        "register": register,
        "evaluate": evaluate,
        "parent_version": parent_version,
        "git_commit": git_commit,
        "request_stage": request_stage,
    }
    spec = {"entrypoint": TRAINER, "params": params, "resources": resources or {"cpus": 1, "memory_mb": 1024}}
    if not sweep:
        return job_submit(actor=actor, team=model.team, kind=kind, spec=spec, priority=priority, pool=pool, model=model)
    points = _sweep_points(sweep)
    with transaction.atomic():
        parent = job_submit(
            actor=actor,
            team=model.team,
            kind=kind,
            spec={**spec, "entrypoint": ["sweep"], "params": {**params, "sweep": sweep, "points": points}},
            priority=priority,
            pool=pool,
            model=model,
        )
        # The sweep itself runs no process: it is running while its children are.
        Job.objects.filter(pk=parent.pk).update(
            state=JobState.RUNNING, started_at=timezone.now(), state_detail=f"sweep of {len(points)} training jobs"
        )
        for point in points:
            child_params = {
                **params,
                "estimator_params": {**(estimator_params or {}), **point},
                "register": False,
                "evaluate": False,
                "sweep_parent": parent.pk,
            }
            child = job_submit(
                actor=actor,
                team=model.team,
                kind=kind,
                spec={**spec, "params": child_params},
                priority=priority,
                pool=pool,
                model=model,
            )
            Job.objects.filter(pk=child.pk).update(parent=parent)
    parent.refresh_from_db()
    return parent


# --- applying results -----------------------------------------------------------------


def _register_trained(job: Job, run_id: str) -> ModelVersion:
    params = job.spec["params"]
    tags = {"modelgate.job": str(job.pk), "estimator": params.get("estimator", "")}
    if params.get("git_commit"):
        tags["git_commit"] = params["git_commit"]
    return model_version_register(
        actor=job.created_by,
        model=job.model,
        run_id=run_id,
        description=f"{params.get('estimator')} trained by job {job.pk}",
        tags=tags,
        parent_version=params.get("parent_version"),
        dataset=job.model.dataset.name if job.model.dataset_id else None,
        request_key=f"job-{job.pk}",
    )


def _after_registration(job: Job, version: ModelVersion) -> None:
    params = job.spec["params"]
    if version.stage == Stage.TRAINING:
        transition_request(
            version=version, to=Stage.EVALUATION, reason=f"trained by job {job.pk}", actor=job.created_by
        )
    Job.objects.filter(pk=job.pk).update(result={**(job.result or {}), "version": version.version})
    if params.get("evaluate", True):
        evaluation_submit(actor=job.created_by, version=version, request_stage=params.get("request_stage"))


def _sweep_finished(parent: Job) -> None:
    """When every child of a sweep is done, keep the best by the primary metric."""
    children = list(parent.children.all())
    if any(child.state not in JOB_FINAL_STATES for child in children):
        return
    params = parent.spec["params"]
    metric = params.get("primary_metric") or ("f1" if params.get("task") == "classification" else "rmse")
    lower = default_direction(metric) == "lower"
    scored = [
        (c.result["metrics"][metric], c)
        for c in children
        if c.state == JobState.SUCCEEDED and metric in (c.result or {}).get("metrics", {})
    ]
    summary = [
        {
            "job": c.pk,
            "state": c.state,
            "params": c.spec["params"]["estimator_params"],
            metric: (c.result or {}).get("metrics", {}).get(metric),
        }
        for c in children
    ]
    if not scored:
        Job.objects.filter(pk=parent.pk).update(
            state=JobState.FAILED,
            finished_at=timezone.now(),
            result={"children": summary},
            state_detail="no child succeeded",
        )
        return
    best_value, best = (min if lower else max)(scored, key=lambda pair: pair[0])
    # Two children finishing together both see the sweep complete; one claims it.
    if not Job.objects.filter(pk=parent.pk, outcome_applied_at__isnull=True).update(outcome_applied_at=timezone.now()):
        return
    result = {
        "children": summary,
        "best_job": best.pk,
        "best_params": best.spec["params"]["estimator_params"],
        "metric": metric,
        "best_value": best_value,
        "run_id": best.result["run_id"],
    }
    if params.get("register", True):
        try:
            version = _register_trained(parent, best.result["run_id"])
        except DependencyUnavailable:
            Job.objects.filter(pk=parent.pk).update(outcome_applied_at=None)
            raise
        result["version"] = version.version
        parent.result = result
    # The sweep is finished only once its best run is a version, so whoever sees it
    # succeeded also sees the version.
    Job.objects.filter(pk=parent.pk, state=JobState.RUNNING).update(
        state=JobState.SUCCEEDED,
        finished_at=timezone.now(),
        progress=1.0,
        result=result,
        state_detail=f"best {metric} = {best_value:.4f} from job {best.pk}",
    )
    if params.get("register", True):
        _after_registration(parent, version)


def training_outcome_apply(job: Job) -> None:
    """Register a finished training run as a version (or settle the sweep it belongs to)."""
    params = (job.spec or {}).get("params", {})
    if params.get("sweep_parent"):
        _sweep_finished(
            Job.objects.select_related("model", "model__dataset", "created_by").get(pk=params["sweep_parent"])
        )
    elif (
        job.state == JobState.SUCCEEDED
        and params.get("program") == "sklearn_trainer"
        and params.get("register")
        and job.result
        and job.result.get("run_id")
    ):
        _after_registration(job, _register_trained(job, job.result["run_id"]))


# --- retraining -------------------------------------------------------------------------


def model_retrain(*, actor: AbstractBaseUser, model: RegisteredModel, reason: str = "") -> Job:
    """Retrain the production version's recipe on the latest data (the UPDATE stage)."""
    require_role(actor, model.team, Role.DEVELOPER, action="retraining a model")
    production = ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).first()
    if production is None:
        raise Conflict(f"model {model.name!r} has no production version to retrain", code="no_production")
    recipe = (
        Job.objects.filter(model=model, kind__in=[JobKind.TRAIN, JobKind.RETRAIN], result__version=production.version)
        .order_by("-id")
        .first()
    )
    if recipe is None:
        raise Conflict(
            f"v{production.version} was not trained by a ModelGate job, so there is no recipe to retrain; "
            "submit a training job instead",
            code="no_recipe",
        )
    params = recipe.spec["params"]
    best = (recipe.result or {}).get("best_params")
    job = training_submit(
        actor=actor,
        model=model,
        estimator=params["estimator"],
        estimator_params=best if best is not None else params.get("estimator_params"),
        parent_version=production.version,
        git_commit=params.get("git_commit", ""),
        seed=params.get("seed", 42),
        request_stage=Stage.PRODUCTION,
        kind=JobKind.RETRAIN,
    )
    audit_append(
        actor=actor,
        action="model.retrain",
        object_type="model",
        object_id=model.name,
        model_name=model.name,
        after={"job": job.pk, "from_version": production.version},
        reason=reason,
    )
    return job


def cron_schedule(expression: str) -> crontab:
    """``"m h dom mon dow"`` as a Celery crontab, or ``InvalidInput`` naming the problem."""
    parts = expression.split()
    if len(parts) != 5:
        raise InvalidInput(
            f"cron {expression!r} needs five fields: minute hour day-of-month month day-of-week",
            details={"cron": "invalid"},
        )
    try:
        return crontab(
            minute=parts[0], hour=parts[1], day_of_month=parts[2], month_of_year=parts[3], day_of_week=parts[4]
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"cron {expression!r} is invalid: {exc}", details={"cron": "invalid"}) from exc


def retrain_schedule_set(
    *,
    actor: AbstractBaseUser,
    model: RegisteredModel,
    cron: str,
    enabled: bool = True,
    method: str = "",
    method_params: dict[str, Any] | None = None,
) -> RetrainSchedule:
    """Set (or change) the model's retraining schedule; approvers and admins only. With a
    ``method`` the schedule updates the production version by that derivation method
    instead of retraining its recipe."""
    require_role(actor, model.team, Role.APPROVER, action="scheduling retraining")
    cron_schedule(cron)
    if method and method not in UPDATE_METHODS:
        raise InvalidInput(
            f"unknown method {method!r}; expected one of {', '.join(UPDATE_METHODS)} (or none to retrain)",
            details={"method": "unknown method"},
        )
    if method_params is not None and not isinstance(method_params, dict):
        raise InvalidInput("method_params must be an object", details={"method_params": "not an object"})
    with transaction.atomic():
        schedule, _ = RetrainSchedule.objects.update_or_create(
            model=model,
            defaults={
                "cron": cron,
                "enabled": enabled,
                "created_by": actor,
                "method": method,
                "method_params": method_params or {},
            },
        )
        audit_append(
            actor=actor,
            action="model.retrain_schedule",
            object_type="model",
            object_id=model.name,
            model_name=model.name,
            after={"cron": cron, "enabled": enabled, "method": method, "method_params": method_params or {}},
        )
    return schedule


def _scheduled_update(schedule: RetrainSchedule) -> Job | None:
    """The job a due schedule starts: a retrain of the recipe, or the update stage's
    derivation when the schedule names a method."""
    reason = f"scheduled ({schedule.cron})"
    if not schedule.method:
        return model_retrain(actor=schedule.created_by, model=schedule.model, reason=reason)
    answers = derivation_wanted.send(
        sender=RetrainSchedule,
        model=schedule.model,
        method=schedule.method,
        params=schedule.method_params,
        actor=schedule.created_by,
        reason=f"{reason}: {schedule.method}",
    )
    return next((job for _, job in answers if job is not None), None)


def retrains_due(*, now: datetime | None = None) -> list[int]:
    """Start the scheduled retrains that are due (run every minute by the beat)."""
    now = now or timezone.now()
    started = []
    for schedule in RetrainSchedule.objects.filter(enabled=True).select_related("model", "model__team", "created_by"):
        last = schedule.last_run_at or (now - settings.MODELGATE_RETRAIN_FIRST_LOOKBACK)
        due, _ = cron_schedule(schedule.cron).is_due(last)
        if not due or schedule.created_by is None:
            continue
        claimed = RetrainSchedule.objects.filter(pk=schedule.pk, last_run_at=schedule.last_run_at).update(
            last_run_at=now
        )
        if not claimed:
            continue
        try:
            job = _scheduled_update(schedule)
        except DomainError as exc:
            logger.warning("scheduled retrain of %s skipped: %s", schedule.model, exc)
            continue
        if job is None:
            continue
        RetrainSchedule.objects.filter(pk=schedule.pk).update(last_job=job)
        started.append(job.pk)
    return started
