"""Everything `churn train` learns from the model table: the out-of-time split, the leakage
guard, the LightGBM model and both baselines, and their validation and test predictions."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
from sklearn.metrics import roc_auc_score

from models.model import ChurnModel
from models.settings import LeakageParams, SplitParams, TrainParams
from models.training.baselines import (
    SingleFeatureRule,
    fit_logreg,
    fit_single_feature_rule,
    predict_logreg,
)
from models.training.leakage import LeakageReport, screen_model_table
from models.training.split import (
    LABEL,
    NON_FEATURE_COLUMNS,
    Split,
    check_trainable,
    split_by_cutoff,
)
from models.training.train import train_model


@dataclass
class Fitted:
    """The split, the model, the baselines, the leakage report and the predictions per part."""

    split: Split
    model: ChurnModel
    logreg: object  # scikit-learn Pipeline
    rule: SingleFeatureRule
    leakage: LeakageReport
    predictions: dict[str, pd.DataFrame]  # "valid", "test": p_model, p_model_raw, p_logreg, p_rule


def calibration_folds_needed(train: TrainParams) -> int:
    """Rows of each class the validation cutoffs need for the cross-fitted calibrator (0: none)."""
    fitted_methods = [m for m in train.calibration.methods if m != "none"]
    return train.calibration.folds if fitted_methods else 0


def fit_all(
    table: pd.DataFrame,
    split_params: SplitParams,
    train: TrainParams,
    leakage: LeakageParams,
    source: str = "model table",
) -> Fitted:
    """Split out of time, screen for leaks, train the model and both baselines; predict."""
    sp = split_params
    split = split_by_cutoff(table, sp.valid_cutoffs, sp.test_cutoffs, sp.min_train_cutoffs, source)
    check_trainable(
        split,
        train.min_positives,
        source,
        min_negatives=train.min_negatives,
        min_eval_rows_per_class=train.min_eval_rows_per_class,
        calibration_folds=calibration_folds_needed(train),
    )
    skip = {*NON_FEATURE_COLUMNS, *train.exclude_features}
    guard = screen_model_table(split.train, LABEL, skip, leakage)
    train = replace(train, exclude_features=(*train.exclude_features, *guard.excluded))
    model = train_model(split, train, source)
    logreg = fit_logreg(
        split, model.spec, train.baselines.logreg_c, train.baselines.logreg_max_levels
    )
    rule = fit_single_feature_rule(split, model.spec)
    predictions = {}
    for part in ("valid", "test"):
        frame = getattr(split, part)
        predictions[part] = pd.DataFrame(
            {
                "customer_id": frame["customer_id"].astype(str).to_numpy(),
                "cutoff": frame["cutoff"].to_numpy(),
                LABEL: frame[LABEL].astype("int8").to_numpy(),
                "p_model": model.predict(frame),
                "p_model_raw": model.predict_raw(frame),
                "p_logreg": predict_logreg(logreg, frame, model.spec),
                "p_rule": rule.predict(frame),
            }
        )
    guard.check_result(
        {
            f"{part} cutoffs": float(
                roc_auc_score(predictions[part][LABEL], predictions[part]["p_model"])
            )
            for part in ("valid", "test")
        },
        source,
    )
    return Fitted(split, model, logreg, rule, guard, predictions)
