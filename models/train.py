"""LightGBM churn model: features fixed on TRAIN, early stopping and calibration on VALID.

Categorical features are handled natively by LightGBM (pandas `category` dtype). Their levels are
fixed from the training rows only: levels seen fewer than `min_level_count` times are folded into
"__other__" (so a high-cardinality column cannot memorise rare levels), levels never seen in
training become NaN. LightGBM's own guards (`min_data_per_group`, `cat_smooth`, `cat_l2`) add
regularisation on top. Class imbalance is left to the log loss (no `is_unbalance`): churn rates of
a few percent are well within what gradient boosting handles, and unweighted training keeps raw
scores close to probabilities. If `scale_pos_weight` is set, the post-hoc calibrator repairs them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.calibration import Calibrator, choose_calibrator
from models.split import LABEL, NON_FEATURE_COLUMNS, Split, TrainingDataError

log = logging.getLogger(__name__)

OTHER = "__other__"
BOOSTER_FILE = "booster.txt"
META_FILE = "model_meta.json"


@dataclass
class FeatureSpec:
    """Which columns the model uses, learned from the training rows only."""

    numeric: list[str] = field(default_factory=list)
    # column -> kept levels (plus OTHER when rare levels were folded) / the folded rare levels
    categorical: dict[str, list[str]] = field(default_factory=dict)
    rare_levels: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Model columns in a fixed order: numeric first, then categorical."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric,
            # a list, not a mapping: column order is part of the model (JSON keys get sorted)
            "categorical": [{"name": k, "levels": v} for k, v in self.categorical.items()],
            "rare_levels": self.rare_levels,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(
            numeric=list(data["numeric"]),
            categorical={c["name"]: list(c["levels"]) for c in data["categorical"]},
            rare_levels={k: list(v) for k, v in data.get("rare_levels", {}).items()},
            dropped=dict(data.get("dropped", {})),
        )


def _is_categorical(series: pd.Series) -> bool:
    return bool(
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or pd.api.types.is_object_dtype(series.dtype)
    )


def fit_feature_spec(
    train: pd.DataFrame,
    exclude: tuple[str, ...] = (),
    min_level_count: int = 50,
    source: str = "model table",
) -> FeatureSpec:
    """Decide the model's columns from TRAIN rows: drop constant/unusable ones (with a warning)."""
    spec = FeatureSpec()
    candidates = [c for c in train.columns if c not in NON_FEATURE_COLUMNS and c not in exclude]
    if not candidates:
        raise TrainingDataError(
            f"{source}: no feature columns besides {sorted(NON_FEATURE_COLUMNS)}; "
            "re-run `churn featurize` or check train.exclude_features."
        )
    for col in candidates:
        s = train[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            spec.dropped[col] = "timestamp column (not a feature)"
        elif s.nunique(dropna=False) <= 1:
            spec.dropped[col] = f"constant in training rows (value {s.iloc[0]!r})"
        elif _is_categorical(s):
            counts = s.dropna().astype(str).value_counts()
            if len(counts) > 0.5 * len(s) and len(counts) > 100:
                spec.dropped[col] = f"identifier-like ({len(counts)} distinct values)"
                continue
            kept = sorted(counts[counts >= min_level_count].index.tolist())
            rare = sorted(counts[counts < min_level_count].index.tolist())
            if not kept and len(rare) <= 1:
                spec.dropped[col] = "no level frequent enough"
                continue
            spec.categorical[col] = kept + ([OTHER] if rare else [])
            if rare:
                spec.rare_levels[col] = rare
        elif pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            spec.numeric.append(col)
        else:
            spec.dropped[col] = f"unsupported dtype {s.dtype}"
    for col, reason in spec.dropped.items():
        log.warning("%s: feature column %r dropped: %s", source, col, reason)
    if not spec.features:
        raise TrainingDataError(
            f"{source}: every feature column was dropped ({spec.dropped}); the model has nothing "
            "to learn from. Check the featurize stage output."
        )
    return spec


def to_model_frame(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Model input: numerics as float64, categoricals on TRAIN levels (rare→OTHER, unseen→NaN)."""
    missing = [c for c in spec.features if c not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"input is missing model feature column(s) {missing}; score with the same featurize "
            "code and params the model was trained with."
        )
    out: dict[str, Any] = {}
    for col in spec.numeric:
        out[col] = pd.to_numeric(frame[col].astype("float64"), errors="coerce")
    for col, levels in spec.categorical.items():
        values = frame[col].astype("object").where(frame[col].notna(), None)
        values = values.map(lambda v: None if v is None else str(v))
        rare = spec.rare_levels.get(col)
        if rare:
            values = values.where(~values.isin(rare), OTHER)
        values = values.where(values.isin(levels), None)  # unseen in TRAIN → missing
        out[col] = pd.Categorical(values, categories=levels)
    return pd.DataFrame(out, index=frame.index)


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


@dataclass
class ChurnModel:
    """A trained booster, the feature spec it expects and the calibrator on its raw output."""

    booster: lgb.Booster
    spec: FeatureSpec
    calibrator: Calibrator
    info: dict[str, Any] = field(default_factory=dict)

    def model_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The booster's input, columns in the booster's order (LightGBM reads by position)."""
        return to_model_frame(frame, self.spec)[self.booster.feature_name()]

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated LightGBM probability."""
        return self.booster.predict(self.model_frame(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability."""
        return self.calibrator.predict(self.predict_raw(frame))

    def save(self, directory: Path) -> dict[str, Path]:
        """Write booster text and JSON metadata into `directory`; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        booster_path = directory / BOOSTER_FILE
        meta_path = directory / META_FILE
        self.booster.save_model(str(booster_path), num_iteration=self.booster.best_iteration)
        meta = {
            "spec": self.spec.to_dict(),
            "calibrator": self.calibrator.to_dict(),
            "info": self.info,
        }
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), "utf-8")
        return {"booster": booster_path, "meta": meta_path}

    @classmethod
    def load(cls, booster_path: Path | str, meta_path: Path | str) -> ChurnModel:
        meta = json.loads(Path(meta_path).read_text(encoding="utf-8"))
        return cls(
            booster=lgb.Booster(model_file=str(booster_path)),
            spec=FeatureSpec.from_dict(meta["spec"]),
            calibrator=Calibrator.from_dict(meta["calibrator"]),
            info=meta.get("info", {}),
        )


def train_model(split: Split, p: Any, source: str = "model table") -> ChurnModel:
    """Fit the spec on TRAIN, (tune and) fit LightGBM early-stopped on VALID, calibrate on VALID."""
    spec = fit_feature_spec(split.train, p.exclude_features, p.min_level_count, source)
    x_train, x_valid = to_model_frame(split.train, spec), to_model_frame(split.valid, spec)
    y_train = split.train[LABEL].to_numpy()
    y_valid = split.valid[LABEL].to_numpy()
    overrides: dict[str, Any] = {}
    tuning: dict[str, Any] = {"trials": 0}
    if p.tuning.trials > 0:
        overrides, tuning = tune(x_train, y_train, x_valid, y_valid, p)
    params = lgb_params(p, overrides)
    booster = fit_booster(
        x_train, y_train, x_valid, y_valid, params, p.num_boost_round, p.early_stopping_rounds
    )
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
        "tuning": tuning,
        "calibration_method": calibrator.method,
        "calibration_cv_log_loss": losses,
        "split": split.describe(),
    }
    return ChurnModel(booster=booster, spec=spec, calibrator=calibrator, info=info)
