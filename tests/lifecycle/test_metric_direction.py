"""Which side of a metric is better: one answer for the evaluator and the gates (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from lifecycle.evaluation import metrics
from lifecycle.governance import rules
from lifecycle.metric_direction import default_direction

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DIGEST = "3fa2c1d4e5f6a7b8"


@pytest.mark.parametrize("metric", ["brier", "ece", "val_loss", "RMSE", "log_loss", "mae", "mse", "mape"])
def test_lower_is_better_for_calibration_errors_and_losses(metric: str) -> None:
    assert default_direction(metric) == "lower"


@pytest.mark.parametrize("metric", ["f1", "accuracy", "roc_auc", "precision", "recall_weighted", "r2"])
def test_higher_is_better_for_scores(metric: str) -> None:
    assert default_direction(metric) == "higher"


def _perfect_and_flawed_scores() -> dict[str, tuple[float, float]]:
    """Every scalar the evaluator computes, for flawless predictions and for flawed ones."""
    scores: dict[str, tuple[float, float]] = {}

    def record(perfect: dict[str, Any], flawed: dict[str, Any]) -> None:
        for name, value in perfect.items():
            if isinstance(value, float):
                scores[name] = (value, flawed[name])

    binary = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    flawed_binary = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    flawed_positive = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.6, 0.8, 0.9])
    record(
        metrics.classification_metrics(binary, binary, np.eye(2)[binary], [0, 1]),
        metrics.classification_metrics(
            binary, flawed_binary, np.column_stack([1 - flawed_positive, flawed_positive]), [0, 1]
        ),
    )

    three = np.array([0, 0, 1, 1, 2, 2])
    flawed_three = np.array([0, 1, 1, 2, 2, 0])
    flawed_proba = np.array(
        [[0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6], [0.5, 0.2, 0.3]]
    )
    record(
        metrics.classification_metrics(three, three, np.eye(3)[three], [0, 1, 2]),
        metrics.classification_metrics(three, flawed_three, flawed_proba, [0, 1, 2]),
    )

    target = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    record(
        metrics.regression_metrics(target, target),
        metrics.regression_metrics(target, np.array([1.5, 1.5, 3.5, 3.0, 6.0])),
    )
    return scores


EVALUATOR_SCORES = _perfect_and_flawed_scores()


def test_the_evaluator_computes_the_lower_is_better_metrics() -> None:
    assert {"log_loss", "brier", "ece", "mae", "rmse"} <= set(EVALUATOR_SCORES)


@pytest.mark.parametrize("metric", sorted(EVALUATOR_SCORES))
def test_every_metric_the_evaluator_computes_prefers_the_side_flawless_predictions_land_on(metric: str) -> None:
    perfect, flawed = EVALUATOR_SCORES[metric]
    assert perfect != flawed, "the flawed predictions must move every metric"
    better = "lower" if perfect < flawed else "higher"
    assert default_direction(metric) == better


def _brier_ctx(candidate: float, champion: float) -> rules.GateContext:
    def brier(value: float) -> rules.MetricObservation:
        return rules.MetricObservation(
            name="brier",
            value=value,
            source="evaluation",
            dataset_digest=DIGEST,
            evaluated_at=NOW - timedelta(days=1),
        )

    return rules.GateContext(
        target_stage="production",
        requester_id="alice",
        now=NOW,
        candidate_metrics=[brier(candidate)],
        champion_metrics=[brier(champion)],
        dataset_digest=DIGEST,
    )


BRIER_POLICY = rules.parse_policy({"rules": [{"type": "beats_champion", "metric": "brier", "stages": ["production"]}]})


def test_beats_champion_on_brier_without_a_direction_passes_the_lower_score() -> None:
    (result,) = rules.evaluate_policy(BRIER_POLICY, _brier_ctx(candidate=0.10, champion=0.20))
    assert result.status == "passed"
    assert result.data["direction"] == "lower"
    assert "(lower is better)" in result.detail


def test_beats_champion_on_brier_without_a_direction_fails_the_higher_score() -> None:
    (result,) = rules.evaluate_policy(BRIER_POLICY, _brier_ctx(candidate=0.20, champion=0.10))
    assert result.status == "failed"
