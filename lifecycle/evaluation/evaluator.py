"""The evaluation job program: ``python -m lifecycle.evaluation.evaluator``.

Scores one or more versions of a model (the candidate, and the champion when it has no
fresh result on the same data) on the same deterministic test split of the model's
dataset. For each: the metrics of its task, a bootstrap confidence interval of the
primary metric, k-fold cross-validation of the estimator, permutation feature importance,
slice metrics, and what it costs to serve (p50/p95 latency of one row and of a batch of
1,000, peak memory, measured as a derivation measures them); for the candidate against the champion, paired deltas with intervals.
Each artifact's digest is checked before the model is loaded. The report (JSON and PNG
plots) is logged to an MLflow run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lifecycle.evaluation import metrics as m
from lifecycle.jobs import program

# Permutation importance re-predicts these many test rows (features × repeats) times;
# a thousand rows ranks features as well as the whole split at a fraction of the cost.
PERMUTATION_ROWS = 1000
# Latency and memory are measured on at most this many test rows (as a derivation does).
MEASURE_ROWS = 1000
# Cross-validation refits the estimator k times; above this many rows it is skipped
# unless the job asks for it (params.cv_max_rows).
CV_MAX_ROWS = 50_000


def _load(model: str, entry: dict[str, Any]) -> Any:
    import mlflow

    from registry import storage

    uri = entry.get("artifact_uri")
    if uri and entry.get("digest"):
        actual = storage.manifest_digest(storage.artifact_manifest(uri))
        if actual != entry["digest"]:
            raise SystemExit(
                f"the artifact of {model} v{entry['version']} is corrupted: its digest {actual[:12]}… does not match "
                f"{entry['digest'][:12]}… recorded at registration"
            )
    target = f"models:/{model}/{entry['version']}"
    try:
        return mlflow.sklearn.load_model(target)
    except Exception:  # not an sklearn flavour: fall back to the generic interface
        try:
            return mlflow.pyfunc.load_model(target)
        except Exception as exc:
            raise SystemExit(f"cannot load {model} v{entry['version']}: {exc}") from exc


def _plots(report: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for version, result in report["evaluations"].items():
        confusion = result["metrics"].get("confusion_matrix")
        if confusion:
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.imshow(np.array(confusion["matrix"]), cmap="Blues")
            ax.set_xticks(range(len(confusion["labels"])), confusion["labels"])
            ax.set_yticks(range(len(confusion["labels"])), confusion["labels"])
            for (i, j), value in np.ndenumerate(np.array(confusion["matrix"])):
                ax.text(j, i, str(value), ha="center", va="center")
            ax.set_xlabel("predicted")
            ax.set_ylabel("actual")
            ax.set_title(f"v{version} confusion matrix")
            paths.append(directory / f"v{version}_confusion_matrix.png")
            fig.savefig(paths[-1], bbox_inches="tight")
            plt.close(fig)
        if result.get("roc"):
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.plot(result["roc"]["fpr"], result["roc"]["tpr"])
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
            ax.set_title(f"v{version} ROC (AUC {result['metrics'].get('roc_auc', 0):.3f})")
            paths.append(directory / f"v{version}_roc.png")
            fig.savefig(paths[-1], bbox_inches="tight")
            plt.close(fig)
        if result.get("importance"):
            top = result["importance"][:15]
            fig, ax = plt.subplots(figsize=(5, 4))
            ax.barh([row["feature"] for row in reversed(top)], [row["mean"] for row in reversed(top)])
            ax.set_title(f"v{version} permutation importance")
            paths.append(directory / f"v{version}_feature_importance.png")
            fig.savefig(paths[-1], bbox_inches="tight")
            plt.close(fig)
    return paths


def evaluate_one(
    estimator: Any,
    task: str,
    primary: str,
    x_test: Any,
    y_test: np.ndarray,
    labels: list[Any],
    params: dict[str, Any],
    x_all: Any,
    y_all: Any,
) -> tuple[dict[str, Any], np.ndarray]:
    from sklearn import metrics as skm

    seed = int(params.get("seed", 42))
    predicted = np.asarray(estimator.predict(x_test))
    proba = (
        estimator.predict_proba(x_test) if task == "classification" and hasattr(estimator, "predict_proba") else None
    )
    result: dict[str, Any] = {}
    if task == "classification":
        result["metrics"] = m.classification_metrics(y_test, predicted, proba, labels)
        if proba is not None and len(labels) == 2:
            fpr, tpr, _ = skm.roc_curve(y_test, proba[:, 1], pos_label=labels[1])
            step = max(len(fpr) // 200, 1)
            result["roc"] = {"fpr": fpr[::step].tolist(), "tpr": tpr[::step].tolist()}
            result["calibration"] = m.calibration_curve(y_test == labels[1], proba[:, 1])
    else:
        result["metrics"] = m.regression_metrics(y_test, predicted)
    metric_fn = m.metric_function(primary, labels if task == "classification" else None)
    if metric_fn is not None and params.get("bootstrap_rounds", 200):
        low, high = m.bootstrap_interval(
            y_test, predicted, metric_fn, rounds=int(params.get("bootstrap_rounds", 200)), seed=seed
        )
        result["ci"] = {primary: {"low": low, "high": high, "level": 0.95}}
    folds = int(params.get("cv_folds", 5))
    cv_max_rows = int(params.get("cv_max_rows", CV_MAX_ROWS))
    if folds >= 2 and len(y_all) > cv_max_rows:
        result["cv"] = {
            "skipped": f"{len(y_all)} rows is more than cv_max_rows={cv_max_rows}; refitting {folds} times was skipped"
        }
    elif folds >= 2 and hasattr(estimator, "fit") and hasattr(estimator, "get_params"):
        from sklearn.base import clone
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

        splitter = (StratifiedKFold if task == "classification" else KFold)(
            n_splits=folds, shuffle=True, random_state=seed
        )
        scoring = {
            "f1": "f1_macro" if len(labels) > 2 else "f1",
            "rmse": "neg_root_mean_squared_error",
            "mae": "neg_mean_absolute_error",
        }.get(primary, primary)
        try:
            scores = cross_val_score(clone(estimator), x_all, y_all, cv=splitter, scoring=scoring)
            scores = -scores if scoring.startswith("neg_") else scores
            result["cv"] = {
                "folds": folds,
                "metric": primary,
                "mean": float(scores.mean()),
                "std": float(scores.std()),
                "scores": scores.tolist(),
            }
        except ValueError as exc:
            result["cv"] = {"error": str(exc)[:300]}
    repeats = int(params.get("permutation_repeats", 5))
    if repeats and hasattr(estimator, "fit"):
        from sklearn.inspection import permutation_importance

        rows = min(len(y_test), PERMUTATION_ROWS)
        importance = permutation_importance(
            estimator, x_test.iloc[:rows], y_test[:rows], n_repeats=repeats, random_state=seed, n_jobs=1
        )
        order = np.argsort(-importance.importances_mean)
        result["importance"] = [
            {
                "feature": str(x_test.columns[i]),
                "mean": float(importance.importances_mean[i]),
                "std": float(importance.importances_std[i]),
            }
            for i in order
        ]
    if params.get("slice_column") and metric_fn is not None:
        column = params["slice_column"]
        if column in x_test.columns:
            result["slices"] = m.slice_metrics(y_test, predicted, x_test[column].to_numpy(), metric_fn)
    return result, predicted


def serving_figures(
    estimator: Any, task: str, labels: list[Any], x_test: Any, params: dict[str, Any]
) -> dict[str, Any]:
    """What the version costs to serve, measured as a derivation measures it
    (``lifecycle.evaluation.measure``): p50/p95 latency of one row and of a batch, peak
    memory, stored size. A model loaded through pyfunc only (not scikit-learn) is not
    measured here, and the figures say so."""
    from lifecycle.evaluation.artifacts import Artifact
    from lifecycle.evaluation.measure import measure

    if not hasattr(estimator, "get_params"):
        return {"skipped": f"a {type(estimator).__name__} is measured by a derivation (onnx, quantize…), not here"}
    artifact = Artifact("sklearn", estimator, task, tuple(labels))
    rows = x_test.iloc[:MEASURE_ROWS]
    with warnings.catch_warnings():
        # Timed on a plain matrix, as derivations are; a model fitted on a frame would
        # warn on every call, and the warning's cost would count as latency.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return measure(artifact, rows, memory=bool(params.get("measure_memory", True))).to_dict()


def evaluate_versions(
    *,
    params: dict[str, Any],
    features: Any,
    target: Any,
    test_rows: list[int],
    estimators: list[tuple[dict[str, Any], Any]],
    on_progress: Any = None,
) -> dict[str, Any]:
    """Score each ``(entry, estimator)`` on the test rows; deltas of candidate vs champion."""
    task = params.get("task", "classification")
    primary = params.get("primary_metric") or ("f1" if task == "classification" else "rmse")
    x_test, y_test = features.iloc[test_rows], target.iloc[test_rows].to_numpy()
    labels = sorted(target.unique().tolist()) if task == "classification" else []
    report: dict[str, Any] = {
        "model": params["model"],
        "task": task,
        "primary_metric": primary,
        "evaluations": {},
        "deltas": {},
    }
    predictions: dict[str, np.ndarray] = {}
    for index, (entry, estimator) in enumerate(estimators):
        result, predicted = evaluate_one(estimator, task, primary, x_test, y_test, labels, params, features, target)
        result["role"] = entry.get("role", "candidate")
        if params.get("measure", True):
            result["figures"] = serving_figures(estimator, task, labels, x_test, params)
            if params.get("measure_reason"):
                result["figures"]["measured_because"] = params["measure_reason"]
        report["evaluations"][str(entry["version"])] = result
        predictions[result["role"]] = predicted
        if on_progress is not None:
            on_progress((index + 1) / (len(estimators) + 1))
    metric_fn = m.metric_function(primary, labels if task == "classification" else None)
    if "candidate" in predictions and "champion" in predictions and metric_fn is not None:
        report["deltas"][primary] = m.paired_delta_interval(
            y_test,
            predictions["candidate"],
            predictions["champion"],
            metric_fn,
            rounds=int(params.get("bootstrap_rounds", 200)),
            seed=int(params.get("seed", 42)),
        )
    return report


def report_log(report: dict[str, Any], *, digest: str) -> dict[str, Any]:
    """Log the candidate's metrics, the JSON report and the plots to a new MLflow run."""
    import mlflow

    mlflow.set_experiment(f"modelgate/{report['model']}/evaluations")
    with mlflow.start_run(tags={"modelgate.model": report["model"], "dataset.digest": digest}) as run:
        candidate = next((v for v, r in report["evaluations"].items() if r["role"] == "candidate"), None)
        if candidate is not None:
            scalars = report["evaluations"][candidate]["metrics"]
            mlflow.log_metrics({k: v for k, v in scalars.items() if isinstance(v, float)})
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            (directory / "report.json").write_text(json.dumps(report, indent=2, default=str))
            plots = _plots(report, directory)
            mlflow.log_artifacts(str(directory), "evaluation")
        report["mlflow_run_id"] = run.info.run_id
        report["report_uri"] = f"{run.info.artifact_uri.rstrip('/')}/evaluation"
        report["plots"] = [path.name for path in plots]
    return report


def main() -> dict[str, Any]:
    program.setup()
    from registry.datasets import dataset_split, split_digest

    params = program.params()
    task = params.get("task", "classification")
    dataset = params["dataset"]
    frame, digest = program.dataset_frame(dataset)
    features, target = program.features_and_target(frame, dataset["target"])
    _, test_rows = dataset_split(
        frame,
        dataset["target"],
        seed=int(params.get("seed", 42)),
        test_size=float(params.get("test_size", 0.25)),
        stratify=task == "classification",
    )
    estimators = [(entry, _load(params["model"], entry)) for entry in params["versions"]]
    report = evaluate_versions(
        params=params,
        features=features,
        target=target,
        test_rows=test_rows,
        estimators=estimators,
        on_progress=program.progress,
    )
    report["dataset_digest"] = digest
    report["split"] = {
        "seed": params.get("seed", 42),
        "test_rows": len(test_rows),
        "test_rows_digest": split_digest(test_rows),
    }
    report_log(report, digest=digest)
    program.progress(1.0)
    program.result_write(report)
    primary = report["primary_metric"]
    print(json.dumps({v: r["metrics"].get(primary) for v, r in report["evaluations"].items()}))
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
