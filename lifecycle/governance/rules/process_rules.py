"""Rules on how the version got here rather than on its scores: approvals, the age of its
evaluation, required artifacts, and the canary soak."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from lifecycle.governance.rules.base import BaseRule
from lifecycle.governance.rules.context import GateContext, GateResult
from lifecycle.governance.rules.formatting import (
    format_distinct,
    format_fixed,
    isoformat_or_none,
    json_number,
    on_dataset,
    plural,
    with_notes,
)
from lifecycle.governance.rules.vocabulary import EVALUATION_SOURCE, ROLE_RANK


@dataclass(frozen=True, kw_only=True)
class ApprovalsRule(BaseRule):
    """At least ``count`` distinct people with ``role`` or higher must have approved.

    The requester's own approval never counts, each person counts once however many
    approvals they left, and approvals carrying an unknown role are ignored.
    """

    type: ClassVar[str] = "approvals"
    count: int
    role: str = "approver"

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring; too few approvals is ``waiting``, not ``failed``."""
        required_rank = ROLE_RANK[self.role]
        # Compare ids as strings: callers may hand in ints from the ORM for one side and
        # strings for the other, and a mismatch would silently let people self-approve.
        requester = str(ctx.requester_id)
        approved_by: set[str] = set()
        too_junior: set[str] = set()
        requester_approved = False
        for approval in ctx.approvals:
            user = str(approval.user_id)
            if user == requester:
                requester_approved = True
            elif ROLE_RANK.get(approval.role, -1) >= required_rank:
                approved_by.add(user)
            else:
                too_junior.add(user)
        too_junior -= approved_by

        got = len(approved_by)
        data: dict[str, Any] = {
            "required": self.count,
            "role": self.role,
            "count": got,
            "approved_by": sorted(approved_by),
            "requester_approval_ignored": requester_approved,
            "insufficient_role": sorted(too_junior),
        }
        who = "admin" if self.role == "admin" else f"{self.role} or above"
        detail = f"{got} of {self.count} {plural(self.count, 'approval')} from {who}"
        notes = []
        if approved_by:
            notes.append("approved by " + ", ".join(sorted(approved_by)))
        if requester_approved:
            notes.append("the requester's own approval does not count")
        if too_junior:
            notes.append(f"{len(too_junior)} {plural(len(too_junior), 'approval')} below {self.role} not counted")
        detail = with_notes(detail, notes)
        if got >= self.count:
            return self._result(index, "passed", detail, data)
        return self._result(index, "waiting", detail, data, needs="approvals")


@dataclass(frozen=True, kw_only=True)
class MaxEvaluationAgeRule(BaseRule):
    """The candidate's newest evaluation must be at most ``days`` old (exactly ``days`` passes).

    Only observations with source ``"evaluation"`` and a timestamp count, and only those
    on the model's evaluation dataset when it has one.
    """

    type: ClassVar[str] = "max_evaluation_age"
    days: float

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring; a missing or stale evaluation fails with ``needs="evaluation"``."""
        data: dict[str, Any] = {"days": json_number(self.days), "age_days": None, "evaluated_at": None}
        evaluations = [
            (o.evaluated_at, o)
            for o in ctx.candidate_metrics
            if o.source == EVALUATION_SOURCE
            and o.evaluated_at is not None
            and (ctx.dataset_digest is None or o.dataset_digest == ctx.dataset_digest)
        ]
        where = on_dataset(ctx.dataset_digest) if ctx.dataset_digest is not None else ""
        (limit_text,) = format_distinct(self.days)
        if not evaluations:
            detail = f"no evaluation of this version recorded{where}; evaluations must be at most {limit_text} days old"
            return self._result(index, "failed", detail, data, needs="evaluation")

        evaluated_at, newest = max(evaluations, key=lambda pair: pair[0])
        # Float days rather than timedelta(days=...), which overflows for huge limits.
        age_days = (ctx.now - evaluated_at).total_seconds() / 86400
        data.update(
            age_days=age_days, evaluated_at=isoformat_or_none(evaluated_at), dataset_digest=newest.dataset_digest
        )
        age_text = format_fixed(age_days, self.days)
        if age_days > self.days:
            detail = f"latest evaluation{where} is {age_text} days old, older than the {limit_text}-day limit"
            return self._result(index, "failed", detail, data, needs="evaluation")
        detail = f"latest evaluation{where} is {age_text} days old, within the {limit_text}-day limit"
        return self._result(index, "passed", detail, data)


@dataclass(frozen=True, kw_only=True)
class RequiredArtifactsRule(BaseRule):
    """Every named artifact (``signature``, ``model_card``, ``description``…) must be present."""

    type: ClassVar[str] = "required_artifacts"
    items: tuple[str, ...]

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring."""
        missing = [item for item in self.items if item not in ctx.artifacts]
        data: dict[str, Any] = {
            "required": list(self.items),
            "present": [item for item in self.items if item in ctx.artifacts],
            "missing": missing,
        }
        if missing:
            detail = f"missing required {plural(len(missing), 'artifact')}: " + ", ".join(missing)
            return self._result(index, "failed", detail, data)
        detail = f"all required {plural(len(self.items), 'artifact')} present: " + ", ".join(self.items)
        return self._result(index, "passed", detail, data)


@dataclass(frozen=True, kw_only=True)
class CanarySoakRule(BaseRule):
    """A canary must have been running for at least ``minutes`` (exactly ``minutes`` passes)."""

    type: ClassVar[str] = "canary_soak"
    minutes: float

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring; an unstarted or young canary is ``waiting``."""
        (required_text,) = format_distinct(self.minutes)
        data: dict[str, Any] = {
            "minutes": json_number(self.minutes),
            "started_at": isoformat_or_none(ctx.canary_started_at),
            "elapsed_minutes": None,
            "remaining_minutes": None,
            "ready_at": None,
        }
        if ctx.canary_started_at is None:
            detail = f"canary not started; a {required_text}-minute soak is required"
            return self._result(index, "waiting", detail, data)

        elapsed = (ctx.now - ctx.canary_started_at).total_seconds() / 60
        remaining = max(self.minutes - elapsed, 0.0)
        # A soak ending beyond datetime.max leaves ready_at null: the canary is never ready.
        with contextlib.suppress(OverflowError):
            data["ready_at"] = isoformat_or_none(ctx.canary_started_at + timedelta(minutes=self.minutes))
        data.update(elapsed_minutes=elapsed, remaining_minutes=remaining)
        elapsed_text = format_fixed(elapsed, self.minutes)
        if elapsed < self.minutes:
            remaining_text = format_fixed(remaining, 0.0)
            detail = f"canary has soaked {elapsed_text} of {required_text} minutes; {remaining_text} minutes remaining"
            return self._result(index, "waiting", detail, data)
        detail = f"canary has soaked {elapsed_text} minutes, at least the required {required_text}"
        return self._result(index, "passed", detail, data)
