"""Drift statistics against scipy on known distributions, and the default monitor
thresholds on the bundled breast-cancer data: an unshifted stream never fires, a
shifted one fires within the configured windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from lifecycle.monitoring.drift import ks_two_sample, psi, window_drift
from lifecycle.monitoring.profiles import profile_build, profile_from_dict
from lifecycle.monitoring.rules import DEFAULT_THRESHOLDS, WindowSummary, parse_monitors


def test_ks_matches_scipy_below_and_above_its_exact_threshold():
    rng = np.random.default_rng(3)
    reference = np.sort(rng.normal(size=5_000))
    for n in (500, 9_000, 50_000, 400_000):
        for shift in (0.0, 0.03, 0.4):
            live = rng.normal(loc=shift, size=n)
            expected = stats.ks_2samp(reference, live)
            d, pvalue = ks_two_sample(reference, live)
            assert d == pytest.approx(expected.statistic, abs=1e-12)
            assert pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_numeric_feature_drift_is_scipys_ks_against_the_profile_sample_and_psi_on_its_bins():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=20_000)})
    profile = profile_build(reference, sample_size=5_000)
    live = pd.DataFrame({"x": rng.normal(loc=0.5, scale=1.2, size=3_000)})
    result = window_drift(profile, live).features["x"]
    sample = np.asarray(profile.features["x"].sample)
    expected = stats.ks_2samp(sample, live["x"].to_numpy())
    assert result.ks == pytest.approx(expected.statistic)
    assert result.ks_pvalue == pytest.approx(expected.pvalue)
    # PSI by hand over the reference deciles: each bin holds a tenth of the reference.
    edges = np.quantile(reference["x"], np.linspace(0, 1, 11)[1:-1])
    live_share = np.bincount(np.searchsorted(edges, live["x"], side="right"), minlength=10) / len(live)
    by_hand = float(np.sum((live_share - 0.1) * np.log(live_share / 0.1)))
    assert result.psi == pytest.approx(by_hand, rel=1e-3)
    assert sum(result.live_counts) == len(live)


def test_psi_of_identical_distributions_is_zero_and_grows_with_the_shift():
    counts = np.array([100, 200, 300, 400])
    assert psi(counts, counts * 3) == pytest.approx(0.0, abs=1e-12)
    assert psi(counts, np.array([400, 300, 200, 100])) > psi(counts, np.array([150, 200, 300, 350])) > 0


def test_categorical_drift_is_scipys_chi_square_and_jensen_shannon():
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], p=[0.5, 0.3, 0.2], size=4_000)})
    live = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], p=[0.3, 0.3, 0.4], size=1_000)})
    profile = profile_build(reference)
    result = window_drift(profile, live).features["colour"]
    names = ["red", "green", "blue"]
    ref_counts = reference["colour"].value_counts()[names].to_numpy()
    live_counts = live["colour"].value_counts()[names].to_numpy()
    chi2, pvalue, _, _ = stats.chi2_contingency(np.vstack([ref_counts, live_counts]), correction=False)
    assert result.chi2 == pytest.approx(chi2)
    assert result.chi2_pvalue == pytest.approx(pvalue)
    js = jensenshannon(ref_counts / ref_counts.sum(), live_counts / live_counts.sum(), base=2)
    assert result.js == pytest.approx(js)
    assert result.out_of_range_share == 0.0


def test_missing_out_of_range_unseen_categories_and_schema_violations_are_counted():
    reference = pd.DataFrame({"x": np.linspace(0.0, 10.0, 1_000), "c": ["a", "b"] * 500})
    profile = profile_build(reference)
    live = pd.DataFrame(
        {
            "x": [1.0, 2.0, np.nan, 20.0, -5.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "c": ["a", "b", "z", "a", None, "a", "b", "a", "b", "a"],
            "extra": range(10),
            "prediction": [0] * 10,
        }
    )
    result = window_drift(profile, live)
    assert result.features["x"].missing_share == pytest.approx(0.1)
    assert result.features["x"].out_of_range_share == pytest.approx(2 / 9)
    assert result.features["c"].missing_share == pytest.approx(0.1)
    assert result.features["c"].out_of_range_share == pytest.approx(1 / 9)
    assert [(v.feature, v.problem) for v in result.schema] == [("extra", "unknown")]

    wrong = window_drift(profile, pd.DataFrame({"x": ["1.5", "oops", "2"]}))
    assert {(v.feature, v.problem) for v in wrong.schema} == {("c", "missing"), ("x", "wrong_type")}
    assert next(v for v in wrong.schema if v.problem == "wrong_type").share == pytest.approx(1 / 3)


def test_a_profile_survives_its_json_form():
    frame = load_breast_cancer(as_frame=True).frame
    profile = profile_build(frame.drop(columns="target"), prediction=frame["target"])
    again = profile_from_dict(profile.to_dict())
    assert again == profile
    assert again.prediction is not None and again.prediction.kind == "categorical"


def _stream(source: pd.DataFrame, *, windows: int, rows: int, scale: float, seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return [source.iloc[rng.integers(0, len(source), rows)].reset_index(drop=True) * scale for _ in range(windows)]


DEFAULT_MONITORS = parse_monitors(
    [{"type": "drift", "features": "*", "statistic": statistic} for statistic in DEFAULT_THRESHOLDS]
)


def _first_firing(profile, stream: list[pd.DataFrame]) -> dict[str, int | None]:
    summaries: list[WindowSummary] = []
    first: dict[str, int | None] = {rule.statistic: None for rule in DEFAULT_MONITORS}
    for number, window in enumerate(stream, start=1):
        drift = window_drift(profile, window)
        summaries.append(WindowSummary(rows=drift.rows, statistics=drift.statistics()))
        for rule in DEFAULT_MONITORS:
            if first[rule.statistic] is None and rule.evaluate(summaries).firing:
                first[rule.statistic] = number
    return first


@pytest.fixture(scope="module")
def breast_cancer():
    """The reference is the dataset a version is registered with (the whole bundled set,
    as ModelGate profiles it); live traffic is drawn from the same population."""
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    return profile_build(features), features


def test_an_unshifted_stream_fires_nothing_over_twenty_windows_at_the_default_thresholds(breast_cancer):
    profile, live = breast_cancer
    for seed in range(5):
        fired = _first_firing(profile, _stream(live, windows=20, rows=300, scale=1.0, seed=seed))
        assert fired == dict.fromkeys(fired), fired


def test_fresh_draws_of_the_reference_population_fire_nothing_over_twenty_windows():
    rng = np.random.default_rng(11)
    columns = [f"f{i}" for i in range(30)]
    reference = pd.DataFrame(rng.gamma(2.0, size=(20_000, 30)), columns=columns)
    profile = profile_build(reference)
    stream = [pd.DataFrame(rng.gamma(2.0, size=(500, 30)), columns=columns) for _ in range(20)]
    fired = _first_firing(profile, stream)
    assert fired == dict.fromkeys(fired), fired


def test_a_model_split_still_fires_nothing_once_the_reference_is_its_whole_dataset():
    # A held-out half streamed against the profile of the dataset it came from.
    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    _, held_out = train_test_split(frame, test_size=0.5, random_state=0)
    fired = _first_firing(profile_build(frame), _stream(held_out, windows=20, rows=300, scale=1.0, seed=1))
    assert fired == dict.fromkeys(fired), fired


def test_a_shifted_stream_fires_within_the_configured_windows(breast_cancer):
    profile, live = breast_cancer
    fired = _first_firing(profile, _stream(live, windows=20, rows=300, scale=1.5, seed=7))
    windows = DEFAULT_MONITORS[0].windows
    for statistic in ("psi", "ks", "ks_pvalue", "out_of_range_share"):
        assert fired[statistic] == windows, fired
