"""``quantize``: dynamic int8 quantization — onnxruntime's ``quantize_dynamic`` on the ONNX
form of the parent (converted first when it is not ONNX yet), or ``torch.ao``'s dynamic
quantization of the Linear layers of a PyTorch parent (``backend: "torch"``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lifecycle.derivations.methods import onnx_export
from lifecycle.evaluation.artifacts import Artifact

DEFAULTS: dict[str, Any] = {"backend": "onnx", "per_channel": False, "opset": 17}
BACKENDS = ("onnx", "torch")
# The operators dynamic quantization rewrites (their weight matrices become int8).
QUANTIZABLE = ("MatMul", "Gemm", "Attention", "LSTM", "Conv")


def _onnx_int8(model: Any, *, per_channel: bool) -> Any:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "quantized.onnx"
        quantize_dynamic(model, target, weight_type=QuantType.QInt8, per_channel=per_channel)
        return onnx.load(str(target))


def _torch_int8(module: Any) -> Any:
    import torch

    return torch.ao.quantization.quantize_dynamic(module.eval(), {torch.nn.Linear}, dtype=torch.qint8)


def derive(parent: Artifact, params: dict[str, Any], sample: Any) -> Artifact:
    """The parent with int8 weights (activations quantized on the fly)."""
    backend = params.get("backend", DEFAULTS["backend"])
    if backend == "torch":
        if parent.flavor != "pytorch":
            raise ValueError("backend 'torch' quantizes PyTorch models; this parent is " + parent.flavor)
        return Artifact("pytorch", _torch_int8(parent.model), parent.task, parent.labels)
    source = parent if parent.flavor == "onnx" else onnx_export.derive(parent, params, sample)
    operators = {node.op_type for node in source.model.graph.node}
    if not operators & set(QUANTIZABLE):
        raise ValueError(
            f"nothing to quantize: the model's operators ({', '.join(sorted(operators))}) hold no weight matrix "
            f"({', '.join(QUANTIZABLE)}); a tree ensemble is made smaller by prune or distill"
        )
    quantized = _onnx_int8(source.model, per_channel=bool(params.get("per_channel", DEFAULTS["per_channel"])))
    return Artifact("onnx", quantized, parent.task, parent.labels)
