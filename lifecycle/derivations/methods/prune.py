"""``prune``: magnitude pruning of a PyTorch model's Linear layers (``torch.nn.utils.prune``)
or of a scikit-learn MLP's weights at a given sparsity, and for tree ensembles dropping
the weakest trees (scored one by one on a validation split)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lifecycle.evaluation.artifacts import Artifact, as_matrix, final_step

DEFAULTS: dict[str, Any] = {"sparsity": 0.5}


def _torch(module: Any, sparsity: float) -> Any:
    import torch
    from torch.nn.utils import prune

    pruned = copy.deepcopy(module)
    linear = [m for m in pruned.modules() if isinstance(m, torch.nn.Linear)]
    # Frozen layers (a fixed input scaling, say) are not learnt weights: left as they are.
    layers = [(m, "weight") for m in linear if m.weight.requires_grad] or [(m, "weight") for m in linear]
    if not layers:
        raise ValueError("the PyTorch model has no Linear layer to prune")
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=sparsity)
    for layer, name in layers:
        prune.remove(layer, name)  # make the zeros permanent: a plain module again
    return pruned


def _mlp(estimator: Any, sparsity: float) -> None:
    weights = np.concatenate([np.abs(w).ravel() for w in estimator.coefs_])
    cut = np.quantile(weights, sparsity)
    estimator.coefs_ = [np.where(np.abs(w) <= cut, 0.0, w) for w in estimator.coefs_]


def _score(tree: Any, x: np.ndarray, y: np.ndarray, task: str, classes: np.ndarray) -> float:
    predicted = tree.predict(x)
    if task == "classification":
        # A forest's trees predict class indices; its classes_ maps them back.
        return float(np.mean(classes[predicted.astype(int)] == y))
    return -float(np.mean((predicted - y) ** 2))


def _ensemble(estimator: Any, sparsity: float, x_val: Any, y_val: Any, task: str, prefix: Any) -> dict[str, Any]:
    trees = list(estimator.estimators_)
    keep = max(1, round(len(trees) * (1.0 - sparsity)))
    x = as_matrix(prefix.transform(x_val) if prefix is not None else x_val, np.float32)
    y = np.asarray(y_val)
    classes = np.asarray(getattr(estimator, "classes_", []))
    scores = [_score(tree, x, y, task, classes) for tree in trees]
    order = sorted(range(len(trees)), key=lambda i: scores[i], reverse=True)[:keep]
    kept = sorted(order)
    estimator.estimators_ = [trees[i] for i in kept]
    estimator.n_estimators = len(kept)
    return {"trees_before": len(trees), "trees_after": len(kept), "kept_tree_scores": [scores[i] for i in kept]}


def derive(parent: Artifact, params: dict[str, Any], x_val: Any, y_val: Any) -> tuple[Artifact, dict[str, Any]]:
    """The pruned model and what was removed."""
    sparsity = float(params.get("sparsity", DEFAULTS["sparsity"]))
    if parent.flavor == "pytorch":
        import torch

        module = _torch(parent.model, sparsity)
        linear = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        weights = [m.weight for m in linear if m.weight.requires_grad] or [m.weight for m in linear]
        zeros = sum(int((w == 0).sum()) for w in weights)
        total = sum(w.numel() for w in weights)
        return Artifact("pytorch", module, parent.task, parent.labels), {"zero_fraction": zeros / total}
    if parent.flavor != "sklearn":
        raise ValueError("prune works on PyTorch and scikit-learn models; convert after pruning")
    model = copy.deepcopy(parent.model)
    final = final_step(model)
    prefix = model[:-1] if getattr(model, "steps", None) else None
    if hasattr(final, "coefs_"):
        _mlp(final, sparsity)
        zeros = sum(int((w == 0).sum()) for w in final.coefs_)
        details = {"zero_fraction": zeros / sum(w.size for w in final.coefs_)}
    elif isinstance(getattr(final, "estimators_", None), list) and hasattr(final, "n_estimators"):
        details = _ensemble(final, sparsity, x_val, y_val, parent.task, prefix)
    else:
        raise ValueError(
            f"{type(final).__name__} cannot be pruned: prune needs a PyTorch model, an MLP or a forest of trees"
        )
    return Artifact("sklearn", model, parent.task, parent.labels), details
