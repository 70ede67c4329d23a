"""LightGBM churn model: features fixed on TRAIN, early stopping, the LightGBM settings and
calibration chosen on VALID, then (train.refit, default) the registered model refit on TRAIN +
VALID with the choices made on VALID.

Settings (`choose_candidate`): the train section's own ("base"), each of `train.candidates`
(a few keys changed, e.g. fewer leaves with more rows per leaf) and, with `train.tuning.trials`,
Optuna's best ("tuned") are each early-stopped on the validation cutoff; the lowest validation
log loss is kept. The test cutoff takes no part in the choice.

Refit rule (`refit_model`): the choices made on the validation cutoff are kept (the tuned
LightGBM parameters, the calibration method AND its fitted map) and the booster is trained again
on the training + validation rows, without early stopping, for
`min(num_boost_round, round(best_iteration * rows(train + valid) / rows(train)))` rounds: the
same number of rounds per row as early stopping found, as production retrains on all labelled
history. The feature spec (kept columns, categorical levels, `train_end`) is refit on the same
rows. The calibrator is the one fitted on the validation predictions of the train-only model:
those are out-of-time predictions of a model that never saw the validation rows, the way the
refit model's predictions of the next cutoff are; a cutoff-grouped K-fold over train + valid
would calibrate on models trained on later cutoffs than the rows they predict. The test cutoff
reaches no fit, selection or calibration (`refit_rows` refuses it).

Categorical features are handled natively by LightGBM (pandas `category` dtype). Their levels are
fixed from the training rows only: levels seen fewer than `min_level_count` times are folded into
"__other__" (so a high-cardinality column cannot memorise rare levels), levels never seen in
training become NaN. LightGBM's own guards (`min_data_per_group`, `cat_smooth`, `cat_l2`) add
regularisation on top. Class imbalance is left to the log loss (no `is_unbalance`): churn rates of
a few percent are well within what gradient boosting handles, and unweighted training keeps raw
scores close to probabilities. If `scale_pos_weight` is set, the post-hoc calibrator repairs them.
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.model import ChurnModel, fit_feature_spec, to_model_frame
from models.training.calibration import choose_calibrator
from models.training.split import LABEL, Split, TrainingDataError

log = logging.getLogger(__name__)


def lgb_params(p: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """LightGBM parameters from TrainParams (+ tuned overrides); deterministic for a seed."""
    params: dict[str, Any] = {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "max_depth": p.max_depth,
        "min_data_in_leaf": p.min_data_in_leaf,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": p.bagging_freq,
        "lambda_l2": p.lambda_l2,
        "min_data_per_group": p.min_data_per_group,
        "cat_smooth": p.cat_smooth,
        "cat_l2": p.cat_l2,
        "scale_pos_weight": p.scale_pos_weight,
        "seed": p.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": p.num_threads,
        "verbosity": -1,
    }
    params.update(overrides or {})
    return params


def fit_booster(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
) -> lgb.Booster:
    """Train with early stopping on the validation rows; the booster keeps its best iteration."""
    dtrain = lgb.Dataset(x_train, label=y_train, categorical_feature="auto", free_raw_data=True)
    dvalid = lgb.Dataset(x_valid, label=y_valid, reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=num_boost_round,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    return booster


def tune(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    p: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Seeded Optuna TPE search minimising validation log loss; best overrides and a summary."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        overrides = {
            "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 1000, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
            "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 100.0, log=True),
            "min_data_per_group": trial.suggest_int("min_data_per_group", 20, 500, log=True),
        }
        booster = fit_booster(
            x_train,
            y_train,
            x_valid,
            y_valid,
            lgb_params(p, overrides),
            p.num_boost_round,
            p.early_stopping_rounds,
        )
        return float(booster.best_score["valid"]["binary_logloss"])

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=p.seed)
    )
    study.optimize(objective, n_trials=p.tuning.trials, timeout=p.tuning.timeout_s)
    summary = {
        "trials": len(study.trials),
        "best_valid_log_loss": float(study.best_value),
        "best_params": dict(study.best_params),
    }
    log.info("tuning: %d trials, best valid log loss %.5f", len(study.trials), study.best_value)
    return dict(study.best_params), summary


def choose_candidate(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    p: Any,
    candidates: dict[str, dict[str, Any]],
) -> tuple[str, lgb.Booster, dict[str, dict[str, Any]]]:
    """Fit every candidate (overrides of the train settings) early-stopped on the validation
    rows; keep the lowest validation log loss (ties: the first). Name, booster, what each did."""
    best: tuple[float, str, lgb.Booster] | None = None
    tried: dict[str, dict[str, Any]] = {}
    for name, overrides in candidates.items():
        booster = fit_booster(
            x_train,
            y_train,
            x_valid,
            y_valid,
            lgb_params(p, overrides),
            p.num_boost_round,
            p.early_stopping_rounds,
        )
        loss = float(booster.best_score["valid"]["binary_logloss"])
        tried[name] = {
            "overrides": dict(overrides),
            "valid_log_loss": loss,
            "best_iteration": int(booster.best_iteration),
        }
        if best is None or loss < best[0]:
            best = (loss, name, booster)
    assert best is not None, "no LightGBM candidate"
    if len(tried) > 1:
        log.info(
            "LightGBM candidates (valid log loss): %s; kept %s",
            {k: round(v["valid_log_loss"], 5) for k, v in tried.items()},
            best[1],
        )
    return best[1], best[2], tried


def cutoff_list(cutoffs: Any) -> list[str]:
    """Cutoffs as sorted ISO strings (reports: which cutoffs a model saw)."""
    return sorted({pd.Timestamp(c).isoformat() for c in cutoffs})


def refit_rows(split: Split) -> pd.DataFrame:
    """The training + validation rows the refit models learn from (with the cutoffs between them
    whose label windows end by the test cutoff); never a test-cutoff row."""
    parts = [split.train, split.gap, split.valid] if len(split.gap) else [split.train, split.valid]
    rows = pd.concat(parts, ignore_index=True)
    leaked = rows["cutoff"].isin(split.test_cutoffs)
    if leaked.any():  # cannot happen with split_by_cutoff; a guard for hand-made splits
        raise TrainingDataError(
            f"refit: {int(leaked.sum())} rows of the test cutoffs {cutoff_list(split.test_cutoffs)}"
            " are in the training or validation part; the test cutoff must reach no fit."
        )
    return rows


def refit_rounds(best_iteration: int, train_rows: int, all_rows: int, cap: int) -> int:
    """Rounds of the refit: best_iteration scaled by the rows, capped by num_boost_round."""
    scaled = round(max(1, best_iteration) * all_rows / max(1, train_rows))
    return int(min(cap, max(1, scaled)))


def refit_model(
    selected: ChurnModel, split: Split, p: Any, source: str = "model table"
) -> ChurnModel:
    """The selected model retrained on TRAIN + VALID with the choices made on VALID (see above)."""
    rows = refit_rows(split)
    spec = fit_feature_spec(rows, p.exclude_features, p.min_level_count, source)
    x_rows = to_model_frame(rows, spec)
    best = int(selected.info["best_iteration"])
    rounds = refit_rounds(best, len(split.train), len(rows), p.num_boost_round)
    params = selected.info["lgb_params"]
    dtrain = lgb.Dataset(
        x_rows, label=rows[LABEL].to_numpy(), categorical_feature="auto", free_raw_data=True
    )
    booster = lgb.train(params, dtrain, num_boost_round=rounds)
    log.info(
        "refit: LightGBM on %d train + valid rows for %d rounds (best iteration %d on %d train "
        "rows, scaled by rows, cap %d); calibration %s as fitted on the validation cutoff",
        len(rows),
        rounds,
        best,
        len(split.train),
        p.num_boost_round,
        selected.calibrator.method,
    )
    info = {
        **selected.info,
        "refit": {
            "rounds": rounds,
            "rule": "min(num_boost_round, round(best_iteration * rows / train_rows))",
            "rows": int(len(rows)),
            "train_rows": int(len(split.train)),
        },
        "trained_on_cutoffs": cutoff_list(rows["cutoff"]),
        "booster_rows": int(len(rows)),
    }
    return ChurnModel(booster=booster, spec=spec, calibrator=selected.calibrator, info=info)


def train_model(split: Split, p: Any, source: str = "model table") -> ChurnModel:
    """Fit the spec on TRAIN, (tune and) fit LightGBM early-stopped on VALID, calibrate on VALID."""
    spec = fit_feature_spec(split.train, p.exclude_features, p.min_level_count, source)
    x_train, x_valid = to_model_frame(split.train, spec), to_model_frame(split.valid, spec)
    y_train = split.train[LABEL].to_numpy()
    y_valid = split.valid[LABEL].to_numpy()
    candidates: dict[str, dict[str, Any]] = {"base": {}, **p.candidates}
    tuning: dict[str, Any] = {"trials": 0}
    if p.tuning.trials > 0:
        candidates["tuned"], tuning = tune(x_train, y_train, x_valid, y_valid, p)
    chosen, booster, tried = choose_candidate(x_train, y_train, x_valid, y_valid, p, candidates)
    params = lgb_params(p, candidates[chosen])
    p_valid_raw = booster.predict(x_valid, num_iteration=booster.best_iteration)
    calibrator, losses = choose_calibrator(
        p_valid_raw, y_valid, p.calibration.methods, p.calibration.folds, p.seed
    )
    log.info(
        "LightGBM: best iteration %d of %d; calibration %s (cross-fitted valid log loss %s)",
        booster.best_iteration,
        p.num_boost_round,
        calibrator.method,
        {k: round(v, 5) for k, v in losses.items()},
    )
    info = {
        "best_iteration": int(booster.best_iteration),
        "lgb_params": params,
        "candidate": chosen,
        "candidates": tried,
        "tuning": tuning,
        "calibration_method": calibrator.method,
        "calibration_cv_log_loss": losses,
        "split": split.describe(),
        "refit": None,
        "trained_on_cutoffs": cutoff_list(split.train_cutoffs),
        "selected_on_cutoffs": cutoff_list(split.valid_cutoffs),
        "calibrated_on_cutoffs": cutoff_list(split.valid_cutoffs),
        "booster_rows": int(len(split.train)),
    }
    return ChurnModel(booster=booster, spec=spec, calibrator=calibrator, info=info)
