"""Test metrics of probabilities: ranking, calibration, top decile, bootstrap CIs, segments."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from models.segments import MAX_SEGMENT_LEVELS, OTHER_LEVEL, Folding, fold_series
from models.settings import EvaluateParams

log = logging.getLogger(__name__)

EPS = 1e-6


def _clean(p: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """ECE over `bins` equal-frequency bins: sum over bins of (bin share) * |mean label - mean p|.

    Equal-frequency (quantile) bins because churn probabilities crowd near zero: equal-width bins
    would leave most bins empty and the crowded first bin would carry all the weight.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for idx in np.array_split(order, min(bins, len(p))):
        if len(idx):
            total += len(idx) / len(p) * abs(y[idx].mean() - p[idx].mean())
    return float(total)


def top_fraction(y: np.ndarray, p: np.ndarray, fraction: float = 0.1) -> dict[str, float]:
    """Precision, recall and lift among the `fraction` highest-scored rows (ties: by position)."""
    y = np.asarray(y, dtype=float)
    n_top = max(1, math.ceil(fraction * len(y)))
    top = np.argsort(-np.asarray(p, dtype=float), kind="mergesort")[:n_top]
    precision = float(y[top].mean())
    base = float(y.mean())
    return {
        "precision": precision,
        "recall": float(y[top].sum() / y.sum()) if y.sum() else float("nan"),
        "lift": precision / base if base else float("nan"),
    }


def binary_metrics(y: np.ndarray, p: np.ndarray, ece_bins: int = 15) -> dict[str, float]:
    """roc_auc, pr_auc, log_loss, brier, ece and top-decile lift/recall/precision."""
    y = np.asarray(y, dtype=int)
    p = _clean(p)
    top = top_fraction(y, p, 0.1)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, ece_bins),
        "lift_at_10": top["lift"],
        "recall_at_10": top["recall"],
        "precision_at_10": top["precision"],
        "base_rate": float(y.mean()),
        "n": int(len(y)),
        "positives": int(y.sum()),
    }


class ResampledAUC:
    """ROC AUC of `p` on bootstrap resamples of its rows, without sorting each resample.

    The rows are ranked once; a resample is given by how many times each row was drawn, and
    its AUC is the Mann-Whitney statistic with those counts as weights (ties count one half):
    the value `roc_auc_score(y[idx], p[idx])` gives, in one weighted pass over the rows.
    """

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        _, self.group = np.unique(np.asarray(p, dtype=float), return_inverse=True)
        self.positive = np.asarray(y, dtype=float)
        self.groups = int(self.group.max()) + 1 if len(self.group) else 0

    def __call__(self, counts: np.ndarray) -> float:
        pos = np.bincount(self.group, counts * self.positive, self.groups)
        neg = np.bincount(self.group, counts * (1.0 - self.positive), self.groups)
        below = np.cumsum(neg) - neg  # negatives scored strictly lower, per distinct score
        return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def bootstrap_intervals(
    y: np.ndarray, p: np.ndarray, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals (rows resampled with replacement) for roc_auc and pr_auc."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    aucs, aps = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        aucs.append(roc_auc_score(y[idx], p[idx]))
        aps.append(average_precision_score(y[idx], p[idx]))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {
        "roc_auc": [float(np.percentile(aucs, lo)), float(np.percentile(aucs, hi))],
        "pr_auc": [float(np.percentile(aps, lo)), float(np.percentile(aps, hi))],
    }


def segment_auc(
    y: np.ndarray,
    p: np.ndarray,
    segment: pd.Series,
    max_levels: int | None = MAX_SEGMENT_LEVELS,
    column: str = "segment",
) -> dict[str, dict[str, Any]]:
    """roc_auc per segment value (null when the segment has one class), with its counts.

    Beyond the `max_levels` largest values by rows the values are folded into one
    OTHER_LEVEL entry (models/segments.py) that lists them under `levels`; None keeps all.
    """
    frame = pd.DataFrame({"y": np.asarray(y, dtype=int), "p": np.asarray(p, dtype=float)})
    frame["segment"] = segment.astype("string").fillna("(missing)").to_numpy()
    folding = None
    if max_levels is not None:
        frame["segment"], folding = fold_series(column, frame["segment"], max_levels)
    out: dict[str, dict[str, Any]] = {}
    for value, part in frame.groupby("segment", sort=True):
        one_class = part["y"].nunique() < 2
        out[str(value)] = {
            "roc_auc": None if one_class else float(roc_auc_score(part["y"], part["p"])),
            "n": int(len(part)),
            "positives": int(part["y"].sum()),
        }
    if folding is not None and folding.folded:
        out[OTHER_LEVEL]["levels"] = list(folding.folded)
    return out


def segment_metrics(
    y: np.ndarray, p: np.ndarray, rows: pd.DataFrame, params: EvaluateParams
) -> tuple[dict[str, Any], list[str]]:
    """Per segment column of `params.segments` (and the tenure band): `segment_auc`; and notes
    naming the columns the rows lack and the levels folded into OTHER_LEVEL."""
    segments: dict[str, Any] = {}
    notes: list[str] = []
    for col in params.segments:
        if col not in rows.columns:
            notes.append(
                f"{col}: not a column of the model table (absent from customers, or text with "
                "more than featurize.max_categories values, which is not a feature); no "
                "segment metrics"
            )
            continue
        segments[col] = segment_auc(y, p, rows[col], MAX_SEGMENT_LEVELS, col)
        if OTHER_LEVEL in segments[col] and "levels" in segments[col][OTHER_LEVEL]:
            kept = tuple(k for k in segments[col] if k != OTHER_LEVEL)
            notes.append(Folding(col, kept, tuple(segments[col][OTHER_LEVEL]["levels"])).note())
    if params.tenure_column in rows.columns:
        bands = tenure_band(rows[params.tenure_column], params.tenure_bands_days)
        segments["tenure_band"] = segment_auc(y, p, bands, None)
    for note in notes:
        log.warning("segment metrics: %s", note)
    return segments, notes


def tenure_band(days: pd.Series, edges: tuple[int, ...]) -> pd.Series:
    """Label tenure in days with bands such as '0-90d', '90-180d', '730d+'."""
    bounds = [-np.inf, *edges, np.inf]
    labels = [f"{0 if i == 0 else edges[i - 1]}-{edges[i]}d" for i in range(len(edges))]
    labels.append(f"{edges[-1]}d+")
    return pd.cut(pd.to_numeric(days, errors="coerce"), bounds, labels=labels, right=False)


def calibration_slope(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Slope and intercept of a (nearly unpenalised) logistic regression of label on logit(p)."""
    from sklearn.linear_model import LogisticRegression

    p = _clean(p)
    x = np.log(p / (1 - p)).reshape(-1, 1)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(x, np.asarray(y, dtype=int))
    return {"slope": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])}


# The three rankings evaluated side by side: ours and the two baselines (test predictions columns).
PREDICTIONS: dict[str, str] = {"model": "p_model", "logreg": "p_logreg", "rule": "p_rule"}
# The figures a reviewer compares between experiments (`dvc metrics show`), per ranking.
HEADLINE: tuple[str, ...] = ("roc_auc", "pr_auc", "ece", "lift_at_10")


def metrics_at_test_cutoff(
    predictions: pd.DataFrame,
    rows: pd.DataFrame,
    p: EvaluateParams,
    label: str = "churned",
    cutoffs_seen: dict[str, dict[str, list[str]]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our test metrics with bootstrap intervals, per-segment AUC and the baselines' figures
    (under `baselines`); and the per-segment detail (AUC with row and churner counts).

    `cutoffs_seen` (train.json): per ranking, the cutoffs it was trained and selected on; each
    ranking's entry carries them (`trained_on_cutoffs`, `selected_on_cutoffs`)."""
    y = predictions[label].to_numpy()
    ours_p = predictions["p_model"].to_numpy()
    ours = binary_metrics(y, ours_p, p.ece_bins)
    ours["ci95"] = bootstrap_intervals(y, ours_p, p.bootstrap, p.seed)
    segments, segment_notes = segment_metrics(y, ours_p, rows, p)
    if segment_notes:  # columns missing or levels folded (the segments report lists them)
        ours["segment_notes"] = segment_notes
    # metrics.json keeps one number per segment; the counts behind them go to the segments report.
    ours["segments_roc_auc"] = {
        col: {value: entry["roc_auc"] for value, entry in per_value.items()}
        for col, per_value in segments.items()
    }
    ours["baselines"] = {
        name: {
            k: v
            for k, v in binary_metrics(y, predictions[col].to_numpy(), p.ece_bins).items()
            if k not in ("base_rate", "n", "positives")
        }
        for name, col in PREDICTIONS.items()
        if name != "model"
    }
    ours["test_cutoffs"] = sorted({pd.Timestamp(c).isoformat() for c in predictions["cutoff"]})
    for name, seen in (cutoffs_seen or {}).items():
        entry = ours if name == "model" else ours["baselines"].get(name)
        if entry is not None:
            entry.update({k: list(v) for k, v in seen.items()})
    return ours, segments


def cutoffs_seen_in(summary: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Per ranking, the cutoffs it was trained and selected on, from train.json (a summary
    written before refit existed: every ranking trained on the training cutoffs)."""
    if summary.get("cutoffs_seen"):
        return summary["cutoffs_seen"]
    split = summary.get("split", {})
    trained = list(split.get("train", {}).get("cutoffs", []))
    selected = list(split.get("valid", {}).get("cutoffs", []))
    return {
        name: {"trained_on_cutoffs": trained, "selected_on_cutoffs": selected}
        for name in PREDICTIONS
    }


def headline(metrics: dict[str, Any], truth: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per ranking, the HEADLINE figures (and, on simulated data, our AUC gap to the oracle)."""
    out = {"model": {k: metrics[k] for k in HEADLINE}}
    for name, figures in metrics["baselines"].items():
        out[name] = {k: figures[k] for k in HEADLINE}
    if not truth.get("skipped", True):
        out["model"]["auc_gap_to_oracle"] = truth["auc_gap_to_oracle"]
    return out
