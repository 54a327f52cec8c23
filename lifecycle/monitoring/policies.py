"""A model's policy with its monitors: the gate rules validated by governance's rules
engine, the ``"monitors"`` list by the monitoring stage's, every problem of both reported
in one 400 whose details name the field (``policy.monitors[0].statistic``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lifecycle.governance.policies import policy_invalid
from lifecycle.governance.rules import PolicyError, parse_policy, policy_to_dict
from lifecycle.monitoring.rules import monitors_to_dict, parse_monitors
from registry.policy import validator_install

# Checks a ``derive`` action's parameters: ``(method, params) -> {field: problem}``. The
# update stage, which sits above monitoring, installs its own (``install``).
DeriveParamsCheck = Callable[[str, Any], Mapping[str, str]]
_derive_params_check: DeriveParamsCheck | None = None


def _derive_problems(monitors: list[dict[str, Any]]) -> list[dict[str, str]]:
    if _derive_params_check is None:
        return []
    problems = []
    for index, monitor in enumerate(monitors):
        if monitor.get("action") == "derive":
            for field, message in _derive_params_check(monitor["method"], monitor.get("params")).items():
                problems.append({"field": f"monitors[{index}].{field}", "message": message})
    return problems


def policy_with_monitors_canonical(raw: Any) -> dict[str, Any]:
    """The policy with defaults filled in, monitors included, or ``InvalidInput``."""
    errors: list[dict[str, str]] = []
    canonical: dict[str, Any] = {}
    monitors: list[dict[str, Any]] = []
    rest = {k: v for k, v in raw.items() if k != "monitors"} if isinstance(raw, Mapping) else raw
    try:
        canonical = policy_to_dict(parse_policy(rest))
    except PolicyError as exc:
        errors.extend(exc.errors)
    if isinstance(raw, Mapping) and "monitors" in raw:
        try:
            monitors = monitors_to_dict(parse_monitors(raw["monitors"]))
            errors.extend(_derive_problems(monitors))
        except PolicyError as exc:
            errors.extend(exc.errors)
    if errors:
        raise policy_invalid(errors)
    if monitors:
        canonical["monitors"] = monitors
    return canonical


def install(*, derive_params_check: DeriveParamsCheck | None = None) -> None:
    global _derive_params_check
    _derive_params_check = derive_params_check
    validator_install(policy_with_monitors_canonical)
