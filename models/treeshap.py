"""Exact TreeSHAP contributions of a LightGBM booster (log-odds), as fast as we can make them.

Interface (used by explain and score): `contributions(booster, x)` returns an array of shape
(n_rows, n_features + 1) laid out like LightGBM's `pred_contrib`: one column per booster
feature in `booster.feature_name()` order, the expected value (bias) last; each row sums to
the raw margin. `x` is the booster's input frame (`ChurnModel.model_frame`).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd


def contributions(booster: lgb.Booster, x: pd.DataFrame) -> np.ndarray:
    """Per-row SHAP values (log-odds) and the bias, in LightGBM's pred_contrib layout."""
    return np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
