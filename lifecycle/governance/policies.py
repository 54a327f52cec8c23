"""Connects the pure rules engine to the registry: policies are validated and stored in
canonical form whenever a model's policy is saved."""

from __future__ import annotations

from typing import Any

from lifecycle.governance.rules import PolicyError, parse_policy, policy_to_dict
from registry.errors import InvalidInput
from registry.policy import validator_install


def policy_canonical(raw: Any) -> dict[str, Any]:
    """The policy with defaults filled in, or ``InvalidInput`` naming each bad field."""
    try:
        return policy_to_dict(parse_policy(raw))
    except PolicyError as exc:
        details = {f"policy.{error['field']}" if error["field"] else "policy": error["message"] for error in exc.errors}
        first = exc.errors[0] if exc.errors else {"field": "", "message": str(exc)}
        where = f"policy.{first['field']}" if first["field"] else "policy"
        raise InvalidInput(f"invalid policy: {where}: {first['message']}", details=details) from exc


def install() -> None:
    validator_install(policy_canonical)
