"""A model as the evaluation job and the derivation methods hold it, and how each kind
predicts. Pure (no Django).

Three flavours: a fitted scikit-learn estimator (or pipeline), a PyTorch module, and an
ONNX model run by onnxruntime. A PyTorch classifier outputs one logit per class, in the
sorted order of the dataset's labels; a regressor outputs one value per row.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLAVORS = ("sklearn", "pytorch", "onnx")
TASKS = ("classification", "regression")


@dataclass
class Artifact:
    """A model of one flavour, with the task and labels its outputs are read against."""

    flavor: str
    model: Any
    task: str = "classification"
    labels: tuple[Any, ...] = ()
    _session: Any = field(default=None, repr=False, compare=False)

    def session(self) -> Any:
        """The onnxruntime session of an ONNX model (one per artifact, made on first use)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            # One thread: the figures compare models, not how many cores the host has.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                self.model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return self._session


def final_step(estimator: Any) -> Any:
    """The estimator at the end of a scikit-learn pipeline (or the estimator itself)."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def as_matrix(x: Any, dtype: Any = np.float32) -> np.ndarray:
    """Rows as a contiguous numeric matrix (a DataFrame's values)."""
    values = x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x)
    return np.ascontiguousarray(values, dtype=dtype)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _torch_outputs(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(as_matrix(x))).numpy()


def _onnx_outputs(artifact: Artifact, x: np.ndarray) -> dict[str, np.ndarray]:
    session = artifact.session()
    feed = session.get_inputs()[0]
    dtype = np.float64 if feed.type == "tensor(double)" else np.float32
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {feed.name: as_matrix(x, dtype)}), strict=True))


def predict_proba(artifact: Artifact, x: Any) -> np.ndarray | None:
    """Class probabilities (columns in the order of ``labels``), or None for a regressor
    or a classifier that has none."""
    if artifact.task != "classification":
        return None
    if artifact.flavor == "sklearn":
        if not hasattr(artifact.model, "predict_proba"):
            return None
        return np.asarray(artifact.model.predict_proba(as_matrix(x, np.float64)))
    if artifact.flavor == "pytorch":
        return _softmax(_torch_outputs(artifact.model, x))
    outputs = _onnx_outputs(artifact, x)
    if "probabilities" in outputs:
        return np.asarray(outputs["probabilities"])
    if "logits" in outputs:
        return _softmax(np.asarray(outputs["logits"]))
    return None


def predict(artifact: Artifact, x: Any) -> np.ndarray:
    """Predicted labels (a classifier) or values (a regressor), one per row."""
    if artifact.flavor == "sklearn":
        return np.asarray(artifact.model.predict(as_matrix(x, np.float64)))
    if artifact.flavor == "pytorch":
        out = _torch_outputs(artifact.model, x)
    else:
        outputs = _onnx_outputs(artifact, x)
        if "label" in outputs:
            return np.asarray(outputs["label"]).ravel()
        out = np.asarray(outputs.get("logits", next(iter(outputs.values()))))
    if artifact.task == "classification":
        return np.asarray(artifact.labels)[out.argmax(axis=1)]
    return out.reshape(len(out), -1)[:, 0]


def predict_fn(artifact: Artifact) -> Any:
    """The fastest call that scores a matrix of rows (what the latency figures time)."""
    if artifact.flavor == "onnx":
        session = artifact.session()
        feed = session.get_inputs()[0]
        dtype = np.float64 if feed.type == "tensor(double)" else np.float32
        name = feed.name
        return lambda rows: session.run(None, {name: rows.astype(dtype, copy=False)})
    if artifact.flavor == "pytorch":
        return lambda rows: _torch_outputs(artifact.model, rows)
    model = artifact.model
    return lambda rows: model.predict(rows)


def serialized(artifact: Artifact) -> bytes:
    """The model's bytes as it is stored: an ONNX protobuf, a pickled estimator or module."""
    if artifact.flavor == "onnx":
        return artifact.model.SerializeToString()
    return pickle.dumps(artifact.model, protocol=pickle.HIGHEST_PROTOCOL)


def deserialized(flavor: str, payload: bytes) -> Any:
    """The model back from ``serialized`` (only for bytes this process or its parent wrote)."""
    if flavor == "onnx":
        import onnx

        return onnx.load_from_string(payload)
    # Only bytes that ``serialized`` wrote in this job are ever read back.
    return pickle.loads(payload)
