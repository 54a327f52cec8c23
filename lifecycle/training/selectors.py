"""Reads of the training and update stage."""

from __future__ import annotations

from lifecycle.training.models import RetrainSchedule
from registry.models import RegisteredModel


def retrain_schedule_of(*, model: RegisteredModel) -> RetrainSchedule | None:
    """The model's retraining schedule, if one was ever set."""
    return RetrainSchedule.objects.filter(model=model).first()
