"""The SHAP driver report's figures (importance, beeswarm, dependence, groups, touchpoints),
each returned as a PNG data URI for the self-contained page (html.py)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.explain.drivers import MISSING_LEVEL, ShapResult
from pipeline.reporting.figures import figure_data_uri, pyplot

log = logging.getLogger(__name__)

RISK_UP = "#c0392b"
RISK_DOWN = "#2471a3"
NEUTRAL = "#7f8c8d"


def _direction_color(direction: str) -> str:
    if direction.startswith("higher value raises"):
        return RISK_UP
    if direction.startswith("higher value lowers"):
        return RISK_DOWN
    return NEUTRAL


def importance_figure(importance: pd.DataFrame, top: int = 20) -> Any:
    """Horizontal bars of the top features' average change in churn probability (pp), coloured
    by direction."""
    plt = pyplot()
    head = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(head) + 1.2))
    ax.barh(
        head["feature"],
        head["mean_abs_pp"],
        color=[_direction_color(d) for d in head["direction"]],
    )
    ax.set_xlabel("average change in churn probability (percentage points)")
    ax.set_title(f"Top {len(head)} churn drivers")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color=RISK_UP, label="higher value raises risk"),
            Patch(color=RISK_DOWN, label="higher value lowers risk"),
            Patch(color=NEUTRAL, label="mixed / categorical"),
        ],
        loc="lower right",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def _numeric_matrix(data: pd.DataFrame) -> pd.DataFrame:
    """Feature values as floats for colouring; categoricals become NaN (drawn grey)."""
    out = {}
    for col in data.columns:
        series = data[col]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            out[col] = series.astype("float64")
        else:
            out[col] = pd.Series(np.nan, index=data.index)
    return pd.DataFrame(out, index=data.index)


def beeswarm_figure(result: ShapResult, order: Sequence[str], max_display: int = 20) -> Any:
    """Beeswarm (shap.plots.beeswarm) of the `max_display` first features of `order`, each dot a
    customer's change in churn probability (pp) from that feature."""
    import shap

    plt = pyplot()
    keep = [result.features.index(f) for f in order[:max_display]]
    names = [result.features[j] for j in keep]
    explanation = shap.Explanation(
        values=result.pp()[:, keep],
        base_values=np.zeros(len(result.values)),
        data=_numeric_matrix(result.data[names]).to_numpy(),
        feature_names=names,
    )
    with warnings.catch_warnings():
        # categorical columns are all-NaN colour data (drawn grey); shap warns about that
        warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)
        shap.plots.beeswarm(
            explanation,
            max_display=len(names),
            order=np.arange(len(names)),
            show=False,
            plot_size=(9, 0.38 * len(names) + 1.5),
        )
    fig = plt.gcf()
    fig.axes[0].set_xlabel("change in churn probability (percentage points; right = more risk)")
    return fig


def dependence_figure(
    result: ShapResult, feature: str, description: str, max_levels: int = 15
) -> Any:
    """Change in churn probability (pp) against the feature's value; missing values and
    categorical levels shown apart."""
    plt = pyplot()
    j = result.features.index(feature)
    shap_values = result.pp()[:, j]
    values = result.data[feature]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    numeric = pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(
        values.dtype
    )
    if numeric:
        x = values.astype("float64").to_numpy()
        present = ~np.isnan(x)
        ax.scatter(x[present], shap_values[present], s=6, alpha=0.35, color=RISK_DOWN, lw=0)
        if (~present).any() and present.any():
            _missing_column(ax, x[present], shap_values[~present])
        ax.set_xlabel(feature)
    else:
        levels = values.astype("object").where(values.notna(), MISSING_LEVEL).astype(str)
        counts = levels.value_counts().head(max_levels)
        order = (
            pd.Series(shap_values, index=levels.index)[levels.isin(counts.index)]
            .groupby(levels)
            .mean()
            .sort_values(ascending=False)
            .index
        )
        rng = np.random.default_rng(0)
        for i, level in enumerate(order):
            ys = shap_values[(levels == level).to_numpy()]
            ax.scatter(i + rng.uniform(-0.25, 0.25, len(ys)), ys, s=6, alpha=0.35, lw=0)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(f"{feature} (levels by mean change)")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("change in churn probability (pp)")
    ax.set_title(_wrap(description, 70), fontsize=9)
    fig.tight_layout()
    return fig


def _missing_column(ax: Any, present: np.ndarray, shap_missing: np.ndarray) -> None:
    """Customers without a value, drawn left of the axis range under a "missing (n)" tick."""
    lo, hi = float(present.min()), float(present.max())
    span = hi - lo if hi > lo else 1.0
    pos = lo - 0.15 * span
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(shap_missing)) * span
    ax.scatter(pos + jitter, shap_missing, s=6, alpha=0.35, color=NEUTRAL, lw=0)
    ax.axvline(lo - 0.075 * span, color=NEUTRAL, lw=0.6)
    ticks = [tick for tick in ax.get_xticks() if lo - 0.01 * span <= tick <= hi + 0.01 * span]
    ax.set_xticks([pos, *ticks])
    ax.set_xticklabels(
        [f"missing\n(n={len(shap_missing):,})", *(f"{tick:g}" for tick in ticks)], fontsize=8
    )
    ax.set_xlim(pos - 0.06 * span, hi + 0.05 * span)


def _wrap(text: str, width: int) -> str:
    """Plot-safe title: without "(e.g. ...)" examples (often CJK, missing from the plot font)."""
    import re
    import textwrap

    text = re.sub(r"\s*\(e\.g\..*?\)", "", text)
    text = "".join(ch for ch in text if ord(ch) < 0x2E80)  # CJK and Hangul have no glyphs
    return "\n".join(textwrap.wrap(text, width)) or text


def share_bar_figure(frame: pd.DataFrame, key: str, title: str) -> Any:
    """Bars of each row's share of the total average change in pp (groups or churn types)."""
    plt = pyplot()
    data = frame.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(data) + 1.2))
    ax.barh(data[key].astype(str), data["share"] * 100, color=RISK_DOWN)
    for y, v in enumerate(data["share"] * 100):
        ax.text(v, y, f" {v:.0f}%", va="center", fontsize=8)
    ax.set_xlabel("share of the total average change in churn probability (%)")
    ax.set_title(title)
    ax.set_xlim(0, max(5.0, float((data["share"] * 100).max()) * 1.15))
    fig.tight_layout()
    return fig


def touchpoint_figure(table: pd.DataFrame) -> Any:
    """Importance-performance grid: x = how customers rate a touchpoint, y = how much it matters."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    rated = table[table["performance"].notna()]
    imp_mid = table.attrs.get("importance_mid", float(table["importance"].mean()))
    perf_mid = table.attrs.get("performance_mid", float(rated["performance"].mean()))
    ax.scatter(rated["performance"], rated["importance"], s=80, color=RISK_UP, zorder=3)
    for _, row in rated.iterrows():
        ax.annotate(
            row["touchpoint"],
            (row["performance"], row["importance"]),
            xytext=(6, 4),
            textcoords="offset points",
            fontsize=9,
        )
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    pad_x, pad_y = (x1 - x0) * 0.15, (y1 - y0) * 0.15
    x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y
    y0 = max(y0, -0.06 * y1)  # importance is >= 0: keep the axis from reaching far below 0
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axvspan(x0, perf_mid, ymin=(imp_mid - y0) / (y1 - y0), color=RISK_UP, alpha=0.07, lw=0)
    ax.axvline(perf_mid, color="grey", ls="--", lw=0.8)
    ax.axhline(imp_mid, color="grey", ls="--", lw=0.8)
    corners = [
        (0.02, 0.98, "FIX FIRST: matters, rated low", "left", "top"),
        (0.98, 0.98, "KEEP IT UP: matters, rated well", "right", "top"),
        (0.02, 0.02, "LOWER PRIORITY", "left", "bottom"),
        (0.98, 0.02, "MAINTAIN", "right", "bottom"),
    ]
    for x, y, text, ha, va in corners:
        ax.text(x, y, text, ha=ha, va=va, fontsize=8, color=NEUTRAL, transform=ax.transAxes)
    ax.set_xlabel("performance: mean CSAT of rated customers")
    ax.set_ylabel("importance: average change (pp) from its CSAT features")
    ax.set_title("Touchpoints: importance vs performance")
    fig.tight_layout()
    return fig


def has_ratings(touchpoints: pd.DataFrame) -> bool:
    """True when at least one touchpoint has rated customers (the grid has a point to show)."""
    return "performance" in touchpoints.columns and bool(touchpoints["performance"].notna().any())


def draw_figures(
    result: ShapResult,
    importance: pd.DataFrame,
    groups: pd.DataFrame,
    churn_types: pd.DataFrame,
    touchpoints: pd.DataFrame,
    beeswarm_features: int = 20,
    dependence_top_n: int = 6,
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Every chart of the report as data URIs, and the (feature, description, URI) dependence
    plots of the `dependence_top_n` strongest drivers."""
    order = list(importance["feature"])
    images = {
        "importance": figure_data_uri(importance_figure(importance)),
        "beeswarm": figure_data_uri(beeswarm_figure(result, order, beeswarm_features)),
        "groups": figure_data_uri(share_bar_figure(groups, "group", "Impact by feature group")),
        "churn_types": figure_data_uri(
            share_bar_figure(churn_types, "churn_type", "Impact by churn type")
        ),
    }
    if has_ratings(touchpoints):
        images["touchpoints"] = figure_data_uri(touchpoint_figure(touchpoints))
    top = importance.head(dependence_top_n)
    dependence = [
        (feature, description, figure_data_uri(dependence_figure(result, feature, description)))
        for feature, description in zip(top["feature"], top["description"], strict=True)
    ]
    return images, dependence
