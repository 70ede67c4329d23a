"""LightGBM training: determinism, test-period isolation, categorical levels, constant features."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from features.base.params import ParamsError
from models.model import OTHER, fit_feature_spec, to_model_frame
from models.settings import TrainParams, TuningParams
from models.training.split import split_by_cutoff
from models.training.train import train_model

FAST = TrainParams(learning_rate=0.1, num_boost_round=300, early_stopping_rounds=20)


def test_same_seed_gives_identical_predictions(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    a = train_model(split, FAST)
    b = train_model(split, FAST)
    np.testing.assert_array_equal(a.predict(split.test), b.predict(split.test))
    assert a.calibrator.to_dict() == b.calibrator.to_dict()


def test_test_period_rows_never_touch_training(model_table: pd.DataFrame) -> None:
    """Scrambling every test-cutoff row (labels and features) changes nothing that was learned,
    including the tuned parameters, the kept LightGBM candidate, the early-stopping point and the
    calibrator."""
    params = dataclasses.replace(
        FAST,
        tuning=TuningParams(trials=3),
        candidates={"regularised": {"num_leaves": 7, "min_data_in_leaf": 50}},
    )
    latest = model_table["cutoff"].max()
    scrambled = model_table.copy()
    in_test = scrambled["cutoff"] == latest
    rng = np.random.default_rng(5)
    scrambled.loc[in_test, "churned"] = rng.random(in_test.sum()) < 0.5
    scrambled.loc[in_test, "days_since_last_login"] = rng.exponential(50, in_test.sum())
    scrambled.loc[in_test, "plan"] = "never-seen-plan"

    a = train_model(split_by_cutoff(model_table), params)
    b = train_model(split_by_cutoff(scrambled), params)
    valid = split_by_cutoff(model_table).valid
    np.testing.assert_array_equal(a.predict(valid), b.predict(valid))
    assert a.info["tuning"] == b.info["tuning"]
    assert a.info["candidates"] == b.info["candidates"]  # base, the default candidates, tuned
    assert set(a.info["candidates"]) == {"base", "regularised", "tuned"}
    assert a.info["candidate"] == b.info["candidate"]
    assert a.info["best_iteration"] == b.info["best_iteration"]
    assert a.calibrator.to_dict() == b.calibrator.to_dict()


def test_categories_fixed_from_train_rare_to_other_unseen_to_nan() -> None:
    train = pd.DataFrame(
        {
            "customer_id": [str(i) for i in range(8)],
            "country": ["DE"] * 5 + ["FR"] * 2 + ["LU"],
            "x": np.arange(8.0),
        }
    )
    spec = fit_feature_spec(train, min_level_count=2)
    assert spec.categorical["country"] == ["DE", "FR", OTHER]
    frame = to_model_frame(pd.DataFrame({"country": ["DE", "LU", "US", None], "x": 1.0}), spec)
    assert list(frame["country"].cat.categories) == ["DE", "FR", OTHER]
    assert frame["country"].tolist()[:2] == ["DE", OTHER]
    assert frame["country"].isna().tolist() == [False, False, True, True]


def test_constant_feature_is_dropped_with_a_warning(
    model_table: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    table = model_table.assign(always_one=1, all_missing=np.nan)
    with caplog.at_level(logging.WARNING):
        spec = fit_feature_spec(split_by_cutoff(table).train)
    assert "always_one" not in spec.features and "all_missing" not in spec.features
    assert "always_one" in spec.dropped and "constant" in spec.dropped["always_one"]
    assert "always_one" in caplog.text
    # readable reasons (they reach train.json and the driver report), never a repr
    assert spec.dropped["always_one"] == "constant in training rows (value 1)"
    assert spec.dropped["all_missing"] == "constant in training rows (always missing)"


def test_predictions_are_calibrated_on_average(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    model = train_model(split, FAST)
    p = model.predict(split.test)
    assert ((p > 0) & (p < 1)).all()
    assert abs(p.mean() - split.test["churned"].mean()) < 0.05


def test_the_candidate_with_the_lowest_validation_log_loss_is_kept(
    model_table: pd.DataFrame,
) -> None:
    """A candidate that can barely learn (tiny learning rate, 20 rounds) loses to the others;
    the kept one is the argmin of the validation log losses and its booster is the one used."""
    params = dataclasses.replace(
        FAST,
        candidates={
            "stalled": {"learning_rate": 1e-5},
            "stumps": {"num_leaves": 2, "min_data_in_leaf": 50},
        },
    )
    split = split_by_cutoff(model_table)
    model = train_model(split, params)
    tried = model.info["candidates"]
    assert set(tried) == {"base", "stalled", "stumps"}
    losses = {name: t["valid_log_loss"] for name, t in tried.items()}
    assert model.info["candidate"] == min(losses, key=losses.__getitem__)
    assert model.info["candidate"] != "stalled"
    assert losses["stalled"] > min(losses.values()) + 0.01
    chosen = tried[model.info["candidate"]]
    for key, value in chosen["overrides"].items():
        assert model.info["lgb_params"][key] == value
    assert model.info["best_iteration"] == chosen["best_iteration"]
    raw = model.predict_raw(split.valid)
    assert log_loss(split.valid["churned"], raw) == pytest.approx(chosen["valid_log_loss"])


@pytest.mark.parametrize(
    ("candidates", "message"),
    [
        ({"small": {"num_leafs": 7}}, "num_leafs"),
        ({"base": {"num_leaves": 7}}, "reserved"),
        ({"tuned": {"num_leaves": 7}}, "reserved"),
    ],
)
def test_bad_candidate_is_refused_naming_it(
    candidates: dict[str, dict[str, float]], message: str
) -> None:
    with pytest.raises(ParamsError, match=message):
        TrainParams(candidates=candidates)


def test_schema_rows_give_the_whole_frames_schema():
    """MLflow infers the same schema (types, optional columns) from `schema_rows` as from every
    row, though missing values sit only far past the first rows."""
    from mlflow.types.utils import _infer_schema

    from models.tracking import schema_rows

    n = 5000
    frame = pd.DataFrame(
        {
            "count": np.arange(n, dtype="int64"),
            "ratio": np.linspace(0, 1, n),
            "late_gap": np.r_[np.ones(n - 1), np.nan],
            "plan": ["basic"] * (n - 1) + [None],
            "flag": np.ones(n, dtype=bool),
        }
    )
    rows = schema_rows(frame, head=10)
    assert len(rows) == 11
    assert _infer_schema(rows) == _infer_schema(frame)
    assert [c.required for c in _infer_schema(rows).inputs] == [True, True, False, False, True]
