"""``onnx``: the parent as an ONNX model — scikit-learn through skl2onnx, PyTorch through
``torch.onnx.export`` — to be served by onnxruntime."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from lifecycle.evaluation.artifacts import Artifact, as_matrix, final_step

DEFAULTS: dict[str, Any] = {"opset": 17}


def from_sklearn(parent: Artifact, sample: Any, *, opset: int) -> Any:
    from skl2onnx import to_onnx

    options: dict[Any, Any] = {}
    if parent.task == "classification":
        # Probabilities as a plain tensor rather than a list of maps: what a scorer reads.
        options[id(final_step(parent.model))] = {"zipmap": False}
    return to_onnx(
        parent.model,
        as_matrix(sample[:1], np.float32),
        options=options,
        target_opset={"": opset, "ai.onnx.ml": 3},
    )


def from_torch(parent: Artifact, sample: Any, *, opset: int) -> Any:
    import onnx
    import torch

    module = parent.model.eval()
    output = "logits" if parent.task == "classification" else "value"
    buffer = io.BytesIO()
    # The TorchScript exporter: it needs no onnxscript, and a feed-forward module is its case.
    torch.onnx.export(
        module,
        (torch.from_numpy(as_matrix(sample[:1])),),
        buffer,
        dynamo=False,
        input_names=["input"],
        output_names=[output],
        dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}},
        opset_version=opset,
    )
    return onnx.load_from_string(buffer.getvalue())


def derive(parent: Artifact, params: dict[str, Any], sample: Any) -> Artifact:
    """The parent converted to ONNX; its predictions agree with the parent's to float32 precision."""
    opset = int(params.get("opset", DEFAULTS["opset"]))
    if parent.flavor == "sklearn":
        model = from_sklearn(parent, sample, opset=opset)
    elif parent.flavor == "pytorch":
        model = from_torch(parent, sample, opset=opset)
    else:
        raise ValueError("the parent is already an ONNX model")
    return Artifact("onnx", model, parent.task, parent.labels)
