"""The truth check on simulated data: our test probabilities against the simulator's true ones.

Oracle AUC (the true probabilities' own AUC), our gap to it, the mean absolute probability error,
calibration slopes, and the rank of each planted driver among our features by mean |SHAP|.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.evaluation.importance import driver_ranks, mean_abs_shap
from models.evaluation.metrics import PREDICTIONS, calibration_slope
from models.model import ChurnModel
from models.training.split import LABEL, TrainingDataError

log = logging.getLogger(__name__)


def truth_check(
    predictions: pd.DataFrame,
    rows: pd.DataFrame,
    model: ChurnModel,
    truth_path: Path | str | None,
    driver_features: dict[str, tuple[str, ...]],
) -> dict[str, Any]:
    """Compare with the simulator's truth; a "skipped" result when there is no truth table
    (`truth_path` None: the check is off)."""
    path = Path(truth_path) if truth_path else None
    if path is None or not path.exists():
        reason = "evaluate.truth.check is false" if path is None else f"{path} not found"
        log.info("truth check skipped: %s (only simulated data has a truth table)", reason)
        return {"skipped": True, "reason": f"{reason}; the truth check needs simulated data"}
    truth = pd.read_parquet(path)
    truth = truth.assign(
        customer_id=truth["customer_id"].astype(str),
        cutoff=pd.to_datetime(truth["month_start"], utc=True),
    ).drop(columns=["month_start"])
    keys = predictions.assign(
        customer_id=predictions["customer_id"].astype(str),
        cutoff=pd.to_datetime(predictions["cutoff"], utc=True),
    )
    joined = keys.merge(truth, on=["customer_id", "cutoff"], how="left", validate="one_to_one")
    matched = joined["true_probability"].notna()
    if not matched.any():
        raise TrainingDataError(
            f"{path}: no (customer_id, month_start) matches the test rows; the truth table is "
            "from another simulation. Re-run `dvc repro` from `simulate`."
        )
    j = joined.loc[matched]
    y = j[LABEL].to_numpy()
    true_p = j["true_probability"].to_numpy()
    out: dict[str, Any] = {
        "skipped": False,
        "rows": int(len(joined)),
        "rows_matched": int(matched.sum()),
        "oracle_roc_auc": float(roc_auc_score(y, true_p)),
        "model_roc_auc": float(roc_auc_score(y, j["p_model"])),
        "auc_gap_to_oracle": float(roc_auc_score(y, true_p) - roc_auc_score(y, j["p_model"])),
        "mean_abs_probability_error": float(np.mean(np.abs(j["p_model"] - true_p))),
        "calibration": calibration_slope(y, j["p_model"].to_numpy()),
        "oracle_calibration": calibration_slope(y, true_p),
        "mean_true_probability": float(true_p.mean()),
        "mean_predicted_probability": float(j["p_model"].mean()),
        "observed_rate": float(y.mean()),
        "baselines_mean_abs_probability_error": {
            name: float(np.mean(np.abs(j[col] - true_p)))
            for name, col in PREDICTIONS.items()
            if name != "model"
        },
    }
    importance = mean_abs_shap(model.booster, model.model_frame(rows))
    out["top_features"] = [
        {"feature": f, "mean_abs_shap": float(v)} for f, v in importance.head(15).items()
    ]
    # A driver's strength: mean |hazard contribution| on the test rows. contrib_baseline is the
    # constant base hazard, not a driver.
    strength = {
        c.removeprefix("contrib_"): float(np.mean(np.abs(j[c])))
        for c in j.columns
        if c.startswith("contrib_") and c != "contrib_baseline" and j[c].nunique() > 1
    }
    ranks = driver_ranks(importance, driver_features)
    drivers = []
    for driver in sorted(set(strength) | set(ranks), key=lambda d: -strength.get(d, 0.0)):
        entry = {"driver": driver, "strength_mean_abs_contrib": strength.get(driver)}
        entry.update(ranks.get(driver, {"rank": None, "feature": None, "unmapped": True}))
        drivers.append(entry)
    out["drivers"] = drivers
    out["driver_rank"] = {d["driver"]: d.get("rank") for d in drivers}  # flat, for dvc metrics
    strongest = [d for d in drivers if d["strength_mean_abs_contrib"] is not None][:3]
    out["strongest_3_in_top_5"] = bool(strongest) and all(
        d.get("rank") is not None and d["rank"] <= 5 for d in strongest
    )
    return out
