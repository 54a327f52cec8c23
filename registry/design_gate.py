"""What keeps a model in design from getting versions: the registry refuses to register
or train a version of a model whose stage is ``design``.

The model card belongs to the lifecycle app (``lifecycle.design``); it installs a
function here when it starts that names the card fields still missing, so the refusal
says what to fill in without the registry importing the lifecycle app.
"""

from __future__ import annotations

from collections.abc import Callable

from registry.choices import MODEL_STAGES_ACCEPTING_VERSIONS, ModelStage
from registry.errors import Conflict
from registry.models import RegisteredModel

MissingFields = Callable[[RegisteredModel], list[str]]
_missing_fields: MissingFields | None = None


def missing_fields_install(function: MissingFields) -> None:
    global _missing_fields
    _missing_fields = function


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
