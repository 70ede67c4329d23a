"""Everything `churn train` learns from the model table: the out-of-time split, the leakage
guard, the LightGBM model and both baselines, and their validation and test predictions.

Choices are made with models trained on the training cutoffs and judged on the validation cutoff
(early stopping, tuning, calibration, the leakage guard's exclusions, the rule's feature); with
`train.refit` (default) the model and both baselines are then refit on the training + validation
cutoffs with those choices (models/training/train.py says how), and those refit models are the
ones saved, registered and tested. Validation predictions always come from the train-only models
(honest validation figures); test predictions from the models that are registered/compared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
from sklearn.metrics import roc_auc_score

from models.model import ChurnModel
from models.settings import LeakageParams, SplitParams, TrainParams
from models.training.baselines import (
    SingleFeatureRule,
    fit_logreg,
    fit_logreg_rows,
    fit_single_feature_rule,
    predict_logreg,
    refit_rule,
)
from models.training.leakage import LeakageReport, screen_model_table
from models.training.split import (
    LABEL,
    NON_FEATURE_COLUMNS,
    Split,
    check_trainable,
    split_by_cutoff,
)
from models.training.train import cutoff_list, refit_model, refit_rows, train_model


@dataclass
class Fitted:
    """The split, the model, the baselines, the leakage report and the predictions per part."""

    split: Split
    model: ChurnModel  # the registered model: refit on train + valid when train.refit
    logreg: object  # scikit-learn Pipeline, fitted on the same cutoffs as `model`
    rule: SingleFeatureRule
    leakage: LeakageReport
    predictions: dict[str, pd.DataFrame]  # "valid", "test": p_model, p_model_raw, p_logreg, p_rule
    selected: ChurnModel | None = None  # the train-only model the choices were made with
    # per ranking (model, logreg, rule): trained_on_cutoffs, selected_on_cutoffs (ISO dates)
    cutoffs_seen: dict[str, dict[str, list[str]]] | None = None


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
    label_days: int = 0,
) -> Fitted:
    """Split out of time (parts `label_days` apart: the label's lead + horizon), screen for
    leaks, train the model and both baselines; predict."""
    sp = split_params
    split = split_by_cutoff(
        table, sp.valid_cutoffs, sp.test_cutoffs, sp.min_train_cutoffs, source, label_days
    )
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
    c, max_levels = train.baselines.logreg_c, train.baselines.logreg_max_levels
    selected = train_model(split, train, source)
    selected_logreg = fit_logreg(split, selected.spec, c, max_levels)
    selected_rule = fit_single_feature_rule(split, selected.spec)
    model, logreg, rule = selected, selected_logreg, selected_rule
    trained_on = cutoff_list(split.train_cutoffs)
    if train.refit:
        rows = refit_rows(split)
        model = refit_model(selected, split, train, source)
        logreg = fit_logreg_rows(rows, model.spec, c, max_levels)
        rule = refit_rule(selected_rule, rows)
        trained_on = cutoff_list(rows["cutoff"])
    valid_cutoffs = cutoff_list(split.valid_cutoffs)
    cutoffs_seen = {
        name: {"trained_on_cutoffs": trained_on, "selected_on_cutoffs": valid_cutoffs}
        for name in ("model", "logreg", "rule")
    }
    # logistic regression makes no choice on VALID (its C is a param): nothing selected there
    cutoffs_seen["logreg"]["selected_on_cutoffs"] = []
    fitted_on = {
        "valid": (selected, selected_logreg, selected_rule),  # never trained on VALID
        "test": (model, logreg, rule),  # the models saved, registered and compared
    }
    predictions = {}
    for part in ("valid", "test"):
        frame = getattr(split, part)
        ours, lr, single = fitted_on[part]
        predictions[part] = pd.DataFrame(
            {
                "customer_id": frame["customer_id"].astype(str).to_numpy(),
                "cutoff": frame["cutoff"].to_numpy(),
                LABEL: frame[LABEL].astype("int8").to_numpy(),
                "p_model": ours.predict(frame),
                "p_model_raw": ours.predict_raw(frame),
                "p_logreg": predict_logreg(lr, frame, ours.spec),
                "p_rule": single.predict(frame),
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
    return Fitted(split, model, logreg, rule, guard, predictions, selected, cutoffs_seen)
