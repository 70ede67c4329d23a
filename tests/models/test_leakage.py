"""Leakage guard: label copies are flagged and excluded, strong honest features are kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.settings import LeakageParams, SplitParams, TrainParams
from models.training.fit import fit_all
from models.training.leakage import screen


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    """2,000 customers: a label copy with 1 % noise, an honest strong feature, harmless ones."""
    rng = np.random.default_rng(7)
    n = 2000
    y = (rng.random(n) < 0.27).astype(int)
    flip = rng.random(n) < 0.01
    honest = rng.normal(0, 1, n) + 1.5 * y  # AUC about 0.85
    contract = np.where(
        y == 1,
        rng.choice(["monthly", "yearly", "two-year"], n, p=[0.85, 0.1, 0.05]),
        rng.choice(["monthly", "yearly", "two-year"], n, p=[0.45, 0.3, 0.25]),
    )
    reason = np.where(
        (y == 1) & (rng.random(n) < 0.6),  # filled for 60 % of churners, nobody else
        rng.choice(["price", "competitor", "service"], n),
        None,
    )
    frame = pd.DataFrame(
        {
            "status_copy": np.where(y ^ flip, "Cancelled", "Active"),
            "label_as_number": (y ^ flip).astype(float),
            "honest_strong": honest,
            "contract": contract,
            "noise": rng.normal(0, 1, n),
            "churn_reason": pd.Series(reason, dtype="object"),
            "customer_code": [f"id{i}" for i in range(n)],  # unique per row
        }
    )
    return frame, y


def test_label_copy_with_noise_is_flagged_and_excluded(frame) -> None:
    x, y = frame
    report = screen(x, y, x.columns)
    assert {"status_copy", "label_as_number"} <= set(report.excluded)
    numeric = next(e for e in report.evidence if e.feature == "label_as_number")
    assert numeric.auc > 0.97 and numeric.rule_balanced_accuracy > 0.97
    assert "label_as_number" in numeric.rule and "→ churn" in numeric.rule


def test_strong_honest_features_are_kept(frame) -> None:
    x, y = frame
    report = screen(x, y, x.columns)
    honest_auc = roc_auc_score(y, x["honest_strong"])
    assert 0.8 < honest_auc < 0.9  # the fixture really is strong
    for name in ("honest_strong", "contract", "noise", "customer_code"):
        assert name not in report.excluded, report.to_dict()["suspects"]


def test_id_like_column_does_not_look_predictive(frame) -> None:
    """Out-of-fold level rates: a unique-per-row code cannot memorise the label."""
    x, y = frame
    evidence = {e.feature: e for e in screen(x, y, ["customer_code"]).evidence}
    assert evidence["customer_code"].auc < 0.6


def test_filled_only_for_churners_is_flagged(frame) -> None:
    x, y = frame
    report = screen(x, y, ["churn_reason", "honest_strong"])
    assert report.excluded == ["churn_reason"]
    [suspect] = report.suspects
    assert suspect.filled_positive_share == 1.0
    assert any("churned" in r for r in suspect.reasons)


def test_numeric_filled_only_for_churners_is_flagged() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.2).astype(int)
    days_to_cancel = np.where(
        (y == 1) & (rng.random(1000) < 0.5), rng.integers(1, 30, 1000), np.nan
    )
    x = pd.DataFrame({"days_to_cancel": days_to_cancel})
    report = screen(x, y, ["days_to_cancel"])
    assert report.excluded == ["days_to_cancel"]


def test_allow_leaky_reports_but_keeps(frame) -> None:
    x, y = frame
    report = screen(x, y, ["status_copy"], LeakageParams(allow_leaky=True))
    assert [e.feature for e in report.suspects] == ["status_copy"]
    assert report.excluded == []


def test_threshold_is_a_setting(frame) -> None:
    """A lower threshold flags the honest feature too: the threshold, not a constant, decides."""
    x, y = frame
    strict = screen(x, y, ["honest_strong"], LeakageParams(auc_threshold=0.8, rule_threshold=0.99))
    assert strict.excluded == ["honest_strong"]
    evidence = strict.to_dict()["suspects"][0]
    assert evidence["auc"] >= 0.8 and "AUC" in evidence["reasons"][0]


def test_temporal_train_stage_excludes_a_planted_leak(model_table) -> None:
    """`train` (models/training/fit.py): the guard runs on training cutoffs, the leak is out."""
    rng = np.random.default_rng(11)
    y = model_table["churned"].astype(int).to_numpy()
    table = model_table.assign(
        cancellation_flag=np.where(rng.random(len(y)) < 0.01, 1 - y, y).astype(float)
    )
    fitted = fit_all(table, SplitParams(), TrainParams(), LeakageParams(), "test model table")
    report = fitted.leakage
    assert report.excluded == ["cancellation_flag"]
    assert "cancellation_flag" not in fitted.model.spec.features
    assert "days_since_last_login" in fitted.model.spec.features  # the honest driver stays
    screened = {e.feature for e in report.evidence}
    assert not screened & {"customer_id", "cutoff", "churned", "churn_type"}
