"""The promotion-policy rules engine: may this version move to that stage?

A model carries a policy, a JSON object with a list of rules. ``parse_policy`` turns the
JSON into frozen dataclasses (collecting every problem into one ``PolicyError``), and
``evaluate_policy`` runs the rules that apply to a target stage against a ``GateContext``
snapshot, returning one ``GateResult`` per rule with a sentence a person can act on.

This package is deliberately plain Python: no Django, no I/O, no clock. The caller
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
      {"type": "canary_soak", "minutes": 30, "stages": ["production"]},
      {"type": "max_metric_drop", "metric": "f1", "vs": "parent", "value": 0.01},
      {"type": "max_latency_ms", "percentile": 95, "value": 5},
      {"type": "max_memory_mb", "value": 512},
      {"type": "max_artifact_mb", "value": 20},
      {"type": "input_schema", "columns": ["amount", "country"], "optional": ["note"]}
    ]}

Where things are: ``vocabulary`` (stages, roles, operators, type aliases), ``context``
(``GateContext``, ``GateResult``), ``errors``, ``formatting`` (numbers in sentences),
``base``, ``metric_rules``, ``process_rules``, ``update_rules`` and ``schema_rules`` (the rule
types), ``policy``,
``parser`` and ``evaluation``.
"""

from __future__ import annotations

from lifecycle.governance.rules.base import BaseRule
from lifecycle.governance.rules.context import Approval, GateContext, GateResult, MetricObservation
from lifecycle.governance.rules.errors import PolicyError
from lifecycle.governance.rules.evaluation import evaluate_policy, overall_status
from lifecycle.governance.rules.metric_rules import BeatsChampionRule, MetricThresholdRule
from lifecycle.governance.rules.parser import RULE_TYPES, parse_policy
from lifecycle.governance.rules.policy import Policy, Rule, policy_to_dict
from lifecycle.governance.rules.process_rules import (
    ApprovalsRule,
    CanarySoakRule,
    MaxEvaluationAgeRule,
    RequiredArtifactsRule,
)
from lifecycle.governance.rules.schema_rules import InputSchemaRule
from lifecycle.governance.rules.update_rules import (
    MEASURED_RULE_TYPES,
    MaxArtifactSizeRule,
    MaxLatencyRule,
    MaxMemoryRule,
    MaxMetricDropRule,
)
from lifecycle.governance.rules.vocabulary import (
    DEFAULT_STAGES,
    GATED_STAGES,
    OPERATORS,
    ROLE_RANK,
    ROLES,
    STAGES,
    GateStatus,
)
from lifecycle.metric_direction import LOSS_LIKE_MARKERS, Direction, default_direction

__all__ = [
    "DEFAULT_STAGES",
    "GATED_STAGES",
    "LOSS_LIKE_MARKERS",
    "MEASURED_RULE_TYPES",
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
    "InputSchemaRule",
    "MaxArtifactSizeRule",
    "MaxEvaluationAgeRule",
    "MaxLatencyRule",
    "MaxMemoryRule",
    "MaxMetricDropRule",
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
