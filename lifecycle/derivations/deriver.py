"""The derivation job program: ``python -m lifecycle.derivations.deriver``.

Loads the parent version (its artifact's digest checked first), runs one method of
``lifecycle.derivations.methods`` on the model's dataset, then scores parent and derived
model on the same deterministic test split with the evaluation stage's metrics, measures
both (stored size, p50/p95 latency of one row and of a batch, peak memory), and logs the
derived model to MLflow in its own flavour (``mlflow.onnx`` for ONNX, so MLflow's scoring
server serves it through onnxruntime) with the lineage as run tags. The result carries
the run, both sets of figures and how closely the two models agree.

An incremental update's new rows are a registered dataset, the model's own training rows,
or the labelled rows of the prediction log in a window fixed when the job was queued
(read from the log's store, ``lifecycle.derivations.methods.labelled_rows``).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from datetime import datetime
from typing import Any

import numpy as np

from lifecycle.derivations import methods
from lifecycle.derivations.methods.labelled_rows import labelled_rows
from lifecycle.evaluation import metrics as m
from lifecycle.evaluation.artifacts import Artifact, as_matrix, predict, predict_proba
from lifecycle.evaluation.measure import comparison, measure
from lifecycle.jobs import program

# Prune ranks trees on this share of the training rows, never on the test rows.
VALIDATION_SHARE = 0.2
# The figures are timed on at most this many test rows (enough for stable percentiles).
MEASURE_ROWS = 1000


def _parent_load(model: str, entry: dict[str, Any], task: str, labels: tuple[Any, ...]) -> Artifact:
    import mlflow

    from registry import storage

    if entry.get("artifact_uri") and entry.get("digest"):
        actual = storage.manifest_digest(storage.artifact_manifest(entry["artifact_uri"]))
        if actual != entry["digest"]:
            raise SystemExit(
                f"the artifact of {model} v{entry['version']} is corrupted: its digest {actual[:12]}… does not match "
                f"{entry['digest'][:12]}… recorded at registration"
            )
    uri = f"models:/{model}/{entry['version']}"
    flavors = mlflow.models.get_model_info(uri).flavors
    if "sklearn" in flavors:
        return Artifact("sklearn", mlflow.sklearn.load_model(uri), task, labels)
    if "pytorch" in flavors:
        return Artifact("pytorch", mlflow.pytorch.load_model(uri, map_location="cpu"), task, labels)
    if "onnx" in flavors:
        return Artifact("onnx", mlflow.onnx.load_model(uri), task, labels)
    raise SystemExit(
        f"{model} v{entry['version']} is a {', '.join(flavors)} model; derivations need sklearn, pytorch or onnx"
    )


def _prediction_rows(
    source: dict[str, Any], columns: list[str], labels: list[Any], task: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The labelled rows the prediction log holds for the model in the window the update
    was asked for, read from the log's store (the worker asks the database nothing)."""
    from lifecycle.monitoring.store import prediction_store

    start, end = datetime.fromisoformat(source["start"]), datetime.fromisoformat(source["end"])
    window = prediction_store().window(model=source["model"], start=start, end=end, labels=True)
    try:
        x, y, summary = labelled_rows(window, columns=columns, labels=labels, task=task)
    except ValueError as exc:
        raise SystemExit(f"the labelled predictions of {source['model']} cannot be trained on: {exc}") from exc
    if summary["rows"] < int(source["min_rows"]):
        raise SystemExit(
            f"{summary['rows']} usable labelled predictions of {source['model']} from {source['start']} to "
            f"{source['end']} ({summary['logged_rows']} logged, {summary['labelled_rows']} labelled); "
            f"the update needs at least {source['min_rows']}"
        )
    return x, y, {"source": source["source"], "start": source["start"], "end": source["end"], **summary}


def scores(
    artifact: Artifact, x: np.ndarray, y: np.ndarray, labels: list[Any]
) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    """The evaluation stage's scalar metrics of a model on rows, with its predictions."""
    predicted = predict(artifact, x)
    proba = predict_proba(artifact, x)
    if artifact.task == "classification":
        found = m.classification_metrics(y, predicted, proba, labels)
    else:
        found = m.regression_metrics(y, predicted)
    return {k: v for k, v in found.items() if isinstance(v, float)}, predicted, proba


def agreement(
    parent: tuple[np.ndarray, np.ndarray | None], derived: tuple[np.ndarray, np.ndarray | None], task: str
) -> dict[str, Any]:
    """How closely the derived model reproduces its parent on the test rows."""
    (p_pred, p_proba), (d_pred, d_proba) = parent, derived
    if task == "classification":
        out: dict[str, Any] = {"label_agreement": float(np.mean(p_pred == d_pred))}
        if p_proba is not None and d_proba is not None:
            out["max_abs_probability_diff"] = float(np.max(np.abs(np.asarray(p_proba) - np.asarray(d_proba))))
        return out
    return {"max_abs_prediction_diff": float(np.max(np.abs(p_pred.astype(float) - d_pred.astype(float))))}


def _log(
    derived: Artifact, params: dict[str, Any], sample: np.ndarray, tags: dict[str, str], figures: dict[str, Any]
) -> str:
    import mlflow
    from mlflow.models import infer_signature

    mlflow.set_experiment(params.get("experiment") or f"modelgate/{params['model']}")
    # ONNX and PyTorch models take float32 rows: the signature says so, so that MLflow's
    # scoring server hands them the type they were exported for.
    rows = sample if derived.flavor == "sklearn" else as_matrix(sample, np.float32)
    signature = infer_signature(rows, predict(derived, rows))
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_params(
            {"method": params["method"], **{f"method.{k}": v for k, v in params["method_params"].items()}}
        )
        mlflow.log_metrics({k: v for k, v in figures.items() if isinstance(v, int | float)})
        if derived.flavor == "onnx":
            mlflow.onnx.log_model(derived.model, name="model", signature=signature)
        elif derived.flavor == "pytorch":
            # Pickled whole: a dynamically quantized or pruned module need not trace to pt2.
            mlflow.pytorch.log_model(derived.model, name="model", signature=signature, serialization_format="pickle")
        else:
            import skops.io as skops_io

            trusted = skops_io.get_untrusted_types(data=skops_io.dumps(derived.model))
            mlflow.sklearn.log_model(derived.model, name="model", signature=signature, skops_trusted_types=trusted)
    return run.info.run_id


def main() -> dict[str, Any]:
    program.setup()
    from registry.datasets import dataset_split

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    params = program.params()
    task = params.get("task", "classification")
    frame, digest = program.dataset_frame(params["dataset"])
    features, target = program.features_and_target(frame, params["dataset"]["target"])
    seed = int(params.get("seed", 42))
    train_rows, test_rows = dataset_split(
        frame,
        params["dataset"]["target"],
        seed=seed,
        test_size=float(params.get("test_size", 0.25)),
        stratify=task == "classification",
    )
    labels = sorted(target.unique().tolist()) if task == "classification" else []
    parent = _parent_load(params["model"], params["parent"], task, tuple(labels))
    program.progress(0.1)
    x_all, y_all = as_matrix(features, np.float64), target.to_numpy()
    cut = int(len(train_rows) * (1 - VALIDATION_SHARE))
    fit_rows, val_rows = train_rows[:cut], train_rows[cut:]
    data = methods.Data(x_all[fit_rows], y_all[fit_rows], x_all[val_rows], y_all[val_rows])
    new = params.get("new_dataset")
    source = None
    if params["method"] == "incremental":
        if params.get("new_data"):
            data.x_new, data.y_new, source = _prediction_rows(params["new_data"], list(features.columns), labels, task)
        elif new and new.get("uri") != params["dataset"]["uri"]:
            new_frame, _ = program.dataset_frame(new)
            x_new, y_new = program.features_and_target(new_frame, new["target"])
            data.x_new, data.y_new = as_matrix(x_new[features.columns], np.float64), y_new.to_numpy()
        else:
            # The model's own dataset: only its training rows, so the test rows stay unseen.
            data.x_new, data.y_new = x_all[train_rows], y_all[train_rows]
    try:
        derived, details = methods.derive(params["method"], parent, params["method_params"], data)
    except ValueError as exc:
        raise SystemExit(f"{params['method']} cannot derive from v{params['parent']['version']}: {exc}") from exc
    if source is not None:
        details = {**details, "data": source}
    program.progress(0.5)
    x_test, y_test = x_all[test_rows], y_all[test_rows]
    parent_scores, *parent_out = scores(parent, x_test, y_test, labels)
    derived_scores, *derived_out = scores(derived, x_test, y_test, labels)
    program.progress(0.6)
    rows = x_test[:MEASURE_ROWS]
    memory = bool(params.get("measure_memory", True))
    figures = comparison(measure(parent, rows, memory=memory), measure(derived, rows, memory=memory))
    program.progress(0.9)
    derived_figures = figures["derived"]
    tags = {
        "modelgate.model": params["model"],
        "modelgate.job": os.environ.get("MODELGATE_JOB_ID", ""),
        "modelgate.parent_version": str(params["parent"]["version"]),
        "modelgate.parent_digest": params["parent"].get("digest") or "",
        "modelgate.derivation.method": params["method"],
        "modelgate.derivation.params": json.dumps(params["method_params"], sort_keys=True)[:5000],
        "modelgate.derivation.flavor": derived.flavor,
        "dataset.digest": digest,
    }
    run_id = _log(derived, params, x_test[:5], tags, {**derived_scores, **derived_figures})
    result = {
        "run_id": run_id,
        "method": params["method"],
        "flavor": derived.flavor,
        "parent_flavor": parent.flavor,
        "dataset_digest": digest,
        "metrics": derived_scores,
        "parent_metrics": parent_scores,
        "deltas": {k: derived_scores[k] - parent_scores[k] for k in derived_scores if k in parent_scores},
        "agreement": agreement(tuple(parent_out), tuple(derived_out), task),
        "figures": figures,
        "details": details,
        "split": {"seed": seed, "train_rows": len(train_rows), "test_rows": len(test_rows)},
    }
    program.progress(1.0)
    program.result_write(result)
    primary = params.get("primary_metric") or ("f1" if task == "classification" else "rmse")
    print(
        f"derived by {params['method']} from v{params['parent']['version']}: {primary} "
        f"{parent_scores.get(primary)} -> {derived_scores.get(primary)}; single-row p50 "
        f"{figures['parent']['latency_p50_ms']:.3f} -> {figures['derived']['latency_p50_ms']:.3f} ms"
    )
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
