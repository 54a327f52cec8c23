"""The design stage's names: the audit actions and events of a model card.

The model's own stage (``design`` → ``active``) and its allowed transitions are
``registry.choices.ModelStage`` and ``MODEL_STAGE_TRANSITIONS``, beside the version
stages: the registry keeps them because it refuses versions of a model in design.
"""

from __future__ import annotations

from django.db import models

from registry.choices import MODEL_STAGE_TRANSITIONS, ModelStage, allowed_model_transition

__all__ = ["MODEL_STAGE_TRANSITIONS", "DesignAction", "DesignEvent", "ModelStage", "allowed_model_transition"]


class DesignAction(models.TextChoices):
    """Audit actions of the design stage."""

    CARD_UPDATE = "design.card_update", "Model card changed"
    COMPLETE = "model.design_complete", "Design completed"


class DesignEvent(models.TextChoices):
    """Webhook events of the design stage (also in ``governance.choices.EVENT_TYPES``)."""

    UPDATED = "model.design_updated", "Model card changed"
    COMPLETED = "model.design_completed", "Design completed"
