"""Running a policy against a ``GateContext``, and the one status its results add up to."""

from __future__ import annotations

from collections.abc import Iterable

from lifecycle.governance.rules.context import GateContext, GateResult
from lifecycle.governance.rules.policy import Policy
from lifecycle.governance.rules.vocabulary import STAGES, GateStatus


def evaluate_policy(policy: Policy, ctx: GateContext) -> list[GateResult]:
    """Run the rules that gate ``ctx.target_stage``, in policy order.

    Stages no rule can name (``archived``, ``rejected``…) get an empty list. Raises
    ``ValueError`` for a target that is not a stage at all, since silently returning no
    gates for a typo would wave the transition through.
    """
    if ctx.target_stage not in STAGES:
        raise ValueError(f"unknown target stage {ctx.target_stage!r}; expected one of {', '.join(STAGES)}")
    return [rule.evaluate(ctx, index) for index, rule in policy.rules_for(ctx.target_stage)]


def overall_status(results: Iterable[GateResult]) -> GateStatus:
    """``failed`` if any result failed, else ``waiting`` if any waits, else ``passed`` (also when empty)."""
    statuses = {result.status for result in results}
    if "failed" in statuses:
        return "failed"
    if "waiting" in statuses:
        return "waiting"
    return "passed"
