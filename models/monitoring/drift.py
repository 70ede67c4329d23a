"""Per-feature drift between a reference (the model's training rows) and a current table (a
scoring table): a binned distance (PSI or Jensen–Shannon), the change in the missing share, and
categorical levels that are new or gone.

Bins come from the reference only: a numeric column with at most `bins` distinct reference values
is compared value by value; otherwise by the reference's quantiles (repeated edges merged, open
ends), so a count feature that is mostly zero gets one bin for the zeros. Missing values are not a
bin: their share is compared on its own (`missing_change`), so that a feature that goes missing is
named as such. An empty bin's share is floored at EPS before the logarithms.

PSI = sum_b (cur_b - ref_b) ln(cur_b / ref_b); the usual reading: < 0.1 stable, 0.1-0.25 a
moderate shift, > 0.25 a large one. Jensen–Shannon distance (base 2, in [0, 1]) is the square
root of the JS divergence (scipy). Both are computed; `measure` chooses the one the thresholds
apply to. Neither depends on the sample size the way a test's p-value does, which is why they are
used here: with a hundred thousand rows every feature "differs significantly".

The opposite problem, few rows (a small business, or a feature filled in for a few customers
only), makes the distance itself noisy: with n_ref and n_cur rows in k bins, PSI of two samples of
one distribution is about chi2(k - 1) x (1/n_ref + 1/n_cur). A feature is therefore flagged by
the measure only when its PSI is also above that noise at `noise_alpha` (the chi-square quantile
1 - noise_alpha): a drift must be large and not a sampling accident. With many rows the noise
term vanishes and the threshold alone decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2

from features.base.errors import BadInputError
from models.model import is_categorical

EPS = 1e-4
MISSING = "(missing)"
Measure = Literal["psi", "jensen_shannon"]
STATUS_ORDER = {"ok": 0, "warn": 1, "alert": 2}


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature is flagged: `warn` / `alert` on the chosen measure, or a missing-share
    change or a share of rows with new levels at or above `missing_change` / `new_level_share`
    (those two count as `alert`)."""

    measure: Measure = "psi"
    warn: float = 0.1
    alert: float = 0.25
    missing_change: float = 0.1
    new_level_share: float = 0.05
    noise_alpha: float = 0.001  # PSI must exceed its sampling noise at this level


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.clip(np.asarray(reference, dtype=float), EPS, None)
    c = np.clip(np.asarray(current, dtype=float), EPS, None)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def psi_noise(bins: int, n_reference: int, n_current: int, alpha: float = 0.001) -> float:
    """The PSI two samples of one distribution exceed with probability `alpha` (chi-square
    approximation): chi2_{1-alpha}(bins - 1) x (1/n_reference + 1/n_current)."""
    if bins < 2 or n_reference == 0 or n_current == 0:
        return float("inf")
    return float(chi2.ppf(1 - alpha, bins - 1) * (1 / n_reference + 1 / n_current))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, 0 = identical, 1 = disjoint) of two share vectors."""
    r, c = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        return 0.0 if r.sum() == c.sum() else 1.0
    return float(jensenshannon(r, c, base=2))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=float)


def numeric_bins(
    reference: pd.Series, current: pd.Series, bins: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bin labels and the non-missing rows' shares per bin, bins from the reference only."""
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    values = np.unique(ref)
    if len(values) <= bins:  # few distinct values: compare value by value
        labels = [f"{v:g}" for v in values]
        ref_counts = np.array([(ref == v).sum() for v in values], dtype=float)
        known = np.isin(cur, values)
        cur_counts = np.array([(cur == v).sum() for v in values], dtype=float)
        if (~known).any():  # values the reference never had: one extra bin
            labels.append("other")
            ref_counts = np.append(ref_counts, 0.0)
            cur_counts = np.append(cur_counts, float((~known).sum()))
        return labels, _shares(ref_counts), _shares(cur_counts)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    # bins (-inf, e1], (e1, e2], ..., (ek, inf)
    ref_idx = np.searchsorted(edges, ref, side="left")
    cur_idx = np.searchsorted(edges, cur, side="left")
    n = len(edges) + 1
    labels = [f"≤ {edges[0]:.4g}"]
    labels += [f"{edges[i - 1]:.4g} – {edges[i]:.4g}" for i in range(1, len(edges))]
    labels.append(f"> {edges[-1]:.4g}")
    ref_counts = np.bincount(ref_idx, minlength=n).astype(float)
    cur_counts = np.bincount(cur_idx, minlength=n).astype(float)
    return labels, _shares(ref_counts), _shares(cur_counts)


def categorical_bins(
    reference: pd.Series, current: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Levels (reference levels first, then new ones) and the non-missing rows' shares."""
    ref = reference.dropna().astype(str).value_counts()
    cur = current.dropna().astype(str).value_counts()
    levels = [*ref.index, *sorted(set(cur.index) - set(ref.index))]
    return (
        [str(v) for v in levels],
        _shares(ref.reindex(levels, fill_value=0).to_numpy(dtype=float)),
        _shares(cur.reindex(levels, fill_value=0).to_numpy(dtype=float)),
    )


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    bins: int = 10,
    thresholds: DriftThresholds | None = None,
) -> dict[str, Any]:
    """Drift of one column: PSI and JS distance, missing shares, new and vanished levels, means,
    and its status (ok / warn / alert) with the reasons."""
    t = thresholds or DriftThresholds()
    categorical = is_categorical(reference) or is_categorical(current)
    if categorical:
        labels, ref_share, cur_share = categorical_bins(reference, current)
    else:
        labels, ref_share, cur_share = numeric_bins(reference, current, bins)
    ref_levels = set(reference.dropna().astype(str).unique()) if categorical else set()
    cur_counts = current.dropna().astype(str).value_counts() if categorical else pd.Series()
    new = cur_counts[~cur_counts.index.isin(list(ref_levels))] if categorical else cur_counts
    gone = sorted(ref_levels - set(cur_counts.index)) if categorical else []
    missing_ref = float(reference.isna().mean()) if len(reference) else 0.0
    missing_cur = float(current.isna().mean()) if len(current) else 0.0
    out: dict[str, Any] = {
        "feature": name,
        "kind": "categorical" if categorical else "numeric",
        "psi": psi(ref_share, cur_share) if len(labels) else 0.0,
        "jensen_shannon": js_distance(ref_share, cur_share) if len(labels) else 0.0,
        "missing_reference": missing_ref,
        "missing_current": missing_cur,
        "missing_change": missing_cur - missing_ref,
        "new_levels": [str(v) for v in new.index[:5]],
        "new_level_share": float(new.sum() / len(current)) if len(current) else 0.0,
        "vanished_levels": gone[:5],
        "mean_reference": None,
        "mean_current": None,
        "rows_reference": int(len(reference)),
        "rows_current": int(len(current)),
    }
    if not categorical:
        r = pd.to_numeric(reference, errors="coerce")
        c = pd.to_numeric(current, errors="coerce")
        out["mean_reference"] = float(r.mean()) if r.notna().any() else None
        out["mean_current"] = float(c.mean()) if c.notna().any() else None
    filled_ref = int(reference.notna().sum())
    filled_cur = int(current.notna().sum())
    occupied = int(((ref_share > 0) | (cur_share > 0)).sum())
    noise = psi_noise(occupied, filled_ref, filled_cur, t.noise_alpha)
    out["psi_noise"] = noise if np.isfinite(noise) else None
    value = out[t.measure]
    reasons = []
    status = "ok"
    if out["psi"] <= noise:
        pass  # within the sampling noise of the rows at hand: not flagged by the measure
    elif value >= t.alert:
        status = "alert"
        reasons.append(f"{t.measure} {value:.3f} >= {t.alert}")
    elif value >= t.warn:
        status = "warn"
        reasons.append(f"{t.measure} {value:.3f} >= {t.warn}")
    if abs(out["missing_change"]) >= t.missing_change:
        status = "alert"
        reasons.append(f"missing share {missing_ref:.1%} -> {missing_cur:.1%}")
    if out["new_level_share"] >= t.new_level_share:
        status = "alert"
        reasons.append(f"{out['new_level_share']:.1%} of rows with levels never seen in training")
    out["drift"] = value
    out["status"] = status
    out["reasons"] = reasons
    return out


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    bins: int = 10,
    thresholds: DriftThresholds | None = None,
) -> pd.DataFrame:
    """One row per feature (`column_drift`), largest drift first (status, then the measure)."""
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        where = "reference (training rows)" if missing[0] not in reference.columns else "current"
        raise BadInputError(
            f"drift: feature column(s) {missing[:5]} missing from the {where} table; the scoring "
            "table must be built for the model that made the scores (`churn score`)."
        )
    if len(reference) == 0 or len(current) == 0:
        raise BadInputError(
            f"drift: the reference has {len(reference)} rows and the current table "
            f"{len(current)}; both need rows (train a model and score at least one customer)."
        )
    rows = [column_drift(f, reference[f], current[f], bins, thresholds) for f in features]
    frame = pd.DataFrame(rows)
    frame["_rank"] = frame["status"].map(STATUS_ORDER)
    frame = frame.sort_values(["_rank", "drift"], ascending=[False, False], kind="mergesort")
    return frame.drop(columns="_rank").reset_index(drop=True)


def distribution(reference: pd.Series, current: pd.Series, bins: int = 10) -> pd.DataFrame:
    """The two distributions side by side (bin, reference share, current share), missing values
    as their own bin: what the monitoring page plots."""
    if is_categorical(reference) or is_categorical(current):
        labels, ref_share, cur_share = categorical_bins(reference, current)
    else:
        labels, ref_share, cur_share = numeric_bins(reference, current, bins)
    ref_filled = 1 - (reference.isna().mean() if len(reference) else 0.0)
    cur_filled = 1 - (current.isna().mean() if len(current) else 0.0)
    frame = pd.DataFrame(
        {"bin": labels, "reference": ref_share * ref_filled, "current": cur_share * cur_filled}
    )
    if reference.isna().any() or current.isna().any():
        frame.loc[len(frame)] = [MISSING, 1 - ref_filled, 1 - cur_filled]
    return frame


def summarise(drift: pd.DataFrame) -> dict[str, Any]:
    """Counts per status and the flagged features (warn or alert), for the report."""
    counts = drift["status"].value_counts()
    flagged = drift[drift["status"] != "ok"]
    return {
        "features": int(len(drift)),
        "alert": int(counts.get("alert", 0)),
        "warn": int(counts.get("warn", 0)),
        "flagged_share": float(len(flagged) / len(drift)) if len(drift) else 0.0,
        "flagged": flagged["feature"].tolist(),
        "max_drift": float(drift["drift"].max()) if len(drift) else 0.0,
    }
