"""The SHAP driver report: matplotlib figures (Agg) and one self-contained HTML page.

Self-contained means it opens offline from a file: every image is a base64 PNG data URI, the
CSS is inline, there are no scripts, fonts or external links.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.explain import MISSING_LEVEL, ShapResult

log = logging.getLogger(__name__)

RISK_UP = "#c0392b"
RISK_DOWN = "#2471a3"
NEUTRAL = "#7f8c8d"


def _plt():  # noqa: ANN202
    """pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_data_uri(fig: Any, dpi: int = 100) -> str:
    """PNG bytes of a matplotlib figure as a data URI; the figure is closed."""
    plt = _plt()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _direction_color(direction: str) -> str:
    if direction.startswith("higher value raises"):
        return RISK_UP
    if direction.startswith("higher value lowers"):
        return RISK_DOWN
    return NEUTRAL


def importance_figure(importance: pd.DataFrame, top: int = 20) -> Any:
    """Horizontal bars of the top features' mean |SHAP|, coloured by direction."""
    plt = _plt()
    head = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(head) + 1.2))
    ax.barh(
        head["feature"],
        head["mean_abs_shap"],
        color=[_direction_color(d) for d in head["direction"]],
    )
    ax.set_xlabel("mean |SHAP| (average push on churn log-odds)")
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
    """SHAP beeswarm (shap.plots.beeswarm) of the `max_display` first features of `order`."""
    import shap

    plt = _plt()
    keep = [result.features.index(f) for f in order[:max_display]]
    names = [result.features[j] for j in keep]
    explanation = shap.Explanation(
        values=result.values[:, keep],
        base_values=np.full(len(result.values), result.base_value),
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
    fig.axes[0].set_xlabel("SHAP value (push on churn log-odds; right = more risk)")
    return fig


def dependence_figure(
    result: ShapResult, feature: str, description: str, max_levels: int = 15
) -> Any:
    """SHAP value against the feature's value; missing values and categorical levels shown apart."""
    plt = _plt()
    j = result.features.index(feature)
    shap_values = result.values[:, j]
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
        ax.set_xlabel(f"{feature} (levels by mean SHAP)")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("SHAP (log-odds)")
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
    """Bars of each row's share of the total mean |SHAP| (groups or churn types)."""
    plt = _plt()
    data = frame.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(data) + 1.2))
    ax.barh(data[key].astype(str), data["share"] * 100, color=RISK_DOWN)
    for y, v in enumerate(data["share"] * 100):
        ax.text(v, y, f" {v:.0f}%", va="center", fontsize=8)
    ax.set_xlabel("share of total mean |SHAP| (%)")
    ax.set_title(title)
    ax.set_xlim(0, max(5.0, float((data["share"] * 100).max()) * 1.15))
    fig.tight_layout()
    return fig


def touchpoint_figure(table: pd.DataFrame) -> Any:
    """Importance-performance grid: x = how customers rate a touchpoint, y = how much it matters."""
    plt = _plt()
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
    ax.set_ylabel("importance: sum of mean |SHAP| of its CSAT features")
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


# ---------------------------------------------------------------- HTML


@dataclass
class ReportContent:
    """Everything the HTML page shows; images are data URIs made by `figure_data_uri`."""

    header: dict[str, Any]
    importance: pd.DataFrame
    groups: pd.DataFrame
    churn_types: pd.DataFrame
    segments: pd.DataFrame
    segment_notes: list[str]
    touchpoints: pd.DataFrame
    images: dict[str, str]  # importance, beeswarm, groups, churn_types, touchpoints
    dependence: list[tuple[str, str, str]]  # (feature, description, data URI)
    alerts: pd.DataFrame | None = None
    alerts_header: dict[str, Any] = field(default_factory=dict)
    alerts_note: str = ""
    top_table: int = 30
    kpis: dict[str, Any] | None = None  # reports/kpis.json (models/kpis.py)
    kpi_images: list[tuple[str, str]] = field(default_factory=list)  # (title, data URI)
    kpis_note: str = ""
    # more sections after the standard ones: (id, title, HTML body), e.g. the leakage guard
    extra_sections: list[tuple[str, str, str]] = field(default_factory=list)


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#f6f7f9;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0 0 6px;font-size:24px}
header dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0;font-size:14px}
header dt{opacity:.75}
header dd{margin:0}
nav{padding:8px 32px;background:#e8ecf1;font-size:14px}
nav a{margin-right:14px;color:#1f3a5f}
main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border-radius:6px;padding:14px 20px;margin:16px 0;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{margin-top:4px;font-size:20px;color:#1f3a5f}
h3{font-size:15px;margin:14px 0 6px}
p.note{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px;color:#555}
img{max-width:100%;height:auto}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.grid figure{margin:0;flex:1 1 480px;max-width:580px}
figcaption{font-size:12px;color:#555}
.up{color:#c0392b}.down{color:#2471a3}
table.segments td{font-size:12px}
small{color:#666}
"""

SECTIONS: tuple[tuple[str, str], ...] = (
    ("kpis", "Churn KPIs"),
    ("importance", "Global drivers"),
    ("beeswarm", "Beeswarm"),
    ("dependence", "Top drivers in detail"),
    ("groups", "By group and churn type"),
    ("segments", "By segment"),
    ("touchpoints", "Touchpoints"),
    ("alerts", "Early-warning rules"),
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return _e(value)


def html_table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, str]]) -> str:
    """An HTML table of `frame`; columns: (column, heading, kind: ''|pct|int|num|code|direction)."""
    head = "".join(f"<th>{_e(title)}</th>" for _, title, _ in columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for col, _, kind in columns:
            value = row.get(col)
            if kind == "code":
                cells.append(f"<td><code>{_e(value)}</code></td>")
            elif kind in ("pct", "int", "num"):
                cells.append(f'<td class="num">{_fmt(value, kind)}</td>')
            elif kind == "direction":
                css = "up" if "raises" in str(value) else "down" if "lowers" in str(value) else ""
                cells.append(f'<td class="{css}">{_e(value)}</td>')
            else:
                cells.append(f"<td>{_e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _header(h: dict[str, Any]) -> str:
    items = [
        ("Model", f"{h.get('model_name')} version {h.get('model_version')}"),
        ("MLflow run", h.get("run_id")),
        ("Data as of", h.get("as_of")),
        ("Sample", h.get("sample")),
        ("Generated", h.get("generated_at")),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f"<header><h1>Why customers leave: churn drivers</h1><dl>{dl}</dl></header>"


def _importance_section(c: ReportContent) -> str:
    table = html_table(
        c.importance.head(c.top_table),
        [
            ("rank", "#", "int"),
            ("description", "What it measures", ""),
            ("feature", "Column", "code"),
            ("group", "Group", ""),
            ("churn_type", "Churn type", ""),
            ("share", "Share of impact", "pct"),
            ("mean_abs_shap", "Mean |SHAP|", "num"),
            ("direction", "Direction", "direction"),
        ],
    )
    return (
        "<p class='note'>How much each customer attribute moves the predicted churn risk on "
        "average (mean absolute SHAP value, log-odds), and in which direction. Direction is the "
        "rank correlation between a feature's value and its effect: <span class='up'>red</span> "
        "= customers with a higher value are at higher risk, <span class='down'>blue</span> = at "
        f"lower risk. The full table is in <code>importance.csv</code>.</p>"
        f"{_img(c.images['importance'], 'Top churn drivers (bar chart)')}{table}"
    )


def _direction_of(c: ReportContent, feature: str) -> str:
    found = c.importance.loc[c.importance["feature"] == feature, "direction"]
    return str(found.iloc[0]) if len(found) else ""


def _dependence_section(c: ReportContent) -> str:
    figures = "".join(
        f"<figure>{_img(uri, f'Dependence plot of {feature}')}"
        f"<figcaption><code>{_e(feature)}</code>: {_e(_direction_of(c, feature))}"
        "</figcaption></figure>"
        for feature, _description, uri in c.dependence
    )
    return (
        "<p class='note'>Each dot is a customer: the feature's value (x) against how much it "
        "pushed that customer's churn risk (y, above 0 = raises risk). Grey dots at the left are "
        f"customers with no value (e.g. never rated).</p><div class='grid'>{figures}</div>"
    )


def _groups_section(c: ReportContent) -> str:
    groups = html_table(
        c.groups,
        [
            ("group", "Group", ""),
            ("churn_type", "Churn type", ""),
            ("share", "Share of impact", "pct"),
            ("mean_abs_shap", "Sum of mean |SHAP|", "num"),
            ("features", "Features", "int"),
            ("top_feature_description", "Strongest feature", ""),
        ],
    )
    types = html_table(
        c.churn_types,
        [
            ("churn_type", "Churn type", ""),
            ("share", "Share of impact", "pct"),
            ("mean_abs_shap", "Sum of mean |SHAP|", "num"),
            ("groups", "Feature groups", ""),
            ("top_feature_description", "Strongest feature", ""),
        ],
    )
    return (
        "<p class='note'>Feature groups summed up, and mapped to churn types: experience, "
        "service and text → dissatisfaction; economic → economic; engagement → disengagement; "
        "contract and profile → other.</p><div class='grid'>"
        f"<figure>{_img(c.images['groups'], 'Importance by feature group')}</figure>"
        f"<figure>{_img(c.images['churn_types'], 'Importance by churn type')}</figure></div>"
        f"<h3>By feature group</h3>{groups}<h3>By churn type</h3>{types}"
    )


def _segments_section(c: ReportContent) -> str:
    notes = "".join(f"<li>{_e(n)}</li>" for n in c.segment_notes)
    parts = [
        "<p class='note'>The strongest drivers inside each segment: mean |SHAP| among its "
        "sampled customers, with each driver's share of the segment's total impact. "
        "<code>segments.csv</code> also has the net (signed) effect per segment.</p>"
    ]
    if c.segments.empty:
        parts.append("<p>No segment column could be analysed.</p>")
    for column, frame in c.segments.groupby("segment", sort=False):
        ranks = int(frame["rank"].max())
        rows = []
        for level, lf in frame.groupby("level", sort=False):
            first = lf.iloc[0]
            drivers = "".join(
                f"<td>{_e(r['description'])}<br><small><code>{_e(r['feature'])}</code> · "
                f"{100 * r['share_in_segment']:.0f}% of impact</small></td>"
                for _, r in lf.iterrows()
            )
            rows.append(
                f"<tr><td>{_e(level)}</td><td class='num'>{_fmt(first['customers'], 'int')}</td>"
                f"<td class='num'>{_fmt(first['churn_rate'], 'pct')}</td>{drivers}</tr>"
            )
        heads = "".join(f"<th>Driver {i}</th>" for i in range(1, ranks + 1))
        parts.append(
            f"<h3>{_e(column)}</h3><table class='segments'><thead><tr><th>Level</th>"
            f"<th>Customers</th><th>Churn rate</th>{heads}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    if notes:
        parts.append(f"<p class='note'>Notes:</p><ul class='note'>{notes}</ul>")
    return "".join(parts)


def _touchpoints_section(c: ReportContent) -> str:
    if "touchpoints" not in c.images:
        return (
            "<p>No touchpoint ratings to analyse: the model has no csat_&lt;touchpoint&gt;_* "
            "features with ratings for the touchpoints in featurize.touchpoints.</p>"
        )
    table = html_table(
        c.touchpoints,
        [
            ("touchpoint", "Touchpoint", ""),
            ("quadrant", "Quadrant", ""),
            ("importance_share", "Importance (share of impact)", "pct"),
            ("importance", "Sum of mean |SHAP|", "num"),
            ("performance", "Mean CSAT (rated)", "num"),
            ("pct_satisfied", "Satisfied (latest rating in the top boxes)", "pct"),
            ("customers_rated", "Customers rated", "int"),
            ("pct_rated", "Share rated", "pct"),
            ("top_feature", "Strongest feature", "code"),
        ],
    )
    return (
        "<p class='note'>Importance-performance analysis. Importance: how much the "
        "touchpoint's satisfaction features move churn risk. Performance: how customers rate it. "
        "Touchpoints that matter a lot but are rated low (top left) are where improvements "
        "should cut churn most. The dashed lines are the averages over touchpoints.</p>"
        f"{_img(c.images['touchpoints'], 'Touchpoint importance vs performance')}{table}"
    )


def _alerts_section(c: ReportContent) -> str:
    if c.alerts is None:
        return f"<p>{_e(c.alerts_note)}</p>"
    h = c.alerts_header
    table = html_table(
        c.alerts,
        [
            ("rule", "Rule", ""),
            ("level", "Level", ""),
            ("alerted", "Alerted", "int"),
            ("churned", "Churned", "int"),
            ("precision", "Precision", "pct"),
            ("recall", "Recall", "pct"),
            ("lift", "Lift", "num"),
        ],
    )
    cutoffs = ", ".join(str(x) for x in (h.get("cutoffs") or []))
    return (
        f"<p class='note'>Backtest of the early-warning rules: churn within "
        f"{_e(h.get('horizon_days'))} days of an alert, base rate {_fmt(h.get('base_rate'), 'pct')}"
        f"; cutoffs {_e(cutoffs)}. Lift = precision / base rate.</p>{table}"
    )


def kpi_table(kpis: dict[str, Any]) -> pd.DataFrame:
    """One row per segment level: pooled churn, MRR churn, NRR and the latest month's figures."""
    rows = []
    for segment, v in (kpis.get("churn") or {}).items():
        latest = v.get("latest_month") or {}
        rows.append(
            {
                "segment": "all customers" if segment == "all" else segment.replace("=", ": "),
                "churn_rate": v.get("churn_rate"),
                "mrr_churn_rate": v.get("mrr_churn_rate"),
                "nrr": v.get("nrr"),
                "churned": v.get("churned"),
                "latest_active": latest.get("active_start"),
                "latest_churn_rate": latest.get("churn_rate"),
            }
        )
    return pd.DataFrame(rows)


def experience_table(kpis: dict[str, Any]) -> pd.DataFrame:
    """CSAT (% satisfied) per touchpoint and NPS per survey, over all customers."""
    rows = []
    experience = kpis.get("experience") or {}
    for touchpoint, by_segment in (experience.get("csat_pct") or {}).items():
        overall = by_segment.get("all") or {}
        rows.append(
            {"measure": f"CSAT % satisfied: {touchpoint}", "value": overall.get("value"),
             "responses": overall.get("responses")}
        )  # fmt: skip
    for survey, by_segment in (experience.get("nps") or {}).items():
        overall = by_segment.get("all") or {}
        rows.append(
            {"measure": f"NPS: {survey}", "value": overall.get("value"),
             "responses": overall.get("responses")}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _kpis_section(c: ReportContent) -> str:
    if c.kpis is None:
        return f"<p>{_e(c.kpis_note)}</p>"
    k = c.kpis
    months = k.get("months") or {}
    churn = html_table(
        kpi_table(k),
        [
            ("segment", "Segment", ""),
            ("churn_rate", "Monthly churn", "pct"),
            ("mrr_churn_rate", "MRR churn", "pct"),
            ("nrr", "Net revenue retention", "pct"),
            ("churned", "Churned", "int"),
            ("latest_active", "Active (latest month)", "int"),
            ("latest_churn_rate", "Churn (latest month)", "pct"),
        ],
    )
    experience = html_table(
        experience_table(k),
        [("measure", "Measure", ""), ("value", "Value", "num"), ("responses", "Responses", "int")],
    )
    cohorts = k.get("cohort_retention_pooled") or {}
    cohort_text = ", ".join(f"{m.replace('_', ' ')}: {_fmt(v, 'pct')}" for m, v in cohorts.items())
    images = "".join(
        f"<figure>{_img(uri, title)}<figcaption>{_e(title)}</figcaption></figure>"
        for title, uri in c.kpi_images
    )
    return (
        f"<p class='note'>Monthly figures from {_e(months.get('first'))} to "
        f"{_e(months.get('last'))} ({_e(k.get('definition'))} churn definition), pooled over the "
        f"months; the full tables are in reports/kpis/. Cohort retention (share still active "
        f"after signup): {_e(cohort_text)}.</p>{churn}<h3>Experience</h3>{experience}{images}"
    )


def leakage_section(suspects: Sequence[dict[str, Any]], dropped: dict[str, str]) -> str:
    """Body of the leakage-guard section: suspects with their evidence, and dropped columns.

    Each suspect: column, auc, rule, filled_share, reasons (list), kept (bool).
    """
    if suspects:
        rows = "".join(
            f"<tr><td>{_e(s['column'])}</td><td class='num'>{float(s['auc']):.4f}</td>"
            f"<td>{_e(s['rule'])}</td><td class='num'>{float(s['filled_share']):.1%}</td>"
            f"<td>{_e('; '.join(s['reasons']))}</td><td>{'kept' if s['kept'] else 'excluded'}"
            "</td></tr>"
            for s in suspects
        )
        body = (
            "<p class='note'>Columns that separate the label almost perfectly on their own, or "
            "are filled in only for one class, usually leak it (written because the customer "
            "churned). Measured on training rows only.</p><table><tr><th>column</th><th>AUC"
            "</th><th>best one-split rule</th><th>filled</th><th>evidence</th><th>model</th>"
            f"</tr>{rows}</table>"
        )
    else:
        body = "<p class='note'>No column separates the label on its own: no leakage suspect.</p>"
    drops = "".join(f"<tr><td>{_e(c)}</td><td>{_e(r)}</td></tr>" for c, r in dropped.items())
    if drops:
        body += (
            f"<h3>Columns not used</h3><table><tr><th>column</th><th>why</th></tr>{drops}</table>"
        )
    return body


def render_html(c: ReportContent) -> str:
    """The whole report page as one self-contained HTML string."""
    bodies = {
        "kpis": _kpis_section(c),
        "importance": _importance_section(c),
        "beeswarm": (
            "<p class='note'>Each dot is one sampled customer; position = the feature's push on "
            "churn risk (right = more risk), colour = the feature's value (red high, blue low; "
            "grey = missing or categorical).</p>"
            + _img(c.images["beeswarm"], "SHAP beeswarm of the top drivers")
        ),
        "dependence": _dependence_section(c),
        "groups": _groups_section(c),
        "segments": _segments_section(c),
        "touchpoints": _touchpoints_section(c),
        "alerts": _alerts_section(c),
    }
    listed = [*SECTIONS, *((key, title) for key, title, _ in c.extra_sections)]
    bodies.update({key: body for key, _, body in c.extra_sections})
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title in listed)
    sections = "".join(
        f'<section id="{key}"><h2>{_e(title)}</h2>{bodies[key]}</section>' for key, title in listed
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        '<link rel="icon" href="data:,">'  # no favicon request (it would fail offline)
        f"<title>Churn drivers – {_e(c.header.get('model_name'))} "
        f"v{_e(c.header.get('model_version'))}</title><style>{CSS}</style></head><body>"
        f"{_header(c.header)}<nav>{nav}</nav><main>{sections}</main></body></html>\n"
    )
