"""Validation of a model's promotion policy when it is saved.

The rules themselves belong to the lifecycle app (``lifecycle.governance.rules``); it installs its
validator here when it starts, so the registry validates policies without importing
the lifecycle app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from registry.errors import InvalidInput

PolicyValidator = Callable[[Any], dict[str, Any]]
_validator: PolicyValidator | None = None


def validator_install(validator: PolicyValidator) -> None:
    global _validator
    _validator = validator


def policy_validate(raw: Any) -> dict[str, Any]:
    """The policy in canonical form, or ``InvalidInput`` naming every bad field."""
    if _validator is None:
        raise InvalidInput("no policy validator is installed; is the lifecycle app in INSTALLED_APPS?")
    return _validator(raw)
