"""Every enumerated value of the registry, in one place.

Stages of a model version, with the map of allowed transitions and the named groups
that the rest of the platform reasons with. The lifecycle app applies transitions;
this module only says which ones exist.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    DEVELOPER = "developer", "Developer"
    APPROVER = "approver", "Approver"
    ADMIN = "admin", "Admin"


# A role includes every permission of the roles ranked below it.
ROLE_RANK: dict[str, int] = {Role.VIEWER: 0, Role.DEVELOPER: 1, Role.APPROVER: 2, Role.ADMIN: 3}


class Stage(models.TextChoices):
    TRAINING = "training", "Training"
    EVALUATION = "evaluation", "Evaluation"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"
    REJECTED = "rejected", "Rejected"
    ROLLED_BACK = "rolled_back", "Rolled back"


STAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    Stage.TRAINING: frozenset({Stage.EVALUATION, Stage.REJECTED, Stage.ARCHIVED}),
    Stage.EVALUATION: frozenset({Stage.STAGING, Stage.PRODUCTION, Stage.REJECTED, Stage.ARCHIVED}),
    Stage.STAGING: frozenset({Stage.PRODUCTION, Stage.REJECTED, Stage.ARCHIVED, Stage.EVALUATION}),
    Stage.PRODUCTION: frozenset({Stage.ARCHIVED, Stage.ROLLED_BACK}),
    # An archived or rolled-back version may be brought back through evaluation; a
    # rollback target goes straight back to production through the rollback service.
    Stage.ARCHIVED: frozenset({Stage.EVALUATION}),
    Stage.ROLLED_BACK: frozenset({Stage.EVALUATION, Stage.ARCHIVED}),
    Stage.REJECTED: frozenset({Stage.EVALUATION, Stage.ARCHIVED}),
}

TERMINAL_STAGES = frozenset({Stage.ARCHIVED, Stage.REJECTED, Stage.ROLLED_BACK})
ACTIVE_STAGES = frozenset({Stage.TRAINING, Stage.EVALUATION, Stage.STAGING, Stage.PRODUCTION})
# Stages that an alias points at: moving a version there moves the alias in MLflow too.
STAGE_ALIASES: dict[str, str] = {Stage.PRODUCTION: "champion", Stage.STAGING: "challenger"}


class ModelStage(models.TextChoices):
    """Where a registered model is as a whole, beside its versions' stages.

    ``design``: its model card is being written; no version may be registered or trained
    until design is completed. ``active``: design is over (or was never asked for), and
    each version moves through ``Stage``. A model created without asking for design
    starts ``active``, as every model did before the design stage existed.
    """

    DESIGN = "design", "Design"
    ACTIVE = "active", "Active"


MODEL_STAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    # Leaving design is gated by a complete model card (``lifecycle/design/``).
    ModelStage.DESIGN: frozenset({ModelStage.ACTIVE}),
    ModelStage.ACTIVE: frozenset(),
}
# Model stages in which versions may be registered and trained.
MODEL_STAGES_ACCEPTING_VERSIONS = frozenset({ModelStage.ACTIVE})


def allowed_model_transition(from_stage: str, to_stage: str) -> bool:
    return to_stage in MODEL_STAGE_TRANSITIONS.get(from_stage, frozenset())


class VersionStatus(models.TextChoices):
    """Whether the version's artifact is usable (MLflow's READY / FAILED_REGISTRATION)."""

    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class TaskType(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"
    OTHER = "other", "Other"


class DatasetFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"
    BUILTIN = "builtin", "scikit-learn bundled dataset"


class MetricSource(models.TextChoices):
    RUN = "run", "Training run"
    EVALUATION = "evaluation", "Evaluation"
    MANUAL = "manual", "Given at registration"


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    # Calls the serving gateway (``/serve/…``): predictions, nothing of the API.
    SERVE = "serve", "Serve predictions"


def allowed_transition(from_stage: str, to_stage: str) -> bool:
    return to_stage in STAGE_TRANSITIONS.get(from_stage, frozenset())
