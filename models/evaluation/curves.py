"""Plot data for DVC (CSV series) and a figure for MLflow: ROC, PR, reliability, gains, lift."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve


def _thin(frame: pd.DataFrame, max_points: int = 200) -> pd.DataFrame:
    """Keep at most `max_points` rows (always the first and last) so plot files stay small."""
    if len(frame) <= max_points:
        return frame.reset_index(drop=True)
    idx = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))
    return frame.iloc[idx].reset_index(drop=True)


def roc_points(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    fpr, tpr, _ = roc_curve(y, p)
    return _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}))


def pr_points(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    precision, recall, _ = precision_recall_curve(y, p)
    frame = pd.DataFrame({"recall": recall, "precision": precision}).iloc[::-1]
    return _thin(frame)


def reliability_points(y: np.ndarray, p: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Mean predicted vs observed churn rate in equal-frequency bins (the ECE bins)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="mergesort")
    rows = [
        {
            "bin": i + 1,
            "mean_predicted": float(p[idx].mean()),
            "observed_rate": float(y[idx].mean()),
            "n": int(len(idx)),
        }
        for i, idx in enumerate(np.array_split(order, min(bins, len(p))))
        if len(idx)
    ]
    return pd.DataFrame(rows)


def gains_points(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Cumulative share of churners captured vs share of customers contacted, riskiest first."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(p, dtype=float), kind="mergesort")
    captured = np.cumsum(y[order]) / y.sum()
    frame = pd.DataFrame(
        {
            "population_share": np.r_[0.0, np.arange(1, len(y) + 1) / len(y)],
            "churners_captured": np.r_[0.0, captured],
        }
    )
    return _thin(frame, 101)


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Churn rate in each risk decile (1 = highest risk) divided by the overall rate."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(p, dtype=float), kind="mergesort")
    base = y.mean()
    rows = [
        {
            "decile": i + 1,
            "lift": float(y[idx].mean() / base) if base else float("nan"),
            "churn_rate": float(y[idx].mean()),
            "mean_predicted": float(np.asarray(p)[idx].mean()),
        }
        for i, idx in enumerate(np.array_split(order, 10))
    ]
    return pd.DataFrame(rows)


def curves(y: np.ndarray, p: np.ndarray, bins: int = 15) -> dict[str, pd.DataFrame]:
    """Every plot's data for one model, keyed by plot name."""
    return {
        "roc": roc_points(y, p),
        "precision_recall": pr_points(y, p),
        "reliability": reliability_points(y, p, bins),
        "gains": gains_points(y, p),
        "lift": lift_by_decile(y, p),
    }
