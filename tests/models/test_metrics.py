"""Metric definitions on hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.metrics import (
    binary_metrics,
    bootstrap_intervals,
    calibration_slope,
    expected_calibration_error,
    segment_auc,
    tenure_band,
    top_fraction,
)


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
