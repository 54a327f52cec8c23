"""The evaluation job measures what a version costs to serve with the derivation's own
code (``lifecycle.evaluation.measure``), on the test rows it scores (no database)."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lifecycle.evaluation.evaluator import evaluate_versions, serving_figures
from lifecycle.evaluation.measure import RECORDED

QUIET = {"model": "m", "task": "classification", "cv_folds": 0, "bootstrap_rounds": 0, "permutation_repeats": 0}


def _data() -> tuple[pd.DataFrame, pd.Series]:
    frame = load_breast_cancer(as_frame=True).frame
    return frame.drop(columns="target"), frame["target"]


def test_every_evaluated_version_gets_latency_batch_latency_and_memory_figures():
    features, target = _data()
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, target)

    report = evaluate_versions(
        params=QUIET,
        features=features,
        target=target,
        test_rows=list(range(200)),
        estimators=[({"version": 3, "role": "candidate"}, estimator)],
    )

    figures = report["evaluations"]["3"]["figures"]
    assert set(RECORDED) <= set(figures)
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p95_ms"]
    assert 0 < figures["batch_latency_p50_ms"] <= figures["batch_latency_p95_ms"]
    # A batch of 1,000 rows costs more than one row.
    assert figures["batch_latency_p50_ms"] > figures["latency_p50_ms"]
    assert figures["peak_memory_mb"] is not None and figures["model_bytes"] > 0


def test_a_model_loaded_without_scikit_learn_is_not_measured_and_says_so():
    class Scorer:
        def predict(self, rows):
            return [0] * len(rows)

    features, _ = _data()

    figures = serving_figures(Scorer(), "classification", [0, 1], features, {})

    assert "measured by a derivation" in figures["skipped"]


def test_measuring_can_be_turned_off_per_job():
    features, target = _data()
    estimator = LogisticRegression(max_iter=3000).fit(features, target)

    report = evaluate_versions(
        params={**QUIET, "measure": False},
        features=features,
        target=target,
        test_rows=list(range(100)),
        estimators=[({"version": 1, "role": "candidate"}, estimator)],
    )

    assert "figures" not in report["evaluations"]["1"]


def test_figures_taken_for_a_gate_say_why_they_were_taken():
    features, target = _data()
    estimator = LogisticRegression(max_iter=3000).fit(features, target)
    reason = "measured although MODELGATE_EVALUATION_MEASURE turns measuring off: the policy's max_memory_mb gate reads the figures"

    report = evaluate_versions(
        params={**QUIET, "measure": True, "measure_reason": reason},
        features=features,
        target=target,
        test_rows=list(range(100)),
        estimators=[({"version": 1, "role": "candidate"}, estimator)],
    )

    figures = report["evaluations"]["1"]["figures"]
    assert figures["measured_because"] == reason and figures["peak_memory_mb"] is not None
