"""The words a policy is written in: stages, roles, operators, and the type aliases of a verdict.

Which side of a metric is better (``Direction``, ``default_direction``) is shared with the
evaluator and lives in ``lifecycle.metric_direction``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Literal, TypeAlias

# Mirrors registry.choices.Stage / Role; duplicated so this package stays importable
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

# Limits the parser enforces.
METRIC_NAME_RE = re.compile(r"[A-Za-z0-9_.\-/ ]{1,250}")
MAX_APPROVALS = 20

# The MetricObservation.source of a registry evaluation, trusted over every other source.
EVALUATION_SOURCE = "evaluation"

GateStatus: TypeAlias = Literal["passed", "failed", "waiting"]
Needs: TypeAlias = Literal["evaluation", "approvals"]
