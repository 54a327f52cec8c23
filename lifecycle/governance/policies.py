"""How a policy's problems reach the caller: one 400 naming every bad field. The
validator the registry calls when a model's policy is saved is installed by the
lifecycle app (``lifecycle.monitoring.policies``: gate rules and monitors together)."""

from __future__ import annotations

from registry.errors import InvalidInput


def policy_invalid(errors: list[dict[str, str]], message: str = "") -> InvalidInput:
    """The 400 for a policy's problems: the first one in the message, each in the details
    under the field it names (``policy.rules[0].value``)."""
    details = {f"policy.{error['field']}" if error["field"] else "policy": error["message"] for error in errors}
    first = errors[0] if errors else {"field": "", "message": message}
    where = f"policy.{first['field']}" if first["field"] else "policy"
    return InvalidInput(f"invalid policy: {where}: {first['message']}", details=details)
