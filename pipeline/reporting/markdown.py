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
    fired: pd.DataFrame,
    items: pd.DataFrame,
    rules_file: RulesFile,
    as_of: pd.Timestamp,
    deliveries: list[Any],
) -> str:
    """reports/alerts.md: rule firings by rule; work items (one per customer and owner team) by
    level and owner team; the delivery outcome."""
    lines = [
        f"# Early-warning alerts at {as_of.date().isoformat()}",
        "",
        f"{len(items)} work item(s) (one per customer and owner team) for "
        f"{items['customer_id'].nunique() if len(items) else 0} customer(s), from {len(fired)} "
        f"firing(s) of {len(rules_file.rules)} rule(s) in `{rules_file.path}`. Each item is due "
        "from when it was raised (`raised_at`), by its most urgent rule's due hours.",
        "",
        "## Firings by rule",
        "",
        *_count_table(fired, "rule", [r.name for r in rules_file.rules]),
        "",
        "## Work items by level",
        "",
        *_count_table(items, "level", ["critical", "high", "medium", "low"]),
        "",
        "## Work items by owner team",
        "",
        *_count_table(items, "owner_team"),
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
