"""The error a policy that fails validation raises."""

from __future__ import annotations


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
