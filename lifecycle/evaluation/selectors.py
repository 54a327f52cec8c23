"""Reads of the evaluation stage."""

from __future__ import annotations

from django.db.models import QuerySet

from lifecycle.evaluation.models import Evaluation
from registry.models import ModelVersion

MAX_LISTED_EVALUATIONS = 50


def evaluations_of(*, version: ModelVersion) -> QuerySet[Evaluation]:
    """The version's newest evaluations, each with the version it was compared with."""
    return Evaluation.objects.filter(version=version).select_related("compared_with")[:MAX_LISTED_EVALUATIONS]
