"""Markdown reports for people: the alerts summary of `churn alert`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from models.warning.rules import RulesFile


def _count_table(alerts: pd.DataFrame, column: str, order: list[str] | None = None) -> list[str]:
    counts = alerts[column].value_counts() if len(alerts) else pd.Series(dtype=int)
    keys = order if order is not None else sorted(counts.index)
    rows = [f"| {column} | alerts |", "|---|---:|"]
    rows += [f"| {k} | {int(counts.get(k, 0))} |" for k in keys]
    return rows


def alerts_report(
    alerts: pd.DataFrame, rules_file: RulesFile, as_of: pd.Timestamp, deliveries: list[Any]
) -> str:
    """reports/alerts.md: counts by rule, level and owner team (and the delivery outcome)."""
    lines = [
        f"# Early-warning alerts at {as_of.date().isoformat()}",
        "",
        f"{len(alerts)} alert(s) from {len(rules_file.rules)} rule(s) in `{rules_file.path}`; "
        f"{alerts['customer_id'].nunique() if len(alerts) else 0} customer(s).",
        "",
        "## By rule",
        "",
        *_count_table(alerts, "rule", [r.name for r in rules_file.rules]),
        "",
        "## By level",
        "",
        *_count_table(alerts, "level", ["critical", "high", "medium", "low"]),
        "",
        "## By owner team",
        "",
        *_count_table(alerts, "owner_team"),
        "",
    ]
    if deliveries:
        lines += [
            "## Delivery",
            "",
            "| team | channel | delivered | pending | error |",
            "|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {d.team} | {d.channel} | {d.delivered} | {d.pending} | {d.error or ''} |"
            for d in deliveries
        ]
        lines.append("")
    return "\n".join(lines)
