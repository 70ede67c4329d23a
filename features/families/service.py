"""Service: tickets opened, still open, escalated, by category, time to resolve, satisfaction.

Point in time: a ticket exists from `opened_at`; it is open at the cutoff unless `closed_at`
is before the cutoff. Its outcome (closing time, satisfaction, escalation, reopening) is only
used once it closed before the cutoff: for a ticket still open, that outcome is the future.
"""

from __future__ import annotations

import logging

import ibis

from features.catalog import DataFacts, FamilyDecision, FeatureSet, decision
from features.settings import FeaturizeParams
from features.tables import KEYS, Aggregates, Tables, slug

log = logging.getLogger(__name__)

REOPENED_COLUMNS = ("reopened", "reopen_count", "reopens")
TICKETS = "service.tickets"


def service_families(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Ticket features: built when the tickets table has rows."""
    missing = None if facts.has_tickets else "no tickets (the tickets table is missing or empty)"
    return (decision(TICKETS, facts, missing, "tickets"),)


def service_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet:
    """Ticket volume, backlog, escalations, categories, resolution time and satisfaction.

    With `facts`, nothing when the data has no tickets (`service_families`).
    """
    t = tables.tickets
    sp = spine.select(*KEYS).view()
    if t is None:
        log.warning("no tickets table: service features skipped")
        return FeatureSet(sp, ())
    if facts is not None and not service_families(facts, cfg)[0].built:
        return FeatureSet(sp, ())
    cols = t.columns
    closed_at = t.closed_at if "closed_at" in cols else ibis.null("timestamp('UTC')")
    tk = t.select(
        "customer_id",
        "opened_at",
        closed_at=closed_at,
        category=t.category.cast("string"),
        escalated=t.escalated.cast("boolean") if "escalated" in cols else ibis.null("boolean"),
        satisfaction=t.satisfaction.cast("float64")
        if "satisfaction" in cols
        else ibis.null("float64"),
    )
    reopened_col = next((c for c in REOPENED_COLUMNS if c in cols), None)
    if reopened_col is not None:
        tk = tk.mutate(reopened=t[reopened_col].cast("float64") > 0)
    j = sp.join(tk, [sp.customer_id == tk.customer_id, tk.opened_at < sp.cutoff])
    day = 86_400
    opened_days = (j.cutoff.epoch_seconds() - j.opened_at.epoch_seconds()) / day
    closed_before = j.closed_at.notnull() & (j.closed_at < j.cutoff)
    closed_days = (j.cutoff.epoch_seconds() - j.closed_at.epoch_seconds()) / day
    hours = (j.closed_at.epoch_seconds() - j.opened_at.epoch_seconds()) / 3600

    feats = Aggregates("service")
    add = feats.add

    for w in cfg.windows:
        add(
            f"tickets_opened_{w}d",
            j.count(where=opened_days <= w),
            f"tickets opened in the {w} days before the cutoff",
            fill=True,
        )
    if "closed_at" in cols:
        add(
            "tickets_open_at_cutoff",
            j.count(where=~closed_before),
            "tickets opened before the cutoff and not closed before it",
            fill=True,
        )
    else:
        log.warning("tickets has no closed_at: tickets_open_at_cutoff and resolution time skipped")
    for w in cfg.summary_windows:
        recent_closed = closed_before & (closed_days <= w)
        for cat in cfg.ticket_categories:
            add(
                f"tickets_{slug(cat)}_{w}d",
                j.count(where=(j.category == cat) & (opened_days <= w)),
                f"{cat} tickets opened in the {w} days before the cutoff",
                fill=True,
            )
        if "escalated" in cols:
            add(
                f"tickets_escalated_{w}d",
                j.count(where=recent_closed & j.escalated),
                f"tickets closed in the {w} days before the cutoff that had been escalated",
                fill=True,
            )
        if reopened_col is not None:
            add(
                f"tickets_reopened_{w}d",
                j.count(where=recent_closed & j.reopened),
                f"tickets closed in the {w} days before the cutoff that had been reopened",
                fill=True,
            )
        if "closed_at" in cols:
            add(
                f"ticket_hours_to_resolve_mean_{w}d",
                hours.mean(where=recent_closed),
                f"mean hours from opening to closing of tickets closed in the {w} "
                "days before the cutoff",
            )
        if "satisfaction" in cols:
            add(
                f"ticket_satisfaction_mean_{w}d",
                j.satisfaction.mean(where=recent_closed),
                f"mean satisfaction of tickets closed in the {w} days before the cutoff",
            )
    if "escalated" not in cols:
        log.warning("tickets has no escalated column: escalation features skipped")
    if reopened_col is None:
        log.info("tickets has no reopened column: reopen features skipped")
    add(
        "days_since_last_ticket",
        (j.cutoff.epoch_seconds() // day - j.opened_at.epoch_seconds() // day).min().cast("int64"),
        "days from the last ticket's opening day to the cutoff day; null if none",
    )
    return feats.feature_set(j, spine)
