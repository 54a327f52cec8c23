"""What keeps a model in design from getting versions: the registry refuses to register
or train a version of a model whose stage is ``design``.

The model card belongs to the lifecycle app (``lifecycle.design``); it installs
functions here when it starts, without the registry importing it: one that names the
card fields still missing, so the refusal says what to fill in; one that stores a card
given inline when a model is created (``POST models/ {..., "design": {...}}``), in the
creation's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from registry.choices import MODEL_STAGES_ACCEPTING_VERSIONS, ModelStage
from registry.errors import Conflict, InvalidInput
from registry.models import RegisteredModel

MissingFields = Callable[[RegisteredModel], list[str]]
_missing_fields: MissingFields | None = None


CardWriter = Callable[..., None]
_card_writer: CardWriter | None = None


def missing_fields_install(function: MissingFields) -> None:
    global _missing_fields
    _missing_fields = function


def card_writer_install(function: CardWriter) -> None:
    """``function(model=, card=, actor=)`` stores a new model's first card or raises."""
    global _card_writer
    _card_writer = function


def model_card_write(*, model: RegisteredModel, card: Any, actor: AbstractBaseUser) -> None:
    """Store the card a model was created with (inside the creation's transaction)."""
    if _card_writer is None:
        raise InvalidInput("model cards are not enabled here", details={"design": "not supported"})
    _card_writer(model=model, card=card, actor=actor)


def model_accepts_versions_require(model: RegisteredModel, *, action: str) -> None:
    """Raise ``Conflict`` (409, code ``model_in_design``) unless versions may be made.

    The message names the card fields still missing and the call that leaves design.
    """
    if model.stage in MODEL_STAGES_ACCEPTING_VERSIONS:
        return
    missing = _missing_fields(model) if _missing_fields is not None else []
    where = f"POST /api/v1/models/{model.name}/design/complete/"
    if missing:
        next_step = f"its design card still lacks {', '.join(missing)}; fill them in (PUT /api/v1/models/{model.name}/design/), then {where}"
    else:
        next_step = f"its design card is complete: {where} to leave design"
    raise Conflict(
        f"{action} is refused: model {model.name!r} is in the {model.stage} stage; {next_step}",
        code="model_in_design" if model.stage == ModelStage.DESIGN else "model_stage",
        details={"stage": model.stage, "missing": missing},
    )
