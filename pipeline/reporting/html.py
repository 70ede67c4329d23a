"""The HTML pages for people: the SHAP driver report, one self-contained page.

Self-contained means it opens offline from a file: every image is a base64 PNG data URI (drawn
by pipeline/reporting/shap_figures.py), the CSS is inline, there are no scripts, fonts or external
links.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


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
    table = kpi_table(k)
    revenue = [
        ("mrr_churn_rate", "MRR churn", "pct"),
        ("nrr", "Net revenue retention", "pct"),
    ]
    if not any(table[col].notna().any() for col, _, _ in revenue if col in table.columns):
        revenue = []  # no fees: no empty MRR columns (the KPI notes say why)
    churn = html_table(
        table,
        [
            ("segment", "Segment", ""),
            ("churn_rate", "Monthly churn", "pct"),
            *revenue,
            ("churned", "Churned", "int"),
            ("latest_active", "Active (latest month)", "int"),
            ("latest_churn_rate", "Churn (latest month)", "pct"),
        ],
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in k.get("notes") or [])
    notes = f"<ul class='note'>{notes}</ul>" if notes else ""
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
        f"after signup): {_e(cohort_text)}.</p>{notes}{churn}<h3>Experience</h3>{experience}"
        f"{images}"
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
