"""Refit on train + valid (train.refit): the registered model and both baselines learn from the
training and validation cutoffs with the choices made on validation; the test cutoff reaches no
fit; refit off is the train-only behaviour."""

from __future__ import annotations

import dataclasses

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.pipeline import Pipeline

from models.settings import LeakageParams, SplitParams, TrainParams, TuningParams
from models.training.baselines import fit_logreg
from models.training.fit import fit_all
from models.training.train import refit_rounds, train_model

# bagging off: the first tree's root then counts every row the booster was trained on
FAST = TrainParams(
    learning_rate=0.1, num_boost_round=300, early_stopping_rounds=20, bagging_fraction=1.0
)
SENTINEL = 1e6  # days_since_last_login of every test-cutoff row in the poisoned table


def _fit(table: pd.DataFrame, params: TrainParams = FAST):
    return fit_all(table, SplitParams(), params, LeakageParams(), "test model table")


def _iso(cutoffs: list) -> list[str]:
    return sorted(pd.Timestamp(c).isoformat() for c in cutoffs)


def test_refit_rounds_scale_with_the_rows_and_are_capped() -> None:
    assert refit_rounds(64, 1000, 1250, 3000) == 80
    assert refit_rounds(64, 1000, 1000, 3000) == 64
    assert refit_rounds(2900, 1000, 2000, 3000) == 3000  # capped by num_boost_round
    assert refit_rounds(0, 1000, 1200, 3000) == 1  # at least one round


def test_registered_model_is_trained_on_train_and_valid_rows(model_table: pd.DataFrame) -> None:
    fitted = _fit(model_table)
    split, model, selected = fitted.split, fitted.model, fitted.selected
    assert selected is not None
    rows = len(split.train) + len(split.valid)

    # the booster's own count: the root of its first tree holds every training row
    root = model.booster.dump_model()["tree_info"][0]["tree_structure"]
    assert root["internal_count"] == rows
    selected_root = selected.booster.dump_model()["tree_info"][0]["tree_structure"]
    assert selected_root["internal_count"] == len(split.train)

    # rounds: the early-stopping point scaled by the rows, as documented
    best = selected.info["best_iteration"]
    expected = min(FAST.num_boost_round, round(best * rows / len(split.train)))
    assert model.booster.num_trees() == expected == model.info["refit"]["rounds"]
    assert model.info["refit"]["rows"] == rows == model.info["booster_rows"]

    # the choices made on VALID are kept: parameters, calibrator
    assert model.info["lgb_params"] == selected.info["lgb_params"]
    assert model.calibrator.to_dict() == selected.calibrator.to_dict()

    seen = _iso([*split.train_cutoffs, *split.valid_cutoffs])
    assert model.info["trained_on_cutoffs"] == seen
    assert model.spec.train_end == pd.Timestamp(split.valid_cutoffs[-1]).isoformat()
    for name in ("model", "logreg", "rule"):
        assert fitted.cutoffs_seen[name]["trained_on_cutoffs"] == seen
    assert fitted.cutoffs_seen["model"]["selected_on_cutoffs"] == _iso(split.valid_cutoffs)
    assert fitted.cutoffs_seen["rule"]["selected_on_cutoffs"] == _iso(split.valid_cutoffs)

    # the baselines were refit too: the logistic regression differs from the train-only one
    train_only = fit_logreg(split, model.spec)
    lr_refit, lr_train = fitted.logreg.named_steps["lr"], train_only.named_steps["lr"]
    assert lr_refit.coef_.shape == lr_train.coef_.shape
    assert not np.allclose(lr_refit.coef_, lr_train.coef_)


def test_valid_predictions_come_from_the_train_only_models(model_table: pd.DataFrame) -> None:
    fitted = _fit(model_table)
    valid = fitted.split.valid
    np.testing.assert_array_equal(
        fitted.predictions["valid"]["p_model"], fitted.selected.predict(valid)
    )
    np.testing.assert_array_equal(
        fitted.predictions["test"]["p_model"], fitted.model.predict(fitted.split.test)
    )


def test_refit_false_gives_the_train_only_behaviour(model_table: pd.DataFrame) -> None:
    params = dataclasses.replace(FAST, refit=False)
    fitted = _fit(model_table, params)
    split = fitted.split
    today = train_model(split, params)
    assert fitted.model.booster.model_to_string() == today.booster.model_to_string()
    np.testing.assert_array_equal(fitted.predictions["test"]["p_model"], today.predict(split.test))
    assert fitted.model.info["refit"] is None
    assert fitted.model.info["trained_on_cutoffs"] == _iso(split.train_cutoffs)
    assert fitted.cutoffs_seen["logreg"]["trained_on_cutoffs"] == _iso(split.train_cutoffs)
    root = fitted.model.booster.dump_model()["tree_info"][0]["tree_structure"]
    assert root["internal_count"] == len(split.train)
    refit = _fit(model_table)
    assert not np.allclose(
        refit.predictions["test"]["p_model"], fitted.predictions["test"]["p_model"]
    )


def _poisoned(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every test-cutoff row scrambled (labels, features, an unseen plan) and marked."""
    out = table.copy()
    in_test = out["cutoff"] == out["cutoff"].max()
    rng = np.random.default_rng(seed)
    out.loc[in_test, "churned"] = rng.random(in_test.sum()) < 0.5
    out.loc[in_test, "csat_mean_90d"] = rng.uniform(1, 10, in_test.sum())
    out.loc[in_test, "plan"] = "never-seen-plan"
    out.loc[in_test, "days_since_last_login"] = SENTINEL
    return out


def test_no_test_cutoff_row_reaches_any_fit(
    model_table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spy on every LightGBM dataset, logistic-regression and isotonic fit: no test-cutoff row
    (marked by a sentinel value) is in any of them; and scrambling the test rows changes nothing
    that was learned (tuning, early stopping, calibrator, the refit booster, both baselines)."""
    params = dataclasses.replace(FAST, tuning=TuningParams(trials=2))
    seen: list[tuple[str, np.ndarray]] = []
    dataset_init = lgb.Dataset.__init__
    pipeline_fit = Pipeline.fit
    iso_fit = IsotonicRegression.fit

    def spy_dataset(self, data, *args, **kwargs):
        if isinstance(data, pd.DataFrame) and "days_since_last_login" in data:
            seen.append(("lightgbm", data["days_since_last_login"].to_numpy(dtype=float)))
        return dataset_init(self, data, *args, **kwargs)

    def spy_pipeline(self, x, *args, **kwargs):
        if isinstance(x, pd.DataFrame) and "days_since_last_login" in x:
            seen.append(("logreg", x["days_since_last_login"].to_numpy(dtype=float)))
        return pipeline_fit(self, x, *args, **kwargs)

    def spy_iso(self, x, *args, **kwargs):
        seen.append(("isotonic", np.abs(np.asarray(x, dtype=float))))
        return iso_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(lgb.Dataset, "__init__", spy_dataset)
    monkeypatch.setattr(Pipeline, "fit", spy_pipeline)
    monkeypatch.setattr(IsotonicRegression, "fit", spy_iso)
    poisoned = _fit(_poisoned(model_table, 5), params)
    kinds = {kind for kind, _ in seen}
    assert {"lightgbm", "logreg", "isotonic"} <= kinds
    leaked = [kind for kind, values in seen if np.nanmax(values, initial=0) >= SENTINEL]
    assert leaked == []
    assert poisoned.rule.feature == "days_since_last_login"  # the isotonic spy saw the sentinel

    clean = _fit(model_table, params)
    assert clean.model.info["tuning"] == poisoned.model.info["tuning"]
    assert clean.model.info["best_iteration"] == poisoned.model.info["best_iteration"]
    assert clean.model.calibrator.to_dict() == poisoned.model.calibrator.to_dict()
    assert clean.model.booster.model_to_string() == poisoned.model.booster.model_to_string()
    valid = clean.split.valid
    np.testing.assert_array_equal(clean.model.predict(valid), poisoned.model.predict(valid))
    np.testing.assert_array_equal(
        clean.logreg.named_steps["lr"].coef_, poisoned.logreg.named_steps["lr"].coef_
    )
    np.testing.assert_array_equal(clean.rule.predict(valid), poisoned.rule.predict(valid))
    test_cutoff = pd.Timestamp(model_table["cutoff"].max()).isoformat()
    for name, cutoffs in clean.cutoffs_seen.items():
        assert test_cutoff not in cutoffs["trained_on_cutoffs"], name
        assert test_cutoff not in cutoffs["selected_on_cutoffs"], name
