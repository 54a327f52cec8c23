"""What every rule shares: the stages it gates, its canonical JSON form, how it reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from lifecycle.governance.rules.context import GateContext, GateResult
from lifecycle.governance.rules.vocabulary import DEFAULT_STAGES, GateStatus, Needs


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
