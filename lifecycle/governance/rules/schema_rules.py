"""A rule on what the version accepts: its signature against the input schema its model's
design card promised (seeded when design completes, ``lifecycle.design.card``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lifecycle.governance.rules.base import BaseRule
from lifecycle.governance.rules.context import GateContext, GateResult


def _tensor_width(inputs: Sequence[Any]) -> int | None:
    """The column count of a signature that is one 2-D tensor (``[-1, n]``), else None."""
    if len(inputs) != 1 or not isinstance(inputs[0], Mapping):
        return None
    shape = (inputs[0].get("tensor-spec") or {}).get("shape")
    if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
        return shape[1]
    return None


@dataclass(frozen=True, kw_only=True)
class InputSchemaRule(BaseRule):
    """The version's signature must take every column in ``columns`` by name and no input
    outside ``columns`` and ``optional``; a signature that is one unnamed tensor must
    have as many columns (matched by position). No signature fails: there is nothing to
    check the promise against."""

    type: ClassVar[str] = "input_schema"
    columns: tuple[str, ...]
    optional: tuple[str, ...] = ()

    def evaluate(self, ctx: GateContext, index: int) -> GateResult:
        """See the class docstring."""
        data: dict[str, Any] = {
            "columns": list(self.columns),
            "optional": list(self.optional),
            "missing": [],
            "unexpected": [],
            "tensor_columns": None,
        }
        inputs = ctx.signature_inputs
        if not inputs:
            detail = "the version has no input signature to check against the design card's input schema"
            return self._result(index, "failed", detail, data)
        names = [str(i["name"]) for i in inputs if isinstance(i, Mapping) and i.get("name")]
        if not names:
            width = _tensor_width(inputs)
            data["tensor_columns"] = width
            low, high = len(self.columns), len(self.columns) + len(self.optional)
            expected = f"{low}" if low == high else f"{low} to {high}"
            if width is not None and low <= width <= high:
                detail = f"the signature is a tensor of {width} columns, as the card's input schema has (by position)"
                return self._result(index, "passed", detail, data)
            shown = f"a tensor of {width} columns" if width is not None else "unnamed inputs"
            detail = f"the signature is {shown}; the design card's input schema has {expected} columns"
            return self._result(index, "failed", detail, data)
        allowed = {*self.columns, *self.optional}
        data["missing"] = [c for c in self.columns if c not in names]
        data["unexpected"] = [n for n in names if n not in allowed]
        if not data["missing"] and not data["unexpected"]:
            detail = f"the signature takes the {len(self.columns)} columns of the design card's input schema"
            return self._result(index, "passed", detail, data)
        problems = []
        if data["missing"]:
            problems.append("lacks the card's columns " + ", ".join(data["missing"]))
        if data["unexpected"]:
            problems.append("takes columns the card does not list: " + ", ".join(data["unexpected"]))
        detail = "the signature " + "; ".join(problems)
        return self._result(index, "failed", detail, data)
