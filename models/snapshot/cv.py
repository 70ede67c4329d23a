"""Cross-validation of the snapshot model: every learned step fitted inside each training fold."""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from models.evaluation.metrics import binary_metrics
from models.settings import DataParams, LeakageParams
from models.snapshot.model import SnapshotModel, fit_snapshot_model
from models.snapshot.schema import SnapshotDataError
from models.training.split import class_shortfall

log = logging.getLogger(__name__)

MIN_CLASS_ROWS = 10  # rows of the smaller class needed to cross-validate at all
# Peers fitted on each outer fold's training rows beside ours, scored on the same test rows.
PEERS = ("logreg", "lightgbm_defaults", "hgb_defaults")
HGB_MAX_CATEGORIES = 255  # HistGradientBoosting's native categoricals: at most max_bins levels


def peer_scores(
    model: SnapshotModel,
    train: pd.DataFrame,
    y_train: np.ndarray,
    test: pd.DataFrame,
    settings: DataParams,
) -> dict[str, np.ndarray]:
    """Test-row scores of the peers, each fitted on these training rows only.

    logreg: the fold model's own logistic-regression part (fitted on the same rows).
    lightgbm_defaults: `lightgbm.LGBMClassifier()` with its default settings.
    hgb_defaults: `HistGradientBoostingClassifier()` with its default settings (its own early
    stopping on 10 % of the rows above 10,000 rows).
    Both boosters read the fold model's input frame (the columns the leakage guard kept;
    categoricals as pandas categories on the training rows' levels, native in both; a column
    with more levels than HistGradientBoosting accepts is given to it as level codes).
    """
    x_train, x_test = model.model_frame(train), model.model_frame(test)
    lgbm = lgb.LGBMClassifier(
        random_state=settings.seed, n_jobs=settings.num_threads, verbose=-1
    ).fit(x_train, y_train)
    wide = [
        c
        for c in x_train.columns
        if isinstance(x_train[c].dtype, pd.CategoricalDtype)
        and len(x_train[c].cat.categories) > HGB_MAX_CATEGORIES
    ]

    def codes(x: pd.DataFrame) -> pd.DataFrame:
        return x.assign(**{c: x[c].cat.codes.replace(-1, np.nan).astype(float) for c in wide})

    # HistGradientBoosting's OpenMP threads spin on a busy machine: as many as our boosters use
    with threadpool_limits(limits=settings.num_threads, user_api="openmp"):
        hgb = HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=settings.seed
        ).fit(codes(x_train), y_train)
        hgb_scores = hgb.predict_proba(codes(x_test))[:, 1]
    return {
        "logreg": model.linear_logit(test),
        "lightgbm_defaults": lgbm.predict_proba(x_test)[:, 1],
        "hgb_defaults": hgb_scores,
    }


def evaluate_folds(
    features: pd.DataFrame,
    y: np.ndarray,
    settings: DataParams,
    train_params: Any,
    leakage: LeakageParams,
    cv: int | None,
) -> dict[str, Any]:
    """K-fold stratified CV (or one stratified holdout): fit on each training part, score the rest.

    Returns per-fold metrics of the model, of its two parts alone (LightGBM, logistic
    regression) and of the peers (`PEERS`, fitted on the same training rows, scored on the same
    test rows), out-of-fold probabilities (ours and the peers'), and each fold's leakage suspects.
    """
    y = np.asarray(y, dtype=int)
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < MIN_CLASS_ROWS:
        raise SnapshotDataError(
            f"{len(y)} labelled rows with {int(y.sum())} churned and {int(len(y) - y.sum())} not:"
            f" at least {MIN_CLASS_ROWS} rows of each class are needed to train and evaluate."
        )
    if cv is not None:
        if cv < 2 or cv > minority:
            raise SnapshotDataError(
                f"--cv {cv}: needs 2 <= K <= {minority} (rows of the smaller class); "
                "choose a smaller K."
            )
        splits = list(
            StratifiedKFold(cv, shuffle=True, random_state=settings.seed).split(features, y)
        )
    else:
        idx = np.arange(len(y))
        tr, te = train_test_split(
            idx, test_size=settings.holdout_fraction, stratify=y, random_state=settings.seed
        )
        splits = [(np.sort(tr), np.sort(te))]
    check_fold_classes(y, splits, settings)
    oof = np.full(len(y), np.nan)
    peer_oof = {name: np.full(len(y), np.nan) for name in PEERS}
    folds = []
    for i, (tr, te) in enumerate(splits, 1):
        source = f"fold {i}/{len(splits)} training rows"
        model = fit_snapshot_model(
            features.iloc[tr], y[tr], settings, train_params, leakage, source
        )
        test = features.iloc[te]
        p = model.predict(test)
        oof[te] = p
        x = model.model_frame(test)
        parts = {
            "lightgbm": float(roc_auc_score(y[te], model.booster.predict(x, raw_score=True))),
            "logreg": float(roc_auc_score(y[te], model.linear_logit(test))),
        }
        peers = peer_scores(model, features.iloc[tr], y[tr], test, settings)
        for name, score in peers.items():
            peer_oof[name][te] = score
        peer_auc = {name: float(roc_auc_score(y[te], peers[name])) for name in PEERS}
        metrics = binary_metrics(y[te], p)
        folds.append(
            {
                "fold": i,
                "train_rows": int(len(tr)),
                "test_rows": int(len(te)),
                "metrics": metrics,
                "part_roc_auc": parts,
                "peer_roc_auc": peer_auc,
                "candidate": model.info["candidate"],
                "blend_weight_lgb": model.weight,
                "calibration_method": model.calibrator.method,
                "leakage_excluded": model.leakage.get("excluded", []),
                "leakage_suspects": model.leakage.get("suspects", []),
            }
        )
        log.info(
            "fold %d/%d: roc_auc %.4f (LightGBM part %.4f; peers: logistic regression %.4f, "
            "LightGBM defaults %.4f, HistGradientBoosting defaults %.4f), pr_auc %.4f",
            i,
            len(splits),
            metrics["roc_auc"],
            parts["lightgbm"],
            peer_auc["logreg"],
            peer_auc["lightgbm_defaults"],
            peer_auc["hgb_defaults"],
            metrics["pr_auc"],
        )
    return {"folds": folds, "oof": oof, "peer_oof": peer_oof, "splits": splits}


def check_fold_classes(
    y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], settings: DataParams
) -> None:
    """Raise SnapshotDataError when a fold's training rows have fewer than
    `data.calibration_folds` (at least 2) of either class (the calibrator is cross-fitted on
    them), or its test rows lack a class (ROC AUC needs both); every shortfall in one message."""
    need = max(2, settings.calibration_folds)
    problems = []
    for i, (tr, te) in enumerate(splits, 1):
        problems += [
            class_shortfall(f"fold {i} training rows", y[tr], need, need, "data.calibration_folds"),
            class_shortfall(f"fold {i} test rows", y[te], 1, 1, "--cv / data.holdout_fraction"),
        ]
    problems = [p for p in problems if p]
    if problems:
        raise SnapshotDataError(
            "too few churners or non-churners in a fold: "
            + "; ".join(problems)
            + ". Choose a smaller --cv, a larger data.holdout_fraction or a smaller "
            "data.calibration_folds in params.yaml, or add labelled rows."
        )
