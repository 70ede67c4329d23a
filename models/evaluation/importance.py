"""Feature importance as mean |SHAP| (LightGBM TreeSHAP, pred_contrib) and planted-driver ranks."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd


def mean_abs_shap(booster: lgb.Booster, x: pd.DataFrame) -> pd.Series:
    """Mean |SHAP value| per feature on the raw (log-odds) scale, largest first."""
    contrib = booster.predict(x, pred_contrib=True)
    names = booster.feature_name()
    values = np.abs(np.asarray(contrib)[:, : len(names)]).mean(axis=0)
    return pd.Series(values, index=names, name="mean_abs_shap").sort_values(ascending=False)


def driver_ranks(
    importance: pd.Series, driver_features: dict[str, tuple[str, ...] | list[str]]
) -> dict[str, dict[str, object]]:
    """Rank (1 = most important) of each planted driver: the best rank among its mapped features."""
    ranks = {name: i + 1 for i, name in enumerate(importance.index)}
    out: dict[str, dict[str, object]] = {}
    for driver, features in driver_features.items():
        present = [f for f in features if f in ranks]
        if not present:
            out[driver] = {"rank": None, "feature": None, "missing_features": list(features)}
            continue
        best = min(present, key=lambda f: ranks[f])
        out[driver] = {
            "rank": ranks[best],
            "feature": best,
            "mean_abs_shap": float(importance[best]),
            "missing_features": [f for f in features if f not in ranks],
        }
    return out
