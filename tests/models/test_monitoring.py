"""Monitoring functions on small hand-made and seeded frames: drift measures and flags, the
score history's retention, and realised performance joined with point-in-time labels."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2
from sklearn.metrics import roc_auc_score

from features.base.errors import BadInputError
from features.settings import LabelParams
from features.tables import Tables
from models.monitoring import history
from models.monitoring.drift import (
    DriftThresholds,
    column_drift,
    distribution,
    feature_drift,
    js_distance,
    numeric_bins,
    psi,
    psi_noise,
    summarise,
)
from models.monitoring.performance import (
    is_matured,
    join_labels,
    labels_at,
    realised_metrics,
)


def test_psi_and_js_are_zero_for_identical_shares_and_grow_with_the_shift() -> None:
    same = np.array([0.2, 0.3, 0.5])
    assert psi(same, same) == pytest.approx(0.0)
    assert js_distance(same, same) == pytest.approx(0.0)
    small, large = np.array([0.25, 0.3, 0.45]), np.array([0.6, 0.3, 0.1])
    assert 0 < psi(same, small) < psi(same, large)
    assert 0 < js_distance(same, small) < js_distance(same, large) <= 1
    # PSI by hand: sum (c - r) ln(c / r)
    expected = sum((c - r) * np.log(c / r) for r, c in zip(same, large, strict=True))
    assert psi(same, large) == pytest.approx(expected)
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_numeric_bins_come_from_the_reference_and_discrete_values_are_kept_apart() -> None:
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(size=5000))
    labels, r, c = numeric_bins(ref, pd.Series(rng.normal(size=5000)), 10)
    assert len(labels) == 10 and r == pytest.approx(np.full(10, 0.1), abs=1e-3)
    assert c.sum() == pytest.approx(1.0)
    counts = pd.Series([0, 0, 0, 1, 2, 2])
    labels, r, c = numeric_bins(counts, pd.Series([0, 1, 1, 7]), 10)
    assert labels == ["0", "1", "2", "other"]  # a value the reference never had: its own bin
    assert r == pytest.approx([0.5, 1 / 6, 1 / 3, 0.0])
    assert c == pytest.approx([0.25, 0.5, 0.0, 0.25])


def test_a_shifted_feature_is_flagged_and_a_resampled_one_is_not() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    ref = pd.DataFrame(
        {
            "stable": rng.gamma(2.0, 3.0, n),
            "shifted": rng.normal(0.0, 1.0, n),
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    cur = pd.DataFrame(
        {
            "stable": rng.gamma(2.0, 3.0, 3000),
            "shifted": rng.normal(0.8, 1.0, 3000),
            "plan": rng.choice(["basic", "pro", "team"], 3000, p=[0.5, 0.3, 0.2]),
        }
    )
    drift = feature_drift(ref, cur, ["stable", "shifted", "plan"])
    by = drift.set_index("feature")
    assert drift["feature"].iloc[0] == "shifted"  # largest first
    assert by.loc["shifted", "status"] == "alert" and by.loc["shifted", "psi"] > 0.25
    assert by.loc["stable", "status"] == "ok" and by.loc["plan", "status"] == "ok"
    assert by.loc["plan", "kind"] == "categorical"
    summary = summarise(drift)
    assert summary["flagged"] == ["shifted"] and summary["features"] == 3


def test_missing_values_and_new_levels_are_flagged_with_their_reason() -> None:
    ref = pd.Series(["a", "b"] * 500)
    cur = pd.Series(["a", "b"] * 400 + ["z"] * 100 + [None] * 100)
    out = column_drift("country", ref, cur)
    assert out["new_levels"] == ["z"] and out["new_level_share"] == pytest.approx(0.1)
    assert out["missing_current"] == pytest.approx(0.1) and out["missing_change"] == 0.1
    assert out["status"] == "alert"
    assert any("never seen in training" in r for r in out["reasons"])
    assert any("missing share" in r for r in out["reasons"])
    gone = column_drift("country", ref, pd.Series(["a"] * 1000))
    assert gone["vanished_levels"] == ["b"]
    numeric = column_drift("fee", pd.Series([1.0, 2.0] * 50), pd.Series([1.0, None] * 50))
    assert numeric["status"] == "alert" and numeric["missing_change"] == pytest.approx(0.5)


def test_the_measure_and_thresholds_decide_the_status() -> None:
    rng = np.random.default_rng(2)
    ref, cur = pd.Series(rng.normal(0, 1, 5000)), pd.Series(rng.normal(0.35, 1, 5000))
    value = column_drift("x", ref, cur)["psi"]
    assert 0.1 <= value < 0.25
    assert column_drift("x", ref, cur)["status"] == "warn"
    strict = DriftThresholds(warn=0.01, alert=0.05)
    assert column_drift("x", ref, cur, thresholds=strict)["status"] == "alert"
    js = column_drift("x", ref, cur, thresholds=DriftThresholds("jensen_shannon", 0.5, 0.9))
    assert js["drift"] == js["jensen_shannon"] and js["status"] == "ok"


def test_a_small_sample_of_the_same_distribution_is_within_the_noise() -> None:
    rng = np.random.default_rng(4)
    ref = pd.Series(rng.gamma(2.0, 3.0, 5000))
    cur = pd.Series(rng.gamma(2.0, 3.0, 40))  # few rows: PSI is large by chance
    out = column_drift("sparse", ref, cur)
    assert out["psi"] > 0.1  # above the warn threshold ...
    assert out["psi"] <= out["psi_noise"] and out["status"] == "ok"  # ... but only noise
    assert psi_noise(10, 5000, 40) == pytest.approx(chi2.ppf(0.999, 9) * (1 / 5000 + 1 / 40))
    shifted = column_drift("sparse", ref, pd.Series(rng.gamma(2.0, 9.0, 40)))
    assert shifted["status"] == "alert"  # a large shift stands out even on 40 rows


def test_distribution_puts_missing_values_in_their_own_bin_and_sums_to_one() -> None:
    ref = pd.Series([1.0, 2.0, None, 3.0])
    cur = pd.Series([1.0, None, None, None])
    frame = distribution(ref, cur, 10)
    assert frame["bin"].iloc[-1] == "(missing)"
    assert frame["reference"].sum() == pytest.approx(1.0)
    assert frame["current"].sum() == pytest.approx(1.0)
    assert frame["current"].iloc[-1] == pytest.approx(0.75)


def test_drift_names_a_missing_feature_column() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(BadInputError, match=r"\['b'\] missing from the reference"):
        feature_drift(frame, frame.assign(b=1.0), ["a", "b"])
    with pytest.raises(BadInputError, match="both need rows"):
        feature_drift(frame, frame.iloc[:0], ["a"])


def _entry(root: Path, day: str) -> None:
    (root / day).mkdir(parents=True)
    (root / day / history.SCORES).write_bytes(b"x")


def test_history_lists_complete_entries_and_prunes_from_the_newest(tmp_path: Path) -> None:
    for day in ("2025-01-01", "2025-03-01", "2025-06-01"):
        _entry(tmp_path, day)
    (tmp_path / "2025-07-01").mkdir()  # no scores file: an incomplete entry
    (tmp_path / ".2025-08-01.abc").mkdir()  # a staging leftover of a killed copy
    found = history.entries(tmp_path)
    assert [e.directory.name for e in found] == ["2025-01-01", "2025-03-01", "2025-06-01"]
    assert found[0].as_of == pd.Timestamp("2025-01-01", tz="UTC")
    assert history.prune(tmp_path, None) == []
    assert history.prune(tmp_path, 100) == ["2025-01-01"]  # 2025-03-01 is 92 days back: kept
    assert [e.directory.name for e in history.entries(tmp_path)] == ["2025-03-01", "2025-06-01"]
    assert history.entries(tmp_path / "nowhere") == []


def _tables() -> Tables:
    import ibis
    import pyarrow as pa

    def ts(*days: str) -> pa.Array:
        return pa.array([dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC) for d in days],
                        pa.timestamp("us", tz="UTC"))  # fmt: skip

    customers = pa.table(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "signup_date": ts(*["2024-01-01"] * 4, "2025-02-10"),
        }
    )
    # a: churns inside the label window of 2025-02-01; b: before it (not active then);
    # c: after the window (a stayer at 2025-02-01)
    churn = pa.table(
        {"customer_id": ["a", "b", "c"], "churn_date": ts("2025-02-15", "2025-01-20", "2025-04-01")}
    )
    return Tables(customers=ibis.memtable(customers), churn_events=ibis.memtable(churn))


def test_labels_at_an_as_of_date_are_the_label_stage_labels() -> None:
    tables = _tables()
    labels = labels_at(tables, dt.datetime(2025, 2, 1, tzinfo=dt.UTC), LabelParams())
    # b churned before the as-of date, e signed up after it: neither is in the population
    assert dict(zip(labels["customer_id"], labels["churned"], strict=True)) == {
        "a": True,
        "c": False,
        "d": False,
    }


def test_maturity_needs_the_whole_label_window_in_the_data() -> None:
    as_of = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    assert is_matured(as_of, 0, 30, dt.datetime(2025, 3, 3, tzinfo=dt.UTC))
    assert is_matured(as_of, 7, 30, dt.datetime(2025, 3, 10, tzinfo=dt.UTC))
    assert not is_matured(as_of, 0, 30, dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    assert not is_matured(as_of, 7, 30, dt.datetime(2025, 3, 3, tzinfo=dt.UTC))


def test_realised_metrics_equal_the_direct_computation_on_the_joined_rows() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    p = rng.uniform(0, 0.4, n)
    y = rng.uniform(size=n) < p
    scores = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "churn_probability": p,
            "plan": rng.choice(["basic", "pro"], n),
        }
    )
    labels = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n - 50)], "churned": y[:-50]})
    joined, unlabelled = join_labels(scores, labels)
    assert unlabelled == 50 and len(joined) == n - 50
    out = realised_metrics(joined, segments=("plan", "absent"))
    assert out["roc_auc"] == pytest.approx(roc_auc_score(y[:-50], p[:-50]), abs=1e-12)
    assert out["observed_rate"] == pytest.approx(y[:-50].mean())
    assert out["mean_predicted"] == pytest.approx(p[:-50].mean())
    assert 1.6 < out["lift_at_10"] < 2.2  # top decile p ~ 0.38 vs a mean of 0.2
    assert sum(b["n"] for b in out["calibration"]) == n - 50
    assert set(out["segments"]) == {"plan"}
    basic = joined["plan"] == "basic"
    assert out["segments"]["plan"]["basic"]["roc_auc"] == pytest.approx(
        roc_auc_score(joined.loc[basic, "churned"], joined.loc[basic, "churn_probability"])
    )
    one_class = realised_metrics(joined.assign(churned=False))
    assert "skipped" in one_class and "roc_auc" not in one_class


def test_join_labels_refuses_a_customer_scored_twice() -> None:
    scores = pd.DataFrame({"customer_id": ["a", "a"], "churn_probability": [0.1, 0.2]})
    labels = pd.DataFrame({"customer_id": ["a"], "churned": [True]})
    with pytest.raises(BadInputError, match="scored twice"):
        join_labels(scores, labels)
    with pytest.raises(BadInputError, match=r"lack column\(s\) \['churned'\]"):
        join_labels(scores.iloc[:1], labels.drop(columns="churned"))
