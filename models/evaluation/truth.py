"""The truth check on simulated data: our test probabilities against the simulator's true ones.

Oracle AUC (the true probabilities' own AUC), our gap to it, the mean absolute probability error,
calibration slopes, paired bootstrap 95 % intervals (same resampled test rows for every ranking),
the best single feature's AUC, and the driver check. The world that produced the truth is read
from the truth file (`world` in its Parquet metadata; none = the simple world):

* simple world: each planted driver's rank = the best rank among its mapped features
  (`evaluate.truth.driver_features`) by mean |SHAP|;
* realistic world: each latent driver's proxy feature group (feature-name patterns in the truth
  file's `proxy_feature_groups`, documented in simulation.json) is ranked by mean |SHAP| summed
  within the group; every feature in no group counts as a group of its own.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

from models.evaluation.importance import driver_ranks, mean_abs_shap
from models.evaluation.metrics import PREDICTIONS, ResampledAUC, calibration_slope
from models.model import ChurnModel
from models.training.split import LABEL, TrainingDataError

log = logging.getLogger(__name__)


def truth_check(
    predictions: pd.DataFrame,
    rows: pd.DataFrame,
    model: ChurnModel,
    truth_path: Path | str | None,
    driver_features: dict[str, tuple[str, ...]],
    bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare with the simulator's truth; a "skipped" result when there is no truth table
    (`truth_path` None: the check is off)."""
    path = Path(truth_path) if truth_path else None
    if path is None or not path.exists():
        reason = "evaluate.truth.check is false" if path is None else f"{path} not found"
        log.info("truth check skipped: %s (only simulated data has a truth table)", reason)
        return {"skipped": True, "reason": f"{reason}; the truth check needs simulated data"}
    world, proxy_groups = truth_world(path)
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
        "world": world,
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
    scores = {name: j[col].to_numpy() for name, col in PREDICTIONS.items()}
    # clustered by customer: with several test cutoffs a customer's rows are not independent
    customers = j["customer_id"].to_numpy()
    out["ci95"] = paired_bootstrap(y, true_p, scores, bootstrap, seed, groups=customers)
    out["test_cutoffs"] = int(j["cutoff"].nunique())
    out["bootstrap"] = (
        "paired, customers resampled (a customer's rows at every test cutoff together)"
    )
    importance = mean_abs_shap(model.booster, model.model_frame(rows))
    features = rows.loc[matched.to_numpy(), [c for c in importance.index if c in rows.columns]]
    out["best_single_feature"] = best_single_feature_auc(features, y)
    out["top_features"] = [
        {"feature": f, "mean_abs_shap": float(v)} for f, v in importance.head(15).items()
    ]
    # A driver's strength: mean |hazard contribution| on the test rows. contrib_baseline is the
    # base hazard, not a driver.
    strength = {
        c.removeprefix("contrib_"): float(np.mean(np.abs(j[c])))
        for c in j.columns
        if c.startswith("contrib_") and c != "contrib_baseline" and j[c].nunique() > 1
    }
    if world != "simple":
        if "contrib_frailty" in j.columns:  # the true hazard with the frailty set to 1
            hazard = j[[c for c in j.columns if c.startswith("contrib_")]].sum(axis=1)
            without = (hazard - j["contrib_frailty"]).to_numpy()
            out["oracle_without_frailty_roc_auc"] = float(roc_auc_score(y, without))
        out.update(_latent_driver_check(importance, strength, proxy_groups))
        return out
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


def truth_world(path: Path | str) -> tuple[str, dict[str, list[str]]]:
    """The world that wrote the truth file and its proxy feature groups (simple: none)."""
    metadata = pq.read_schema(path).metadata or {}
    world = metadata.get(b"world", b"simple").decode()
    groups = json.loads(metadata.get(b"proxy_feature_groups", b"{}").decode())
    return world, groups


def paired_bootstrap(
    y: np.ndarray,
    true_p: np.ndarray,
    scores: dict[str, np.ndarray],
    n_boot: int,
    seed: int,
    level: float = 0.95,
    groups: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """Percentile intervals from the same resampled rows for every figure: each ranking's AUC,
    the oracle's, our gap to it, ours minus each baseline, our mean absolute probability error.

    `groups` (e.g. the customer of each row): whole groups are resampled, so that a customer's
    rows at several test cutoffs stay together (a cluster bootstrap); with one row per group, in
    row order, the draws are the row bootstrap's."""
    y = np.asarray(y, dtype=int)
    codes = np.arange(len(y)) if groups is None else pd.factorize(np.asarray(groups))[0]
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    resampled = {name: ResampledAUC(y, p) for name, p in scores.items()}
    resampled_oracle = ResampledAUC(y, true_p)
    abs_error = np.abs(scores["model"] - true_p)
    for _ in range(n_boot):
        picked = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        counts = picked[codes].astype(float)
        drawn = y[counts > 0]
        if drawn.min() == drawn.max():
            continue
        auc = {name: auc_of(counts) for name, auc_of in resampled.items()}
        oracle = resampled_oracle(counts)
        figures = {f"{name}_roc_auc": v for name, v in auc.items()}
        figures["oracle_roc_auc"] = oracle
        figures["auc_gap_to_oracle"] = oracle - auc["model"]
        for name, v in auc.items():
            if name != "model":
                figures[f"model_minus_{name}_roc_auc"] = auc["model"] - v
        figures["mean_abs_probability_error"] = float(np.average(abs_error, weights=counts))
        for key, value in figures.items():
            draws.setdefault(key, []).append(float(value))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))] for k, v in draws.items()}


def best_single_feature_auc(rows: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    """The highest AUC any one model feature (a column of `rows`) reaches alone: max(AUC,
    1 - AUC); a missing value ranks lowest; a categorical column is scored by its levels' churn
    rate on these rows (an optimistic bound)."""
    best: dict[str, Any] = {"feature": None, "roc_auc": None}
    skip = {"customer_id", "cutoff", LABEL}
    for name in rows.columns:
        if name in skip:
            continue
        column = rows[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
            if np.all(np.isnan(values)):
                continue
            low = np.nanmin(values) - 1.0
            values = np.where(np.isnan(values), low, values)
        else:
            levels = column.astype("string").fillna("__missing__")
            values = levels.map(pd.Series(y, index=levels.index).groupby(levels).mean()).to_numpy(
                dtype=float
            )
        if np.unique(values).size < 2:
            continue
        auc = roc_auc_score(y, values)
        auc = max(auc, 1.0 - auc)
        if best["roc_auc"] is None or auc > best["roc_auc"]:
            best = {"feature": name, "roc_auc": float(auc)}
    return best


def group_importance(
    importance: pd.Series, groups: dict[str, list[str]]
) -> tuple[pd.Series, dict[str, list[str]]]:
    """Mean |SHAP| summed per proxy group (features matched by fnmatch patterns, each feature in
    its first matching group), every unmatched feature a group of its own; largest first."""
    members: dict[str, list[str]] = {g: [] for g in groups}
    totals: dict[str, float] = {}
    for feature, value in importance.items():
        group = next(
            (g for g, pats in groups.items() if any(fnmatch.fnmatchcase(feature, p) for p in pats)),
            None,
        )
        key = f"group:{group}" if group is not None else str(feature)
        if group is not None:
            members[group].append(str(feature))
        totals[key] = totals.get(key, 0.0) + float(value)
    for g in groups:
        totals.setdefault(f"group:{g}", 0.0)
    return pd.Series(totals).sort_values(ascending=False, kind="stable"), members


def _latent_driver_check(
    importance: pd.Series, strength: dict[str, float], groups: dict[str, list[str]]
) -> dict[str, Any]:
    """Each latent driver against the rank of its proxy group (groups, not single columns)."""
    totals, members = group_importance(importance, {g: p for g, p in groups.items() if p})
    ranks = {name: i + 1 for i, name in enumerate(totals.index)}
    drivers = []
    for driver in sorted(set(strength) | set(groups), key=lambda d: -strength.get(d, 0.0)):
        observable = bool(groups.get(driver))
        key = f"group:{driver}"
        drivers.append(
            {
                "driver": driver,
                "strength_mean_abs_contrib": strength.get(driver),
                "proxy_group": groups.get(driver, []),
                "group_features": len(members.get(driver, [])),
                "group_rank": ranks.get(key) if observable else None,
                "group_mean_abs_shap": float(totals[key]) if observable else None,
                "unobserved": not observable,
            }
        )
    observable = [d for d in drivers if not d["unobserved"] and d["strength_mean_abs_contrib"]]
    strongest = observable[:3]
    return {
        "drivers": drivers,
        "driver_rank": {d["driver"]: d["group_rank"] for d in drivers},
        "top_groups": [
            {"group": g, "mean_abs_shap_sum": float(v), "rank": i + 1}
            for i, (g, v) in enumerate(totals.head(10).items())
        ],
        "strongest_3": [d["driver"] for d in strongest],
        "strongest_3_in_top_5": bool(strongest)
        and all(d["group_rank"] is not None and d["group_rank"] <= 5 for d in strongest),
        "driver_check": (
            "latent drivers with a proxy group, strongest by mean |contribution| on the test rows; "
            "groups ranked by mean |SHAP| summed within the group, unmatched features alone"
        ),
    }
