"""The monitoring page (`churn monitor`): one self-contained HTML file, images embedded as PNG data
URIs, no script and no external reference. Sections: alerts, drift table (largest first), the
features' distributions side by side, drift by as-of date, realised performance by as-of date."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from pipeline.reporting.figures import figure_data_uri, pyplot
from pipeline.reporting.html import CSS, html_table

SECTIONS: tuple[tuple[str, str], ...] = (
    ("alerts", "Alerts"),
    ("drift", "Drift: scoring table vs training rows"),
    ("distributions", "Distributions side by side"),
    ("drift-history", "Drift by as-of date"),
    ("realised", "Realised performance by as-of date"),
)
STATUS_CSS = {"alert": "up", "warn": "up", "ok": ""}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def distribution_figure(feature: str, frame: pd.DataFrame) -> str:
    """Bars of the reference and current shares per bin, side by side; a PNG data URI."""
    plt = pyplot()
    n = len(frame)
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    x = np.arange(n)
    ax.bar(x - 0.2, frame["reference"], 0.4, label="training rows", color="#7f8c9a")
    ax.bar(x + 0.2, frame["current"], 0.4, label="scoring table", color="#c0392b")
    ax.set_xticks(x)
    ax.set_xticklabels([str(b)[:18] for b in frame["bin"]], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(feature, fontsize=10)
    ax.legend(fontsize=7)
    return figure_data_uri(fig)


def trend_figure(trend: pd.DataFrame) -> str:
    """Realised ROC AUC, PR AUC and lift at 10 % by as-of date; a PNG data URI."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    days = pd.to_datetime(trend["as_of"])
    left.plot(days, trend["roc_auc"], marker="o", label="ROC AUC")
    left.plot(days, trend["pr_auc"], marker="o", label="PR AUC")
    left.set_ylim(0, 1)
    left.legend(fontsize=8)
    left.set_title("Ranking", fontsize=10)
    right.plot(days, trend["observed_rate"], marker="o", label="observed churn rate")
    right.plot(days, trend["mean_predicted"], marker="o", label="mean predicted")
    right.legend(fontsize=8)
    right.set_title("Calibration in the large", fontsize=10)
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=7, rotation=30)
    return figure_data_uri(fig)


def _drift_rows(features: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(features)
    if frame.empty:
        return frame
    frame["why"] = frame["reasons"].map(lambda r: "; ".join(r))
    frame["missing"] = [
        f"{a:.1%} → {b:.1%}"
        for a, b in zip(frame["missing_reference"], frame["missing_current"], strict=True)
    ]
    return frame


def _alerts_section(report: dict[str, Any]) -> str:
    alerts = report["alerts"]
    if not alerts:
        return "<p>No threshold crossed.</p>"
    items = "".join(
        f'<li class="up"><b>{_e(a["rule"])}</b> ({_e(a["as_of"])}): {_e(a["evidence"])}</li>'
        for a in alerts
    )
    sent = report.get("deliveries") or []
    note = (
        f"<p class='note'>Delivered through {len(sent)} channel(s).</p>"
        if sent
        else "<p class='note'>Logged only (no monitor.alert_team, or delivery off).</p>"
    )
    return f"<ul>{items}</ul>{note}"


def _drift_section(current: dict[str, Any]) -> str:
    s, p = current["summary"], current["prediction"]
    t = current["thresholds"]
    intro = (
        f"<p>Scores as of <b>{_e(current['as_of'])}</b> ({current['current_rows']:,} customers) "
        f"vs {current['reference_rows']:,} training rows up to "
        f"{_e(current['reference_train_end'])}. Measure: <code>{_e(t['measure'])}</code>, warn "
        f"at {t['warn']}, alert at {t['alert']}; a missing-share change of {t['missing_change']} "
        f"or {t['new_level_share']:.0%} of rows with new levels is an alert. "
        f"<b>{len(s['flagged'])}</b> of {s['features']} features flagged ({s['alert']} alert). "
        f"Prediction drift: {_num(p['drift'])} (<span class='{STATUS_CSS[p['status']]}'>"
        f"{_e(p['status'])}</span>).</p>"
    )
    frame = _drift_rows(current["features"])
    columns = [
        ("feature", "Feature", "code"),
        ("status", "Status", ""),
        ("psi", "PSI", "num"),
        ("jensen_shannon", "JS distance", "num"),
        ("missing", "Missing (train → now)", ""),
        ("new_level_share", "New levels", "pct"),
        ("mean_reference", "Mean (train)", "num"),
        ("mean_current", "Mean (now)", "num"),
        ("why", "Why flagged", ""),
    ]
    return intro + html_table(frame, columns)


def _distributions_section(distributions: dict[str, pd.DataFrame]) -> str:
    figures = "".join(
        f'<figure><img src="{distribution_figure(name, frame)}" '
        f'alt="distribution of {_e(name)}"><figcaption>{_e(name)}</figcaption></figure>'
        for name, frame in distributions.items()
    )
    return (
        "<p class='note'>The largest drifts and the predicted probability: share of rows per bin "
        "of the training rows (grey) and the scoring table (red); bins from the training rows.</p>"
        f'<div class="grid">{figures}</div>'
    )


def _history_section(by_as_of: list[dict[str, Any]]) -> str:
    if not by_as_of:
        return "<p>No score history yet (`churn score` keeps one entry per as-of date).</p>"
    head = "<tr><th>As of</th><th>Flagged</th><th>Alert</th><th>Max drift</th>"
    head += "<th>Prediction drift</th><th>Flagged features</th></tr>"
    rows = "".join(
        f"<tr><td>{_e(r['as_of'])}</td><td colspan='5'>{_e(r['skipped'])}</td></tr>"
        if "skipped" in r
        else f"<tr><td>{_e(r['as_of'])}</td><td class='num'>{len(r['flagged'])}</td>"
        f"<td class='num'>{r['alert']}</td><td class='num'>{_num(r['max_drift'])}</td>"
        f"<td class='num'>{_num(r['prediction_drift'])}</td>"
        f"<td><code>{_e(', '.join(r['flagged'][:12]))}</code></td></tr>"
        for r in by_as_of
    )
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _realised_section(realised: list[dict[str, Any]], trend: pd.DataFrame) -> str:
    if not realised:
        return "<p>No score history yet.</p>"
    parts = []
    if len(trend):
        parts.append(f'<img src="{trend_figure(trend)}" alt="realised performance trend">')
    head = "<tr><th>As of</th><th>Status</th><th>Model</th><th>Customers</th><th>ROC AUC</th>"
    head += (
        "<th>PR AUC</th><th>ECE</th><th>Lift at 10%</th><th>Observed</th><th>Predicted</th></tr>"
    )
    rows = []
    for r in realised:
        status = r["status"] if r["status"] == "matured" else f"matures {r.get('matures_on')}"
        rows.append(
            f"<tr><td>{_e(r['as_of'])}</td><td>{_e(r.get('skipped') or status)}</td>"
            f"<td>{_e(r.get('model_version'))}</td><td class='num'>{_num(r.get('n'))}</td>"
            + "".join(
                f"<td class='num'>{_num(r.get(k))}</td>"
                for k in (
                    "roc_auc",
                    "pr_auc",
                    "ece",
                    "lift_at_10",
                    "observed_rate",
                    "mean_predicted",
                )
            )
            + "</tr>"
        )
    parts.append(f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")
    latest = next((r for r in reversed(realised) if r.get("segments")), None)
    if latest is not None:
        seg_rows = [
            {"segment": f"{col} = {level}", **entry}
            for col, levels in latest["segments"].items()
            for level, entry in levels.items()
        ]
        parts.append(f"<h3>By segment, scores of {_e(latest['as_of'])}</h3>")
        parts.append(
            html_table(
                pd.DataFrame(seg_rows),
                [
                    ("segment", "Segment", ""),
                    ("n", "Customers", "int"),
                    ("positives", "Churners", "int"),
                    ("roc_auc", "ROC AUC", "num"),
                    ("observed_rate", "Observed", "pct"),
                    ("mean_predicted", "Predicted", "pct"),
                ],
            )
        )
    return "".join(parts)


def render_monitor_page(
    report: dict[str, Any], distributions: dict[str, pd.DataFrame], trend: pd.DataFrame
) -> str:
    """The whole page as one HTML string."""
    current = report["current"]
    bodies = {
        "alerts": _alerts_section(report),
        "drift": _drift_section(current),
        "distributions": _distributions_section(distributions),
        "drift-history": _history_section(report["drift_by_as_of"]),
        "realised": _realised_section(report["realised"], trend),
    }
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title in SECTIONS)
    sections = "".join(
        f'<section id="{sid}"><h2>{_e(title)}</h2>{bodies[sid]}</section>'
        for sid, title in SECTIONS
    )
    header = (
        f"<header><h1>Churn model monitoring</h1><dl><dt>Scores as of</dt>"
        f"<dd>{_e(current['as_of'])}</dd><dt>Model</dt><dd>{_e(current['model_uri'])} (version "
        f"{_e(current['model_version'])})</dd><dt>Generated</dt>"
        f"<dd>{_e(report['generated_at'])}</dd></dl></header>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Churn model monitoring</title>"
        f"<style>{CSS}</style></head><body>{header}<nav>{nav}</nav><main>{sections}</main>"
        "</body></html>"
    )
