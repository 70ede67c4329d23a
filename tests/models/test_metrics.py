"""Metric definitions on hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.evaluation.metrics import (
    binary_metrics,
    bootstrap_intervals,
    calibration_slope,
    expected_calibration_error,
    metrics_at_test_cutoff,
    segment_auc,
    tenure_band,
    top_fraction,
)
from models.evaluation.truth import paired_bootstrap
from models.segments import MAX_SEGMENT_LEVELS, OTHER_LEVEL, fold_levels
from models.settings import EvaluateParams


def test_ece_is_zero_for_perfect_bins_and_positive_otherwise() -> None:
    p = np.repeat([0.1, 0.5], 10)
    y = np.r_[[1] + [0] * 9, [1] * 5 + [0] * 5]
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.clip(p + 0.1, 0, 1), bins=2) == pytest.approx(0.1)


def test_top_decile() -> None:
    p = np.linspace(1, 0, 100)
    y = np.zeros(100)
    y[:5] = 1  # 5 churners, all in the top decile
    y[50:55] = 1  # 5 more lower down
    top = top_fraction(y, p, 0.1)
    assert top["precision"] == pytest.approx(0.5)
    assert top["recall"] == pytest.approx(0.5)
    assert top["lift"] == pytest.approx(5.0)


def test_binary_metrics_keys_and_ranges() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    m = binary_metrics(y, p)
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "recall_at_10"):
        assert np.isfinite(m[key])
    assert 0.5 < m["roc_auc"] <= 1


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(800)
    y = (rng.random(800) < p).astype(int)
    a = bootstrap_intervals(y, p, 100, seed=7)
    assert a == bootstrap_intervals(y, p, 100, seed=7)
    point = binary_metrics(y, p)["roc_auc"]
    assert a["roc_auc"][0] < point < a["roc_auc"][1]


def test_single_class_segment_is_null() -> None:
    y = np.array([0, 1, 0, 1, 0, 0])
    p = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.4])
    seg = pd.Series(["a", "a", "a", "a", "b", "b"])
    out = segment_auc(y, p, seg)
    assert out["a"]["roc_auc"] == 1.0
    assert out["b"]["roc_auc"] is None and out["b"]["n"] == 2


def test_tenure_bands() -> None:
    bands = tenure_band(pd.Series([10, 100, 400, 1000]), (90, 365))
    assert list(bands.astype(str)) == ["0-90d", "90-365d", "365d+", "365d+"]


def test_calibration_slope_near_one_for_true_probabilities() -> None:
    rng = np.random.default_rng(2)
    p = 1 / (1 + np.exp(-rng.normal(-1, 1.2, 20000)))
    y = (rng.random(20000) < p).astype(int)
    assert calibration_slope(y, p)["slope"] == pytest.approx(1.0, abs=0.08)


def _sixty_level_rows(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test predictions and model-table rows whose `city` has 60 levels: city_00 the largest."""
    rng = np.random.default_rng(seed)
    sizes = np.r_[[200 - 3 * i for i in range(10)], np.full(50, 12)]  # 60 levels
    city = np.repeat([f"city_{i:02d}" for i in range(60)], sizes)
    n = len(city)
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    predictions = pd.DataFrame(
        {
            "churned": y,
            "p_model": p,
            "p_logreg": rng.random(n),
            "p_rule": rng.random(n),
            "cutoff": pd.Timestamp("2024-01-01", tz="UTC"),
        }
    )
    rows = pd.DataFrame({"plan": rng.choice(["basic", "pro"], n), "city": city})
    return predictions, rows


def test_sixty_level_segment_gives_top_levels_and_other_listing_the_rest() -> None:
    predictions, rows = _sixty_level_rows()
    params = EvaluateParams(segments=("plan", "city", "region"), bootstrap=20)
    metrics, segments = metrics_at_test_cutoff(predictions, rows, params)
    city = segments["city"]
    kept = [f"city_{i:02d}" for i in range(MAX_SEGMENT_LEVELS)]
    assert sorted(city) == sorted([*kept, OTHER_LEVEL])
    assert city[OTHER_LEVEL]["levels"] == [f"city_{i:02d}" for i in range(MAX_SEGMENT_LEVELS, 60)]
    assert sum(e["n"] for e in city.values()) == len(rows)  # every row counted once
    assert set(metrics["segments_roc_auc"]["city"]) == set(city)
    notes = metrics["segment_notes"]
    assert any(n.startswith("city: 60 levels; the 8 largest") for n in notes)
    assert any(n.startswith("region: not a column of the model table") for n in notes)
    assert sorted(segments["plan"]) == ["basic", "pro"]  # few levels: unchanged


def test_few_levels_are_never_folded_and_add_no_notes() -> None:
    predictions, rows = _sixty_level_rows()
    params = EvaluateParams(segments=("plan",), bootstrap=20)
    metrics, segments = metrics_at_test_cutoff(predictions, rows, params)
    assert "segment_notes" not in metrics
    assert OTHER_LEVEL not in segments["plan"]


def test_fold_levels_ties_by_name() -> None:
    folding = fold_levels("c", {"b": 5, "a": 5, "c": 9, "d": 1}, max_levels=2)
    assert folding.kept == ("c", "a") and folding.folded == ("b", "d")
    assert "grouped as '(other)': b, d" in folding.note()
    assert fold_levels("c", {"x": 1}, 2).folded == ()


def test_resampled_auc_is_the_auc_of_the_resample():
    """ResampledAUC(counts) equals roc_auc_score on the resampled rows, ties included."""
    from sklearn.metrics import roc_auc_score

    from models.evaluation.metrics import ResampledAUC

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 800)
    p = np.round(rng.random(800) + 0.3 * y, 2)  # rounded: many ties
    auc_of = ResampledAUC(y, p)
    for _ in range(20):
        idx = rng.integers(0, len(y), len(y))
        counts = np.bincount(idx, minlength=len(y)).astype(float)
        assert auc_of(counts) == pytest.approx(roc_auc_score(y[idx], p[idx]), abs=1e-12)


def _row_bootstrap(y, true_p, scores, n_boot, seed):
    """The row bootstrap paired_bootstrap replaced: rows drawn with replacement, sorted AUCs."""
    rng = np.random.default_rng(seed)
    draws = {"model_minus_logreg_roc_auc": [], "mean_abs_probability_error": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        ours = roc_auc_score(y[idx], scores["model"][idx])
        draws["model_minus_logreg_roc_auc"].append(
            ours - roc_auc_score(y[idx], scores["logreg"][idx])
        )
        draws["mean_abs_probability_error"].append(
            np.mean(np.abs(scores["model"][idx] - true_p[idx]))
        )
    return {k: [np.percentile(v, 2.5), np.percentile(v, 97.5)] for k, v in draws.items()}


def test_paired_bootstrap_with_one_row_per_customer_is_the_row_bootstrap():
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.2).astype(int)
    true_p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.1, 400), 0.01, 0.99)
    scores = {"model": true_p + rng.normal(0, 0.1, 400), "logreg": true_p + rng.normal(0, 0.2, 400)}
    customers = np.array([f"c{i}" for i in range(400)])
    got = paired_bootstrap(y, true_p, scores, 200, 7, groups=customers)
    want = _row_bootstrap(y, true_p, scores, 200, 7)
    for key, interval in want.items():
        np.testing.assert_allclose(got[key], interval, rtol=1e-9)
    assert got == paired_bootstrap(y, true_p, scores, 200, 7)  # groups=None: rows


def test_paired_bootstrap_keeps_a_customers_rows_together():
    """Each customer twice (two test cutoffs) with identical rows: resampling customers gives the
    interval of the one-row-per-customer data; resampling rows would wrongly narrow it ~1/sqrt 2."""
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.3).astype(int)
    true_p = np.clip(0.3 + 0.2 * (y - 0.3) + rng.normal(0, 0.15, 300), 0.01, 0.99)
    scores = {"model": true_p + rng.normal(0, 0.2, 300), "logreg": rng.random(300)}
    twice = {k: np.concatenate([v, v]) for k, v in scores.items()}
    customers = np.arange(300)
    once = paired_bootstrap(y, true_p, scores, 1000, 1, groups=customers)
    clustered = paired_bootstrap(
        np.concatenate([y, y]),
        np.concatenate([true_p, true_p]),
        twice,
        1000,
        1,
        groups=np.concatenate([customers, customers]),
    )
    y2, p2 = np.concatenate([y, y]), np.concatenate([true_p, true_p])
    rows = paired_bootstrap(y2, p2, twice, 1000, 1)
    key = "model_minus_logreg_roc_auc"
    np.testing.assert_allclose(clustered[key], once[key], rtol=1e-9)
    width = {
        name: ci[key][1] - ci[key][0] for name, ci in (("clustered", clustered), ("rows", rows))
    }
    assert width["rows"] < 0.8 * width["clustered"]
