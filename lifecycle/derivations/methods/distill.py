"""``distill``: a smaller student trained on the teacher's soft labels.

A classifier student learns the teacher's class probabilities (softened by a
temperature): each training row appears once per class, weighted by the teacher's
probability of that class, which is cross-entropy on soft targets for a tree or an MLP.
A regressor student learns the teacher's predictions. The student is a plain
scikit-learn model (a shallow tree or a small MLP), so it stores and serves like one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lifecycle.evaluation.artifacts import Artifact, as_matrix, predict, predict_proba

DEFAULTS: dict[str, Any] = {
    "student": "tree",
    "max_depth": 4,
    "hidden_layer_sizes": [16],
    "temperature": 1.0,
    "max_iter": 300,
    "seed": 0,
}
STUDENTS = ("tree", "mlp")


def soft_labels(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (T > 1) or sharpened (T < 1): p^(1/T), renormalised."""
    tempered = np.power(np.clip(probabilities, 1e-12, 1.0), 1.0 / temperature)
    return tempered / tempered.sum(axis=1, keepdims=True)


def _student(params: dict[str, Any], task: str) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    seed = int(params.get("seed", DEFAULTS["seed"]))
    if params.get("student", DEFAULTS["student"]) == "tree":
        depth = int(params.get("max_depth", DEFAULTS["max_depth"]))
        cls = DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor
        return cls(max_depth=depth, random_state=seed)
    hidden = tuple(int(n) for n in params.get("hidden_layer_sizes", DEFAULTS["hidden_layer_sizes"]))
    cls = MLPClassifier if task == "classification" else MLPRegressor
    iterations = int(params.get("max_iter", DEFAULTS["max_iter"]))
    return make_pipeline(StandardScaler(), cls(hidden_layer_sizes=hidden, max_iter=iterations, random_state=seed))


def _fit(student: Any, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> None:
    if weights is None:
        student.fit(x, y)
    elif getattr(student, "steps", None):
        student.fit(x, y, **{f"{student.steps[-1][0]}__sample_weight": weights})
    else:
        student.fit(x, y, sample_weight=weights)


def derive(teacher: Artifact, params: dict[str, Any], x_train: Any) -> tuple[Artifact, dict[str, Any]]:
    """The student fitted on the teacher's outputs over the training rows."""
    x = as_matrix(x_train, np.float64)
    student = _student(params, teacher.task)
    if teacher.task == "classification":
        probabilities = predict_proba(teacher, x)
        if probabilities is None:
            raise ValueError("the teacher gives no class probabilities to distill from")
        soft = soft_labels(np.asarray(probabilities, dtype=np.float64), float(params.get("temperature", 1.0)))
        labels = np.asarray(teacher.labels)
        rows = np.repeat(x, len(labels), axis=0)
        targets = np.tile(labels, len(x))
        _fit(student, rows, targets, soft.ravel())
    else:
        _fit(student, x, np.asarray(predict(teacher, x), dtype=np.float64), None)
    return Artifact("sklearn", student, teacher.task, teacher.labels), {
        "student": type(student[-1] if getattr(student, "steps", None) else student).__name__,
        "teacher_flavor": teacher.flavor,
    }
