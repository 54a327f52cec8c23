"""Rules that judge an update (a derived version): how much of a metric it may lose against
its parent or the champion, how slow it may answer, how much memory it may take, how large
its artifact may be.

Latency and memory are what the evaluation or derivation job measured and recorded as the
version's metrics ``latency_p{N}_ms`` (one row), ``batch_latency_p{N}_ms`` (a batch of
1,000 rows) and ``peak_memory_mb`` (loading the model and scoring a batch); the artifact's
size is the registry's, summed over the files of its manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from lifecycle.governance.rules.base import BaseRule
from lifecycle.governance.rules.context import GateContext, GateResult
from lifecycle.governance.rules.formatting import format_distinct, json_number, on_dataset, short_digest
from lifecycle.governance.rules.metric_rules import _pick
from lifecycle.metric_direction import Direction

# Relative slack when comparing a computed drop with the allowed one (see BeatsChampionRule).
_TIE_TOLERANCE = 1e-12
LATENCY_PERCENTILES: tuple[int, ...] = (50, 95)
BYTES_PER_MB = 1024 * 1024
# The metric under which the evaluation and derivation jobs record peak memory.
PEAK_MEMORY_METRIC = "peak_memory_mb"
# The rule types that read figures only a measuring job records: a model whose policy has
# one is measured by every evaluation, whatever the installation's default.
MEASURED_RULE_TYPES: tuple[str, ...] = ("max_latency_ms", "max_memory_mb")


def latency_metric(percentile: int, batch: bool) -> str:
    """The metric name under which the derivation job records a latency percentile."""
    return f"{'batch_' if batch else ''}latency_p{percentile}_ms"


@dataclass(frozen=True, kw_only=True)
class MaxMetricDropRule(BaseRule):
    """The candidate may lose at most ``value`` of ``metric`` against its parent (or the
    champion), both scored on the same dataset digest.

    The drop is ``reference - candidate`` when higher is better and ``candidate -
    reference`` when lower is better, so an improvement is a negative drop. A version
    with no parent (``vs: parent``) or a model with no champion (``vs: champion``) has
    nothing to lose against, and passes.
    """

    type: ClassVar[str] = "max_metric_drop"
    metric: str
    vs: str = "parent"
    value: float
    direction: Direction

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring."""
        reference = ctx.parent_metrics if self.vs == "parent" else ctx.champion_metrics
        data: dict[str, Any] = {
            "metric": self.metric,
            "vs": self.vs,
            "max_drop": json_number(self.value),
            "direction": self.direction,
        }
        if reference is None:
            data.update(candidate=None, reference=None, drop=None)
            return self._result(index, "passed", f"no {self.vs}: nothing to lose {self.metric} against", data)
        names = {o.dataset_digest for o in ctx.candidate_metrics if o.name == self.metric}
        common = names & {o.dataset_digest for o in reference if o.name == self.metric} - {None}
        digest = ctx.dataset_digest if ctx.dataset_digest in common else (sorted(common)[0] if common else None)
        if digest is None:
            data.update(candidate=None, reference=None, drop=None)
            detail = (
                f"this version and its {self.vs} have no {self.metric} on a common dataset"
                + (f" (the model's is {short_digest(ctx.dataset_digest)})" if ctx.dataset_digest else "")
                + "; evaluate both on the same data"
            )
            return self._result(index, "failed", detail, data, needs="evaluation")
        candidate = _pick(ctx.candidate_metrics, self.metric, only_digest=digest)
        before = _pick(reference, self.metric, only_digest=digest)
        assert candidate is not None and before is not None
        drop = before.value - candidate.value if self.direction == "higher" else candidate.value - before.value
        data.update(
            candidate=json_number(candidate.value),
            reference=json_number(before.value),
            drop=json_number(drop),
            dataset_digest=digest,
        )
        cand_text, ref_text = format_distinct(candidate.value, before.value)
        drop_text, limit_text = format_distinct(drop, self.value)
        comparison = f"{self.metric} = {cand_text} vs {self.vs} {ref_text}{on_dataset(digest)}"
        if math.isnan(drop):
            return self._result(index, "failed", f"{comparison}: the scores cannot be compared", data)
        tied = abs(drop - self.value) <= _TIE_TOLERANCE * max(abs(candidate.value), abs(before.value), 1.0)
        if drop <= self.value or tied:
            verdict = "gains" if drop < 0 else "drops"
            shown = format_distinct(-drop, self.value)[0] if drop < 0 else drop_text
            detail = f"{comparison}: {verdict} {shown}, within the allowed drop {limit_text}"
            return self._result(index, "passed", detail, data)
        detail = f"{comparison}: drops {drop_text}, more than the allowed {limit_text} ({self.direction} is better)"
        return self._result(index, "failed", detail, data)


def _measured_ceiling(
    rule: BaseRule, ctx: GateContext, index: int, *, limit: float, metric: str, what: str, unit: str
) -> GateResult:
    """A measured figure of the version (``metric``) against the rule's ``limit``, in
    ``unit``: ``{metric, max_<unit>, value_<unit>}`` in the result. A version never
    measured fails until it is, with ``needs="evaluation"`` (the evaluation job measures
    every version it scores)."""
    key = unit.lower()
    data: dict[str, Any] = {"metric": metric, f"max_{key}": json_number(limit), f"value_{key}": None}
    observed = _pick(ctx.candidate_metrics, metric)
    if observed is None:
        detail = (
            f"no {what} measured for this version (metric {metric}); an evaluation or a derivation "
            f"measures it, and the limit is {limit:g} {unit}"
        )
        return rule._result(index, "failed", detail, data, needs="evaluation")
    data[f"value_{key}"] = json_number(observed.value)
    value_text, limit_text = format_distinct(observed.value, limit)
    if observed.value <= limit:
        return rule._result(index, "passed", f"{what} {value_text} {unit} is within {limit_text} {unit}", data)
    return rule._result(index, "failed", f"{what} {value_text} {unit} is over the limit {limit_text} {unit}", data)


@dataclass(frozen=True, kw_only=True)
class MaxLatencyRule(BaseRule):
    """The ``percentile``-th latency measured for the version (one row, or a batch of
    1,000 with ``batch``) must be at most ``value`` milliseconds."""

    type: ClassVar[str] = "max_latency_ms"
    percentile: int = 95
    value: float
    batch: bool = False

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring; a version never measured fails until it is, with
        ``needs="evaluation"`` (the evaluation job measures every version it scores)."""
        what = f"p{self.percentile} {'batch' if self.batch else 'single-row'} latency"
        return _measured_ceiling(
            self, ctx, index, limit=self.value, metric=latency_metric(self.percentile, self.batch), what=what, unit="ms"
        )


@dataclass(frozen=True, kw_only=True)
class MaxMemoryRule(BaseRule):
    """The peak memory measured for the version (how far loading it and scoring a batch
    of 1,000 rows raise a fresh process's resident set) must be at most ``value`` MB
    (MiB)."""

    type: ClassVar[str] = "max_memory_mb"
    value: float

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring; a version never measured fails until it is, with
        ``needs="evaluation"`` (the evaluation job measures every version it scores), as
        ``max_latency_ms`` does."""
        return _measured_ceiling(
            self, ctx, index, limit=self.value, metric=PEAK_MEMORY_METRIC, what="peak memory", unit="MB"
        )


@dataclass(frozen=True, kw_only=True)
class MaxArtifactSizeRule(BaseRule):
    """The version's stored artifact must be at most ``value`` MB (MiB, 1,048,576 bytes)."""

    type: ClassVar[str] = "max_artifact_mb"
    value: float

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring."""
        data: dict[str, Any] = {"max_mb": json_number(self.value), "size_mb": None, "size_bytes": ctx.artifact_bytes}
        if ctx.artifact_bytes is None:
            return self._result(index, "failed", "the artifact's size is not known", data)
        size_mb = ctx.artifact_bytes / BYTES_PER_MB
        data["size_mb"] = json_number(size_mb)
        size_text, limit_text = format_distinct(size_mb, self.value)
        if size_mb <= self.value:
            return self._result(index, "passed", f"artifact {size_text} MB is within {limit_text} MB", data)
        return self._result(index, "failed", f"artifact {size_text} MB is over the limit {limit_text} MB", data)
