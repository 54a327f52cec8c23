"""Read queries only the web UI needs, built on the apps' own selectors.

Scoping to what a user may see always comes from ``registry.permissions`` through the
apps' ``*_visible_to`` selectors; nothing here decides visibility by itself.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from lifecycle.evaluation.models import Evaluation
from lifecycle.governance.choices import OPEN_TRANSITION_STATUSES
from lifecycle.governance.models import Transition
from lifecycle.governance.selectors import audit_list, production_history, transitions_visible_to
from lifecycle.jobs.choices import JOB_FINAL_STATES, JobState
from lifecycle.jobs.models import Job, Worker
from lifecycle.jobs.selectors import jobs_visible_to
from registry.choices import Stage
from registry.errors import InvalidInput, NotFound
from registry.models import ModelVersion, RegisteredModel
from registry.permissions import models_visible_to

User = AbstractBaseUser | AnonymousUser

# Where an evaluation writes its report inside a version's artifact, and what the page
# can show of it. Evaluation jobs do not exist yet; these names are the contract for them.
REPORT_DIRECTORIES = ("evaluation/", "reports/")
REPORT_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".svg", ".gif", ".webp"})
REPORT_SUFFIXES = REPORT_IMAGE_SUFFIXES | {".html", ".json", ".csv", ".txt", ".md"}


def models_with_version_in(models: QuerySet[RegisteredModel], *, stage: str) -> QuerySet[RegisteredModel]:
    """Models that have at least one version in ``stage``.

    A general filter that belongs in ``registry.selectors.model_list(stage=...)``, kept
    here until that selector has it.
    """
    if stage not in Stage.values:
        raise InvalidInput(
            f"unknown stage {stage!r}; expected one of {', '.join(Stage.values)}", details={"stage": "unknown stage"}
        )
    return models.filter(Exists(ModelVersion.objects.filter(model=OuterRef("pk"), stage=stage)))


def model_rows(models: QuerySet[RegisteredModel]) -> QuerySet[RegisteredModel]:
    """The list page's summary of each model in one query: production and staging
    version numbers and the number of versions."""

    def newest_in(stage: str) -> Subquery:
        return Subquery(
            ModelVersion.objects.filter(model=OuterRef("pk"), stage=stage)
            .order_by("-stage_changed_at")
            .values("version")[:1]
        )

    return models.annotate(
        production_version=newest_in(Stage.PRODUCTION),
        staging_version=newest_in(Stage.STAGING),
        version_count=Coalesce(
            Subquery(
                ModelVersion.objects.filter(model=OuterRef("pk"))
                .order_by()
                .values("model")
                .annotate(n=Count("id"))
                .values("n")
            ),
            0,
        ),
    )


def team_names_visible_to(user: User) -> list[str]:
    """Names of the teams owning a model the user may see (choices of the team filter)."""
    return sorted(set(models_visible_to(user).values_list("team__name", flat=True)))


def version_transitions(*, user: User, version: ModelVersion) -> QuerySet[Transition]:
    return transitions_visible_to(user).filter(version=version)


def model_transitions(*, user: User, model: RegisteredModel) -> QuerySet[Transition]:
    """Every transition of the model, requests and rollbacks alike, newest first."""
    return transitions_visible_to(user).filter(model=model).order_by("-created_at", "-id")


def report_files(version: ModelVersion) -> list[dict[str, Any]]:
    """The evaluation report files in the version's artifact, images first."""
    files = []
    for path in sorted(version.manifest or {}):
        suffix = PurePosixPath(path).suffix.lower()
        if path.startswith(REPORT_DIRECTORIES) and suffix in REPORT_SUFFIXES:
            files.append({"path": path, "image": suffix in REPORT_IMAGE_SUFFIXES})
    return sorted(files, key=lambda f: (not f["image"], f["path"]))


def gate_intervals(transitions: list[Transition]) -> dict[str, dict[str, float | None]]:
    """Confidence bounds per metric, as the newest ``beats_champion`` gate recorded them.

    ``{metric: {"candidate_ci_low", "candidate_ci_high", "champion_ci_low", "champion_ci_high"}}``,
    only for metrics whose gate data carries bounds.
    """
    found: dict[str, dict[str, float | None]] = {}
    for transition in sorted(transitions, key=lambda t: t.created_at, reverse=True):
        for gate in transition.gates or []:
            data = gate.get("data") or {}
            metric = data.get("metric")
            if gate.get("rule") != "beats_champion" or not metric or metric in found:
                continue
            keys = ("candidate_ci_low", "candidate_ci_high", "champion_ci_low", "champion_ci_high")
            if any(key in data for key in keys):
                found[metric] = {key: data.get(key) for key in keys}
    return found


def rollback_targets(*, model: RegisteredModel) -> list[int]:
    """Versions that were in production before and are not now, newest span first: the
    choices of the rollback form (``model_rollback`` checks the one chosen)."""
    seen: list[int] = []
    for number, stage in production_history(model=model).values_list("version__version", "version__stage")[:200]:
        if stage != Stage.PRODUCTION and number not in seen:
            seen.append(number)
    return seen


def audit_actions(*, user: User) -> list[str]:
    """The actions that occur in the user's audit trail (choices of the action filter)."""
    return list(audit_list(user=user).order_by("action").values_list("action", flat=True).distinct())


def model_names_visible_to(user: User, *, limit: int = 500) -> list[str]:
    return list(models_visible_to(user).order_by("name").values_list("name", flat=True)[:limit])


# --- jobs ----------------------------------------------------------------------------

# The jobs page's two lists: what waits or runs now, and what is over.
OPEN_JOB_STATES = tuple(state for state in JobState.values if state not in JOB_FINAL_STATES)
FINAL_JOB_STATES = tuple(state for state in JobState.values if state in JOB_FINAL_STATES)


def jobs_open(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Queued, scheduled and running jobs: the most urgent first, then the oldest, as
    the scheduler would take them."""
    return jobs.filter(state__in=OPEN_JOB_STATES).order_by("-priority", "created_at", "id")


def jobs_finished(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Jobs that are over (succeeded, failed, cancelled), the latest to finish first."""
    return jobs.filter(state__in=FINAL_JOB_STATES).order_by("-finished_at", "-id")


def job_children(*, user: User, job: Job, limit: int = 100) -> list[Job]:
    """A sweep's jobs, as far as the user may see them."""
    return list(jobs_visible_to(user).filter(parent=job).order_by("id")[:limit])


def job_ids_visible_to(user: User, ids: list[int]) -> set[int]:
    """Which of these jobs the user may open (the workers page links only those)."""
    return set(jobs_visible_to(user).filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()


def any_worker_registered() -> bool:
    """Whether any worker has ever registered (the jobs page's empty state says how to
    start one when none has)."""
    return Worker.objects.exists()


# --- evaluations ---------------------------------------------------------------------


def version_evaluations(*, version: ModelVersion, limit: int = 10) -> list[Evaluation]:
    """The version's evaluations, newest first. The caller has checked that the user may
    see the version (``version_get`` under ``model_get``)."""
    return list(Evaluation.objects.filter(version=version).select_related("compared_with", "job")[:limit])


def evaluation_get(*, version: ModelVersion, pk: int) -> Evaluation:
    """One evaluation of a version the user may see; ``NotFound`` for any other."""
    evaluation = Evaluation.objects.filter(version=version, pk=pk).first()
    if evaluation is None:
        raise NotFound(f"{version.model.name} v{version.version} has no evaluation {pk}")
    return evaluation


# --- deployments ---------------------------------------------------------------------


def open_promotions(*, user: User, model: RegisteredModel) -> dict[int, Transition]:
    """The open (pending or blocked) requests to put a version of the model in
    production, by version id: a canary with one open is promoted already."""
    return {
        transition.version_id: transition
        for transition in transitions_visible_to(user)
        .filter(model=model, to_stage=Stage.PRODUCTION, status__in=OPEN_TRANSITION_STATUSES)
        .order_by("created_at")
    }
