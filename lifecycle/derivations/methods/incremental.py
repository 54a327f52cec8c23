"""``incremental``: continue training the parent on new data.

scikit-learn: ``partial_fit`` where the estimator has it (SGD, MLP, naive Bayes…), else
warm start — a forest or boosting ensemble grows ``add_estimators`` members fitted on the
new rows, a linear model restarts its solver from its current coefficients. A pipeline's
preprocessing steps keep what they learnt. PyTorch: more epochs of Adam from the parent's
weights.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lifecycle.evaluation.artifacts import Artifact, as_matrix, final_step

DEFAULTS: dict[str, Any] = {"epochs": 5, "add_estimators": 10, "lr": 1e-3, "batch_size": 64, "seed": 0}


def _torch(parent: Artifact, params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Any:
    import torch

    torch.manual_seed(int(params.get("seed", DEFAULTS["seed"])))
    module = copy.deepcopy(parent.model).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=float(params.get("lr", DEFAULTS["lr"])))
    features = torch.from_numpy(as_matrix(x))
    if parent.task == "classification":
        index = {label: i for i, label in enumerate(parent.labels)}
        targets = torch.tensor([index[v] for v in y.tolist()], dtype=torch.long)
        loss_fn: Any = torch.nn.CrossEntropyLoss()
    else:
        targets = torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
        loss_fn = torch.nn.MSELoss()
    batch = int(params.get("batch_size", DEFAULTS["batch_size"]))
    for _ in range(int(params.get("epochs", DEFAULTS["epochs"]))):
        order = torch.randperm(len(features))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            optimizer.zero_grad()
            loss_fn(module(features[rows]), targets[rows]).backward()
            optimizer.step()
    return module.eval()


def _sklearn(parent: Artifact, params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> tuple[Any, str]:
    model = copy.deepcopy(parent.model)
    final = final_step(model)
    if getattr(model, "steps", None):
        x = model[:-1].transform(x)
    if hasattr(final, "partial_fit"):
        extra = {"classes": np.asarray(parent.labels)} if parent.task == "classification" else {}
        for _ in range(int(params.get("epochs", DEFAULTS["epochs"]))):
            final.partial_fit(x, y, **extra)
        return model, "partial_fit"
    if hasattr(final, "warm_start") and hasattr(final, "n_estimators"):
        final.set_params(
            warm_start=True,
            n_estimators=final.n_estimators + int(params.get("add_estimators", DEFAULTS["add_estimators"])),
        )
        final.fit(x, y)
        return model, "warm_start (more estimators)"
    if hasattr(final, "warm_start"):
        final.set_params(warm_start=True)
        final.fit(x, y)
        return model, "warm_start (from the current coefficients)"
    raise ValueError(f"{type(final).__name__} supports neither partial_fit nor warm_start")


def derive(parent: Artifact, params: dict[str, Any], x_new: Any, y_new: Any) -> tuple[Artifact, dict[str, Any]]:
    """The parent trained further on ``x_new``/``y_new``."""
    y = np.asarray(y_new)
    if parent.flavor == "pytorch":
        module = _torch(parent, params, as_matrix(x_new), y)
        return Artifact("pytorch", module, parent.task, parent.labels), {"how": "more epochs", "rows": len(y)}
    if parent.flavor != "sklearn":
        raise ValueError("an ONNX model cannot be trained further; update its parent and convert again")
    model, how = _sklearn(parent, params, as_matrix(x_new, np.float64), y)
    return Artifact("sklearn", model, parent.task, parent.labels), {"how": how, "rows": len(y)}
