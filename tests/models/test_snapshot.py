"""Snapshot tables: type inference on hand-made frames (one quirk each), target, model."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.model import fit_feature_spec
from models.settings import DataParams, LeakageParams, TrainParams
from models.snapshot.cv import evaluate_folds
from models.snapshot.job import read_table
from models.snapshot.model import Scorecard, _candidate_oof, choose_blend, fit_snapshot_model
from models.snapshot.schema import (
    TRUE_TOKENS,
    ColumnPlan,
    SnapshotDataError,
    encode_target,
    infer_schema,
)
from models.training.baselines import fit_logreg, predict_logreg
from models.training.calibration import logit
from models.training.split import LABEL, Split
from models.training.train import lgb_params


def plan(frame: pd.DataFrame, column: str, **kw) -> ColumnPlan:
    """The plan inference makes for `column` (a usable column and a target are added)."""
    n = len(frame)
    full = frame.assign(churn=(["yes", "no"] * n)[:n], usable=np.arange(n) % 3)
    schema = infer_schema(full, "churn", "yes", **kw)
    return next(p for p in schema.plans if p.column == column)


# ------------------------------------------------------------------ inference: each quirk


def test_numbers_stored_as_text_with_blanks() -> None:
    frame = pd.DataFrame({"TotalCharges": ["29.85", " ", "1,889.50", "$108.15", "", "n/a"]})
    p = plan(frame, "TotalCharges")
    assert p.kind == "numeric" and "text" in p.reason
    schema = infer_schema(frame.assign(churn=["yes", "no"] * 3), "churn", "yes")
    values = schema.transform(frame)["TotalCharges"]
    assert values.dtype == "float64"
    np.testing.assert_allclose(values.to_numpy(), [29.85, np.nan, 1889.5, 108.15, np.nan, np.nan])


def test_mostly_numbers_with_a_stray_word_count_the_unreadable_value() -> None:
    values = [str(v) for v in range(40)] + ["unknown"]
    frame = pd.DataFrame({"amount": values + ["1"]})
    p = plan(frame, "amount")
    assert p.kind == "numeric" and p.unparsed == 1 and p.example_unparsed == "unknown"


@pytest.mark.parametrize(
    "values",
    [
        ["Yes", "no", "YES", "", "No", "yes"],
        ["True", "false", "TRUE", None, "False", "true"],
        ["Y", "n", "y", " ", "N", "Y"],
        [1, 0, 1, 0, 0, 1],
        ["1", "0", "1", "", "0", "1"],
        [True, False, True, False, True, False],
    ],
)
def test_booleans_in_any_spelling_with_blanks(values) -> None:
    frame = pd.DataFrame({"flag": values})
    schema = infer_schema(frame.assign(churn=["yes", "no"] * 3), "churn", "yes")
    [p] = [p for p in schema.plans if p.column == "flag"]
    assert p.kind == "boolean", p
    out = schema.transform(frame)["flag"].to_numpy()
    expected = [
        np.nan if v is None or str(v).strip() == "" else float(str(v).lower() in TRUE_TOKENS)
        for v in values
    ]
    np.testing.assert_array_equal(out, expected)


def test_one_spelling_plus_blanks_is_a_category_not_a_boolean() -> None:
    frame = pd.DataFrame({"opted_in": ["Yes", None, "Yes", None]})
    assert plan(frame, "opted_in").kind == "categorical"


def test_dates_become_days_before_the_latest_date() -> None:
    frame = pd.DataFrame(
        {"signup_date": ["2024-01-01", "2024-03-01", "2023-12-02", "", "2024-02-15", "2024-01-31"]}
    )
    schema = infer_schema(frame.assign(churn=["yes", "no"] * 3), "churn", "yes")
    [p] = schema.plans
    assert p.kind == "date" and p.reference.startswith("2024-03-01")
    days = schema.transform(frame)["signup_date"].to_numpy()
    np.testing.assert_allclose(days, [60, 0, 90, np.nan, 15, 30])


def test_day_first_and_slash_dates_are_parsed() -> None:
    frame = pd.DataFrame({"last_order": ["01/15/2024", "02/01/2024", "12/31/2023", "01/01/2024"]})
    p = plan(frame, "last_order")
    assert p.kind == "date" and p.unparsed == 0


@pytest.mark.parametrize("name", ["customerID", "CustomerId", "user_id", "id", "account-uuid"])
def test_columns_named_like_ids_and_unique_are_dropped(name: str) -> None:
    frame = pd.DataFrame({name: [f"{i:04d}-X" for i in range(6)]})
    p = plan(frame, name)
    assert p.kind == "dropped" and "identifier" in p.reason


def test_numeric_ids_and_row_numbers_are_dropped_but_unique_measures_kept() -> None:
    frame = pd.DataFrame(
        {
            "CustomerId": [15634602, 15647311, 15619304, 15701354, 15737888, 15574012],
            "RowNumber": [1, 2, 3, 4, 5, 6],
            "balance": [0.0, 83807.86, 159660.8, 1.5, 125510.82, 113755.78],
        }
    )
    assert plan(frame, "CustomerId").kind == "dropped"
    assert plan(frame, "RowNumber").kind == "dropped"
    assert plan(frame, "balance").kind == "numeric"


def test_repeated_codes_named_like_an_id_are_categories() -> None:
    frame = pd.DataFrame({"region_id": ["r1", "r2", "r1", "r2", "r1", "r3"]})
    assert plan(frame, "region_id").kind == "categorical"


def test_explicit_id_and_drop() -> None:
    frame = pd.DataFrame({"who": list("abcdef"), "noise": [1, 2, 3, 4, 5, 7], "x": [1, 0] * 3})
    schema = infer_schema(
        frame.assign(churn=["yes", "no"] * 3), "churn", "yes", id_column="who", drop=("noise",)
    )
    assert "--id" in schema.dropped["who"] and "--drop" in schema.dropped["noise"]
    assert schema.features == ["x"]


def test_unknown_id_or_drop_column_is_an_error() -> None:
    frame = pd.DataFrame({"x": [1, 2], "churn": ["yes", "no"]})
    with pytest.raises(SnapshotDataError, match="--drop column 'nope' not found"):
        infer_schema(frame, "churn", "yes", drop=("nope",))


def test_constant_and_empty_columns_are_dropped_with_the_reason() -> None:
    frame = pd.DataFrame({"country": ["US"] * 6, "empty": [None, "", " ", "NA", None, "null"]})
    assert "constant" in plan(frame, "country").reason
    assert "empty" in plan(frame, "empty").reason


def test_free_text_is_dropped() -> None:
    rng = np.random.default_rng(0)
    text = [f"comment {i} {rng.integers(1e9)}" for i in range(300)]
    text[1] = text[0]  # not strictly unique
    assert plan(pd.DataFrame({"notes": text}), "notes").kind == "dropped"


def test_missing_values_stay_missing() -> None:
    frame = pd.DataFrame(
        {"plan": ["basic", None, "pro", "NA", "basic", "pro"], "n": [1, None, 3, 4, 5, 6]}
    )
    schema = infer_schema(frame.assign(churn=["yes", "no"] * 3), "churn", "yes")
    out = schema.transform(frame)
    assert out["plan"].isna().tolist() == [False, True, False, True, False, False]
    assert np.isnan(out["n"].iloc[1])


def test_unsafe_and_reserved_names_are_renamed_and_mapped_back() -> None:
    frame = pd.DataFrame({"Tenure (months)": [1, 5, 9, 2, 4, 8], "churned": [3, 1, 2, 3, 1, 2]})
    schema = infer_schema(frame.assign(status=["yes", "no"] * 3), "status", "yes")
    names = {p.column: p.feature for p in schema.plans}
    assert names == {"Tenure (months)": "Tenure_months", "churned": "churned_value"}


def test_high_cardinality_levels_are_folded_inside_the_training_rows() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame({"city": rng.choice([f"city{i}" for i in range(400)], n)})
    assert plan(frame, "city").kind == "categorical"
    spec = fit_feature_spec(frame.assign(**{LABEL: rng.integers(0, 2, n)}), (), 25)
    assert len(spec.categorical["city"]) <= n // 25 + 1
    assert spec.rare_levels["city"]


def test_high_cardinality_noise_does_not_hurt_the_model() -> None:
    """400 random levels next to one real signal: CV AUC stays within 0.02 of the clean model."""
    rng = np.random.default_rng(2)
    n = 3000
    signal = rng.normal(0, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * signal - 1)))).astype(int)
    clean = pd.DataFrame({"signal": signal})
    noisy = clean.assign(city=rng.choice([f"c{i}" for i in range(400)], n).astype(object))
    settings = DataParams(inner_folds=3)
    aucs = []
    for x in (clean, noisy):
        result = evaluate_folds(x, y, settings, TrainParams(), LeakageParams(), cv=3)
        aucs.append(np.mean([f["metrics"]["roc_auc"] for f in result["folds"]]))
    assert aucs[1] > aucs[0] - 0.02, aucs


# ------------------------------------------------------------------ target


def test_target_positive_value_is_text_in_any_case_and_blank_targets_are_counted() -> None:
    frame = pd.DataFrame({"Churn": ["Yes", "no", None, "YES", " ", "No"]})
    y, info = encode_target(frame, "Churn", "yes")
    np.testing.assert_array_equal(y, [1, 0, np.nan, 1, np.nan, 0])
    assert info["unusable_rows"] == {"target missing": 2} and info["labelled_rows"] == 4


def test_numeric_target_matches_positive_given_as_text() -> None:
    frame = pd.DataFrame({"Exited": [1.0, 0.0, 1.0, np.nan]})
    y, _ = encode_target(frame, "Exited", "1")
    np.testing.assert_array_equal(y, [1, 0, 1, np.nan])


def test_absent_positive_value_lists_the_values() -> None:
    frame = pd.DataFrame({"Churn": ["Yes", "No", "No"]})
    with pytest.raises(SnapshotDataError, match=r"positive value 'churned' not found.*'No' \(2\)"):
        encode_target(frame, "Churn", "churned")


def test_one_class_target_is_an_error() -> None:
    frame = pd.DataFrame({"Churn": ["Yes", "Yes", None]})
    with pytest.raises(SnapshotDataError, match="one class"):
        encode_target(frame, "Churn", "Yes")


def test_missing_target_column_is_an_error() -> None:
    with pytest.raises(SnapshotDataError, match="target column 'Churn' not found"):
        encode_target(pd.DataFrame({"x": [1]}), "Churn", "Yes")


# ------------------------------------------------------------------ model


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 1500
    tenure = rng.integers(0, 72, n).astype(float)
    contract = rng.choice(["monthly", "yearly", "two-year"], n, p=[0.5, 0.3, 0.2])
    z = -0.5 - 0.04 * tenure + np.where(contract == "monthly", 1.2, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    tenure[rng.random(n) < 0.05] = np.nan
    leak = np.where(y ^ (rng.random(n) < 0.01), "closed", "open")
    frame = pd.DataFrame({"tenure": tenure, "contract": contract, "account_status": leak})
    return frame.astype({"contract": object, "account_status": object}), y


def test_scorecard_reproduces_the_logistic_baseline(table) -> None:
    x, y = table
    frame = x.drop(columns="account_status").assign(**{LABEL: y})
    spec = fit_feature_spec(frame, (), 25)
    model = fit_logreg(Split(frame, frame.iloc[:0], frame.iloc[:0], (), (), ()), spec)
    card = Scorecard.from_pipeline(model, spec, frame)
    contrib = card.contributions(frame, spec.features)
    np.testing.assert_allclose(contrib.sum(1), logit(predict_logreg(model, frame, spec)), atol=1e-4)


def test_fit_excludes_the_leak_and_scores_probabilities(table) -> None:
    x, y = table
    settings = DataParams(inner_folds=3)
    model = fit_snapshot_model(x, y, settings, TrainParams(), LeakageParams())
    assert model.leakage["excluded"] == ["account_status"]
    assert "account_status" not in model.spec.features
    p = model.predict(x)
    assert ((p > 0) & (p < 1)).all() and roc_auc_score(y, p) > 0.7
    contrib = model.contributions(x)
    assert contrib.shape == (len(x), len(model.spec.features) + 1)
    # contributions add up to the blend's log-odds (before calibration)
    np.testing.assert_allclose(contrib.sum(1), model.logit(x), atol=1e-6)


def test_choice_is_the_best_candidate_and_weight_pair_judged_together() -> None:
    """The blend can rescue a candidate that loses alone: pairs are judged jointly, not the best
    candidate first and its weight after; ties go to the earlier candidate and larger weight."""
    rng = np.random.default_rng(0)
    n = 4000
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * a + 1.5 * b)))).astype(int)
    lr = b + rng.normal(0, 0.3, n)  # the logistic model sees b only
    oof = {
        "sees_a_and_some_b": a + 0.6 * b + rng.normal(0, 0.8, n),  # best alone, noisier
        "sees_a_only": a + rng.normal(0, 0.3, n),  # complements the logistic model
    }
    weights = (1.0, 0.8, 0.6, 0.5, 0.4, 0.2, 0.0)
    alone = {k: roc_auc_score(y, z) for k, z in oof.items()}
    assert alone["sees_a_and_some_b"] > alone["sees_a_only"]
    name, w, scores = choose_blend(y, oof, lr, weights)
    assert (name, 0 < w < 1) == ("sees_a_only", True)
    assert scores[(name, w)] == max(scores.values()) > max(alone.values())
    assert len(scores) == len(oof) * len(weights)
    # a constant logistic part: every w > 0 ranks alike; the tie goes to w = 1, first candidate
    same = {"first": oof["sees_a_only"], "second": oof["sees_a_only"].copy()}
    assert choose_blend(y, same, np.zeros(n), weights)[:2] == ("first", 1.0)


def test_inner_folds_share_one_round_count_minimising_their_mean_validation_loss() -> None:
    """Every inner fold is scored at the same round: the minimum of the folds' mean validation
    log loss (as lgb.cv finds it), not each fold's own best round (its labels' choice)."""
    rng = np.random.default_rng(1)
    n = 800
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(x["a"] - 0.5 * x["b"] ** 2)))).astype(int).to_numpy()
    folds = [(np.flatnonzero(np.arange(n) % 3 != k), np.flatnonzero(np.arange(n) % 3 == k))
             for k in range(3)]  # fmt: skip
    s = DataParams(num_boost_round=150, early_stopping_rounds=200)  # full curves, no stop
    params = lgb_params(TrainParams(), {"learning_rate": 0.1, "num_leaves": 15, "num_threads": 1})
    oof, rounds = _candidate_oof(x, y, folds, params, s)
    curves, own_best, boosters = [], [], []
    for a, b in folds:  # each fold's full validation curve, trained independently here
        record: dict = {}
        booster = lgb.train(
            params,
            lgb.Dataset(x.iloc[a], label=y[a]),
            num_boost_round=150,
            valid_sets=[lgb.Dataset(x.iloc[b], label=y[b])],
            valid_names=["valid"],
            callbacks=[lgb.record_evaluation(record)],
        )
        curves.append(record["valid"]["binary_logloss"])
        own_best.append(int(np.argmin(curves[-1])) + 1)
        boosters.append(booster)
    assert rounds == int(np.argmin(np.mean(curves, axis=0))) + 1 and 1 < rounds < 150
    assert any(r != rounds for r in own_best)  # the folds' own best rounds differ: not used
    for booster, (_, b) in zip(boosters, folds, strict=True):
        expected = booster.predict(x.iloc[b], num_iteration=rounds, raw_score=True)
        np.testing.assert_allclose(oof[b], expected, atol=1e-9)


def test_cv_scores_the_peers_on_our_folds(table) -> None:
    """Each peer (logistic regression, LightGBM and HistGradientBoosting defaults) is fitted on
    each fold's training rows and scored on that fold's test rows, like ours."""
    x, y = table
    settings = DataParams(inner_folds=2, candidates={"small": DataParams().candidates["small"]})
    result = evaluate_folds(x, y, settings, TrainParams(), LeakageParams(), cv=3)
    assert set(result["peer_oof"]) == {"logreg", "lightgbm_defaults", "hgb_defaults"}
    for fold, (_, te) in zip(result["folds"], result["splits"], strict=True):
        assert fold["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y[te], result["oof"][te]))
        for name, scores in result["peer_oof"].items():
            assert fold["peer_roc_auc"][name] == pytest.approx(roc_auc_score(y[te], scores[te]))
    for scores in result["peer_oof"].values():
        assert not np.isnan(scores).any()  # every row scored once, as a test row
    # the leak the guard excluded from ours is kept from the peers too (same input columns)
    assert all(0.7 < f["peer_roc_auc"]["hgb_defaults"] < 0.95 for f in result["folds"])


# ------------------------------------------------------------------ reading the file


def test_read_table_reads_csv_tsv_and_parquet_and_names_what_is_wrong(tmp_path) -> None:
    frame = pd.DataFrame({"x": [1, 2], "churn": ["yes", "no"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    for name in ("t.csv", "t.tsv", "t.parquet"):
        pd.testing.assert_frame_equal(read_table(tmp_path / name), frame)
    (tmp_path / "t.ods").write_text("x", encoding="utf-8")
    with pytest.raises(SnapshotDataError, match="unsupported file type '.ods'"):
        read_table(tmp_path / "t.ods")
    (tmp_path / "empty.csv").write_text("x,churn\n", encoding="utf-8")
    with pytest.raises(SnapshotDataError, match="the table has no rows"):
        read_table(tmp_path / "empty.csv")
