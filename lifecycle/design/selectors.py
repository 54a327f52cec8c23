"""Reads of the design stage: a model's card as it stands, what it still lacks, its
revisions, and its Markdown export (for the model, and for one version beside its
metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from lifecycle.design.card import card_empty, card_missing
from lifecycle.design.markdown import budget_rows, card_markdown, criteria_rows
from lifecycle.design.models import DesignCard, DesignCardRevision
from registry.models import ModelVersion, RegisteredModel, VersionMetric


@dataclass(frozen=True)
class DesignState:
    """A model's card with its revision, what completion still needs, and who last
    changed it (``card`` is the empty card before the first save)."""

    model: RegisteredModel
    card: dict[str, Any]
    revision: int
    missing: list[str]
    updated_by: str | None
    updated_at: Any
    completed_by: str | None
    completed_at: Any
    completed_revision: int | None

    @property
    def complete(self) -> bool:
        return not self.missing


def design_card_of(model: RegisteredModel) -> DesignCard | None:
    return DesignCard.objects.select_related("updated_by", "completed_by").filter(model=model).first()


def design_state(*, model: RegisteredModel) -> DesignState:
    row = design_card_of(model)
    card = dict(row.content) if row is not None else card_empty()
    return DesignState(
        model=model,
        card=card,
        revision=row.revision if row is not None else 0,
        missing=card_missing(card),
        updated_by=row.updated_by.get_username() if row is not None and row.updated_by else None,
        updated_at=row.updated_at if row is not None else None,
        completed_by=row.completed_by.get_username() if row is not None and row.completed_by else None,
        completed_at=row.completed_at if row is not None else None,
        completed_revision=row.completed_revision if row is not None else None,
    )


def design_missing_fields(model: RegisteredModel) -> list[str]:
    """The card fields a model's design still lacks (the registry's refusal names them)."""
    row = DesignCard.objects.filter(model=model).values_list("content", flat=True).first()
    return card_missing(row if row is not None else card_empty())


def design_card_revisions(*, model: RegisteredModel) -> QuerySet[DesignCardRevision]:
    return DesignCardRevision.objects.filter(card__model=model).select_related("actor")


def _model_facts(model: RegisteredModel) -> dict[str, Any]:
    return {"name": model.name, "team": model.team.name, "stage": model.stage, "description": model.description}


def version_current_metrics(version: ModelVersion) -> dict[str, float]:
    return dict(VersionMetric.objects.filter(version=version, is_current=True).values_list("name", "value"))


def design_card_markdown(*, model: RegisteredModel) -> str:
    state = design_state(model=model)
    return card_markdown(model=_model_facts(model), card=state.card, revision=state.revision, missing=state.missing)


def version_card_markdown(*, version: ModelVersion) -> str:
    """The model's card as it stands, rendered for one version beside its metrics."""
    model = version.model
    state = design_state(model=model)
    facts = {
        "number": version.version,
        "stage": version.stage,
        "created_at": version.created_at.isoformat(),
        "size_bytes": version.size_bytes,
        "metrics": version_current_metrics(version),
    }
    return card_markdown(
        model=_model_facts(model), card=state.card, revision=state.revision, missing=state.missing, version=facts
    )


@dataclass(frozen=True)
class VersionCardChecks:
    """A version set against its model's card: each success criterion with the
    version's value and verdict, and each budget with its measure."""

    state: DesignState
    criteria: list[dict[str, Any]]
    budgets: list[dict[str, Any]]


def version_card_checks(*, version: ModelVersion) -> VersionCardChecks:
    state = design_state(model=version.model)
    metrics = version_current_metrics(version)
    return VersionCardChecks(
        state=state,
        criteria=criteria_rows(state.card, metrics),
        budgets=budget_rows(state.card, size_bytes=version.size_bytes, metrics=metrics),
    )
