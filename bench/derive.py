"""Parent vs derived version for every derivation method, on a random forest and a small MLP.

    python bench/derive.py [--rows 20000] [--features 30] [--trees 100]

Generates a classification problem, trains a scikit-learn random forest and a small
PyTorch MLP (30-64-64-2) on three quarters of it, then runs each method of the update
stage's pure core (``lifecycle.derivations.methods``, the code the derive job runs) and
measures parent and child the way the job does: stored size, p50/p95 latency of one row
and of a batch of 1,000 rows (one thread), peak memory of loading the model and scoring
a batch in a fresh process, and F1 on the held-out quarter.

Target: ONNX + int8 quantization of the MLP at least 2x faster single-row (p50) than the
PyTorch parent, losing at most 1 point of F1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python only puts bench/ on the path; the package lives one level up.
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.harness.report import machine_summary  # noqa: E402
from lifecycle.derivations.methods import Data, derive, params_check  # noqa: E402
from lifecycle.evaluation.artifacts import Artifact, predict  # noqa: E402
from lifecycle.evaluation.measure import measure  # noqa: E402

RUNS = {
    "forest": [
        ("onnx", {}),
        ("quantize", {}),
        ("prune", {"sparsity": 0.5}),
        ("distill", {"student": "tree", "max_depth": 6}),
        ("incremental", {"add_estimators": 20}),
    ],
    "mlp": [
        ("onnx", {}),
        ("quantize", {}),
        ("quantize", {"backend": "torch"}),
        ("prune", {"sparsity": 0.5}),
        ("distill", {"student": "mlp", "hidden_layer_sizes": [16]}),
        ("incremental", {"epochs": 2}),
    ],
}


def _data(rows: int, features: int) -> tuple[Data, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=rows, n_features=features, n_informative=features // 2, random_state=0, class_sep=0.8
    )
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, random_state=0, stratify=y)
    mean, std = x_fit.mean(0), x_fit.std(0)
    x_fit, x_test = (x_fit - mean) / std, (x_test - mean) / std
    cut = int(len(x_fit) * 0.8)
    # New rows of the incremental update: the last fifth of the training rows.
    data = Data(x_fit[:cut], y_fit[:cut], x_fit[cut:], y_fit[cut:], x_fit[cut:], y_fit[cut:])
    return data, x_test, y_test


def _forest(data: Data, trees: int) -> Artifact:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=1).fit(data.x_train, data.y_train)
    return Artifact("sklearn", model, "classification", (0, 1))


def _mlp(data: Data, features: int) -> Artifact:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)
    )
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    x = torch.from_numpy(data.x_train.astype(np.float32))
    y = torch.from_numpy(data.y_train)
    for _ in range(20):
        for rows in torch.randperm(len(x)).split(128):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(module(x[rows]), y[rows]).backward()
            optimizer.step()
    return Artifact("pytorch", module.eval(), "classification", (0, 1))


def _f1(artifact: Artifact, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, predict(artifact, x)))


def _row(model: str, method: str, artifact: Artifact, x: np.ndarray, y: np.ndarray, f1_parent: float | None) -> dict:
    figures = measure(artifact, x[:1000])
    f1 = _f1(artifact, x, y)
    return {
        "model": model,
        "method": method,
        "flavor": artifact.flavor,
        "kb": figures.model_bytes / 1024,
        "p50": figures.latency_p50_ms,
        "p95": figures.latency_p95_ms,
        "b50": figures.batch_latency_p50_ms,
        "b95": figures.batch_latency_p95_ms,
        "mb": figures.peak_memory_mb,
        "f1": f1,
        "df1": None if f1_parent is None else f1 - f1_parent,
    }


def _print(rows: list[dict]) -> None:
    header = (
        f"{'model':<7} {'method':<17} {'flavor':<8} {'size KB':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'b1000 p50':>10} {'b1000 p95':>10} {'peak MB':>8} {'F1':>7} {'ΔF1':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        peak = f"{r['mb']:.1f}" if r["mb"] is not None else "n/a"
        delta = f"{r['df1']:+.4f}" if r["df1"] is not None else ""
        print(
            f"{r['model']:<7} {r['method']:<17} {r['flavor']:<8} {r['kb']:>9.1f} {r['p50']:>8.3f} {r['p95']:>8.3f} "
            f"{r['b50']:>10.3f} {r['b95']:>10.3f} {peak:>8} {r['f1']:>7.4f} {delta:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    load_at_start = os.getloadavg()[0]
    started = time.perf_counter()
    data, x_test, y_test = _data(args.rows, args.features)
    parents = {"forest": _forest(data, args.trees)}
    try:
        parents["mlp"] = _mlp(data, args.features)
    except ImportError:
        print("no torch (requirements-train.txt): the MLP rows and the target are left out")
    rows: list[dict] = []
    speedup = f1_loss = None
    for name, parent in parents.items():
        base = _row(name, "parent", parent, x_test, y_test, None)
        rows.append(base)
        for method, params in RUNS[name]:
            label = method + (f" ({params['backend']})" if "backend" in params else "")
            try:
                derived, _ = derive(method, parent, params_check(method, params), data)
            except ValueError as exc:
                print(f"{name} {label}: not applicable: {exc}")
                continue
            row = _row(name, label, derived, x_test, y_test, base["f1"])
            rows.append(row)
            if name == "mlp" and method == "quantize" and "backend" not in params:
                speedup, f1_loss = base["p50"] / row["p50"], base["f1"] - row["f1"]
    print()
    _print(rows)
    print()
    print(
        f"{args.rows} rows x {args.features} features, test quarter {len(y_test)} rows; forest of {args.trees} trees; "
        f"MLP {args.features}-64-64-2; latency on one thread; {time.perf_counter() - started:.0f} s in all"
    )
    print(machine_summary(load_at_start))
    if speedup is not None and f1_loss is not None:
        met = speedup >= 2.0 and f1_loss <= 0.01
        print(
            f"target: MLP ONNX + int8 single-row p50 {speedup:.2f}x faster than the PyTorch parent (>= 2x), "
            f"F1 lost {f1_loss * 100:+.2f} points (<= 1): {'MET' if met else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
