"""Realised performance of past scores: once a scores file's label window has passed, join its
probabilities with the labels of its as-of date (features/labels.py, the same definition and
population as training) and compute what evaluate computes on the test cutoff.

A score made at as-of date A is matured when A + lead + horizon <= the label's data end (the same
rule that decides which cutoffs `label` labels). The label of a scored customer is the label of
the cutoff A: churn in (A + lead, A + lead + horizon]. Customers who churned in the lead period
have no label and are counted as `unlabelled` (evaluate leaves the same rows out).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.base.errors import BadInputError
from features.labels import build_labels
from features.settings import LabelParams
from features.tables import Tables
from models.evaluation.metrics import binary_metrics, segment_auc

log = logging.getLogger(__name__)


def is_matured(as_of: dt.datetime, lead_days: int, horizon_days: int, end: dt.datetime) -> bool:
    """Whether the label window of scores made at `as_of` ends by the data's end."""
    return pd.Timestamp(as_of) + pd.Timedelta(days=lead_days + horizon_days) <= pd.Timestamp(end)


def matured_on(as_of: dt.datetime, lead_days: int, horizon_days: int) -> pd.Timestamp:
    """The first data end at which scores made at `as_of` can be evaluated."""
    return pd.Timestamp(as_of) + pd.Timedelta(days=lead_days + horizon_days)


def labels_at(tables: Tables, as_of: dt.datetime, label: LabelParams) -> pd.DataFrame:
    """(customer_id, churned) of the label's population at `as_of`: features/labels.py's labels
    with `as_of` as the cutoff."""
    frame = build_labels(tables, label, [pd.Timestamp(as_of).to_pydatetime()]).to_pandas()
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "churned": frame["churned"].astype(bool).to_numpy(),
        }
    )


def join_labels(scores: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The scored customers with a label (inner join on customer_id), and how many had none."""
    for name, frame, needed in (
        ("scores", scores, ("customer_id", "churn_probability")),
        ("labels", labels, ("customer_id", "churned")),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise BadInputError(f"realised performance: the {name} lack column(s) {missing}")
    left = scores.assign(customer_id=scores["customer_id"].astype(str))
    right = labels.assign(customer_id=labels["customer_id"].astype(str))
    if left["customer_id"].duplicated().any():
        dup = left.loc[left["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise BadInputError(f"realised performance: customer {dup!r} is scored twice")
    joined = left.merge(right[["customer_id", "churned"]], on="customer_id", how="inner")
    return joined, int(len(left) - len(joined))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted vs observed churn rate in `bins` equal-frequency bins of the probability."""
    order = np.argsort(p, kind="mergesort")
    out = []
    for idx in np.array_split(order, min(bins, len(p))):
        if len(idx):
            out.append(
                {
                    "mean_predicted": float(p[idx].mean()),
                    "observed_rate": float(y[idx].mean()),
                    "n": int(len(idx)),
                }
            )
    return out


def realised_metrics(
    joined: pd.DataFrame,
    segments: Sequence[str] = (),
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Realised figures of one scores file joined with its labels: evaluate's metrics (ROC AUC,
    PR AUC, log loss, Brier, ECE, lift / recall / precision at 10 %), the calibration by bin and
    in the large (mean predicted vs observed), and ROC AUC with the rates per segment."""
    y = joined["churned"].astype(int).to_numpy()
    p = joined["churn_probability"].astype(float).to_numpy()
    if len(y) == 0:
        return {"n": 0, "skipped": "no scored customer has a label"}
    out: dict[str, Any] = {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "mean_predicted": float(p.mean()),
        "observed_rate": float(y.mean()),
    }
    if y.min() == y.max():
        out["skipped"] = "one class only: no ranking metric"
        return out
    out.update(binary_metrics(y, p, ece_bins))
    out["calibration"] = calibration_table(y, p)
    by_segment: dict[str, Any] = {}
    for col in segments:
        if col not in joined.columns:
            continue
        aucs = segment_auc(y, p, joined[col], column=col)
        frame = pd.DataFrame(
            {"y": y, "p": p, "s": joined[col].astype("string").fillna("(missing)")}
        )
        rates = frame.groupby("s", sort=True).agg(
            observed_rate=("y", "mean"), mean_predicted=("p", "mean")
        )
        for level, entry in aucs.items():
            if level in rates.index:
                entry["observed_rate"] = float(rates.loc[level, "observed_rate"])
                entry["mean_predicted"] = float(rates.loc[level, "mean_predicted"])
        by_segment[col] = aucs
    out["segments"] = by_segment
    return out
