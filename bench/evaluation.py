"""Evaluation job vs ``mlflow.models.evaluate`` on the same model and data, in one run.

    python bench/evaluation.py [--rows 100000] [--features 30] [--trees 50]

Generates a classification problem (100,000 rows × 30 features by default), trains a
random forest once, then evaluates its held-out quarter in two fresh processes: one
calling ``mlflow.models.evaluate`` (the default evaluator, logging to a local MLflow
store), one running ModelGate's evaluation job code (``evaluate_versions`` + ``report_log``
with the job's default settings: task metrics, bootstrap interval of the primary metric,
permutation importance, plots, the same MLflow logging). Each side's time is wall clock
around the call; its memory is the peak resident set during the call above what the
process held just before it. Targets: time ≤ 1.2× MLflow's, memory ≤ 1.5× MLflow's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python only puts bench/ on the path; the package lives one level up.
sys.path.insert(0, str(ROOT))

from bench.harness.report import Target, mark, ratio  # noqa: E402 (the repository on the path first)

# ModelGate's figure over MLflow's.
TARGET_TIME = Target("time", 1.2, higher_is_better=False, unit="×")
TARGET_MEMORY = Target("memory", 1.5, higher_is_better=False, unit="×")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(side: str, workdir: Path) -> dict:
    """Runs in a fresh process: load the data and the model, then time one evaluation."""
    import mlflow
    import pandas as pd

    frame = pd.read_parquet(workdir / "data.parquet")
    test_rows = json.loads((workdir / "test_rows.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{workdir / f'mlflow-{side}.sqlite3'}")
    model_uri = str(workdir / "model")
    if side == "mlflow":
        test = frame.iloc[test_rows]
        model = mlflow.pyfunc.load_model(model_uri)
        baseline, start = _rss_mb(), time.perf_counter()
        with mlflow.start_run():
            result = mlflow.models.evaluate(
                model, test, targets="target", model_type="classifier", evaluators=["default"]
            )
        seconds = time.perf_counter() - start
        summary = {"f1": result.metrics.get("f1_score"), "metrics": len(result.metrics)}
    else:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from django.conf import settings

        from lifecycle.evaluation.evaluator import evaluate_versions, report_log

        estimator = mlflow.sklearn.load_model(model_uri)
        params = {
            "model": "bench",
            "task": "classification",
            "primary_metric": "f1",
            "seed": 42,
            "cv_folds": settings.MODELGATE_EVALUATION_CV_FOLDS,
            "bootstrap_rounds": settings.MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS,
            "permutation_repeats": settings.MODELGATE_EVALUATION_PERMUTATION_REPEATS,
        }
        features, target = frame.drop(columns=["target"]), frame["target"]
        baseline, start = _rss_mb(), time.perf_counter()
        report = evaluate_versions(
            params=params,
            features=features,
            target=target,
            test_rows=test_rows,
            estimators=[({"version": 1, "role": "candidate"}, estimator)],
        )
        report_log(report, digest="bench")
        seconds = time.perf_counter() - start
        evaluation = report["evaluations"]["1"]
        summary = {
            "f1": evaluation["metrics"]["f1"],
            "metrics": sum(isinstance(v, float) for v in evaluation["metrics"].values()),
            "ci": evaluation.get("ci"),
            "cv": evaluation.get("cv"),
            "importance_features": len(evaluation.get("importance", [])),
            "plots": report.get("plots"),
        }
    return {"side": side, "seconds": seconds, "peak_extra_mb": max(_peak_mb() - baseline, 0.0), "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--child", choices=["mlflow", "modelgate"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, Path(args.workdir))))
        return

    import mlflow
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    with tempfile.TemporaryDirectory(prefix="modelgate-bench-eval-") as tmp:
        workdir = Path(tmp)
        x, y = make_classification(
            n_samples=args.rows, n_features=args.features, n_informative=args.features // 2, random_state=0
        )
        frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(args.features)])
        frame["target"] = y
        frame.to_parquet(workdir / "data.parquet")
        train_rows, test_rows = train_test_split(list(range(args.rows)), test_size=0.25, random_state=42, stratify=y)
        (workdir / "test_rows.json").write_text(json.dumps(sorted(test_rows)))
        started = time.perf_counter()
        model = RandomForestClassifier(n_estimators=args.trees, max_depth=12, n_jobs=1, random_state=0)
        model.fit(frame.drop(columns=["target"]).iloc[train_rows], y[train_rows])
        import skops.io as skops_io

        mlflow.sklearn.save_model(
            model, str(workdir / "model"), skops_trusted_types=skops_io.get_untrusted_types(data=skops_io.dumps(model))
        )
        print(
            f"data: {args.rows:,} rows × {args.features} features; random forest of {args.trees} trees "
            f"trained in {time.perf_counter() - started:.1f} s; test split {len(test_rows):,} rows; "
            f"{os.cpu_count()} CPUs"
        )
        results = {}
        for side in ("mlflow", "modelgate"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", side, "--workdir", str(workdir)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
                env={**os.environ, "MODELGATE_VAR_DIR": str(workdir / "var")},
            )
            if out.returncode != 0:
                raise SystemExit(f"{side} side failed:\n{out.stderr[-3000:]}")
            results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, theirs = results["modelgate"], results["mlflow"]
    time_ratio = ratio(ours["seconds"], theirs["seconds"])
    memory_ratio = ratio(ours["peak_extra_mb"], max(theirs["peak_extra_mb"], 1.0))
    print(f"\n{'':28}{'mlflow.models.evaluate':>24}{'ModelGate evaluation job':>26}{'ratio':>9}")
    print(f"{'time (s)':28}{theirs['seconds']:>24.2f}{ours['seconds']:>26.2f}{time_ratio:>9.2f}")
    print(
        f"{'peak memory above start (MB)':28}{theirs['peak_extra_mb']:>24.1f}{ours['peak_extra_mb']:>26.1f}{memory_ratio:>9.2f}"
    )
    print(f"{'f1':28}{theirs['summary']['f1']:>24.4f}{ours['summary']['f1']:>26.4f}")
    print(f"{'scalar metrics':28}{theirs['summary']['metrics']:>24}{ours['summary']['metrics']:>26}")
    print(
        f"\nModelGate also computed: f1 95% CI {ours['summary']['ci']}, cross-validation {ours['summary']['cv']}, "
        f"permutation importance of {ours['summary']['importance_features']} features, plots {ours['summary']['plots']}"
    )
    for target, value in ((TARGET_TIME, time_ratio), (TARGET_MEMORY, memory_ratio)):
        print(f"{target.label:<6} ≤ {target.bound:g}{target.unit} MLflow: {mark(target.met(value))} ({value:.2f}×)")


if __name__ == "__main__":
    main()
