"""Drift of one window: ModelGate's drift core against Evidently's ``DataDriftPreset`` on
the same data, in the same run.

    python bench/monitoring_drift.py [--rows 1000000] [--features 30] [--reference-rows 100000]

Generates a reference of ``--reference-rows`` rows and a live window of ``--rows`` rows,
``--features`` numeric columns of mixed shapes (normal, gamma, uniform, with a tenth of
the columns shifted in the window so that there is drift to find). ModelGate's side is
what a monitoring pass does: profile the reference (``profile_build``, done once per
dataset in production, counted here anyway) and compare the window with it
(``window_drift``: PSI, Kolmogorov-Smirnov, missing and out-of-range shares and the
schema, per feature). Evidently's side is ``Report([DataDriftPreset()]).run(current,
reference)``, its default drift test per column. Each side's time is wall clock and
process CPU time around the call. Target: ModelGate's total ≤ 0.5× Evidently's time.

Evidently 0.7.23 imports ``pandas.core.dtypes.common.infer_dtype_from_object``, which
pandas 3 removed; it is used only by Evidently's legacy data-integrity tests, not by the
drift preset, so the bench puts an equivalent back before importing Evidently.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness.report import Target, mark, ratio  # noqa: E402 (the repository on the path first)

TARGET_TIME = Target("time", 0.5, higher_is_better=False, unit="×")
SHIFTED_SHARE = 0.1


def frames(*, rows: int, reference_rows: int, features: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference and a live window with the same columns; every tenth column shifted."""
    rng = np.random.default_rng(seed)
    columns = [f"f{i:02d}" for i in range(features)]

    def draw(n: int, shift: bool, i: int) -> np.ndarray:
        kind = i % 3
        scale = 1.3 if shift else 1.0
        if kind == 0:
            return rng.normal(loc=0.5 if shift else 0.0, size=n)
        if kind == 1:
            return rng.gamma(2.0, 1.0, size=n) * scale
        return rng.uniform(0.0, 10.0 * scale, size=n)

    shifted = {i for i in range(features) if i % int(1 / SHIFTED_SHARE) == 0}
    reference = pd.DataFrame({c: draw(reference_rows, False, i) for i, c in enumerate(columns)})
    live = pd.DataFrame({c: draw(rows, i in shifted, i) for i, c in enumerate(columns)})
    return reference, live


def timed(run: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = run()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def modelgate_side(reference: pd.DataFrame, live: pd.DataFrame) -> dict[str, Any]:
    from lifecycle.monitoring.drift import window_drift
    from lifecycle.monitoring.profiles import profile_build

    profile, profile_s, profile_cpu = timed(lambda: profile_build(reference))
    drift, drift_s, drift_cpu = timed(lambda: window_drift(profile, live))
    # Drifted at the monitors' default thresholds (PSI > 0.2 or KS p-value < 1e-4).
    drifted = sorted(
        name
        for name, f in drift.features.items()
        if (f.psi is not None and f.psi > 0.2) or (f.ks_pvalue is not None and f.ks_pvalue < 1e-4)
    )
    return {
        "profile_s": profile_s,
        "drift_s": drift_s,
        "total_s": profile_s + drift_s,
        "cpu_s": profile_cpu + drift_cpu,
        "drifted": drifted,
    }


def evidently_side(reference: pd.DataFrame, live: pd.DataFrame) -> dict[str, Any]:
    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):
        pandas_common.infer_dtype_from_object = lambda dtype: np.dtype(dtype).type  # type: ignore[attr-defined]
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot, seconds, cpu = timed(lambda: Report([DataDriftPreset()]).run(current_data=live, reference_data=reference))
    drifted = []
    method = ""
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            method = config["method"]
            if float(metric["value"]) >= float(config["threshold"]):
                drifted.append(config["column"])
    return {"total_s": seconds, "cpu_s": cpu, "drifted": sorted(drifted), "method": method}


def drift_bench(*, rows: int, reference_rows: int, features: int) -> dict[str, Any]:
    """Both sides on the same frames; prints the table and the verdict, returns the figures."""
    reference, live = frames(rows=rows, reference_rows=reference_rows, features=features)
    print(
        f"drift of one window: {rows:,} live rows × {features} features against a reference of "
        f"{reference_rows:,} rows; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    ours = modelgate_side(reference, live)
    theirs = evidently_side(reference, live)
    time_ratio = ratio(ours["total_s"], theirs["total_s"])
    print(f"\n{'':34}{'Evidently DataDriftPreset':>27}{'ModelGate drift core':>22}{'ratio':>8}")
    print(f"{'wall time (s)':34}{theirs['total_s']:>27.2f}{ours['total_s']:>22.2f}{time_ratio:>8.3f}")
    print(f"{'  of which reference profile (s)':34}{'':>27}{ours['profile_s']:>22.2f}")
    print(f"{'  of which the window (s)':34}{'':>27}{ours['drift_s']:>22.2f}")
    print(f"{'process CPU time (s)':34}{theirs['cpu_s']:>27.2f}{ours['cpu_s']:>22.2f}")
    print(f"{'statistics per feature':34}{theirs['method']:>31}{'PSI, KS, missing, range':>25}")
    print(f"{'features found drifted':34}{len(theirs['drifted']):>27}{len(ours['drifted']):>22}")
    same = theirs["drifted"] == ours["drifted"]
    print(
        f"{'the same features':34}{'yes' if same else 'no: ' + str(sorted(set(theirs['drifted']) ^ set(ours['drifted']))):>49}"
    )
    print(
        f"\n{TARGET_TIME.label} ≤ {TARGET_TIME.bound:g}{TARGET_TIME.unit} Evidently: {mark(TARGET_TIME.met(time_ratio))} ({time_ratio:.3f}×)"
    )
    return {"modelgate": ours, "evidently": theirs, "ratio": time_ratio}


def main() -> int:
    """0 when the target is met, 1 otherwise (``bench/monitoring.py`` runs this as its drift section)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=30)
    args = parser.parse_args()
    figures = drift_bench(rows=args.rows, reference_rows=args.reference_rows, features=args.features)
    return 0 if TARGET_TIME.met(figures["ratio"]) else 1


if __name__ == "__main__":
    sys.exit(main())
