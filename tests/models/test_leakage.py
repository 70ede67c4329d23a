"""Leakage guard: label copies are flagged and excluded, strong honest features are kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.settings import DataParams, LeakageParams, SplitParams, TrainParams
from models.snapshot.job import fit_table
from models.training.fit import fit_all
from models.training.leakage import name_evidence, name_words, screen, too_good_to_be_true


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


# ---------------------------------------------------------------- names and comparisons


@pytest.fixture(scope="module")
def vendor() -> tuple[pd.DataFrame, np.ndarray]:
    """IBM Telco v11 in small: a vendor's `Churn Score` (a noisy function of the label, AUC about
    0.95), a free-text column filled in only for churners, and honest columns (AUC <= 0.8)."""
    rng = np.random.default_rng(13)
    n = 3000
    y = (rng.random(n) < 0.27).astype(int)
    score = np.clip(np.round(50 + 28 * y + rng.normal(0, 12, n)), 0, 100)
    feedback = np.where(
        (y == 1) & (rng.random(n) < 0.4),
        rng.choice(["too expensive", "moved", "better offer elsewhere"], n),
        None,
    )
    frame = pd.DataFrame(
        {
            "Churn Score": score,
            "Feedback": pd.Series(feedback, dtype="object"),
            "Tenure Months": rng.normal(30, 10, n) - 9 * y,
            "Contract": np.where(rng.random(n) < 0.3 + 0.4 * y, "Month-to-month", "Two year"),
            "Satisfaction Score": rng.normal(3, 1, n) - 0.8 * y,
            "tickets_cancellation_90d": rng.poisson(0.2 + 0.3 * y),
        }
    )
    return frame, y


def test_name_words_split_camel_snake_and_spaces() -> None:
    assert name_words("ChurnScore") == ["churn", "score"]
    assert name_words("Churn Score") == ["churn", "score"]
    assert name_words("churn_probability_v2") == ["churn", "probability", "v2"]
    assert name_words("XGBAttritionPropensity") == ["xgb", "attrition", "propensity"]
    assert name_evidence("tickets_cancellation_90d") == (["cancellation"], [])
    assert name_evidence("satisfaction_score") == ([], ["score"])
    assert name_evidence("existing_plan") == ([], [])  # "exist" is not "exit"
    assert name_evidence("Exited") == (["exited"], [])


def test_vendor_churn_score_and_churners_only_text_are_suspects(vendor) -> None:
    """Issue 13, point 10: the score is reported (and excluded) with its name as evidence, the
    text by its missing pattern; honest columns, even with 'cancel' or 'score' in the name, stay."""
    x, y = vendor
    assert 0.92 < roc_auc_score(y, x["Churn Score"]) < 0.97  # below auc_threshold 0.98
    report = screen(x, y, x.columns)
    suspects = {e.feature: e for e in report.suspects}
    assert set(suspects) == {"Churn Score", "Feedback"}, report.to_dict()["suspects"]
    score = suspects["Churn Score"]
    assert score.name_words == ["churn", "score"]
    assert any("named like a model's output for the target" in r for r in score.reasons)
    assert any("churned" in r for r in suspects["Feedback"].reasons)
    assert set(report.excluded) == {"Churn Score", "Feedback"}
    described = report.to_dict()
    assert described["suspects"][0]["name_words"] == ["churn", "score"]
    assert described["kept_suspects"] == [] and described["too_good_to_be_true"] is False


def test_churn_score_with_a_modest_auc_is_reported_but_kept(vendor) -> None:
    """A target word with a model-output word is a suspect by name alone; below high_auc it is
    only warned (a propensity score known at the cutoff can be honest) and the result flagged."""
    x, y = vendor
    rng = np.random.default_rng(5)
    weak = x.assign(**{"churn_propensity": rng.normal(0, 1, len(y)) + 0.6 * y})
    report = screen(weak, y, ["churn_propensity", "Tenure Months"])
    [suspect] = report.suspects
    assert suspect.feature == "churn_propensity" and not suspect.exclude
    assert report.excluded == [] and report.kept_suspects == ["churn_propensity"]
    assert report.check_result({"test cutoffs": 0.8})  # kept suspect: too good to be true?
    assert report.to_dict()["too_good_to_be_true"] is True


def test_model_output_word_alone_needs_a_high_auc_and_is_kept(vendor) -> None:
    x, y = vendor
    rng = np.random.default_rng(6)
    strong = x.assign(**{"Satisfaction Score": rng.normal(0, 1, len(y)) - 2.3 * y})
    report = screen(strong, y, ["Satisfaction Score", "Tenure Months", "Contract"])
    [suspect] = report.suspects
    assert suspect.feature == "Satisfaction Score" and suspect.auc >= 0.9
    assert any("named like a model output (score)" in r for r in suspect.reasons)
    assert report.excluded == []  # warned and kept
    honest = screen(x, y, ["Satisfaction Score", "Tenure Months"])  # AUC about 0.7: nothing
    assert honest.suspects == []


def test_one_feature_far_ahead_of_the_others_is_a_kept_suspect(vendor) -> None:
    x, y = vendor
    rng = np.random.default_rng(8)
    ahead = x.assign(v17=rng.normal(0, 1, len(y)) + 2.6 * y)
    report = screen(ahead, y, ["v17", "Tenure Months", "Contract"])
    [suspect] = report.suspects
    assert suspect.feature == "v17" and any("far above" in r for r in suspect.reasons)
    assert report.excluded == []
    # With a second strong feature it is not far ahead: no suspect.
    both = ahead.assign(v18=rng.normal(0, 1, len(y)) + 2.2 * y)
    assert screen(both, y, ["v17", "v18", "Tenure Months"]).suspects == []


def test_too_good_to_be_true() -> None:
    s = LeakageParams()
    assert too_good_to_be_true({"test cutoffs": 0.85}, [], s) == []
    [reason] = too_good_to_be_true({"test cutoffs": 0.984}, [], s)
    assert "0.9840" in reason and "test cutoffs" in reason
    [reason] = too_good_to_be_true({"test cutoffs": 0.85}, ["Churn Score"], s)
    assert "Churn Score" in reason


def test_table_summary_reports_the_vendor_score_and_a_too_good_result(vendor) -> None:
    """`churn table fit` (models/snapshot/job.py): the summary lists both suspects with their
    evidence; with allow_leaky the score is kept and the summary says too good to be true."""
    x, y = vendor
    frame = x.assign(Churn=np.where(y == 1, "Yes", "No"))
    fast = DataParams(candidates={"small": DataParams().candidates["small"]}, inner_folds=2)
    args = ("Churn", "Yes", None, (), 2, fast, TrainParams(num_threads=1))
    honest = fit_table(frame, *args, LeakageParams(), "vendor.csv").summary
    suspects = {s["column"]: s for s in honest["leakage_suspects"]}
    assert set(suspects) == {"Churn Score", "Feedback"}
    assert suspects["Churn Score"]["name_words"] == ["churn", "score"]
    assert not suspects["Churn Score"]["kept"] and honest["too_good_to_be_true"] is False
    leaky = fit_table(frame, *args, LeakageParams(allow_leaky=True), "vendor.csv").summary
    assert leaky["roc_auc"] > 0.97 and leaky["too_good_to_be_true"] is True
    assert any("Churn Score" in r for r in leaky["too_good_reasons"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_matches_scikit_learn(seed):
    """The guard's one-sort ROC gives scikit-learn's AUC and curve, ties and all."""
    from sklearn.metrics import roc_curve

    from models.training.leakage import _roc

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 3000)
    # few distinct values (ties), a continuous part, and a constant stretch
    score = np.r_[rng.integers(0, 7, 1000), rng.normal(size=1500) + y[1000:2500], np.zeros(500)]
    auc, fpr, tpr, thresholds = _roc(y, score.astype(float))
    want_fpr, want_tpr, want_thr = roc_curve(y, score)
    assert auc == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    np.testing.assert_allclose(fpr, want_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, want_tpr, atol=1e-12)
    np.testing.assert_array_equal(thresholds, want_thr)
    # one or two distinct values (a constant or binary feature): nothing to drop
    for few in (np.zeros(len(y)), (np.arange(len(y)) % 2).astype(float)):
        auc, fpr, tpr, thresholds = _roc(y, few)
        want_fpr, want_tpr, want_thr = roc_curve(y, few)
        assert auc == pytest.approx(roc_auc_score(y, few), abs=1e-12)
        np.testing.assert_allclose(fpr, want_fpr, atol=1e-12)
        np.testing.assert_array_equal(thresholds, want_thr)
