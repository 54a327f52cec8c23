"""The words a policy is written in: stages, roles, operators, and the type aliases of a verdict."""

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

# Substrings (case-insensitive) that mark a metric where smaller is better. Substring
# rather than token matching so that "logloss", "val_loss" and "RMSE" are all caught;
# a rule can always state its direction explicitly when the guess is wrong.
LOSS_LIKE_MARKERS: tuple[str, ...] = ("log_loss", "loss", "mae", "mse", "rmse", "error", "mape")

# Limits the parser enforces.
METRIC_NAME_RE = re.compile(r"[A-Za-z0-9_.\-/ ]{1,250}")
MAX_APPROVALS = 20

# The MetricObservation.source of a registry evaluation, trusted over every other source.
EVALUATION_SOURCE = "evaluation"

GateStatus: TypeAlias = Literal["passed", "failed", "waiting"]
Direction: TypeAlias = Literal["higher", "lower"]
Needs: TypeAlias = Literal["evaluation", "approvals"]


def default_direction(metric: str) -> Direction:
    """Return ``"lower"`` for loss-like metric names (see ``LOSS_LIKE_MARKERS``), else ``"higher"``."""
    name = metric.lower()
    return "lower" if any(marker in name for marker in LOSS_LIKE_MARKERS) else "higher"
