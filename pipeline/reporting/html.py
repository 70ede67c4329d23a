"""The HTML pages for people: the SHAP driver report, one self-contained page.

Self-contained means it opens offline from a file: every image is a base64 PNG data URI (drawn
by pipeline/reporting/shap_figures.py), the CSS is inline, there are no scripts, fonts or external
links.
"""

from __future__ import annotations

import html
import logging
import re
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
    rating_bands: pd.DataFrame | None = None  # realised churn by recent rating band
    rating_bands_note: str = ""  # what the bands say, in words (drivers.rating_bands_sentence)
    # value at risk of the test cutoff (models/explain/drivers.value_at_risk); None: not computed
    money: dict[str, Any] | None = None
    top_reasons: pd.DataFrame | None = None  # money at risk by top reason (top_reason_money)


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
.headline{font-size:18px;margin:6px 0}
dl.glossary dt{font-weight:600;margin-top:8px}
dl.glossary dd{margin:2px 0 0 0;font-size:14px}
details{font-size:13px;color:#555}
"""

SECTIONS: tuple[tuple[str, str], ...] = (
    ("money", "Money at risk"),
    ("kpis", "Churn KPIs"),
    ("importance", "Global drivers"),
    ("beeswarm", "Beeswarm"),
    ("dependence", "Top drivers in detail"),
    ("groups", "By group and churn type"),
    ("segments", "By segment"),
    ("touchpoints", "Touchpoints"),
    ("alerts", "Early-warning rules"),
)
GLOSSARY_SECTION = ("glossary", "Glossary")  # always last, after the extra sections
MISSING = "—"  # what the page shows for a missing number

# repr strings that must never reach a reader: np.float64(0.5) -> 0.5, nan/None -> missing
_REPR = re.compile(r"\bnp\.[a-z_]+\d*\(([^()]*)\)")
_NAN = re.compile(r"(?<![\w.])(nan|NaN|None|<NA>|NaT)(?![\w.])")


def clean_text(value: Any) -> str:
    """Text for the page: numpy reprs unwrapped, nan/None/<NA>/NaT written as "missing"."""
    text = "" if value is None else str(value)
    text = _REPR.sub(r"\1", text)
    return _NAN.sub("missing", text)


def _e(value: Any) -> str:
    if _missing(value):
        return MISSING
    return html.escape(clean_text(value))


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and not np.isfinite(value))
    except TypeError:
        return False


def _fmt(value: Any, kind: str = "") -> str:
    """A number for people: pct (share as %), int, pp (percentage points), money, num."""
    if _missing(value):
        return MISSING
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "int":
        return f"{round(float(value)):,}"
    if kind == "pp":
        return f"{float(value):.2f} pp"
    if kind == "spp":  # signed percentage points
        return f"{float(value):+.2f} pp"
    if kind == "money":
        return money_text(float(value))
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{float(value):,.4g}"
    return _e(value)


def money_text(value: float) -> str:
    """Money without a currency sign (the fee's currency): 1,234,567 or 12.35 below 100."""
    if not np.isfinite(value):
        return MISSING
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


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
            elif kind in ("pct", "int", "num", "pp", "spp", "money"):
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
        ("Model", f"{_e(h.get('model_name'))} version {_e(h.get('model_version'))}"),
        ("MLflow run", _e(h.get("run_id"))),
        ("Data as of", _e(h.get("as_of"))),
        *((("Data", _e(h["data_source"])),) if h.get("data_source") else ()),
        ("Sample", _e(h.get("sample"))),
    ]
    if h.get("test_churn_rate") is not None:
        items.append(("Churn rate at the test cutoff", _fmt(h.get("test_churn_rate"), "pct")))
    money = h.get("money") or {}
    if money.get("available"):
        items.append(("Money at risk (test cutoff)", _fmt(money.get("value_at_risk"), "money")))
    items.append(("Generated", _e(h.get("generated_at"))))
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f"<header><h1>Why customers leave: churn drivers</h1><dl>{dl}</dl></header>"


def _importance_section(c: ReportContent) -> str:
    money = (c.money or {}).get("available", False)
    table = html_table(
        c.importance.head(c.top_table),
        [
            ("rank", "#", "int"),
            ("description", "What it measures", ""),
            ("feature", "Column", "code"),
            ("group", "Group", ""),
            ("churn_type", "Churn type", ""),
            ("mean_abs_pp", "Average change in churn probability", "pp"),
            ("mean_pp", "Net effect", "spp"),
            ("share", "Share of impact", "pct"),
            *(
                [("value_at_risk_added", "Money at risk it adds", "money")]
                if money and "value_at_risk_added" in c.importance.columns
                else []
            ),
            ("direction", "Direction", "direction"),
        ],
    )  # fmt: skip
    return (
        "<p class='note'>How much each customer attribute moves the predicted churn probability. "
        "<b>Average change in churn probability</b>: for each sampled customer, the churn "
        "probability with the attribute's push minus the probability without it, in percentage "
        "points (pp), averaged over the customers as an absolute value (glossary: percentage "
        "points). <b>Net effect</b>: the same average with its sign (+ = on balance it raises "
        "churn). Direction is the rank correlation between the attribute's value and its push: "
        "<span class='up'>red</span> = customers with a higher value are at higher risk, "
        "<span class='down'>blue</span> = at lower risk. "
        + (
            "<b>Money at risk it adds</b>: CLV × the churn probability the attribute adds, "
            "summed over the customers whose risk it raises (estimated for every test customer "
            "from the sample; section Money at risk groups customers by their top reason). "
            if money
            else ""
        )
        + "The full table is in <code>importance.csv</code>.</p>"
        f"{_img(c.images['importance'], 'Top churn drivers (bar chart)')}{table}"
        "<details><summary>Log-odds (for data scientists)</summary>The model's SHAP values are "
        "on the log-odds scale; <code>importance.csv</code> keeps them as "
        "<code>mean_abs_shap</code> and <code>mean_shap</code>. The percentage points above are "
        "computed from them through the model's calibrated probability.</details>"
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
        "changed that customer's churn probability (y, in percentage points; above 0 = raises "
        "risk). Grey dots at the left are customers with no value (e.g. never rated).</p>"
        f"<div class='grid'>{figures}</div>"
    )


def _groups_section(c: ReportContent) -> str:
    groups = html_table(
        c.groups,
        [
            ("group", "Group", ""),
            ("churn_type", "Churn type", ""),
            ("share", "Share of impact", "pct"),
            ("mean_abs_pp", "Sum of average changes", "pp"),
            ("features", "Features", "int"),
            ("top_feature_description", "Strongest feature", ""),
        ],
    )
    types = html_table(
        c.churn_types,
        [
            ("churn_type", "Churn type", ""),
            ("share", "Share of impact", "pct"),
            ("mean_abs_pp", "Sum of average changes", "pp"),
            ("groups", "Feature groups", ""),
            ("top_feature_description", "Strongest feature", ""),
        ],
    )
    return (
        "<p class='note'>Feature groups summed up (the average changes in churn probability of "
        "their features, in pp), and mapped to churn types: experience, service and text → "
        "dissatisfaction; economic → economic; engagement → disengagement; contract and "
        "profile → other.</p><div class='grid'>"
        f"<figure>{_img(c.images['groups'], 'Importance by feature group')}</figure>"
        f"<figure>{_img(c.images['churn_types'], 'Importance by churn type')}</figure></div>"
        f"<h3>By feature group</h3>{groups}<h3>By churn type</h3>{types}"
    )


def _driver_cell(r: pd.Series) -> str:
    """One segment driver: its description, column, pp and, when it differs, its overall rank."""
    moved = (
        f" · <b>#{int(r['overall_rank'])} overall</b>"
        if not _missing(r.get("overall_rank")) and int(r["overall_rank"]) != int(r["rank"])
        else ""
    )
    return (
        f"<td>{_e(r['description'])}<br><small><code>{_e(r['feature'])}</code> · "
        f"{_fmt(r['mean_abs_pp'], 'pp')}{moved}</small></td>"
    )


def _apart_cell(frame: pd.DataFrame) -> str:
    """What sets a level apart: features whose net effect differs most from everyone's."""
    items = "".join(
        f"<li>{_e(r['description'])} <small><code>{_e(r['feature'])}</code> "
        f"<span class='{'up' if r['difference_pp'] > 0 else 'down'}'>"
        f"{_fmt(r['difference_pp'], 'spp')}</span> vs all{_noise(r)}</small></li>"
        for _, r in frame.iterrows()
    )
    return f"<td><ul style='margin:0;padding-left:16px'>{items}</ul></td>"


def _noise(r: pd.Series) -> str:
    """ " (within noise)" when the difference is under two standard errors of the level's mean."""
    se = r.get("difference_se")
    if _missing(se) or abs(float(r["difference_pp"])) >= 2 * float(se):
        return ""
    return " <i>(within sampling noise)</i>"


def _segments_section(c: ReportContent) -> str:
    h = c.header
    money = (c.money or {}).get("available", False)
    definition = h.get("churn_definition") or (
        "churn rate = share of the sampled customers of the segment who churned"
    )
    parts = [
        "<p class='note'>For each segment level: its customers at the test cutoff, its churn "
        f"rate ({_e(definition)}), "
        + ("its money at risk, " if money else "")
        + "its strongest drivers (average change in churn probability among its sampled "
        "customers, in pp; <b>#n overall</b> marks a driver whose rank differs from the whole "
        "base's) and what <b>sets it apart</b>: the attributes whose net effect in the level "
        "differs most from their net effect over every customer (they explain why the level's "
        "risk is above or below the average; <i>within sampling noise</i> marks a difference "
        "smaller than two standard errors of the level's mean). <code>segments.csv</code> has "
        "every figure.</p>"
    ]
    if c.segments.empty:
        parts.append("<p>No segment column could be analysed.</p>")
    kind = (
        c.segments["kind"]
        if "kind" in c.segments.columns
        else pd.Series("driver", c.segments.index)
    )
    drivers_all = c.segments[kind == "driver"]
    apart_all = c.segments[kind == "apart"]
    overall_top = (
        list(c.importance["feature"].head(int(drivers_all["rank"].max())))
        if len(drivers_all)
        else []
    )
    for column, frame in drivers_all.groupby("segment", sort=False):
        ranks = int(frame["rank"].max())
        apart = apart_all[apart_all["segment"] == column]
        rows = []
        same = True
        for level, lf in frame.groupby("level", sort=False):
            first = lf.iloc[0]
            same = same and list(lf["feature"]) == overall_top[: len(lf)]
            drivers = "".join(_driver_cell(r) for _, r in lf.iterrows())
            apart_cell = _apart_cell(apart[apart["level"] == level]) if len(apart) else ""
            risk = (
                f"<td class='num'>{_fmt(first.get('value_at_risk'), 'money')}</td>" if money else ""
            )
            rows.append(
                f"<tr><td>{_e(level)}</td><td class='num'>{_fmt(first['customers'], 'int')}</td>"
                f"<td class='num'>{_fmt(first['churn_rate'], 'pct')}</td>{risk}{drivers}"
                f"{apart_cell}</tr>"
            )
        heads = "".join(f"<th>Driver {i}</th>" for i in range(1, ranks + 1))
        risk_head = "<th>Money at risk</th>" if money else ""
        apart_head = "<th>Sets it apart (net effect vs all customers)</th>" if len(apart) else ""
        summary = (
            f"<p class='note'>Every level of {_e(column)} has the whole base's strongest drivers "
            f"in the same order ({_e(', '.join(overall_top[:ranks]))}); the levels differ in "
            "what sets them apart.</p>"
            if same
            else ""
        )
        parts.append(
            f"<h3>{_e(column)}</h3>{summary}<table class='segments'><thead><tr><th>Level</th>"
            f"<th>Customers</th><th>Churn rate</th>{risk_head}{heads}{apart_head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    notes = "".join(f"<li>{_e(n)}</li>" for n in c.segment_notes)
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
            ("importance", "Sum of average changes", "pp"),
            ("performance", "Mean CSAT (rated)", "num"),
            ("pct_satisfied", "Satisfied (latest rating in the top boxes)", "pct"),
            ("customers_rated", "Customers rated", "int"),
            ("pct_rated", "Share rated", "pct"),
            ("top_feature", "Strongest feature", "code"),
        ],
    )
    return (
        "<p class='note'>Importance-performance analysis. Importance: how much the "
        "touchpoint's satisfaction features move churn probability (their average changes, "
        "pp). Performance: how customers rate it. "
        "Touchpoints that matter a lot but are rated low (top left) are where improvements "
        "should cut churn most. The dashed lines are the averages over touchpoints.</p>"
        f"{_img(c.images['touchpoints'], 'Touchpoint importance vs performance')}{table}"
        f"{_rating_bands(c)}"
    )


def _rating_bands(c: ReportContent) -> str:
    """Churn by band of the recent rating: pooled over every labelled cutoff (when the model
    table has them), at the test cutoff, the model's probability and its survey features' effect.
    A neutral band whose churn sits above the high band's is an early sign, not a safe score."""
    bands = c.rating_bands
    if bands is None or bands.empty:
        return ""
    columns = [
        ("band", "Mean rating in the last 90 days", ""),
        ("rows_all_cutoffs", "Customer-cutoffs, every labelled cutoff", "int"),
        ("churn_rate_all_cutoffs", "Churn rate, every labelled cutoff", "pct"),
        ("customers", "Customers at the test cutoff", "int"),
        ("churned", "Churned", "int"),
        ("churn_rate", "Churn rate at the test cutoff", "pct"),
        ("mean_probability", "Mean predicted probability", "pct"),
        ("rating_effect_pp", "Survey features' mean effect (SHAP sample)", "spp"),
    ]
    table = html_table(bands, [col for col in columns if col[0] in bands.columns])
    return (
        "<h3>Ratings and churn</h3><p class='note'>Customers by their mean satisfaction rating "
        f"over the 90 days before each cutoff (<code>{_e(bands['column'][0])}</code>, any "
        "touchpoint). One cutoff holds too few rated customers to tell a neutral band from a "
        "high one, so the realised churn is also pooled over every labelled cutoff of the model "
        "table (history only: it feeds neither the model nor its test figures). A neutral rating "
        f"can be an early sign rather than a safe score. {_e(c.rating_bands_note)}</p>" + table
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


WIDE = " style='flex-basis:100%;max-width:100%'"  # small multiples: the page's full width


def _kpis_section(c: ReportContent) -> str:
    if c.kpis is None:
        return f"<p>{_e(c.kpis_note)}</p>"
    k = c.kpis
    months = k.get("months") or {}
    period = f"{_e(months.get('first'))} to {_e(months.get('last'))}"
    table = kpi_table(k)
    revenue = [
        ("mrr_churn_rate", "Average monthly MRR churn", "pct"),
        ("nrr", "Net revenue retention (NRR)", "pct"),
    ]
    if not any(table[col].notna().any() for col, _, _ in revenue if col in table.columns):
        revenue = []  # no fees: no empty MRR columns (the KPI notes say why)
    churn = html_table(
        table,
        [
            ("segment", "Segment", ""),
            ("churn_rate", "Average monthly churn", "pct"),
            *revenue,
            ("churned", "Customers churned", "int"),
        ],
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in k.get("notes") or [])
    notes = f"<ul class='note'>{notes}</ul>" if notes else ""
    experience = html_table(
        experience_table(k),
        [("measure", "Measure", ""), ("value", "Value", "num"), ("responses", "Responses", "int")],
    )
    cohorts = k.get("cohort_retention_pooled") or {}
    cohort_text = ", ".join(
        f"{_e(m.replace('_', ' '))}: {_fmt(v, 'pct')}"
        for m, v in sorted(cohorts.items(), key=lambda kv: _month_number(kv[0]))
    )
    images = "".join(
        f"<figure{WIDE if title.lower().startswith('churn by') else ''}>{_img(uri, title)}"
        f"<figcaption>{_e(title)}</figcaption></figure>"
        for title, uri in c.kpi_images
    )
    test_rate = c.header.get("test_churn_rate")
    return (
        f"<p class='note'>History, month by month from {period} ({_e(k.get('definition'))} "
        "churn definition). <b>Average monthly churn</b> = customers who churned in a calendar "
        "month / customers active at its start, pooled over the months (all churned customers / "
        "all customer-months): a long-run average of the whole history. It is not the churn "
        "rate of the other sections, which is the test cutoff's"
        + (f" ({_fmt(test_rate, 'pct')} overall)" if test_rate is not None else "")
        + ": one recent month, over the model's label window. Segments are the customers' "
        "values at signup; the full tables are in reports/kpis/. Cohort retention (share still "
        f"active after signup): {cohort_text or MISSING}.</p>{notes}{churn}"
        f"<h3>Experience</h3>{experience}<div class='grid'>{images}</div>"
    )


def _month_number(key: str) -> int:
    found = re.search(r"\d+", key)
    return int(found.group()) if found else 0


def leakage_section(suspects: Sequence[dict[str, Any]], dropped: dict[str, str]) -> str:
    """Body of the leakage-guard section: suspects with their evidence, and dropped columns.

    Each suspect: column, auc, rule, filled_share, reasons (list), kept (bool).
    """
    if suspects:
        rows = "".join(
            f"<tr><td>{_e(s.get('column'))}</td><td class='num'>{_fmt(s.get('auc'))}</td>"
            f"<td>{_e(s.get('rule'))}</td><td class='num'>{_fmt(s.get('filled_share'), 'pct')}"
            f"</td><td>{_e('; '.join(str(r) for r in s.get('reasons') or []))}</td>"
            f"<td>{'kept' if s.get('kept') else 'excluded'}</td></tr>"
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


def _money_section(c: ReportContent) -> str:
    m = c.money
    if not m:
        return (
            "<p>Money at risk was not computed for this report (it needs the churn "
            "probabilities and the monthly fee of every customer; see value.fee_column).</p>"
        )
    if not m.get("available"):
        return f"<p>{_e(m.get('note'))}</p>"
    horizon = m.get("horizon_months")
    horizon_text = f"{horizon} months" if horizon else "an unlimited horizon"
    base = m.get("base_churn_rate")
    survival = (
        f"a monthly churn of {_fmt(base, 'pct')} for everyone"
        if base is not None
        else "the survival of these customers at their predicted churn probabilities"
    )
    parts = [
        "<p class='headline'>Money at risk at the test cutoff: "
        f"<b>{_fmt(m['value_at_risk'], 'money')}</b> over "
        f"{_fmt(m['customers'], 'int')} customers (about "
        f"{_fmt(m.get('expected_churners'), 'int')} expected to churn).</p>"
        "<p class='note'><b>Value at risk</b> of a customer = churn probability × CLV, summed "
        "over every customer active at the test cutoff. <b>CLV</b> (customer lifetime value) = "
        f"monthly fee (<code>{_e(m.get('fee_column'))}</code>, average "
        f"{_fmt(m.get('mean_monthly_fee'), 'money')}) × margin rate "
        f"{_fmt(m.get('margin_rate'), 'pct')} × {_fmt(m.get('lifetime_months'))} discounted "
        f"months (the expected lifetime of a customer of this base: {survival}, discounted "
        f"{_fmt(m.get('discount_rate'), 'pct')} a month, over {horizon_text}); average CLV "
        f"{_fmt(m.get('mean_clv'), 'money')}. Amounts are in the fee's currency "
        "(models/value.py, the same formula as the scores and the priority list).</p>"
    ]
    reasons = c.top_reasons
    if reasons is not None and len(reasons):
        parts.append(
            "<h3>By top reason</h3><p class='note'>Customers grouped by their top reason (the "
            "attribute with the largest push towards churn, as in the scores' reason_1), "
            "estimated for every test customer from the SHAP sample.</p>"
            + html_table(
                reasons.head(10),
                [
                    ("description", "Top reason", ""),
                    ("feature", "Column", "code"),
                    ("estimated_customers", "Customers (estimated)", "int"),
                    ("mean_pp", "Its average change in their churn probability", "pp"),
                    ("share_of_value_at_risk", "Share of money at risk", "pct"),
                    ("value_at_risk", "Money at risk", "money"),
                ],
            )
        )
    levels = c.segments
    if "kind" in levels.columns:
        levels = levels[levels["kind"] == "driver"]
    levels = levels.drop_duplicates(["segment", "level"]) if len(levels) else levels
    for column, frame in levels.groupby("segment", sort=False) if len(levels) else []:
        parts.append(
            f"<h3>By {_e(column)}</h3>"
            + html_table(
                frame.assign(share=frame["value_at_risk"] / m["value_at_risk"])
                if m.get("value_at_risk")
                else frame,
                [
                    ("level", "Level", ""),
                    ("customers", "Customers", "int"),
                    ("churn_rate", "Churn rate", "pct"),
                    ("mean_probability", "Mean predicted churn probability", "pct"),
                    ("value_at_risk", "Money at risk", "money"),
                    ("share", "Share of money at risk", "pct"),
                ],
            )
        )
    return "".join(parts)


GLOSSARY: tuple[tuple[str, str], ...] = (
    ("Churn rate (in this report)", "The share of the customers who churned: the label the "
     "model learns and predicts, over the rows it was tested on. The Churn KPIs section, when "
     "there is one, shows a different figure on purpose: the average monthly churn over the "
     "whole history."),
    ("SHAP value", "How much one attribute pushes one customer's predicted risk up or down, "
     "compared with an average customer (SHapley Additive exPlanations, exact for tree "
     "models). The pushes of all attributes add up to the customer's score on the model's "
     "log-odds scale."),
    ("Percentage points (pp)", "The difference between two percentages: from 5% to 8% is +3 pp. "
     "An attribute's change in a customer's churn probability is the calibrated probability with "
     "its SHAP push minus the probability without it; the average change is the mean of its "
     "absolute value over the sampled customers, the net effect the mean with its sign."),
    ("Lift", "How many times more often a selected group churns than customers overall: the "
     "group's churn rate / the base churn rate. A lift of 3 means three times the average."),
    ("PR AUC", "Area under the precision-recall curve: how well the ranking puts churners first "
     "across every cut-off. A random ranking scores about the base churn rate; 1 is perfect."),
    ("Calibration", "Whether predicted probabilities match what happens: of the customers given "
     "10%, about 10% should churn. The model's probabilities are calibrated on held-out data, "
     "which is what makes percentage points and money at risk meaningful."),
    ("MRR", "Monthly recurring revenue: the sum of the monthly fees of the active customers. "
     "MRR churn is the share of the month's starting MRR lost to customers who left."),
    ("NRR", "Net revenue retention: the MRR one month later of the customers active at the "
     "start of a month (churners count 0, upgrades and downgrades included) / their MRR at the "
     "start. Above 100% the existing base grows without new customers."),
    ("CLV", "Customer lifetime value: the discounted margin a customer brings while staying, "
     "monthly fee × margin rate × the expected discounted lifetime in months of a customer of "
     "this base (the same for every customer, never from the customer's own risk)."),
    ("Value at risk (money at risk)", "Churn probability × CLV: the value expected to be lost "
     "if nothing is done. Summed over customers it is the money at risk of a segment or a top "
     "reason; a driver's money at risk is CLV × the churn probability it adds, summed."),
)  # fmt: skip


def _glossary_section(c: ReportContent) -> str:
    definition = c.header.get("churn_definition")
    entries = [
        (term, f"{definition[0].upper()}{definition[1:]}." if definition and i == 0 else text)
        for i, (term, text) in enumerate(GLOSSARY)
    ]
    items = "".join(f"<dt>{_e(term)}</dt><dd>{_e(text)}</dd>" for term, text in entries)
    return f"<dl class='glossary'>{items}</dl>"


def render_html(c: ReportContent) -> str:
    """The whole report page as one self-contained HTML string."""
    bodies = {
        "money": _money_section(c),
        "kpis": _kpis_section(c),
        "importance": _importance_section(c),
        "beeswarm": (
            "<p class='note'>Each dot is one sampled customer; position = how much the feature "
            "changed that customer's churn probability (percentage points; right = more risk), "
            "colour = the feature's value (red high, blue low; grey = missing or categorical).</p>"
            + _img(c.images["beeswarm"], "SHAP beeswarm of the top drivers")
        ),
        "dependence": _dependence_section(c),
        "groups": _groups_section(c),
        "segments": _segments_section(c),
        "touchpoints": _touchpoints_section(c),
        "alerts": _alerts_section(c),
        GLOSSARY_SECTION[0]: _glossary_section(c),
    }
    listed = [*SECTIONS, *((key, title) for key, title, _ in c.extra_sections), GLOSSARY_SECTION]
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
