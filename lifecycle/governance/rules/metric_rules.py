"""Rules on the candidate's scores: a threshold on a metric, and beating the champion.

Both judge one recorded value per metric, chosen by ``_pick``: evaluations over other
sources, the model's evaluation dataset over others, then the newest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from lifecycle.governance.rules.base import BaseRule
from lifecycle.governance.rules.context import GateContext, GateResult, MetricObservation
from lifecycle.governance.rules.formatting import (
    format_distinct,
    json_number,
    observation_data,
    on_dataset,
    plural,
    short_digest,
    with_notes,
)
from lifecycle.governance.rules.vocabulary import EVALUATION_SOURCE, OPERATORS, Needs
from lifecycle.metric_direction import Direction

# Relative slack when comparing a computed improvement with min_delta: far above float
# rounding of decimal inputs (~1e-16), far below any difference a metric can mean.
_TIE_TOLERANCE = 1e-12


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
        notes.append(f"not measured on the model's evaluation dataset {short_digest(ctx.dataset_digest)}")
    return notes


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
            "threshold": json_number(self.value),
            "value": None,
        }
        obs = _pick(ctx.candidate_metrics, self.metric, ctx.dataset_digest)
        if obs is None:
            (threshold,) = format_distinct(self.value)
            detail = f"no {self.metric} value recorded for this version; the threshold is {self.op} {threshold}"
            return self._result(index, "failed", detail, data, needs="evaluation")

        data["value"] = json_number(obs.value)
        data.update(observation_data(obs))
        value, threshold = format_distinct(obs.value, self.value)
        subject = f"{self.metric} = {value}{on_dataset(obs.dataset_digest)}"
        notes = _provenance_notes(obs, ctx)
        if math.isnan(obs.value):
            detail = f"{subject} cannot be compared with the threshold {self.op} {threshold}"
            return self._result(index, "failed", with_notes(detail, notes), data, needs="evaluation")
        if OPERATORS[self.op](obs.value, self.value):
            detail = f"{subject} meets the threshold {self.op} {threshold}"
            return self._result(index, "passed", with_notes(detail, notes), data)
        detail = f"{subject} {_FAILED_COMPARISON[self.op]} {self.op} {threshold}"
        # A fresh evaluation would replace a run/manual value or an off-dataset one, so
        # it could change the verdict; otherwise re-evaluating the same model cannot.
        needs: Needs | None = "evaluation" if notes else None
        return self._result(index, "failed", with_notes(detail, notes), data, needs=needs)


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
            "min_delta": json_number(self.min_delta),
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
            candidate=json_number(candidate.value),
            champion=json_number(champion.value),
            delta=json_number(delta),
            dataset_digest=digest,
        )
        data.update(observation_data(candidate, "candidate_"))
        data.update(observation_data(champion, "champion_"))

        notes = []
        if ctx.dataset_digest is not None and digest != ctx.dataset_digest:
            notes.append(f"not the model's evaluation dataset {short_digest(ctx.dataset_digest)}")
        cand_ci, champ_ci = _interval(candidate), _interval(champion)
        if cand_ci is not None and champ_ci is not None:
            overlap = cand_ci[0] <= champ_ci[1] and champ_ci[0] <= cand_ci[1]
            data["ci_overlap"] = overlap
            if overlap:
                notes.append("the confidence intervals overlap")

        cand_text, champ_text = format_distinct(candidate.value, champion.value)
        comparison = f"{self.metric} = {cand_text} vs champion {champ_text}{on_dataset(digest)}"
        if math.isnan(delta):
            detail = f"{comparison}: the scores cannot be compared"
            return self._result(index, "failed", with_notes(detail, notes), data, needs="evaluation")

        scale = max(abs(candidate.value), abs(champion.value), abs(self.min_delta))
        tied = math.isfinite(scale) and abs(delta - self.min_delta) <= _TIE_TOLERANCE * scale
        passed = delta >= self.min_delta or tied
        delta_text, margin_text = format_distinct(delta, self.min_delta)
        if tied:
            delta_text = margin_text
        sign = "+" if delta > 0 else ""
        verdict = "meets" if passed else "is below"
        detail = (
            f"{comparison}: improvement {sign}{delta_text} {verdict} the required margin "
            f"{margin_text} ({self.direction} is better)"
        )
        if passed:
            return self._result(index, "passed", with_notes(detail, notes), data)
        # Only a non-evaluation score could be displaced by running a proper evaluation.
        stale = candidate.source != EVALUATION_SOURCE or champion.source != EVALUATION_SOURCE
        needs: Needs | None = "evaluation" if stale else None
        return self._result(index, "failed", with_notes(detail, notes), data, needs=needs)

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
            candidate=json_number(chosen.value),
            champion=None,
            dataset_digest=wanted,
            candidate_digests=cand_digests,
            champion_digests=champ_digests,
        )

        def listing(digests: list[str]) -> str:
            if not digests:
                return "on no recorded dataset"
            return f"on {plural(len(digests), 'dataset')} " + ", ".join(short_digest(d) for d in digests)

        if wanted is None:
            detail = (
                f"this version's {self.metric} has no dataset recorded, so it cannot be compared with "
                f"the champion on the same data (champion results are {listing(champ_digests)}); "
                "evaluate this version on a registered dataset"
            )
        elif wanted in cand_digests:
            detail = (
                f"champion has no {self.metric} on dataset {short_digest(wanted)} "
                f"(its results are {listing(champ_digests)}); re-evaluate the champion on that dataset"
            )
        elif wanted in champ_digests:
            detail = (
                f"this version has no {self.metric} on dataset {short_digest(wanted)} "
                f"(its results are {listing(cand_digests)}); evaluate this version on that dataset"
            )
        else:
            detail = (
                f"neither this version ({listing(cand_digests)}) nor the champion "
                f"({listing(champ_digests)}) has {self.metric} on dataset {short_digest(wanted)}; "
                "evaluate both on that dataset"
            )
        return self._result(index, "failed", detail, data, needs="evaluation")


def _interval(obs: MetricObservation) -> tuple[float, float] | None:
    if obs.ci_low is None or obs.ci_high is None:
        return None
    return obs.ci_low, obs.ci_high
