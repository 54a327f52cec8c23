"""Which side of a metric is better: the one answer the evaluator, the gates and the pages share.

``default_direction`` knows the metrics where a smaller value is better by name first
(``LOWER_IS_BETTER``, everything the evaluator computes among them), then guesses from
loss-like substrings (``LOSS_LIKE_MARKERS``). Everything else is higher-is-better. A
``beats_champion`` rule can always state its direction when the guess is wrong.

Plain Python, no Django: the rules engine and the evaluator import it on worker hosts.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = ["LOSS_LIKE_MARKERS", "LOWER_IS_BETTER", "Direction", "default_direction"]

Direction: TypeAlias = Literal["higher", "lower"]

# Exact names (compared lower-cased). Brier score and expected calibration error must be
# named here: no marker can catch "ece" without also catching "precision".
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {
        "log_loss",
        "logloss",
        "brier",
        "brier_score",
        "ece",
        "mae",
        "mse",
        "rmse",
        "msle",
        "rmsle",
        "mape",
    }
)

# Substrings (case-insensitive) that mark a metric where smaller is better. Substring
# rather than token matching so that "logloss", "val_loss" and "RMSE" are all caught.
LOSS_LIKE_MARKERS: tuple[str, ...] = ("log_loss", "loss", "mae", "mse", "rmse", "error", "mape")


def default_direction(metric: str) -> Direction:
    """``"lower"`` for a known lower-is-better metric or a loss-like name, else ``"higher"``."""
    name = metric.lower()
    if name in LOWER_IS_BETTER:
        return "lower"
    return "lower" if any(marker in name for marker in LOSS_LIKE_MARKERS) else "higher"
