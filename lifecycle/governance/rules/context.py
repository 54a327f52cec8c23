"""What the rules look at and what they answer: the ``GateContext`` snapshot and ``GateResult``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lifecycle.governance.rules.vocabulary import GateStatus, Needs


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
    # The parent's metrics when the version was derived from one (None when it was not),
    # and the size in bytes of the version's stored artifact.
    parent_metrics: Sequence[MetricObservation] | None = None
    artifact_bytes: int | None = None
    # The ``inputs`` of the version's MLflow signature (column specs ``{name, type}``, or
    # one ``{"type": "tensor", "tensor-spec": {...}}``); None when it has none.
    signature_inputs: Sequence[Any] | None = None


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
