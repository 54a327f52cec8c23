"""The promotion-policy rules engine: may this version move to that stage?

A model carries a policy, a JSON object with a list of rules. ``parse_policy`` turns the
JSON into frozen dataclasses (collecting every problem into one ``PolicyError``), and
``evaluate_policy`` runs the rules that apply to a target stage against a ``GateContext``
snapshot, returning one ``GateResult`` per rule with a sentence a person can act on.

This module is deliberately plain Python: no Django, no I/O, no clock. The caller
gathers metrics, approvals, artifacts and the current time into a ``GateContext``, so
every decision is reproducible from its inputs and testable without a database.

Example policy::

    {"rules": [
      {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.80,
       "stages": ["staging", "production"]},
      {"type": "beats_champion", "metric": "f1", "min_delta": 0.0, "stages": ["production"]},
      {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]},
      {"type": "max_evaluation_age", "days": 7, "stages": ["production"]},
      {"type": "required_artifacts", "items": ["signature"], "stages": ["production"]},
      {"type": "canary_soak", "minutes": 30, "stages": ["production"]}
    ]}
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, NamedTuple, TypeAlias, cast

__all__ = [
    "DEFAULT_STAGES",
    "GATED_STAGES",
    "LOSS_LIKE_MARKERS",
    "OPERATORS",
    "ROLES",
    "ROLE_RANK",
    "RULE_TYPES",
    "STAGES",
    "Approval",
    "ApprovalsRule",
    "BaseRule",
    "BeatsChampionRule",
    "CanarySoakRule",
    "Direction",
    "GateContext",
    "GateResult",
    "GateStatus",
    "MaxEvaluationAgeRule",
    "MetricObservation",
    "MetricThresholdRule",
    "Policy",
    "PolicyError",
    "RequiredArtifactsRule",
    "Rule",
    "default_direction",
    "evaluate_policy",
    "overall_status",
    "parse_policy",
    "policy_to_dict",
]

# Mirrors registry.choices.Stage / Role; duplicated so this module stays importable
# without Django settings.
STAGES: tuple[str, ...] = (
    "training",
    "evaluation",
    "staging",
    "production",
    "archived",
    "rejected",
    "rolled_back",
)
GATED_STAGES: tuple[str, ...] = ("evaluation", "staging", "production")
DEFAULT_STAGES: tuple[str, ...] = ("staging", "production")

ROLES: tuple[str, ...] = ("viewer", "developer", "approver", "admin")
ROLE_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

# Insertion order is the order the error message lists them in.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}

# Substrings (case-insensitive) that mark a metric where smaller is better. Substring
# rather than token matching so that "logloss", "val_loss" and "RMSE" are all caught;
# a rule can always state its direction explicitly when the guess is wrong.
LOSS_LIKE_MARKERS: tuple[str, ...] = ("log_loss", "loss", "mae", "mse", "rmse", "error", "mape")

METRIC_NAME_RE = re.compile(r"[A-Za-z0-9_.\-/ ]{1,250}")
MAX_APPROVALS = 20
# Relative slack when comparing a computed improvement with min_delta: far above float
# rounding of decimal inputs (~1e-16), far below any difference a metric can mean.
_TIE_TOLERANCE = 1e-12

EVALUATION_SOURCE = "evaluation"

GateStatus: TypeAlias = Literal["passed", "failed", "waiting"]
Direction: TypeAlias = Literal["higher", "lower"]
Needs: TypeAlias = Literal["evaluation", "approvals"]


def default_direction(metric: str) -> Direction:
    """Return ``"lower"`` for loss-like metric names (see ``LOSS_LIKE_MARKERS``), else ``"higher"``."""
    name = metric.lower()
    return "lower" if any(marker in name for marker in LOSS_LIKE_MARKERS) else "higher"


# --------------------------------------------------------------------------- errors


class PolicyError(ValueError):
    """A policy failed validation.

    ``errors`` lists every problem found, each ``{"field": ..., "message": ...}`` where
    ``field`` is a path into the policy JSON such as ``"rules[1].op"`` (``"policy"`` for
    the document itself) and ``message`` names the offending value.
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        # Passing the list (not a rendered string) to ValueError keeps the exception
        # picklable with its structured errors intact.
        super().__init__(list(errors))
        self.errors: list[dict[str, str]] = list(errors)

    def __str__(self) -> str:
        if not self.errors:
            return "invalid policy"
        return "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class MetricObservation:
    """One recorded value of a metric for a model version.

    ``source`` is where it came from (``"evaluation"`` for a registry evaluation,
    ``"run"`` for the training run, ``"manual"``…); evaluations are trusted over the rest.
    """

    name: str
    value: float
    source: str
    dataset_digest: str | None
    evaluated_at: datetime | None
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class Approval:
    """An approval of the requested transition, with the approver's team role at the time."""

    user_id: str
    role: str
    decided_at: datetime
    comment: str = ""


@dataclass(frozen=True)
class GateContext:
    """Everything the rules may look at, gathered by the caller at decision time.

    ``champion_metrics`` is ``None`` when the model has no champion (no production
    version) and a possibly empty sequence when it has one. ``dataset_digest`` is the
    digest of the model's evaluation dataset, when it has one. All datetimes must be
    comparable with ``now`` (use timezone-aware datetimes throughout).
    """

    target_stage: str
    requester_id: str
    now: datetime
    candidate_metrics: Sequence[MetricObservation]
    champion_metrics: Sequence[MetricObservation] | None
    approvals: Sequence[Approval] = ()
    artifacts: frozenset[str] = frozenset()
    dataset_digest: str | None = None
    canary_started_at: datetime | None = None


@dataclass(frozen=True)
class GateResult:
    """The outcome of one rule for one transition.

    ``detail`` is a sentence with the numbers in it; ``data`` holds the same numbers in
    JSON-serialisable form; ``needs`` says what would unblock it: ``"evaluation"`` when a
    fresh evaluation could let it pass, ``"approvals"`` when waiting for approvers.
    """

    rule: str
    index: int
    status: GateStatus
    detail: str
    data: dict[str, Any]
    needs: Needs | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable copy of the result."""
        return {
            "rule": self.rule,
            "index": self.index,
            "status": self.status,
            "detail": self.detail,
            "data": copy.deepcopy(self.data),
            "needs": self.needs,
        }


# --------------------------------------------------------------------------- formatting


def _short(digest: str) -> str:
    """Abbreviate a dataset digest for sentences; ``data`` always carries the full one."""
    return digest if len(digest) <= 10 else digest[:6] + "…"


def _on(digest: str | None) -> str:
    return f" on dataset {_short(digest)}" if digest is not None else " (no dataset recorded)"


def _fmt(x: float, sig: int) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    magnitude = abs(x)
    if magnitude < 1 or magnitude >= 1e15:
        return f"{x:.{sig}g}"
    # Fixed point for ordinary magnitudes so 12345.6 never turns into 1.235e+04.
    decimals = max(sig - len(str(int(magnitude))), 0)
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _fmt_distinct(*values: float) -> list[str]:
    """Format numbers briefly, but never so briefly that two different values read the same.

    Otherwise a failing 0.79999 would be explained as "0.8 is below the threshold 0.8".
    """
    for sig in range(4, 18):
        texts = [_fmt(v, sig) for v in values]
        clash = any(
            values[i] != values[j] and texts[i] == texts[j]
            for i in range(len(values))
            for j in range(i + 1, len(values))
        )
        if not clash:
            return texts
    return [repr(v) for v in values]


def _fixed(value: float, reference: float, decimals: int = 1) -> str:
    """Fixed-point ``value`` (an age, a duration) with at least ``decimals`` places.

    Widened while it would print the same as a different ``reference``, so an age just
    over a 7-day limit reads 7.01 rather than a contradictory "7.0, older than 7".
    """
    for places in range(decimals, 10):
        text = f"{value:.{places}f}"
        if value == reference or text != f"{reference:.{places}f}":
            return text
    return repr(value)


def _json_num(x: float | None) -> float | None:
    # JSON has no NaN/Infinity (and PostgreSQL jsonb rejects them), so they become null;
    # the detail sentence still spells the value out.
    if x is None or not math.isfinite(x):
        return None
    return x


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _observation_data(obs: MetricObservation, prefix: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}source": obs.source,
        f"{prefix}dataset_digest": obs.dataset_digest,
        f"{prefix}evaluated_at": _iso(obs.evaluated_at),
    }
    if obs.ci_low is not None or obs.ci_high is not None:
        data[f"{prefix}ci_low"] = _json_num(obs.ci_low)
        data[f"{prefix}ci_high"] = _json_num(obs.ci_high)
    return data


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


# --------------------------------------------------------------------------- selection


def _rank(item: tuple[int, MetricObservation]) -> tuple[bool, bool, datetime | None, int]:
    position, obs = item
    # Evaluations beat other sources, then dated beats undated, then newest; the final
    # tie-break is list position (later wins), since callers list in recording order.
    # When the datetimes are None on both sides the tuple comparison stops at position.
    return (obs.source == EVALUATION_SOURCE, obs.evaluated_at is not None, obs.evaluated_at, position)


def _pick(
    observations: Iterable[MetricObservation],
    metric: str,
    preferred_digest: str | None = None,
    *,
    only_digest: str | None = None,
) -> MetricObservation | None:
    """Choose the observation of ``metric`` that counts.

    With ``preferred_digest`` observations on that dataset win when there are any; with
    ``only_digest`` nothing else is considered.
    """
    named = [(i, o) for i, o in enumerate(observations) if o.name == metric]
    if only_digest is not None:
        named = [(i, o) for i, o in named if o.dataset_digest == only_digest]
    elif preferred_digest is not None:
        preferred = [(i, o) for i, o in named if o.dataset_digest == preferred_digest]
        named = preferred or named
    if not named:
        return None
    return max(named, key=_rank)[1]


def _provenance_notes(obs: MetricObservation, ctx: GateContext) -> list[str]:
    """Reasons a fresh evaluation might change this value."""
    notes = []
    if obs.source != EVALUATION_SOURCE:
        notes.append(f"value from source {obs.source!r}, not an evaluation")
    if ctx.dataset_digest is not None and obs.dataset_digest != ctx.dataset_digest:
        notes.append(f"not measured on the model's evaluation dataset {_short(ctx.dataset_digest)}")
    return notes


def _with_notes(sentence: str, notes: list[str]) -> str:
    return f"{sentence} ({'; '.join(notes)})" if notes else sentence


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, kw_only=True)
class BaseRule(ABC):
    """Fields and behaviour shared by every rule type.

    Build rules through ``parse_policy``; the constructors do not validate.
    """

    type: ClassVar[str]
    stages: tuple[str, ...] = DEFAULT_STAGES

    def applies_to(self, stage: str) -> bool:
        """Whether this rule gates transitions into ``stage``."""
        return stage in self.stages

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form: ``type``, the rule's own fields, then ``stages``."""
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            if f.name != "stages":
                out[f.name] = _canonical(getattr(self, f.name))
        out["stages"] = list(self.stages)
        return out

    @abstractmethod
    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """Judge ``ctx`` against this rule; ``index`` is the rule's position in its policy."""

    def _result(
        self,
        index: int,
        status: GateStatus,
        detail: str,
        data: dict[str, Any],
        needs: Needs | None = None,
    ) -> GateResult:
        return GateResult(rule=self.type, index=index, status=status, detail=detail, data=data, needs=needs)


def _canonical(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_canonical(v) for v in value]
    # Whole numbers are written back as ints so a stored policy reads as it was typed
    # ("days": 7, not 7.0); parsing turns them into the same float again.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_FAILED_COMPARISON: dict[str, str] = {
    ">=": "is below the threshold",
    ">": "is not above the threshold",
    "<=": "is above the threshold",
    "<": "is not below the threshold",
    "==": "does not equal the threshold",
    "!=": "is excluded by the threshold",
}


@dataclass(frozen=True, kw_only=True)
class MetricThresholdRule(BaseRule):
    """The candidate's metric must satisfy ``metric op value``.

    The comparison is exact IEEE arithmetic, so ``>=`` and ``<=`` pass on equality.
    """

    type: ClassVar[str] = "metric_threshold"
    metric: str
    op: str
    value: float

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring; a missing value fails with ``needs="evaluation"``."""
        data: dict[str, Any] = {
            "metric": self.metric,
            "op": self.op,
            "threshold": _json_num(self.value),
            "value": None,
        }
        obs = _pick(ctx.candidate_metrics, self.metric, ctx.dataset_digest)
        if obs is None:
            (threshold,) = _fmt_distinct(self.value)
            detail = f"no {self.metric} value recorded for this version; the threshold is {self.op} {threshold}"
            return self._result(index, "failed", detail, data, needs="evaluation")

        data["value"] = _json_num(obs.value)
        data.update(_observation_data(obs))
        value, threshold = _fmt_distinct(obs.value, self.value)
        subject = f"{self.metric} = {value}{_on(obs.dataset_digest)}"
        notes = _provenance_notes(obs, ctx)
        if math.isnan(obs.value):
            detail = f"{subject} cannot be compared with the threshold {self.op} {threshold}"
            return self._result(index, "failed", _with_notes(detail, notes), data, needs="evaluation")
        if OPERATORS[self.op](obs.value, self.value):
            detail = f"{subject} meets the threshold {self.op} {threshold}"
            return self._result(index, "passed", _with_notes(detail, notes), data)
        detail = f"{subject} {_FAILED_COMPARISON[self.op]} {self.op} {threshold}"
        # A fresh evaluation would replace a run/manual value or an off-dataset one, so
        # it could change the verdict; otherwise re-evaluating the same model cannot.
        needs: Needs | None = "evaluation" if notes else None
        return self._result(index, "failed", _with_notes(detail, notes), data, needs=needs)


@dataclass(frozen=True, kw_only=True)
class BeatsChampionRule(BaseRule):
    """The candidate must be at least ``min_delta`` better than the champion, on the same data.

    The improvement is ``candidate - champion`` when higher is better and ``champion -
    candidate`` when lower is better; the rule passes when ``improvement >= min_delta``,
    so with the default ``min_delta`` of 0 a tie passes ("at least as good"). Because
    the improvement is a difference of two rounded floats, an improvement within a
    relative 1e-12 of ``min_delta`` counts as equal (0.85 - 0.80 is not exactly 0.05).
    Both scores must come from the same dataset digest; when there is none in common
    the rule fails and asks for an evaluation. With no champion at all it passes.
    """

    type: ClassVar[str] = "beats_champion"
    metric: str
    min_delta: float = 0.0
    direction: Direction

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring."""
        data: dict[str, Any] = {
            "metric": self.metric,
            "direction": self.direction,
            "min_delta": _json_num(self.min_delta),
        }
        if ctx.champion_metrics is None:
            data["champion"] = None
            return self._result(index, "passed", "no champion yet: nothing to beat", data)

        chosen = _pick(ctx.candidate_metrics, self.metric, ctx.dataset_digest)
        if chosen is None:
            detail = f"no {self.metric} value recorded for this version, so it cannot be compared with the champion"
            data.update(candidate=None, champion=None)
            return self._result(index, "failed", detail, data, needs="evaluation")

        digest = self._common_digest(ctx, chosen)
        if digest is None:
            return self._no_common_dataset(ctx, chosen, index, data)

        candidate = _pick(ctx.candidate_metrics, self.metric, only_digest=digest)
        champion = _pick(ctx.champion_metrics, self.metric, only_digest=digest)
        assert candidate is not None and champion is not None  # digest is common to both

        if self.direction == "higher":
            delta = candidate.value - champion.value
        else:
            delta = champion.value - candidate.value
        data.update(
            candidate=_json_num(candidate.value),
            champion=_json_num(champion.value),
            delta=_json_num(delta),
            dataset_digest=digest,
        )
        data.update(_observation_data(candidate, "candidate_"))
        data.update(_observation_data(champion, "champion_"))

        notes = []
        if ctx.dataset_digest is not None and digest != ctx.dataset_digest:
            notes.append(f"not the model's evaluation dataset {_short(ctx.dataset_digest)}")
        cand_ci, champ_ci = _interval(candidate), _interval(champion)
        if cand_ci is not None and champ_ci is not None:
            overlap = cand_ci[0] <= champ_ci[1] and champ_ci[0] <= cand_ci[1]
            data["ci_overlap"] = overlap
            if overlap:
                notes.append("the confidence intervals overlap")

        cand_text, champ_text = _fmt_distinct(candidate.value, champion.value)
        comparison = f"{self.metric} = {cand_text} vs champion {champ_text}{_on(digest)}"
        if math.isnan(delta):
            detail = f"{comparison}: the scores cannot be compared"
            return self._result(index, "failed", _with_notes(detail, notes), data, needs="evaluation")

        scale = max(abs(candidate.value), abs(champion.value), abs(self.min_delta))
        tied = math.isfinite(scale) and abs(delta - self.min_delta) <= _TIE_TOLERANCE * scale
        passed = delta >= self.min_delta or tied
        delta_text, margin_text = _fmt_distinct(delta, self.min_delta)
        if tied:
            delta_text = margin_text
        sign = "+" if delta > 0 else ""
        verdict = "meets" if passed else "is below"
        detail = (
            f"{comparison}: improvement {sign}{delta_text} {verdict} the required margin "
            f"{margin_text} ({self.direction} is better)"
        )
        if passed:
            return self._result(index, "passed", _with_notes(detail, notes), data)
        # Only a non-evaluation score could be displaced by running a proper evaluation.
        stale = candidate.source != EVALUATION_SOURCE or champion.source != EVALUATION_SOURCE
        needs: Needs | None = "evaluation" if stale else None
        return self._result(index, "failed", _with_notes(detail, notes), data, needs=needs)

    def _common_digest(self, ctx: GateContext, chosen: MetricObservation) -> str | None:
        champion = ctx.champion_metrics or ()
        cand_digests = {o.dataset_digest for o in ctx.candidate_metrics if o.name == self.metric}
        champ_digests = {o.dataset_digest for o in champion if o.name == self.metric}
        # An undated-dataset score cannot be shown to be on the same data as anything.
        common = (cand_digests & champ_digests) - {None}
        for preferred in (ctx.dataset_digest, chosen.dataset_digest):
            if preferred is not None and preferred in common:
                return preferred
        fallback = _pick(
            (o for o in ctx.candidate_metrics if o.dataset_digest in common),
            self.metric,
        )
        return fallback.dataset_digest if fallback is not None else None

    def _no_common_dataset(
        self,
        ctx: GateContext,
        chosen: MetricObservation,
        index: int,
        data: dict[str, Any],
    ) -> GateResult:
        champion = ctx.champion_metrics or ()
        cand_digests = sorted(
            {o.dataset_digest for o in ctx.candidate_metrics if o.name == self.metric and o.dataset_digest}
        )
        champ_digests = sorted({o.dataset_digest for o in champion if o.name == self.metric and o.dataset_digest})
        wanted = ctx.dataset_digest if ctx.dataset_digest is not None else chosen.dataset_digest
        data.update(
            candidate=_json_num(chosen.value),
            champion=None,
            dataset_digest=wanted,
            candidate_digests=cand_digests,
            champion_digests=champ_digests,
        )

        def listing(digests: list[str]) -> str:
            if not digests:
                return "on no recorded dataset"
            return f"on {_plural(len(digests), 'dataset')} " + ", ".join(_short(d) for d in digests)

        if wanted is None:
            detail = (
                f"this version's {self.metric} has no dataset recorded, so it cannot be compared with "
                f"the champion on the same data (champion results are {listing(champ_digests)}); "
                "evaluate this version on a registered dataset"
            )
        elif wanted in cand_digests:
            detail = (
                f"champion has no {self.metric} on dataset {_short(wanted)} "
                f"(its results are {listing(champ_digests)}); re-evaluate the champion on that dataset"
            )
        elif wanted in champ_digests:
            detail = (
                f"this version has no {self.metric} on dataset {_short(wanted)} "
                f"(its results are {listing(cand_digests)}); evaluate this version on that dataset"
            )
        else:
            detail = (
                f"neither this version ({listing(cand_digests)}) nor the champion "
                f"({listing(champ_digests)}) has {self.metric} on dataset {_short(wanted)}; "
                "evaluate both on that dataset"
            )
        return self._result(index, "failed", detail, data, needs="evaluation")


def _interval(obs: MetricObservation) -> tuple[float, float] | None:
    if obs.ci_low is None or obs.ci_high is None:
        return None
    return obs.ci_low, obs.ci_high


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
        detail = f"{got} of {self.count} {_plural(self.count, 'approval')} from {who}"
        notes = []
        if approved_by:
            notes.append("approved by " + ", ".join(sorted(approved_by)))
        if requester_approved:
            notes.append("the requester's own approval does not count")
        if too_junior:
            notes.append(f"{len(too_junior)} {_plural(len(too_junior), 'approval')} below {self.role} not counted")
        detail = _with_notes(detail, notes)
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
        data: dict[str, Any] = {"days": _json_num(self.days), "age_days": None, "evaluated_at": None}
        evaluations = [
            (o.evaluated_at, o)
            for o in ctx.candidate_metrics
            if o.source == EVALUATION_SOURCE
            and o.evaluated_at is not None
            and (ctx.dataset_digest is None or o.dataset_digest == ctx.dataset_digest)
        ]
        where = _on(ctx.dataset_digest) if ctx.dataset_digest is not None else ""
        (limit_text,) = _fmt_distinct(self.days)
        if not evaluations:
            detail = f"no evaluation of this version recorded{where}; evaluations must be at most {limit_text} days old"
            return self._result(index, "failed", detail, data, needs="evaluation")

        evaluated_at, newest = max(evaluations, key=lambda pair: pair[0])
        # Float days rather than timedelta(days=...), which overflows for huge limits.
        age_days = (ctx.now - evaluated_at).total_seconds() / 86400
        data.update(age_days=age_days, evaluated_at=_iso(evaluated_at), dataset_digest=newest.dataset_digest)
        age_text = _fixed(age_days, self.days)
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
            detail = f"missing required {_plural(len(missing), 'artifact')}: " + ", ".join(missing)
            return self._result(index, "failed", detail, data)
        detail = f"all required {_plural(len(self.items), 'artifact')} present: " + ", ".join(self.items)
        return self._result(index, "passed", detail, data)


@dataclass(frozen=True, kw_only=True)
class CanarySoakRule(BaseRule):
    """A canary must have been running for at least ``minutes`` (exactly ``minutes`` passes)."""

    type: ClassVar[str] = "canary_soak"
    minutes: float

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring; an unstarted or young canary is ``waiting``."""
        (required_text,) = _fmt_distinct(self.minutes)
        data: dict[str, Any] = {
            "minutes": _json_num(self.minutes),
            "started_at": _iso(ctx.canary_started_at),
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
            data["ready_at"] = _iso(ctx.canary_started_at + timedelta(minutes=self.minutes))
        data.update(elapsed_minutes=elapsed, remaining_minutes=remaining)
        elapsed_text = _fixed(elapsed, self.minutes)
        if elapsed < self.minutes:
            remaining_text = _fixed(remaining, 0.0)
            detail = f"canary has soaked {elapsed_text} of {required_text} minutes; {remaining_text} minutes remaining"
            return self._result(index, "waiting", detail, data)
        detail = f"canary has soaked {elapsed_text} minutes, at least the required {required_text}"
        return self._result(index, "passed", detail, data)


Rule: TypeAlias = (
    MetricThresholdRule
    | BeatsChampionRule
    | ApprovalsRule
    | MaxEvaluationAgeRule
    | RequiredArtifactsRule
    | CanarySoakRule
)


@dataclass(frozen=True)
class Policy:
    """A validated policy: its rules in the order they were written."""

    rules: tuple[Rule, ...] = ()

    def rules_for(self, stage: str) -> list[tuple[int, Rule]]:
        """The ``(index, rule)`` pairs that gate transitions into ``stage``."""
        return [(i, rule) for i, rule in enumerate(self.rules) if rule.applies_to(stage)]

    def to_dict(self) -> dict[str, Any]:
        """Same as ``policy_to_dict(self)``."""
        return policy_to_dict(self)


# --------------------------------------------------------------------------- parsing

_INVALID: Any = object()


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(value: object) -> str:
    return f"{_show(value)} ({_json_type(value)})"


def _got(value: object) -> str:
    return f"got {_describe(value)}"


def _name(value: object) -> str:
    """A string as-is (quoted); anything else with its JSON type, since that is the mistake."""
    return _show(value) if isinstance(value, str) else _describe(value)


def _suggest(word: object, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Errors:
    """Collects ``{"field", "message"}`` entries so one pass reports every problem."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> Any:
        self.items.append({"field": field, "message": message})
        return _INVALID


_Parser: TypeAlias = Callable[[object, str, str, _Errors], Any]


def _parse_metric(value: object, name: str, path: str, errors: _Errors) -> Any:
    if not isinstance(value, str):
        return errors.add(path, f"{name} must be a metric name (a string), {_got(value)}")
    if not value.strip():
        return errors.add(path, f"{name} must not be empty, got {value!r}")
    if not METRIC_NAME_RE.fullmatch(value):
        return errors.add(
            path,
            f"invalid metric name {_show(value)}; use 1-250 letters, digits, spaces or _ . - /",
        )
    return value


def _parse_op(value: object, name: str, path: str, errors: _Errors) -> Any:
    if not isinstance(value, str) or value not in OPERATORS:
        return errors.add(path, f"unknown operator {_name(value)}; expected one of {', '.join(OPERATORS)}")
    return value


def _number_parser(minimum: float | None = None, *, strict: bool = False) -> _Parser:
    """A parser for finite numbers, optionally bounded below (``strict``: exclusive)."""

    def parse(value: object, name: str, path: str, errors: _Errors) -> Any:
        # bool is an int subclass in Python, but `true` is never a meaningful threshold.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return errors.add(path, f"{name} must be a number, {_got(value)}")
        try:
            number = float(value)
        except OverflowError:
            return errors.add(path, f"{name} is too large, got {_show(value)}")
        if not math.isfinite(number):
            return errors.add(path, f"{name} must be a finite number, got {_show(value)}")
        if minimum is not None:
            if strict and number <= minimum:
                return errors.add(path, f"{name} must be > {_fmt(minimum, 17)}, got {_show(value)}")
            if not strict and number < minimum:
                return errors.add(path, f"{name} must be >= {_fmt(minimum, 17)}, got {_show(value)}")
        return number

    return parse


def _parse_count(value: object, name: str, path: str, errors: _Errors) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        return errors.add(path, f"{name} must be a whole number, {_got(value)}")
    if not 1 <= value <= MAX_APPROVALS:
        return errors.add(path, f"{name} must be between 1 and {MAX_APPROVALS}, got {_show(value)}")
    return value


def _parse_role(value: object, name: str, path: str, errors: _Errors) -> Any:
    if not isinstance(value, str) or value not in ROLE_RANK:
        return errors.add(
            path, f"unknown role {_name(value)}; expected one of {', '.join(ROLES)}{_suggest(value, ROLES)}"
        )
    return value


def _parse_direction(value: object, name: str, path: str, errors: _Errors) -> Any:
    if value not in ("higher", "lower"):
        return errors.add(path, f"unknown direction {_name(value)}; expected 'higher' or 'lower'")
    return value


def _string_list_parser(
    what: str,
    check: Callable[[str, str, _Errors], bool] | None = None,
) -> _Parser:
    """A parser for a non-empty list of distinct strings; ``check`` vets each one."""

    def parse(value: object, name: str, path: str, errors: _Errors) -> Any:
        if not isinstance(value, (list, tuple)) or not value:
            return errors.add(path, f"{name} must be a non-empty list of {what}s, {_got(value)}")
        seen: list[str] = []
        ok = True
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if not isinstance(item, str) or not item.strip():
                errors.add(item_path, f"each {what} must be a non-empty string, {_got(item)}")
                ok = False
            elif check is not None and not check(item, item_path, errors):
                ok = False
            elif item in seen:
                errors.add(item_path, f"duplicate {what} {item!r}")
                ok = False
            else:
                seen.append(item)
        return tuple(seen) if ok else _INVALID

    return parse


def _check_stage(stage: str, path: str, errors: _Errors) -> bool:
    if stage in GATED_STAGES:
        return True
    expected = ", ".join(GATED_STAGES)
    if stage in STAGES:
        errors.add(path, f"stage {stage!r} cannot be gated by a policy; expected one of {expected}")
    else:
        errors.add(path, f"unknown stage {_show(stage)}; expected one of {expected}{_suggest(stage, GATED_STAGES)}")
    return False


class _Field(NamedTuple):
    parse: _Parser
    required: bool


_METRIC = _Field(_parse_metric, required=True)
_STAGES_FIELD = _Field(_string_list_parser("stage", _check_stage), required=False)

# Per rule type: its class and its JSON fields in canonical order (``type`` is implicit,
# ``stages`` is common to all and always last).
_RULE_SPECS: dict[str, tuple[type[BaseRule], dict[str, _Field]]] = {
    cls.type: (cls, {**own, "stages": _STAGES_FIELD})
    for cls, own in (
        (
            MetricThresholdRule,
            {"metric": _METRIC, "op": _Field(_parse_op, True), "value": _Field(_number_parser(), True)},
        ),
        (
            BeatsChampionRule,
            {
                "metric": _METRIC,
                "min_delta": _Field(_number_parser(0.0), False),
                "direction": _Field(_parse_direction, False),
            },
        ),
        (ApprovalsRule, {"count": _Field(_parse_count, True), "role": _Field(_parse_role, False)}),
        (MaxEvaluationAgeRule, {"days": _Field(_number_parser(0.0, strict=True), True)}),
        (RequiredArtifactsRule, {"items": _Field(_string_list_parser("artifact name"), True)}),
        (CanarySoakRule, {"minutes": _Field(_number_parser(0.0, strict=True), True)}),
    )
}

RULE_TYPES: tuple[str, ...] = tuple(_RULE_SPECS)


def _parse_rule(raw: object, path: str, errors: _Errors) -> Rule | None:
    if not isinstance(raw, Mapping):
        errors.add(path, f"each rule must be an object, {_got(raw)}")
        return None
    kinds = ", ".join(RULE_TYPES)
    if "type" not in raw:
        errors.add(f"{path}.type", f"missing required field 'type'; expected one of {kinds}")
        return None
    kind = raw["type"]
    if not isinstance(kind, str) or kind not in _RULE_SPECS:
        # The other keys cannot be judged without knowing the type, so stop here.
        errors.add(
            f"{path}.type", f"unknown rule type {_name(kind)}; expected one of {kinds}{_suggest(kind, RULE_TYPES)}"
        )
        return None

    cls, spec = _RULE_SPECS[kind]
    before = len(errors.items)
    for key in raw:
        if key != "type" and key not in spec:
            allowed = ", ".join(["type", *spec])
            errors.add(
                f"{path}.{key}",
                f"unknown key {_show(key)} for a {kind} rule; allowed keys are {allowed}{_suggest(key, spec)}",
            )
    values: dict[str, Any] = {}
    for name, field in spec.items():
        field_path = f"{path}.{name}"
        if name not in raw:
            if field.required:
                errors.add(field_path, f"missing required field {name!r} for a {kind} rule")
            continue
        parsed = field.parse(raw[name], name, field_path, errors)
        if parsed is not _INVALID:
            values[name] = parsed
    if len(errors.items) != before:
        return None
    if cls is BeatsChampionRule and "direction" not in values:
        values["direction"] = default_direction(values["metric"])
    return cast("Rule", cls(**values))


def parse_policy(raw: object) -> Policy:
    """Validate policy JSON and return it as a ``Policy``.

    ``None`` and ``{}`` are the empty policy. Otherwise ``raw`` must be an object whose
    only key is ``rules``, a list of rule objects. Every problem is collected and raised
    together as one ``PolicyError``. An already-parsed ``Policy`` is returned unchanged.
    """
    if raw is None:
        return Policy()
    if isinstance(raw, Policy):
        return raw
    errors = _Errors()
    if not isinstance(raw, Mapping):
        errors.add("policy", f"a policy must be an object with a 'rules' list, {_got(raw)}")
        raise PolicyError(errors.items)
    for key in raw:
        if key != "rules":
            hint = _suggest(key, ["rules"])
            errors.add(str(key), f"unknown key {_show(key)}; a policy may only contain 'rules'{hint}")
    rules_raw = raw.get("rules", [])
    rules: list[Rule] = []
    if not isinstance(rules_raw, (list, tuple)):
        errors.add("rules", f"rules must be a list of rule objects, {_got(rules_raw)}")
    else:
        for i, rule_raw in enumerate(rules_raw):
            rule = _parse_rule(rule_raw, f"rules[{i}]", errors)
            if rule is not None:
                rules.append(rule)
    if errors.items:
        raise PolicyError(errors.items)
    return Policy(rules=tuple(rules))


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The canonical JSON form of ``policy``: every default filled in, fields in a fixed order.

    ``parse_policy(policy_to_dict(p)) == p`` for any parsed policy ``p``.
    """
    return {"rules": [rule.to_dict() for rule in policy.rules]}


# --------------------------------------------------------------------------- evaluation


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
