"""A validated policy: its rules in order, and its canonical JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from lifecycle.governance.rules.metric_rules import BeatsChampionRule, MetricThresholdRule
from lifecycle.governance.rules.process_rules import (
    ApprovalsRule,
    CanarySoakRule,
    MaxEvaluationAgeRule,
    RequiredArtifactsRule,
)
from lifecycle.governance.rules.schema_rules import InputSchemaRule
from lifecycle.governance.rules.update_rules import (
    MaxArtifactSizeRule,
    MaxLatencyRule,
    MaxMemoryRule,
    MaxMetricDropRule,
)

Rule: TypeAlias = (
    MetricThresholdRule
    | BeatsChampionRule
    | ApprovalsRule
    | MaxEvaluationAgeRule
    | RequiredArtifactsRule
    | CanarySoakRule
    | MaxMetricDropRule
    | MaxLatencyRule
    | MaxMemoryRule
    | MaxArtifactSizeRule
    | InputSchemaRule
)


@dataclass(frozen=True)
class Policy:
    """A validated policy: its rules in the order they were written, and the input or
    output columns that hold personal data (``pii``: masked before the prediction log
    writes them)."""

    rules: tuple[Rule, ...] = ()
    pii: tuple[str, ...] = ()

    def rules_for(self, stage: str) -> list[tuple[int, Rule]]:
        """The ``(index, rule)`` pairs that gate transitions into ``stage``."""
        return [(i, rule) for i, rule in enumerate(self.rules) if rule.applies_to(stage)]

    def to_dict(self) -> dict[str, Any]:
        """Same as ``policy_to_dict(self)``."""
        return policy_to_dict(self)


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The canonical JSON form of ``policy``: every default filled in, fields in a fixed order.

    ``parse_policy(policy_to_dict(p)) == p`` for any parsed policy ``p``.
    """
    canonical: dict[str, Any] = {"rules": [rule.to_dict() for rule in policy.rules]}
    if policy.pii:
        canonical["pii"] = list(policy.pii)
    return canonical
