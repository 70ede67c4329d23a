"""Purchase rhythm: how a customer's buying compares with their own pace, over all history.

For a non-contractual business (a purchase log with no fees or contracts) the best-known signal
is the customer's own rhythm, what BG/NBD and RFM models read: how often they buy, how much per
order, and how long since the last order compared with their usual gap. Counts in fixed windows
(the engagement family) cannot say this for a customer whose history is longer than every
window, and a tree cannot extrapolate counts to tenures longer than those it was trained on;
ratios to the customer's own history stay in a known range whatever the tenure.

Per event type in `featurize.rhythm_event_types` (e.g. `purchase`), from every event strictly
before the cutoff (no window): orders are active days (several events on one day are one order),
as in the daily aggregate the other event families read.
"""

from __future__ import annotations

import ibis

from features.catalog import DataFacts, FamilyDecision, FeatureInfo, FeatureSet
from features.families.engagement import (
    event_family,
    event_types_built,
    events_before,
    events_daily_of,
    merge,
)
from features.settings import FeaturizeParams
from features.tables import KEYS, Tables, attach, slug

RHYTHM = "engagement.rhythm"
DAYS_PER_YEAR = 365.25


def purchase_families(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Built when a configured rhythm event type occurs in the events table."""
    return (event_family(RHYTHM, cfg.rhythm_event_types, facts, "featurize.rhythm_event_types"),)


def purchase_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet:
    """Per rhythm event type: orders per year, mean gap, recency over gap, recency share of the
    customer's buying life, and the mean value per order (types with a value name)."""
    types = event_types_built(RHYTHM, cfg.rhythm_event_types, facts)
    daily = events_daily_of(tables, types, one_row_per_day=True) if types else None
    if daily is None:
        return merge(spine, [])
    j = events_before(daily, spine, types)
    aggs: dict[str, ibis.Value] = {}
    for t in types:
        is_t = j.event_type == t
        s = slug(t)
        aggs[f"_{s}_orders"] = j.back.count(where=is_t)
        aggs[f"_{s}_first"] = j.back.max(where=is_t)
        aggs[f"_{s}_last"] = j.back.min(where=is_t)
        aggs[f"_{s}_value"] = j.value_sum.sum(where=is_t)
    table = attach(spine, j.group_by(list(KEYS)).aggregate(**aggs))
    cols: dict[str, ibis.Value] = {}
    catalog: list[FeatureInfo] = []

    def add(name: str, value: ibis.Value, text: str) -> None:
        cols[name] = value
        catalog.append(FeatureInfo(name, "engagement", text))

    for t in types:
        s = slug(t)
        orders = table[f"_{s}_orders"].cast("float64")
        first = table[f"_{s}_first"].cast("float64")  # days from the first order to the cutoff
        last = table[f"_{s}_last"].cast("float64")  # days from the last order to the cutoff
        gap = ibis.ifelse(orders >= 2, (first - last) / (orders - 1), ibis.null("float64"))
        add(
            f"{s}_orders_per_year",
            ibis.ifelse(orders >= 1, orders * DAYS_PER_YEAR / first, ibis.null("float64")),
            f"days with a {t} event per year since the first one (the customer's buying "
            "rate); null if none before the cutoff",
        )
        add(
            f"{s}_mean_gap_days",
            gap,
            f"mean days between consecutive days with a {t} event, over all history; null "
            "with fewer than two",
        )
        add(
            f"{s}_recency_over_gap",
            ibis.ifelse(gap > 0, last / gap, ibis.null("float64")),
            f"days since the last {t} event divided by the customer's mean gap (above 1: "
            "overdue by their own rhythm); null with fewer than two",
        )
        add(
            f"{s}_recency_share",
            ibis.ifelse(orders >= 1, last / first, ibis.null("float64")),
            f"days since the last {t} event as a share of days since the first (0: bought "
            "the day before the cutoff, 1: only the first one); null if none",
        )
        value_name = cfg.event_value_names.get(t)
        if value_name:
            add(
                f"{s}_{slug(value_name)}_per_order",
                ibis.ifelse(
                    orders >= 1, table[f"_{s}_value"].cast("float64") / orders, ibis.null("float64")
                ),
                f"mean {value_name} per day with a {t} event, over all history (e.g. the mean "
                "order value); null if none",
            )
    out = table.mutate(**cols).select(*KEYS, *cols)
    return FeatureSet(out, tuple(catalog))
