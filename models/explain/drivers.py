"""SHAP driver analysis for analysts: sampling, importance, groups, segments, touchpoints.

Plain functions on DataFrames and arrays; `pipeline/explain.py` reads the files and
pipeline/reporting/ draws and renders. SHAP values are on the booster's raw (log-odds) scale:
a positive value raises the churn risk of that customer, a negative one lowers it.

For people the report speaks probability, not log-odds. A feature's effect on customer i, in
percentage points (pp), is the change in the customer's (calibrated) churn probability that its
SHAP push causes: ``100 x (P(f_i) - P(f_i - phi_ij))`` with ``f_i`` the raw score (bias + every
SHAP value) and ``P`` the model's raw-score-to-probability map (`probability_effects`). The
importance of a feature is the mean over customers of the absolute effect (mean |pp|); its net
effect the mean of the signed one. Unlike SHAP values, effects in pp do not add up exactly to the
customer's probability (the map is not linear), but they say what a reader can use: "without
this, the customer's churn probability would be 3 pp lower".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import norm

from features.catalog import GROUP_CHURN_TYPE
from models.explain import treeshap
from models.segments import Folding, fold_levels
from models.settings import ExplainParams
from models.training.split import TrainingDataError

log = logging.getLogger(__name__)

NOT_IN_CATALOG = "not in catalog"
MISSING_LEVEL = "(missing)"
RAISES = "higher value raises risk"
LOWERS = "higher value lowers risk"
MIXED = "mixed (no single direction)"

ContribFn = Callable[[lgb.Booster, pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class ShapResult:
    """SHAP values of sampled rows: one column per booster feature, plus the model's inputs."""

    values: np.ndarray  # (n_rows, n_features), log-odds
    base_value: float  # expected raw score (the pred_contrib bias)
    features: list[str]  # booster.feature_name() order
    data: pd.DataFrame  # the booster's input rows (model_frame), same row order as `values`
    # effects in percentage points of churn probability (`probability_effects`); None: computed
    # on the uncalibrated scale (sigmoid of the raw score) when asked for
    effects: np.ndarray | None = None

    def frame(self) -> pd.DataFrame:
        """SHAP values as a DataFrame with the feature names as columns."""
        return pd.DataFrame(self.values, columns=self.features, index=self.data.index)

    def pp(self) -> np.ndarray:
        """Each feature's effect on each customer's churn probability, in percentage points."""
        if self.effects is not None:
            return self.effects
        return probability_effects(self.values, self.base_value, sigmoid)


def sigmoid(raw: np.ndarray) -> np.ndarray:
    """The booster's raw score (log-odds) as an uncalibrated probability."""
    return 1.0 / (1.0 + np.exp(-np.asarray(raw, dtype=float)))


def probability_effects(
    values: np.ndarray, base_value: float, to_probability: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Effect of each feature on each customer's churn probability, in percentage points:
    100 x (P(f_i) - P(f_i - phi_ij)), f_i = base_value + sum_j phi_ij (the raw score) and
    `to_probability` the model's map from raw score to (calibrated) probability."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.zeros_like(values)
    raw = base_value + values.sum(axis=1)
    with_all = np.asarray(to_probability(raw), dtype=float)
    without = np.asarray(to_probability((raw[:, None] - values).ravel()), dtype=float)
    return 100.0 * (with_all[:, None] - without.reshape(values.shape))


def stratified_sample(frame: pd.DataFrame, label: str, size: int, seed: int) -> pd.DataFrame:
    """At most `size` rows keeping each label's share exactly (largest remainder), original order.

    Proportional allocation keeps the mean |SHAP| of the sample an unbiased picture of the
    whole test table; every label present keeps at least one row.
    """
    if label not in frame.columns:
        raise TrainingDataError(
            f"stratified sample: column {label!r} not found (columns: {list(frame.columns)[:10]})"
        )
    if size <= 0:
        raise TrainingDataError(f"explain.sample_size must be positive, found {size}")
    if len(frame) <= size:
        return frame.copy()
    counts = frame[label].value_counts(dropna=False).sort_index()
    exact = counts.to_numpy() / counts.sum() * size
    take = np.maximum(np.floor(exact).astype(int), 1)
    remainder = size - int(take.sum())
    if remainder > 0:
        take[np.argsort(-(exact - np.floor(exact)), kind="mergesort")[:remainder]] += 1
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for value, n in zip(counts.index, take, strict=True):
        positions = np.flatnonzero((frame[label] == value).to_numpy())
        chosen.append(rng.choice(positions, size=min(int(n), len(positions)), replace=False))
    return frame.iloc[np.sort(np.concatenate(chosen))].copy()


def shap_values(
    booster: lgb.Booster, x: pd.DataFrame, contributions: ContribFn = treeshap.contributions
) -> ShapResult:
    """SHAP values of the booster's input rows `x` (its `model_frame`), checked for layout."""
    features = list(booster.feature_name())
    contrib = np.asarray(contributions(booster, x), dtype=np.float64)
    expected = (len(x), len(features) + 1)
    if contrib.shape != expected:
        raise ValueError(
            f"SHAP contributions have shape {contrib.shape}, expected {expected} (rows, "
            "features + bias) in LightGBM's pred_contrib layout; check models/explain/treeshap.py"
        )
    bias = contrib[:, -1]
    return ShapResult(
        values=contrib[:, :-1],
        base_value=float(bias.mean()) if len(bias) else 0.0,
        features=features,
        data=x,
    )


def catalog_frame(
    entries: Iterable[dict[str, Any]], source: str = "feature catalog"
) -> pd.DataFrame:
    """The catalog as a frame indexed by feature name: group, description, churn_type."""
    entries = list(entries)
    bad = [e for e in entries if not isinstance(e, dict) or not {"name", "group"} <= set(e)]
    if bad:
        raise TrainingDataError(
            f"{source}: every entry needs 'name', 'group' and 'description'; found {bad[0]!r}. "
            "Re-run `churn featurize` to rewrite the catalog."
        )
    frame = pd.DataFrame(
        [
            {
                "feature": str(e["name"]),
                "group": str(e["group"]),
                "description": str(e.get("description") or e["name"]),
            }
            for e in entries
        ],
        columns=["feature", "group", "description"],
    ).drop_duplicates("feature", keep="last")
    frame["churn_type"] = frame["group"].map(GROUP_CHURN_TYPE).fillna("other")
    return frame.set_index("feature")


def _is_numeric(series: pd.Series) -> bool:
    return bool(
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
    )


def spearman(values: pd.Series, shap: np.ndarray, min_rows: int = 10) -> float:
    """Rank correlation of a numeric feature's value with its SHAP value (NaN values ignored)."""
    x = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    keep = ~np.isnan(x)
    if keep.sum() < min_rows:
        return float("nan")
    rx = pd.Series(x[keep]).rank().to_numpy()
    ry = pd.Series(shap[keep]).rank().to_numpy()
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def direction_label(corr: float, min_abs_corr: float) -> str:
    """Plain words for the sign of the value/SHAP correlation."""
    if np.isnan(corr) or abs(corr) < min_abs_corr:
        return MIXED
    return RAISES if corr > 0 else LOWERS


def level_effects(values: pd.Series, shap: np.ndarray, min_rows: int = 1) -> pd.DataFrame:
    """Mean SHAP per level of a categorical feature (missing as its own level), riskiest first."""
    levels = values.astype("object").where(values.notna(), MISSING_LEVEL).astype(str)
    frame = pd.DataFrame({"level": levels.to_numpy(), "shap": shap})
    out = frame.groupby("level", sort=False)["shap"].agg(mean_shap="mean", rows="size")
    out = out[out["rows"] >= min_rows]
    return out.sort_values("mean_shap", ascending=False).reset_index()


def global_importance(
    result: ShapResult, catalog: pd.DataFrame, min_abs_corr: float = 0.1
) -> pd.DataFrame:
    """One row per feature, most important first: mean |SHAP|, share, direction, description."""
    n_features = len(result.features)
    mean_abs_shap = (
        np.abs(result.values).mean(axis=0) if len(result.values) else np.zeros(n_features)
    )
    pp = result.pp()
    mean_abs = np.abs(pp).mean(axis=0) if len(pp) else np.zeros(n_features)
    mean_pp = pp.mean(axis=0) if len(pp) else np.zeros(n_features)
    total = float(mean_abs.sum())
    rows = []
    missing = [f for f in result.features if f not in catalog.index]
    if missing:
        log.warning(
            "%d model feature(s) have no catalog entry (e.g. %s); shown with their column name",
            len(missing),
            missing[0],
        )
    for j, feature in enumerate(result.features):
        column = result.data[feature]
        shap = result.values[:, j]
        info = catalog.loc[feature] if feature in catalog.index else None
        entry: dict[str, Any] = {
            "feature": feature,
            "description": info["description"] if info is not None else feature,
            "group": info["group"] if info is not None else NOT_IN_CATALOG,
            "churn_type": info["churn_type"] if info is not None else "other",
            "mean_abs_pp": float(mean_abs[j]),
            "mean_pp": float(mean_pp[j]),
            "share": float(mean_abs[j] / total) if total > 0 else 0.0,
            "mean_abs_shap": float(mean_abs_shap[j]),
            "mean_shap": float(shap.mean()) if len(shap) else 0.0,
            "missing_share": float(column.isna().mean()) if len(column) else 0.0,
        }
        if _is_numeric(column):
            corr = spearman(column, shap)
            entry.update(
                kind="numeric",
                direction_corr=corr,
                direction=direction_label(corr, min_abs_corr),
                riskiest_level=None,
            )
        else:
            effects = level_effects(column, shap)
            riskiest = effects["level"].iloc[0] if len(effects) else None
            entry.update(
                kind="categorical",
                direction_corr=float("nan"),
                direction=f"depends on the level; riskiest: {riskiest}",
                riskiest_level=riskiest,
            )
        rows.append(entry)
    frame = pd.DataFrame(rows)
    frame = frame.sort_values("mean_abs_pp", ascending=False, kind="mergesort")
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def _sum_by(importance: pd.DataFrame, key: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    grouped = importance.groupby(key, sort=False)
    out = grouped.agg(
        mean_abs_pp=("mean_abs_pp", "sum"),
        mean_abs_shap=("mean_abs_shap", "sum"),
        features=("feature", "size"),
        top_feature=("feature", "first"),  # importance is sorted: first = strongest
        top_feature_description=("description", "first"),
        **{c: (c, "first") for c in extra},
    )
    total = float(importance["mean_abs_pp"].sum())
    out.insert(1, "share", out["mean_abs_pp"] / total if total > 0 else 0.0)
    return out.sort_values("mean_abs_pp", ascending=False, kind="mergesort").reset_index()


def group_importance(importance: pd.DataFrame) -> pd.DataFrame:
    """Sum of mean |pp| (and |SHAP|) per feature group, its churn type and strongest feature."""
    return _sum_by(importance, "group", extra=("churn_type",))


def churn_type_importance(importance: pd.DataFrame) -> pd.DataFrame:
    """Sum of mean |pp| per churn type (dissatisfaction, economic, disengagement, other)."""
    out = _sum_by(importance, "churn_type")
    groups = importance.groupby("churn_type")["group"].agg(lambda g: ", ".join(sorted(set(g))))
    out["groups"] = out["churn_type"].map(groups)
    return out


SEGMENT_COLUMNS = [
    "segment",
    "level",
    "kind",
    "customers",
    "sampled",
    "churners",
    "churn_rate",
    "mean_probability",
    "value_at_risk",
    "rank",
    "feature",
    "description",
    "mean_abs_pp",
    "share_in_segment",
    "mean_pp",
    "overall_mean_pp",
    "difference_pp",
    "difference_se",
    "overall_rank",
    "mean_abs_shap",
    "mean_shap",
]
DRIVER = "driver"  # kind: the segment's strongest drivers (mean |pp| within the segment)
APART = "apart"  # kind: what sets the segment apart (its net effect minus the overall one)


def _level_labels(values: pd.Series) -> pd.Series:
    return values.astype("object").where(values.notna(), MISSING_LEVEL).astype(str)


def segment_drivers(
    result: ShapResult,
    rows: pd.DataFrame,
    segment_columns: Sequence[str],
    catalog: pd.DataFrame,
    label: str = "churned",
    top_k: int = 3,
    max_levels: int = 12,
    min_rows: int = 30,
    population: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """For each level of each segment column: its `top_k` drivers by mean |pp| within the level
    (kind "driver"), and the `top_k` features that set it apart (kind "apart": the largest
    |mean pp in the level - mean pp over every sampled customer|; these add up to about the gap
    between the level's mean predicted risk and everyone's, so they say why the level is riskier
    or safer than average, where the drivers of every level are often the same).
    `difference_se` is the standard error of the level's mean pp (sampling noise): a difference
    within two of them is not told apart from chance.

    `rows` are the sampled rows (same order as the SHAP values). `population` (every test row:
    segment columns, the label, optionally churn_probability and value_at_risk) gives the level's
    customers, churn rate and value at risk; without it they come from the sample. Beyond the
    `max_levels` largest levels (of the population) the levels are grouped as "(other)"
    (models/segments.py); levels with fewer than `min_rows` sampled customers are left out (too
    noisy). Returns the long table and notes about columns missing, levels grouped and levels
    left out, in plain words.
    """
    if len(rows) != len(result.values):
        raise ValueError(f"segment rows ({len(rows)}) and SHAP rows ({len(result.values)}) differ")
    base = rows if population is None else population
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    pp = result.pp()
    abs_pp = np.abs(pp)
    overall_pp = pp.mean(axis=0) if len(pp) else np.zeros(len(result.features))
    overall_order = np.argsort(-abs_pp.mean(axis=0), kind="mergesort") if len(pp) else []
    overall_rank = {result.features[j]: r for r, j in enumerate(overall_order, start=1)}
    for column in segment_columns:
        if column not in rows.columns or column not in base.columns:
            note = (
                f"segment column {column!r} is not in the model table (absent from customers, or "
                "text with more than featurize.max_categories values, which is not a feature); "
                "skipped"
            )
            log.warning(note)
            notes.append(note)
            continue
        base_levels = _level_labels(base[column])
        folding: Folding = fold_levels(column, base_levels.value_counts(), max_levels)
        if folding.folded:
            notes.append(folding.note())
        base_levels = folding.apply(base_levels).to_numpy()
        levels = folding.apply(_level_labels(rows[column])).to_numpy()
        counts = pd.Series(base_levels).value_counts()
        sampled = pd.Series(levels).value_counts().reindex(counts.index, fill_value=0)
        kept = sampled[sampled >= min_rows]
        if len(kept) < len(counts):
            small = sorted(str(level) for level in counts.index.difference(kept.index))
            notes.append(
                f"{column}: {len(small)} of {len(counts)} levels not shown (fewer than "
                f"{min_rows} sampled customers): {', '.join(small)}"
            )
        for level in counts.index[counts.index.isin(kept.index)]:
            mask = levels == level
            in_base = base.loc[base_levels == level]
            churners = int(in_base[label].sum()) if label in in_base.columns else None
            customers = int(len(in_base))
            level_info = {
                "segment": column,
                "level": level,
                "customers": customers,
                "sampled": int(kept[level]),
                "churners": churners,
                "churn_rate": churners / customers if churners is not None else float("nan"),
                "mean_probability": _mean_of(in_base, "churn_probability"),
                "value_at_risk": _sum_of(in_base, "value_at_risk"),
            }
            seg_abs = abs_pp[mask].mean(axis=0)
            seg_signed = pp[mask].mean(axis=0)
            # sampling noise of the level's mean effect (its standard error)
            seg_se = (
                pp[mask].std(axis=0, ddof=1) / np.sqrt(mask.sum())
                if mask.sum() > 1
                else np.full(len(result.features), np.nan)
            )
            seg_shap = result.values[mask]
            total = float(seg_abs.sum())
            difference = seg_signed - overall_pp
            rankings = (
                (DRIVER, np.argsort(-seg_abs, kind="mergesort")[:top_k]),
                (APART, np.argsort(-np.abs(difference), kind="mergesort")[:top_k]),
            )
            for kind, order in rankings:
                for rank, j in enumerate(order, start=1):
                    feature = result.features[j]
                    records.append(
                        {
                            **level_info,
                            "kind": kind,
                            "rank": rank,
                            "feature": feature,
                            "description": catalog["description"].get(feature, feature),
                            "mean_abs_pp": float(seg_abs[j]),
                            "share_in_segment": float(seg_abs[j] / total) if total > 0 else 0.0,
                            "mean_pp": float(seg_signed[j]),
                            "overall_mean_pp": float(overall_pp[j]),
                            "difference_pp": float(difference[j]),
                            "difference_se": float(seg_se[j]),
                            "overall_rank": overall_rank.get(feature),
                            "mean_abs_shap": float(np.abs(seg_shap[:, j]).mean()),
                            "mean_shap": float(seg_shap[:, j].mean()),
                        }
                    )
    return pd.DataFrame(records, columns=SEGMENT_COLUMNS), notes


def _mean_of(frame: pd.DataFrame, column: str) -> float:
    if column not in frame.columns or not len(frame):
        return float("nan")
    return float(pd.to_numeric(frame[column], errors="coerce").mean())


def _sum_of(frame: pd.DataFrame, column: str) -> float:
    if column not in frame.columns:
        return float("nan")
    values = pd.to_numeric(frame[column], errors="coerce")
    return float(values.sum()) if values.notna().any() else float("nan")


def value_at_risk_added(
    result: ShapResult, clv: np.ndarray | None, population_rows: int
) -> pd.Series:
    """Money at risk each feature adds, by feature: the sum over customers of CLV x the churn
    probability it adds where it raises the risk (its positive effects in pp / 100), from the
    sample scaled to the `population_rows` test customers. Empty (NaN) without CLV."""
    if clv is None or len(result.values) == 0 or not np.isfinite(clv).any():
        return pd.Series(np.nan, index=result.features, dtype=float)
    raised = np.clip(result.pp(), 0.0, None) / 100.0
    per_feature = np.nansum(raised * np.asarray(clv, dtype=float)[:, None], axis=0)
    return pd.Series(per_feature * population_rows / len(result.values), index=result.features)


NO_REASON = "(no feature raises the risk)"


def top_reason_money(
    result: ShapResult,
    sample_value_at_risk: np.ndarray,
    total_value_at_risk: float,
    test_rows: int,
    catalog: pd.DataFrame,
) -> pd.DataFrame:
    """Money at risk by each sampled customer's top reason (the feature with the largest positive
    effect in pp, as in the scores' reason_1): sampled customers, their share of the sample's
    value at risk, and the estimate for the whole test cutoff = that share x the total value at
    risk of every test row (the sample is a label-stratified random sample). Largest first."""
    pp = result.pp()
    risk = np.asarray(sample_value_at_risk, dtype=float)
    if len(pp) == 0:
        return pd.DataFrame(
            columns=["feature", "description", "customers", "estimated_customers",
                     "mean_pp", "share_of_value_at_risk", "value_at_risk"]
        )  # fmt: skip
    best = np.argmax(pp, axis=1)
    raises = pp[np.arange(len(pp)), best] > 0
    reason = np.where(raises, np.asarray(result.features, dtype=object)[best], NO_REASON)
    top_pp = np.where(raises, pp[np.arange(len(pp)), best], 0.0)
    frame = pd.DataFrame({"feature": reason, "pp": top_pp, "risk": risk})
    grouped = frame.groupby("feature", sort=False).agg(
        customers=("pp", "size"), mean_pp=("pp", "mean"), risk=("risk", "sum")
    )
    known = float(np.nansum(risk))
    grouped["share_of_value_at_risk"] = grouped["risk"] / known if known > 0 else np.nan
    grouped["value_at_risk"] = grouped["share_of_value_at_risk"] * total_value_at_risk
    grouped["estimated_customers"] = grouped["customers"] / len(pp) * test_rows
    grouped = grouped.reset_index()
    grouped.insert(
        1,
        "description",
        [catalog["description"].get(f, f) if f != NO_REASON else f for f in grouped["feature"]],
    )
    order = "value_at_risk" if grouped["value_at_risk"].notna().any() else "customers"
    return (
        grouped.drop(columns="risk")
        .sort_values(order, ascending=False, kind="mergesort")
        .reset_index(drop=True)[
            ["feature", "description", "customers", "estimated_customers", "mean_pp",
             "share_of_value_at_risk", "value_at_risk"]
        ]
    )  # fmt: skip


def touchpoint_features(
    features: Iterable[str], touchpoints: Sequence[str]
) -> dict[str, list[str]]:
    """Features named csat_<touchpoint>_*, per touchpoint (the longest matching name wins)."""
    by_length = sorted(touchpoints, key=len, reverse=True)
    out: dict[str, list[str]] = {tp: [] for tp in touchpoints}
    for feature in features:
        for tp in by_length:
            if feature.startswith(f"csat_{tp}_"):
                out[tp].append(feature)
                break
    return out


def _quadrant(importance: float, performance: float, imp_mid: float, perf_mid: float) -> str:
    if np.isnan(performance):
        return "no ratings"
    high = importance >= imp_mid
    good = performance >= perf_mid
    if high and not good:
        return "fix first (matters, rated low)"
    if high and good:
        return "keep it up (matters, rated well)"
    if not high and not good:
        return "lower priority (matters less, rated low)"
    return "maintain (matters less, rated well)"


def touchpoint_analysis(
    importance: pd.DataFrame,
    rows: pd.DataFrame,
    touchpoints: Sequence[str],
    performance_suffix: str = "mean_90d",
    satisfied_min: float = 8.0,
) -> pd.DataFrame:
    """Importance-performance analysis: for each touchpoint, how much its CSAT features move
    churn (sum of their mean |pp|, or mean |SHAP| for a table without pp) against how customers
    rate it.

    Performance is the mean of `csat_<tp>_<performance_suffix>` over the customers with a rating;
    `pct_satisfied` is the share of them whose latest rating (`csat_<tp>_last`) is at least
    `satisfied_min` (top boxes, as in the CSAT KPI). Quadrant cut points are the means across
    touchpoints, as in the classic importance-performance grid.
    """
    by_tp = touchpoint_features(importance["feature"], touchpoints)
    impact = "mean_abs_pp" if "mean_abs_pp" in importance.columns else "mean_abs_shap"
    mean_abs = importance.set_index("feature")[impact]
    total = float(mean_abs.sum())
    records = []
    for tp in touchpoints:
        feats = by_tp[tp]
        imp = float(mean_abs[feats].sum()) if feats else 0.0
        perf_col = f"csat_{tp}_{performance_suffix}"
        last_col = f"csat_{tp}_last"
        perf = rows[perf_col].astype("float64") if perf_col in rows.columns else None
        last = rows[last_col].astype("float64") if last_col in rows.columns else None
        rated = perf.notna() if perf is not None else pd.Series(False, index=rows.index)
        records.append(
            {
                "touchpoint": tp,
                "features": len(feats),
                "importance": imp,
                "importance_share": imp / total if total > 0 else 0.0,
                "performance": float(perf[rated].mean()) if rated.any() else float("nan"),
                "performance_column": perf_col if perf is not None else None,
                "customers_rated": int(rated.sum()),
                "pct_rated": float(rated.mean()) if len(rated) else 0.0,
                "pct_satisfied": float((last[last.notna()] >= satisfied_min).mean())
                if last is not None and last.notna().any()
                else float("nan"),
                "top_feature": max(feats, key=lambda f: mean_abs[f]) if feats else None,
            }
        )
    frame = pd.DataFrame(records)
    if frame.empty:
        return frame
    if (frame["features"] == 0).all():
        log.info("no csat_<touchpoint>_* features in the model for %s", list(touchpoints))
    imp_mid = float(frame["importance"].mean())
    perf_mid = float(frame["performance"].mean()) if frame["performance"].notna().any() else 0.0
    frame["quadrant"] = [
        _quadrant(i, p, imp_mid, perf_mid)
        for i, p in zip(frame["importance"], frame["performance"], strict=True)
    ]
    frame.attrs.update(importance_mid=imp_mid, performance_mid=perf_mid)
    return frame.sort_values("importance", ascending=False, kind="mergesort").reset_index(drop=True)


def rating_band(score: pd.Series, low_below: float = 5.0, high_from: float = 8.0) -> pd.Series:
    """Each row's rating band: no rating, low (< `low_below`), neutral, high (>= `high_from`)."""
    value = pd.to_numeric(score, errors="coerce")
    names = rating_band_names(low_below, high_from)
    band = np.select(
        [value.isna(), value < low_below, value < high_from], names[:3], default=names[3]
    )
    return pd.Series(band, index=score.index, name="band")


def rating_band_names(low_below: float = 5.0, high_from: float = 8.0) -> list[str]:
    """The bands' names, in the report's order."""
    return [
        "no rating",
        f"low (below {low_below:g})",
        f"neutral ({low_below:g} to below {high_from:g})",
        f"high ({high_from:g} and above)",
    ]


def clustered_rate_difference(
    y: np.ndarray, first: np.ndarray, second: np.ndarray, cluster: np.ndarray, level: float = 0.95
) -> dict[str, float]:
    """Churn rate of the `first` rows minus the `second` rows', with a normal interval whose
    variance counts each `cluster` (customer) once: rows of one customer at several cutoffs are
    not independent. With every row its own cluster it is the usual two-proportion interval."""
    y = np.asarray(y, dtype=float)
    n1, n2 = int(first.sum()), int(second.sum())
    p1, p2 = float(y[first].mean()), float(y[second].mean())
    # each row's influence on the difference, summed per customer
    influence = np.where(first, (y - p1) / n1, 0.0) - np.where(second, (y - p2) / n2, 0.0)
    per_cluster = pd.Series(influence).groupby(np.asarray(cluster)).sum().to_numpy()
    z = float(norm.ppf((1.0 + level) / 2.0))
    half = z * float(np.sqrt(np.sum(per_cluster**2)))
    diff = p1 - p2
    return {"difference": diff, "low": diff - half, "high": diff + half, "rate_first": p1,
            "rate_second": p2, "rows_first": n1, "rows_second": n2}  # fmt: skip


def rating_bands(
    rows: pd.DataFrame,
    label: str,
    probability: np.ndarray | None = None,
    column: str = "csat_mean_90d",
    low_below: float = 5.0,
    high_from: float = 8.0,
    history: pd.DataFrame | None = None,
    rating_effect: pd.Series | None = None,
) -> pd.DataFrame:
    """Churn by band of the customers' recent rating: does a neutral rating precede leaving?

    One row per band (`rating_band`). Test cutoff (`rows`, every test customer, not the SHAP
    sample): customers, churned, churn rate, the model's mean `probability` (one per row; out of
    time). `rating_effect` (a value per SHAP-sample row, indexed like `rows`): the mean effect in
    pp of the model's survey features on those customers' probability, by band. `history` (every
    labelled row of the model table, all cutoffs, with customer_id): the realised churn pooled over
    the cutoffs, a description of the past that feeds nothing (no leakage), large enough to tell
    the bands apart where one cutoff is not. ``attrs["neutral_minus_high"]``: the difference of the
    neutral and high bands' churn (pooled when `history` is given) with its customer-clustered
    95 % interval (`clustered_rate_difference`); ``attrs["cutoffs"]``: how many cutoffs it pools.

    Empty when `column` is not in `rows` (a business without surveys).
    """
    if column not in rows.columns or label not in rows.columns:
        return pd.DataFrame()
    names = rating_band_names(low_below, high_from)
    band = rating_band(rows[column], low_below, high_from)
    frame = pd.DataFrame({"band": names, "column": column}).set_index("band", drop=False)
    grouped = rows[label].groupby(band)
    frame["customers"] = grouped.size().reindex(names, fill_value=0)
    frame["churned"] = grouped.sum().reindex(names, fill_value=0).astype(int)
    frame["churn_rate"] = frame["churned"] / frame["customers"].where(frame["customers"] > 0)
    frame["mean_probability"] = (
        pd.Series(np.asarray(probability, dtype=float), index=rows.index).groupby(band).mean()
        if probability is not None
        else pd.Series(dtype=float)
    ).reindex(names)
    if rating_effect is not None:
        by_band = rating_effect.groupby(band.loc[rating_effect.index])
        frame["sample_customers"] = by_band.size().reindex(names, fill_value=0)
        frame["rating_effect_pp"] = by_band.mean().reindex(names)
    pooled = rows.assign(_band=band)
    cutoffs = rows["cutoff"].nunique() if "cutoff" in rows.columns else 1
    if history is not None and column in history.columns:
        labelled = history[history[label].notna()]
        hist_band = rating_band(labelled[column], low_below, high_from)
        counts = labelled.groupby(hist_band)
        frame["rows_all_cutoffs"] = counts.size().reindex(names, fill_value=0)
        frame["customers_all_cutoffs"] = (
            counts["customer_id"].nunique().reindex(names, fill_value=0)
        )
        frame["churn_rate_all_cutoffs"] = counts[label].mean().reindex(names)
        pooled = labelled.assign(_band=hist_band)
        cutoffs = labelled["cutoff"].nunique()
    frame = frame.reset_index(drop=True)
    neutral, high = pooled["_band"] == names[2], pooled["_band"] == names[3]
    if neutral.any() and high.any():
        cluster = pooled["customer_id"] if "customer_id" in pooled.columns else pooled.index
        frame.attrs["neutral_minus_high"] = clustered_rate_difference(
            pooled[label].to_numpy(dtype=float), neutral.to_numpy(), high.to_numpy(),
            np.asarray(cluster),
        )  # fmt: skip
        frame.attrs["cutoffs"] = int(cutoffs)
    return frame


def rating_bands_sentence(bands: pd.DataFrame) -> str:
    """What the rating bands say about neutral vs high raters, in words: the realised difference
    (pooled over every labelled cutoff when the bands were given the history) with its 95 %
    interval, so a reader sees when the data are too few to tell; the test cutoff's own figures;
    the model's probabilities and its survey features' effect by band. Empty when either band has
    no customers."""
    found = bands.attrs.get("neutral_minus_high") if not bands.empty else None
    if not found:
        return ""
    by = bands.set_index(bands["band"].str.split(" ").str[0])
    neutral, high = by.loc["neutral"], by.loc["high"]
    diff, lo, hi = (100 * found[k] for k in ("difference", "low", "high"))
    cutoffs = bands.attrs.get("cutoffs", 1)
    verdict = (
        "neutral raters left more often"
        if lo > 0
        else "high raters left more often"
        if hi < 0
        else "too few rated customers to tell them apart"
    )
    scope = (
        f"Over the {cutoffs} labelled cutoffs (each customer counted at every cutoff where active; "
        "the interval treats a customer's cutoffs as one cluster), neutral raters"
        if cutoffs > 1
        else "Neutral raters"
    )
    text = (
        f"{scope} churned at {100 * found['rate_first']:.1f} % ({found['rows_first']:,}) against "
        f"{100 * found['rate_second']:.1f} % for high raters ({found['rows_second']:,}): "
        f"{diff:+.1f} pp, 95 % interval {lo:+.1f} to {hi:+.1f} pp ({verdict})."
    )
    if cutoffs > 1:
        text += (
            f" At the test cutoff alone: {100 * neutral['churn_rate']:.1f} % of "
            f"{neutral['customers']:,} against {100 * high['churn_rate']:.1f} % of "
            f"{high['customers']:,}."
        )
    if np.isfinite(neutral["mean_probability"]) and np.isfinite(high["mean_probability"]):
        text += (
            f" The model (out of time, test cutoff) puts them at "
            f"{100 * neutral['mean_probability']:.1f} % and {100 * high['mean_probability']:.1f} %"
        )
        if (
            "rating_effect_pp" in bands.columns
            and np.isfinite([neutral["rating_effect_pp"], high["rating_effect_pp"]]).all()
        ):
            text += (
                f"; its survey features move a neutral rater's probability by "
                f"{neutral['rating_effect_pp']:+.2f} pp on average and a high rater's by "
                f"{high['rating_effect_pp']:+.2f} pp (SHAP sample)"
            )
        text += "."
    return text


def summed_effect(result: ShapResult, features: Iterable[str]) -> np.ndarray:
    """Per sampled row: the sum of the given features' effects (pp) on the churn probability."""
    wanted = set(features)
    columns = [i for i, f in enumerate(result.features) if f in wanted]
    return result.pp()[:, columns].sum(axis=1)


def driver_tables(
    result: ShapResult,
    rows: pd.DataFrame,
    catalog: pd.DataFrame,
    e: ExplainParams,
    touchpoints: Sequence[str],
    csat_satisfied_min: float,
    label: str = "churned",
    population: pd.DataFrame | None = None,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Every analysis table of the driver report (named by its CSV file) and the notes about
    skipped segments. `population`: every test row with churn_probability and value_at_risk
    (`value_at_risk`); `rows`, the sampled ones, carry their value_at_risk too when given."""
    importance = global_importance(result, catalog, e.direction_min_abs_corr)
    segments, notes = segment_drivers(
        result,
        rows,
        e.segments,
        catalog,
        label,
        e.segment_top_k,
        e.segment_max_levels,
        e.segment_min_rows,
        population,
    )
    by_touchpoint = touchpoint_analysis(
        importance, rows, touchpoints, e.touchpoint_performance, csat_satisfied_min
    )
    base = rows if population is None else population
    sample_risk = (
        rows["value_at_risk"].to_numpy(dtype=float)
        if "value_at_risk" in rows.columns
        else np.full(len(rows), np.nan)
    )
    reasons = top_reason_money(
        result, sample_risk, _sum_of(base, "value_at_risk"), len(base), catalog
    )
    by_reason = reasons.set_index("feature")
    clv = rows["clv"].to_numpy(dtype=float) if "clv" in rows.columns else None
    added = value_at_risk_added(result, clv, len(base))
    importance = importance.assign(
        value_at_risk_added=importance["feature"].map(added),
        top_reason_customers=importance["feature"].map(by_reason["estimated_customers"]),
        top_reason_value_at_risk=importance["feature"].map(by_reason["value_at_risk"]),
    )
    tables = {
        "importance.csv": importance,
        "groups.csv": group_importance(importance),
        "churn_types.csv": churn_type_importance(importance),
        "segments.csv": segments,
        "touchpoints.csv": by_touchpoint,
        "top_reasons.csv": reasons,
    }
    return tables, notes


ALERT_RULE_KEYS = ("rule", "level", "alerted", "churned", "precision", "recall", "lift")


def alerts_backtest_table(data: Any, source: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The early-warning rules' backtest (reports/alerts_backtest.json) as a table + its header."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise TrainingDataError(
            f"{source}: expected a JSON object with a 'rules' list, found "
            f"{type(data).__name__} with keys {sorted(data) if isinstance(data, dict) else '-'}. "
            "Re-run `churn alert-backtest` to rewrite it."
        )
    for i, rule in enumerate(data["rules"]):
        missing = [k for k in ALERT_RULE_KEYS if not isinstance(rule, dict) or k not in rule]
        if missing:
            raise TrainingDataError(
                f"{source}: rules[{i}] lacks {missing} (found {rule!r}); each rule needs "
                f"{list(ALERT_RULE_KEYS)}. Re-run `churn alert-backtest` to rewrite it."
            )
    table = pd.DataFrame([{k: r[k] for k in ALERT_RULE_KEYS} for r in data["rules"]])
    header = {k: data.get(k) for k in ("horizon_days", "base_rate", "cutoffs")}
    return table, header
