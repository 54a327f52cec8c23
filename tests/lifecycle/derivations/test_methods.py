"""The derivation methods as a pure core: each on scikit-learn's bundled data, checked
against its parent (ONNX equal within 1e-5; quantized within a stated metric bound)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lifecycle.derivations import methods
from lifecycle.derivations.choices import DerivationMethod
from lifecycle.derivations.methods import Data, MethodParamsError, derive, params_check
from lifecycle.evaluation.artifacts import Artifact, predict, predict_proba
from lifecycle.evaluation.measure import comparison, measure
from lifecycle.training.services import UPDATE_METHODS
from tests.conftest import require_service


@pytest.fixture(scope="module")
def tumours():
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0, stratify=y)
    return Data(x_train, y_train, x_test, y_test, x_train, y_train)


def _classifier(estimator, data: Data) -> Artifact:
    return Artifact("sklearn", estimator.fit(data.x_train, data.y_train), "classification", (0, 1))


def _f1(artifact: Artifact, data: Data) -> float:
    return f1_score(data.y_val, predict(artifact, data.x_val))


def test_the_method_names_agree_with_the_choices_and_the_schedules_copy():
    assert tuple(methods.METHODS) == tuple(DerivationMethod.values) == tuple(UPDATE_METHODS)


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=30, random_state=0),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=0)),
    ],
    ids=["forest", "logistic-pipeline", "mlp-pipeline"],
)
def test_an_onnx_conversion_predicts_the_parents_probabilities_within_1e_5(tumours, estimator):
    parent = _classifier(estimator, tumours)

    onnx_version, _ = derive("onnx", parent, params_check("onnx", {}), tumours)

    assert onnx_version.flavor == "onnx"
    difference = np.abs(predict_proba(parent, tumours.x_val) - predict_proba(onnx_version, tumours.x_val))
    assert difference.max() <= 1e-5
    assert np.array_equal(predict(parent, tumours.x_val), predict(onnx_version, tumours.x_val))


def test_an_onnx_regressor_predicts_the_parents_values_closely():
    x, y = load_diabetes(return_X_y=True)
    parent = Artifact("sklearn", RandomForestRegressor(n_estimators=20, random_state=0).fit(x, y), "regression")

    onnx_version, _ = derive("onnx", parent, params_check("onnx", {}), Data(x, y, x, y))

    relative = np.abs(predict(parent, x) - predict(onnx_version, x)) / np.maximum(np.abs(predict(parent, x)), 1.0)
    assert relative.max() <= 1e-5


def test_an_int8_mlp_loses_at_most_two_points_of_f1_and_is_smaller(tumours):
    parent = _classifier(
        make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=500, random_state=0)),
        tumours,
    )
    full, _ = derive("onnx", parent, params_check("onnx", {}), tumours)

    quantized, _ = derive("quantize", parent, params_check("quantize", {}), tumours)

    assert {node.op_type for node in quantized.model.graph.node} & {"MatMulInteger", "DynamicQuantizeLinear"}
    assert _f1(parent, tumours) - _f1(quantized, tumours) <= 0.02
    assert len(quantized.model.SerializeToString()) < len(full.model.SerializeToString())


def test_a_forest_has_nothing_to_quantize_and_says_so(tumours):
    parent = _classifier(RandomForestClassifier(n_estimators=5, random_state=0), tumours)

    with pytest.raises(ValueError, match="nothing to quantize"):
        derive("quantize", parent, params_check("quantize", {}), tumours)


def test_pruning_a_forest_keeps_its_best_trees_scored_on_the_validation_rows(tumours):
    parent = _classifier(RandomForestClassifier(n_estimators=40, random_state=0), tumours)

    pruned, details = derive("prune", parent, params_check("prune", {"sparsity": 0.75}), tumours)

    assert details["trees_before"] == 40 and details["trees_after"] == 10
    assert len(pruned.model.estimators_) == 10 and len(parent.model.estimators_) == 40
    assert min(details["kept_tree_scores"]) >= 0.8


def test_pruning_an_mlp_zeroes_the_smallest_weights(tumours):
    parent = _classifier(MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0), tumours)

    _, details = derive("prune", parent, params_check("prune", {"sparsity": 0.5}), tumours)

    assert 0.49 <= details["zero_fraction"] <= 0.51
    assert not any((w == 0).any() for w in parent.model.coefs_)


def test_a_distilled_student_is_a_shallow_tree_fitted_to_the_teachers_soft_labels(tumours):
    teacher = _classifier(RandomForestClassifier(n_estimators=50, random_state=0), tumours)

    student, details = derive("distill", teacher, params_check("distill", {"max_depth": 3}), tumours)

    assert details["student"] == "DecisionTreeClassifier" and student.model.get_depth() <= 3
    # Soft labels: the student's leaves hold fractional class shares, not only 0 and 1.
    leaves = student.model.tree_.value[:, 0, :]
    assert ((leaves > 0.01) & (leaves < 0.99)).any()
    assert _f1(student, tumours) >= _f1(teacher, tumours) - 0.08


def test_temperature_softens_the_teachers_probabilities():
    probabilities = np.array([[0.9, 0.1]])
    assert (
        methods.distill.soft_labels(probabilities, 3.0)[0, 0]
        < 0.9
        < methods.distill.soft_labels(probabilities, 0.5)[0, 0]
    )


def test_incremental_updates_use_partial_fit_or_warm_start_and_leave_the_parent_as_it_was(tumours):
    sgd = _classifier(make_pipeline(StandardScaler(), SGDClassifier(random_state=0)), tumours)
    before = sgd.model[-1].coef_.copy()
    updated, details = derive("incremental", sgd, params_check("incremental", {"epochs": 3}), tumours)
    assert details["how"] == "partial_fit"
    assert np.array_equal(sgd.model[-1].coef_, before)
    assert not np.array_equal(updated.model[-1].coef_, before)

    forest = _classifier(RandomForestClassifier(n_estimators=10, random_state=0), tumours)
    grown, details = derive("incremental", forest, params_check("incremental", {"add_estimators": 5}), tumours)
    assert details["how"].startswith("warm_start") and len(grown.model.estimators_) == 15


def test_bad_parameters_are_named_before_any_job_runs():
    with pytest.raises(MethodParamsError) as caught:
        params_check("prune", {"sparsity": 1.5, "speed": "fast"})
    assert set(caught.value.errors) == {"params.sparsity", "params.speed"}
    with pytest.raises(MethodParamsError) as caught:
        params_check("quantize", {"backend": "tflite"})
    assert "onnx, torch" in caught.value.errors["params.backend"]
    with pytest.raises(MethodParamsError, match="unknown method"):
        params_check("compress", {})
    assert params_check("distill", {"student": "mlp"})["temperature"] == 1.0


def test_the_figures_compare_size_latency_and_peak_memory(tumours):
    parent = _classifier(RandomForestClassifier(n_estimators=20, random_state=0), tumours)
    onnx_version, _ = derive("onnx", parent, params_check("onnx", {}), tumours)

    before = measure(parent, tumours.x_val, memory=False, single_calls=30, batch_calls=3)
    after = measure(onnx_version, tumours.x_val, single_calls=30, batch_calls=3)
    figures = comparison(before, after)

    assert 0 < before.latency_p50_ms <= before.latency_p95_ms and before.batch_rows == 1000
    assert after.peak_memory_mb is not None and after.peak_memory_mb >= 0
    assert figures["single_row_speedup"] == pytest.approx(before.latency_p50_ms / after.latency_p50_ms)
    assert figures["ratios"]["model_bytes"] == pytest.approx(after.model_bytes / before.model_bytes)


def _torch_mlp(data: Data):
    try:
        import torch
    except ImportError:
        require_service("torch (requirements-train.txt)", False)
    torch.manual_seed(0)
    mean, std = data.x_train.mean(0), data.x_train.std(0)
    scaled = Data(
        *(
            (a - mean) / std if i % 2 == 0 else a
            for i, a in enumerate((data.x_train, data.y_train, data.x_val, data.y_val, data.x_new, data.y_new))
        )
    )
    module = torch.nn.Sequential(torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    features = torch.from_numpy(scaled.x_train.astype(np.float32))
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(module(features), torch.from_numpy(scaled.y_train)).backward()
        optimizer.step()
    return Artifact("pytorch", module.eval(), "classification", (0, 1)), scaled


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_torch_mlp_converts_quantizes_prunes_distills_and_learns_on(tumours, backend):
    parent, data = _torch_mlp(tumours)
    f1 = _f1(parent, data)

    exported, _ = derive("onnx", parent, params_check("onnx", {}), data)
    assert np.abs(predict_proba(parent, data.x_val) - predict_proba(exported, data.x_val)).max() <= 1e-5
    quantized, _ = derive("quantize", parent, params_check("quantize", {"backend": backend}), data)
    assert quantized.flavor == ("onnx" if backend == "onnx" else "pytorch")
    assert f1 - _f1(quantized, data) <= 0.02
    pruned, details = derive("prune", parent, params_check("prune", {"sparsity": 0.5}), data)
    assert details["zero_fraction"] >= 0.49 and f1 - _f1(pruned, data) <= 0.05
    student, _ = derive("distill", parent, params_check("distill", {"student": "mlp"}), data)
    assert student.flavor == "sklearn" and _f1(student, data) >= f1 - 0.05
    updated, details = derive("incremental", parent, params_check("incremental", {"epochs": 2}), data)
    assert details["how"] == "more epochs" and updated.model is not parent.model
