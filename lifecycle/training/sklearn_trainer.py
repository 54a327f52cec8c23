"""The built-in scikit-learn trainer: ``python -m lifecycle.training.sklearn_trainer``.

Parameters (``MODELGATE_PARAMS``): ``estimator`` (a class name from scikit-learn such as
``RandomForestClassifier``, or a dotted path inside ``sklearn``), ``estimator_params``,
``dataset`` (``uri``, ``format``, ``target``), ``task``, ``primary_metric``, ``seed``,
``test_size``, ``model``, ``experiment``, ``git_commit``. It fits on the deterministic
training split, scores the held-out split, and logs params, metrics and the model to
MLflow; the result names the run.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from lifecycle.jobs import program

_SEARCH_MODULES = ("linear_model", "ensemble", "tree", "svm", "neighbors", "naive_bayes", "neural_network")
_SCALED = {
    "LogisticRegression",
    "LinearRegression",
    "Ridge",
    "Lasso",
    "SVC",
    "SVR",
    "KNeighborsClassifier",
    "MLPClassifier",
}


def estimator_class(name: str) -> type:
    """A scikit-learn estimator class by name; nothing outside ``sklearn`` is imported."""
    if "." in name:
        module_name, _, class_name = name.rpartition(".")
        if not module_name.startswith("sklearn."):
            raise SystemExit(f"estimator {name!r} is not a scikit-learn class")
        return getattr(importlib.import_module(module_name), class_name)
    for module in _SEARCH_MODULES:
        found = getattr(importlib.import_module(f"sklearn.{module}"), name, None)
        if isinstance(found, type):
            return found
    raise SystemExit(f"unknown scikit-learn estimator {name!r}")


def main() -> dict[str, Any]:
    program.setup()
    import mlflow
    import skops.io as skops_io
    from mlflow.models import infer_signature
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lifecycle.evaluation.metrics import classification_metrics, regression_metrics
    from registry.datasets import dataset_split

    params = program.params()
    task = params.get("task", "classification")
    dataset = params["dataset"]
    frame, digest = program.dataset_frame(dataset)
    features, target = program.features_and_target(frame, dataset["target"])
    train_rows, test_rows = dataset_split(
        frame,
        dataset["target"],
        seed=int(params.get("seed", 42)),
        test_size=float(params.get("test_size", 0.25)),
        stratify=task == "classification",
    )
    program.progress(0.1)
    name = params["estimator"]
    estimator = estimator_class(name)(**(params.get("estimator_params") or {}))
    if name.rsplit(".", 1)[-1] in _SCALED:
        estimator = make_pipeline(StandardScaler(), estimator)
    x_train, y_train = features.iloc[train_rows], target.iloc[train_rows]
    x_test, y_test = features.iloc[test_rows], target.iloc[test_rows]
    estimator.fit(x_train, y_train)
    program.progress(0.7)
    predicted = estimator.predict(x_test)
    if task == "classification":
        labels = sorted(target.unique().tolist())
        proba = estimator.predict_proba(x_test) if hasattr(estimator, "predict_proba") else None
        scores = classification_metrics(y_test.to_numpy(), predicted, proba, labels)
    else:
        scores = regression_metrics(y_test.to_numpy(), predicted)
    metrics = {k: v for k, v in scores.items() if isinstance(v, float)}
    mlflow.set_experiment(params.get("experiment") or f"modelgate/{params['model']}")
    tags = {
        "modelgate.model": params["model"],
        "modelgate.job": str(params.get("job_id", "")),
        "dataset.digest": digest,
    }
    if params.get("git_commit"):
        tags["mlflow.source.git.commit"] = params["git_commit"]
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_params({"estimator": name, **(params.get("estimator_params") or {}), "seed": params.get("seed", 42)})
        mlflow.log_metrics(metrics)
        # The trainer built this estimator itself, so the types skops asks about are its own.
        trusted = skops_io.get_untrusted_types(data=skops_io.dumps(estimator))
        mlflow.sklearn.log_model(
            estimator, name="model", signature=infer_signature(x_test, predicted), skops_trusted_types=trusted
        )
    program.progress(1.0)
    result = {
        "run_id": run.info.run_id,
        "metrics": metrics,
        "dataset_digest": digest,
        "estimator": name,
        "split": {"seed": params.get("seed", 42), "train_rows": len(train_rows), "test_rows": len(test_rows)},
    }
    program.result_write(result)
    print(
        f"trained {name}: {params.get('primary_metric') or 'metrics'} = {metrics.get(params.get('primary_metric', ''), metrics)}"
    )
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
