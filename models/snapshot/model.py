"""The snapshot model: LightGBM and a logistic scorecard blended in logit space, calibrated;
its fit on training rows, and the MLflow pyfunc that scores the raw table."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models import tracking
from models.model import FeatureSpec, fit_feature_spec, to_model_frame
from models.settings import DataParams, LeakageParams
from models.snapshot.schema import SnapshotDataError, SnapshotSchema
from models.training.baselines import fit_logreg, predict_logreg
from models.training.calibration import Calibrator, choose_calibrator, logit
from models.training.leakage import screen
from models.training.split import LABEL, Split
from models.training.train import lgb_params

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ logistic scorecard


@dataclass
class Scorecard:
    """The logistic-regression baseline as plain numbers: logit = bias + sum of contributions.

    Extracted from `models.training.baselines.fit_logreg`'s pipeline so that it is stored as JSON
    and gives exact per-feature contributions (centred on the training mean, like SHAP values).
    """

    numeric: dict[str, dict[str, float]]  # median, mean, scale, coef (+ indicator's)
    categorical: dict[str, dict[str, Any]]  # level -> coef, infrequent, default
    bias: float

    @classmethod
    def from_pipeline(cls, model: Pipeline, spec: FeatureSpec, train: pd.DataFrame) -> Scorecard:
        pre = model.named_steps["pre"]
        coef = model.named_steps["lr"].coef_[0]
        intercept = float(model.named_steps["lr"].intercept_[0])
        names = list(pre.get_feature_names_out())
        weights = dict(zip(names, coef, strict=True))
        numeric: dict[str, dict[str, float]] = {}
        if spec.numeric:
            imputer, scaler = (
                pre.named_transformers_["num"].steps[0][1],
                pre.named_transformers_["num"].steps[1][1],
            )
            ind_cols = (
                [spec.numeric[i] for i in imputer.indicator_.features_]
                if imputer.indicator_ is not None
                else []
            )
            scaled_names = list(spec.numeric) + [f"missingindicator_{c}" for c in ind_cols]
            for j, c in enumerate(spec.numeric):
                numeric[c] = {
                    "median": float(imputer.statistics_[j]),
                    "mean": float(scaler.mean_[j]),
                    "scale": float(scaler.scale_[j]),
                    "coef": float(weights[f"num__{c}"]),
                }
            for c in ind_cols:
                j = scaled_names.index(f"missingindicator_{c}")
                numeric[c].update(
                    {
                        "ind_mean": float(scaler.mean_[j]),
                        "ind_scale": float(scaler.scale_[j]),
                        "ind_coef": float(weights[f"num__missingindicator_{c}"]),
                    }
                )
        categorical: dict[str, dict[str, Any]] = {}
        if spec.categorical:
            enc = pre.named_transformers_["cat"]
            infrequent = getattr(enc, "infrequent_categories_", [None] * len(spec.categorical))
            for j, c in enumerate(spec.categorical):
                levels = {}
                rare = set(infrequent[j]) if infrequent[j] is not None else set()
                for level in enc.categories_[j]:
                    if level not in rare:
                        levels[str(level)] = float(weights[f"cat__{c}_{level}"])
                rare_coef = float(weights.get(f"cat__{c}_infrequent_sklearn", 0.0))
                categorical[c] = {
                    "levels": levels,
                    "rare": sorted(map(str, rare)),
                    "rare_coef": rare_coef,
                }
        card = cls(numeric, categorical, 0.0)
        raw = card._raw_terms(train)
        card.bias = intercept + float(raw.mean(axis=0).sum())
        for j, c in enumerate([*card.numeric, *card.categorical]):
            card._center(c, float(raw[:, j].mean()))
        return card

    def _center(self, column: str, mean: float) -> None:
        part = self.numeric.get(column) or self.categorical[column]
        part["center"] = mean

    def _raw_terms(self, frame: pd.DataFrame) -> np.ndarray:
        cols = []
        for c, p in self.numeric.items():
            x = pd.to_numeric(frame[c].astype("float64"), errors="coerce").to_numpy()
            term = p["coef"] * (np.where(np.isnan(x), p["median"], x) - p["mean"]) / p["scale"]
            if "ind_coef" in p:
                term = term + p["ind_coef"] * (np.isnan(x) - p["ind_mean"]) / p["ind_scale"]
            cols.append(term)
        for c, p in self.categorical.items():
            s = frame[c]
            values = s.astype("object").where(s.notna(), "(missing)").astype(str)
            default = p["rare_coef"] if p["rare"] else 0.0  # unseen → infrequent, else 0
            cols.append(values.map(p["levels"]).fillna(default).to_numpy(dtype=float))
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))

    def contributions(self, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
        """(n, len(features) + 1): centred contribution per feature, bias last."""
        raw = self._raw_terms(frame)
        order = [*self.numeric, *self.categorical]
        out = np.zeros((len(frame), len(features) + 1))
        for j, c in enumerate(order):
            part = self.numeric.get(c) or self.categorical[c]
            out[:, features.index(c)] = raw[:, j] - part.get("center", 0.0)
        out[:, -1] = self.bias
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "bias": self.bias}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scorecard:
        return cls(data["numeric"], data["categorical"], float(data["bias"]))


# ------------------------------------------------------------------ model


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class SnapshotModel:
    """Booster + logistic scorecard blended in logit space, then calibrated."""

    spec: FeatureSpec
    booster: lgb.Booster
    scorecard: Scorecard
    weight: float  # of LightGBM in the logit blend
    calibrator: Calibrator
    leakage: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    def model_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        return to_model_frame(features, self.spec)[self.booster.feature_name()]

    def logit(self, features: pd.DataFrame) -> np.ndarray:
        x = self.model_frame(features)
        z = self.weight * self.booster.predict(x, raw_score=True) if self.weight > 0 else 0.0
        if self.weight < 1:
            z = z + (1 - self.weight) * self.linear_logit(features)
        return np.asarray(z, dtype=float) + np.zeros(len(x))

    def linear_logit(self, features: pd.DataFrame) -> np.ndarray:
        """The logistic-regression part's log-odds."""
        return self.scorecard.contributions(features, self.booster.feature_name()).sum(1)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability."""
        return self.calibrator.predict(_sigmoid(self.logit(features)))

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """(n, k+1) log-odds contributions of the blend (exact TreeSHAP and linear), bias last."""
        from models.explain import treeshap

        x = self.model_frame(features)
        out = np.zeros((len(x), x.shape[1] + 1))
        if self.weight > 0:
            out += self.weight * treeshap.contributions(self.booster, x)
        if self.weight < 1:
            out += (1 - self.weight) * self.scorecard.contributions(features, list(x.columns))
        return out

    def save(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        booster = directory / "booster.txt"
        meta = directory / "snapshot_model.json"
        self.booster.save_model(str(booster))
        meta.write_text(
            json.dumps(
                {
                    "spec": self.spec.to_dict(),
                    "scorecard": self.scorecard.to_dict(),
                    "weight": self.weight,
                    "calibrator": self.calibrator.to_dict(),
                    "leakage": self.leakage,
                    "info": self.info,
                },
                indent=2,
                sort_keys=True,
                default=str,
            ),
            "utf-8",
        )
        return {"booster": booster, "meta": meta}

    @classmethod
    def load(cls, booster: Path | str, meta: Path | str) -> SnapshotModel:
        data = json.loads(Path(meta).read_text(encoding="utf-8"))
        return cls(
            spec=FeatureSpec.from_dict(data["spec"]),
            booster=lgb.Booster(model_file=str(booster)),
            scorecard=Scorecard.from_dict(data["scorecard"]),
            weight=float(data["weight"]),
            calibrator=Calibrator.from_dict(data["calibrator"]),
            leakage=data.get("leakage", {}),
            info=data.get("info", {}),
        )


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def _candidate_oof(
    x: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    params: dict[str, Any],
    s: DataParams,
) -> tuple[np.ndarray, int]:
    """One candidate's out-of-fold raw scores at ONE round count shared by every inner fold.

    Each inner fold trains with early stopping on its validation fold and records the validation
    log loss of every round; the shared round count minimises the folds' mean curve (as
    `lgb.cv` does), and every fold is scored at it. Scoring each fold at its own best round would
    let that fold's labels pick its predictions (an optimistic out-of-fold AUC that favours fast,
    large candidates on noisy tables); one shared count is a single choice across all folds.
    """
    curves, boosters = [], []
    for a, b in folds:
        record: dict[str, Any] = {}
        dtrain = lgb.Dataset(x.iloc[a], label=y[a], categorical_feature="auto")
        dvalid = lgb.Dataset(x.iloc[b], label=y[b], reference=dtrain)
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=s.num_boost_round,
            valid_sets=[dvalid],
            valid_names=["valid"],
            # keep every round: a finished booster is cut at its own best round, and the
            # shared round count may lie beyond it
            keep_training_booster=True,
            callbacks=[
                lgb.early_stopping(s.early_stopping_rounds, verbose=False),
                lgb.record_evaluation(record),
            ],
        )
        curves.append(np.asarray(record["valid"]["binary_logloss"], dtype=float))
        boosters.append(booster)
    n = min(len(c) for c in curves)
    rounds = int(np.argmin(np.mean([c[:n] for c in curves], axis=0))) + 1
    oof = np.zeros(len(y))
    for booster, (_, b) in zip(boosters, folds, strict=True):
        oof[b] = booster.predict(x.iloc[b], num_iteration=rounds, raw_score=True)
    return oof, rounds


def _inner_oof(
    x: pd.DataFrame,
    frame: pd.DataFrame,
    y: np.ndarray,
    spec: FeatureSpec,
    s: DataParams,
    train_params: Any,
) -> tuple[dict[str, np.ndarray], dict[str, int], np.ndarray]:
    """Out-of-fold raw scores of every LightGBM candidate and the logistic model, and each
    candidate's refit rounds (its shared inner round count x `refit_rounds_factor`)."""
    k = max(2, min(s.inner_folds, int(y.sum()), int(len(y) - y.sum())))
    folds = list(StratifiedKFold(k, shuffle=True, random_state=s.seed + 1).split(x, y))
    oof: dict[str, np.ndarray] = {}
    rounds: dict[str, int] = {}
    for name, overrides in s.candidates.items():
        params = lgb_params(train_params, {**overrides, "num_threads": s.num_threads})
        oof[name], best = _candidate_oof(x, y, folds, params, s)
        rounds[name] = max(1, math.ceil(best * s.refit_rounds_factor))
    lr_oof = np.zeros(len(y))
    for a, b in folds:
        part = Split(frame.iloc[a], frame.iloc[:0], frame.iloc[:0], (), (), ())
        model = fit_logreg(part, spec, s.logreg_c, s.logreg_max_levels)
        lr_oof[b] = logit(predict_logreg(model, frame.iloc[b], spec))
    return oof, rounds, lr_oof


def choose_blend(
    y: np.ndarray,
    oof: dict[str, np.ndarray],
    lr_oof: np.ndarray,
    weights: tuple[float, ...],
) -> tuple[str, float, dict[tuple[str, float], float]]:
    """The (candidate, LightGBM weight) pair with the best out-of-fold AUC of the logit blend
    `w * candidate + (1 - w) * logistic`, every pair judged on the same inner folds (ties: the
    earlier candidate, then the larger weight). Returns it and every pair's AUC."""
    scores = {
        (name, w): _auc(y, w * z + (1 - w) * lr_oof) for name, z in oof.items() for w in weights
    }
    order = {name: i for i, name in enumerate(oof)}
    name, w = max(scores, key=lambda k: (scores[k], -order[k[0]], k[1]))
    return name, w, scores


def fit_snapshot_model(
    features: pd.DataFrame,
    y: np.ndarray,
    settings: DataParams,
    train_params: Any,
    leakage: LeakageParams,
    source: str = "training rows",
) -> SnapshotModel:
    """Fit everything on these training rows only (guard, levels, model choice, calibration)."""
    y = np.asarray(y, dtype=int)
    guard = screen(features, y, list(features.columns), leakage, source)
    kept = [c for c in features.columns if c not in guard.excluded]
    if not kept:
        raise SnapshotDataError(
            f"{source}: every feature was flagged by the leakage guard "
            f"({[e.feature for e in guard.suspects]}); check the target or use --allow-leaky."
        )
    frame = features[kept].assign(**{LABEL: y})
    spec = fit_feature_spec(frame, (), settings.min_level_count, source)
    x = to_model_frame(frame, spec)
    oof, rounds, lr_oof = _inner_oof(x, frame, y, spec, settings, train_params)
    aucs = {name: _auc(y, p) for name, p in oof.items()}
    chosen, weight, blends = choose_blend(y, oof, lr_oof, settings.blend_weights)
    blend = {w: blends[(chosen, w)] for w in settings.blend_weights}
    oof_p = _sigmoid(weight * oof[chosen] + (1 - weight) * lr_oof)
    calibrator, losses = choose_calibrator(
        oof_p, y, settings.calibration_methods, settings.calibration_folds, settings.seed
    )
    params = lgb_params(
        train_params, {**settings.candidates[chosen], "num_threads": settings.num_threads}
    )
    booster = lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=rounds[chosen])
    logreg = fit_logreg(
        Split(frame, frame.iloc[:0], frame.iloc[:0], (), (), ()),
        spec,
        settings.logreg_c,
        settings.logreg_max_levels,
    )
    scorecard = Scorecard.from_pipeline(logreg, spec, frame)
    info = {
        "candidate": chosen,
        "inner_oof_auc": {
            **{f"lgb_{k}": round(v, 5) for k, v in aucs.items()},
            "logreg": round(_auc(y, lr_oof), 5),
        },
        "blend_weight_lgb": weight,
        "blend_oof_auc": round(blend[weight], 5),
        "num_boost_round": rounds[chosen],
        "lgb_params": params,
        "calibration_method": calibrator.method,
        "calibration_cv_log_loss": losses,
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }
    log.info(
        "%s: LightGBM %r (%d rounds), LightGBM weight %.1f in the blend with logistic regression"
        " (inner out-of-fold AUC %.4f), calibration %s",
        source,
        chosen,
        rounds[chosen],
        weight,
        blend[weight],
        calibrator.method,
    )
    return SnapshotModel(spec, booster, scorecard, weight, calibrator, guard.to_dict(), info)


# ------------------------------------------------------------------ MLflow


class SnapshotPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: the raw table (source columns) in, calibrated churn probability out.

    Schema, booster, scorecard and calibrator are JSON/text artifacts; nothing learned is
    pickled (the wrapper itself holds no state until `load_context`).
    """

    def load_context(self, context: Any) -> None:
        data = json.loads(Path(context.artifacts["schema"]).read_text(encoding="utf-8"))
        self.schema = SnapshotSchema.from_dict(data)
        self.model = SnapshotModel.load(context.artifacts["booster"], context.artifacts["meta"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ANN201
        features = self.schema.transform(model_input)
        return pd.Series(
            self.model.predict(features), index=model_input.index, name="churn_probability"
        )


def _signature(frame: pd.DataFrame, target: str, probabilities: np.ndarray) -> Any:
    """Input signature of the raw table (every column but the target), or None if MLflow fails."""
    from mlflow.models import infer_signature

    inputs = frame.drop(columns=[target])
    try:
        return infer_signature(inputs, pd.Series(probabilities, name="churn_probability"))
    except Exception as exc:  # noqa: BLE001 - a signature is documentation, not a requirement
        log.warning("MLflow model signature not inferred (%s); the model is saved without", exc)
        return None


def save_pyfunc(
    model_dir: Path,
    model: SnapshotModel,
    schema: SnapshotSchema,
    frame: pd.DataFrame,
    probabilities: np.ndarray,
) -> None:
    """Save the MLflow pyfunc model directory: raw table in, calibrated probability out."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = model.save(Path(tmp))
        schema_path = Path(tmp) / "schema.json"
        schema_path.write_text(json.dumps(schema.to_dict(), indent=2, default=str), "utf-8")
        mlflow.pyfunc.save_model(
            path=str(model_dir),
            python_model=SnapshotPyfunc(),
            artifacts={
                "booster": str(parts["booster"]),
                "meta": str(parts["meta"]),
                "schema": str(schema_path),
            },
            pip_requirements=tracking.pip_requirements(),
            signature=_signature(frame, schema.target, probabilities),
        )
