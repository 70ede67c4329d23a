"""Engagement: how often and how recently a customer uses the product, and the trend.

All event features read rows shaped (customer_id, event_type, day, n, value_sum): either the
daily aggregate (at most one row per customer, type and day; Spark caches it) or one row per
event (n = 1; `Tables.events_per_event`), which the embedded engine reads straight from the
events: on event logs with about one event of a type per customer and day, aggregating per day
costs more than every feature built from it and shrinks nothing. Features that count days
(active days, orders) count distinct days on per-event rows. Days are UTC calendar days as
integers, and cutoffs are UTC midnights, so `day < cutoff_day` is exactly `ts < cutoff`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import ibis

from features.catalog import DataFacts, FamilyDecision, FeatureInfo, FeatureSet, decision
from features.settings import FeaturizeParams
from features.tables import (
    KEYS,
    Tables,
    attach,
    day_number,
    plural,
    slug,
    with_cutoff_day,
)

log = logging.getLogger(__name__)

TREND_DAYS = 30  # last 30 days vs the 30 days before
SLOPE_WEEKS = 8  # slope of weekly counts over the last 8 weeks
# Least-squares slope of y_j on j = 0..7 (oldest..newest week) is sum_j (j - 3.5) y_j / 42.
_SLOPE_MEAN = (SLOPE_WEEKS - 1) / 2
_SLOPE_SXX = sum((j - _SLOPE_MEAN) ** 2 for j in range(SLOPE_WEEKS))


def daily_events(events: ibis.Table, event_types: Sequence[str]) -> ibis.Table:
    """Events per (customer_id, event_type, day): count and value sum, for the given types."""
    ev = events.filter(events.event_type.isin(list(event_types)))
    value = ev.value.cast("float64") if "value" in ev.columns else ibis.null("float64")
    ev = ev.select("customer_id", "event_type", day=day_number(ev.ts), value=value)
    return ev.group_by(["customer_id", "event_type", "day"]).aggregate(
        n=ev.count(), value_sum=ev.value.sum()
    )


def event_rows(events: ibis.Table, event_types: Sequence[str]) -> ibis.Table:
    """One row per event of the given types in the daily aggregate's shape: n = 1, value_sum =
    the event's value (`daily_events` without the grouping)."""
    ev = events.filter(events.event_type.isin(list(event_types)))
    value = ev.value.cast("float64") if "value" in ev.columns else ibis.null("float64")
    return ev.select(
        "customer_id",
        "event_type",
        day=day_number(ev.ts),
        n=ibis.literal(1, "int64"),
        value_sum=value,
    )


def by_day(rows: ibis.Table) -> ibis.Table:
    """Per-event rows (`event_rows`) summed per (customer_id, event_type, day): `daily_events`."""
    return rows.group_by(["customer_id", "event_type", "day"]).aggregate(
        n=rows.n.sum(), value_sum=rows.value_sum.sum()
    )


def all_event_types(cfg: FeaturizeParams) -> tuple[str, ...]:
    """Every event type any family reads, in a stable order."""
    names = [
        *cfg.event_types,
        *cfg.rhythm_event_types,
        *cfg.economic_event_types,
        *cfg.fee_event_types,
        cfg.plan_change_event_type,
        cfg.survey_event_type,
    ]
    return tuple(dict.fromkeys(n for n in names if n))


def events_daily_of(
    tables: Tables, event_types: Sequence[str], one_row_per_day: bool = False
) -> ibis.Table | None:
    """The event rows of these types: the cached ones when present (per event or per day, see
    `Tables.events_per_event`), else the daily aggregate computed. `one_row_per_day`: summed
    per day when the cached rows are per event (for features that count rows as days)."""
    if tables.events_daily is not None:
        d = tables.events_daily
        d = d.filter(d.event_type.isin(list(event_types)))
        return by_day(d) if one_row_per_day and tables.events_per_event else d
    if tables.events is None:
        return None
    return daily_events(tables.events, event_types)


@dataclass(frozen=True)
class EventSpec:
    """Which features to derive for one event type."""

    event_type: str
    group: str
    windows: tuple[int, ...]
    value_name: str | None = None  # sum `value` per window as <type>_<value_name>_<w>d
    active_days: bool = False
    trend: bool = False
    days_since: bool = True
    count_name: str | None = None  # defaults to the plural of the type


def _reach(specs: Sequence[EventSpec]) -> int:
    """Days before the cutoff that the windowed aggregates of `specs` read."""
    spans = [w for s in specs for w in s.windows]
    if any(s.trend for s in specs):
        spans += [2 * TREND_DAYS, 7 * SLOPE_WEEKS]
    return max(spans, default=0)


def events_before(
    daily: ibis.Table,
    spine: ibis.Table,
    types: Sequence[str],
    reach: int | None = None,
    beyond: int | None = None,
) -> ibis.Table:
    """Daily rows strictly before each spine row's cutoff (at most `reach` days before, and more
    than `beyond` days before, if given), with `back`: days from the row's day to the cutoff day
    (1 = the day before)."""
    sp = with_cutoff_day(spine)
    d = daily.filter(daily.event_type.isin(list(types)))
    on = [sp.customer_id == d.customer_id, d.day < sp.cutoff_day]
    if reach is not None:
        on.append(d.day >= sp.cutoff_day - reach)
    if beyond is not None:
        on.append(d.day < sp.cutoff_day - beyond)
    j = sp.join(d, on)
    return j.select(
        "customer_id", "cutoff", "event_type", "n", "value_sum", back=j.cutoff_day - j.day
    )


# Active days from per-event rows: a bitmap of the days with an event (bit b of word k: the day
# 62 k + b + 1 days before the cutoff), OR-ed per group, then counted. 62 bits keep every word,
# and every step of counting its bits, a non-negative int64.
_WORD_DAYS = 62


def _day_words(j: ibis.Table, days: int) -> dict[str, ibis.Value]:
    """Per group: the words of the bitmap of days with a row, up to `days` before the cutoff."""
    words: dict[str, ibis.Value] = {}
    for k in range(-(-days // _WORD_DAYS)):
        lo = k * _WORD_DAYS
        in_word = (j.back > lo) & (j.back <= min(lo + _WORD_DAYS, days))
        # the shift is clamped to the word: an engine may shift rows the filter then drops
        shift = ibis.greatest(ibis.least(j.back - (lo + 1), _WORD_DAYS - 1), 0)
        bit = ibis.literal(1, "int64") << shift
        words[f"_days_{k}"] = bit.bit_or(where=in_word).fill_null(0)
    return words


def _bit_counts(table: ibis.Table, words: dict[str, ibis.Value]) -> ibis.Table:
    """`table` with each word column replaced by the number of its set bits (a SWAR popcount:
    shifts, masks and sums only; each step its own projection, so no step's SQL repeats the
    previous one's)."""
    steps = [
        lambda x: x - ((x >> 1) & 0x5555555555555555),
        lambda x: (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333),
        lambda x: (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F,
        lambda x: x + (x >> 8),
        lambda x: x + (x >> 16),
        lambda x: (x + (x >> 32)) & 0x7F,
    ]
    for step in steps:
        table = table.mutate(**{w: step(table[w]) for w in words})
    return table


def _word_mask(k: int, days: int) -> int:
    """The bits of word k that are at most `days` days before the cutoff."""
    bits = min(max(days - k * _WORD_DAYS, 0), _WORD_DAYS)
    return (1 << bits) - 1


def _per_type(
    daily: ibis.Table,
    spine: ibis.Table,
    specs: Sequence[EventSpec],
    per_event: bool = False,
) -> ibis.Table:
    """Long form: one row per (customer_id, cutoff, event_type) with every windowed aggregate
    the specs need (n_<w>, v_<w>, a_<w>, _last, _prev, _slope) and `back`, the days from the
    type's last event day to the cutoff day (over all history). `per_event`: `daily` has a row
    per event, not per day (active days are then distinct days).

    Every row is joined once: the windows' pass reads the rows within their reach (and takes the
    latest day there); days since the last event then need only the older rows, in a second pass
    with a single aggregate, used where the first found none.
    """
    recency_types = [s.event_type for s in specs if s.days_since]
    reach = _reach(specs)
    j = events_before(daily, spine, [s.event_type for s in specs], reach)
    aggs: dict[str, ibis.Value] = {}
    active = sorted({w for s in specs if s.active_days for w in s.windows})
    words = _day_words(j, max(active)) if per_event and active else {}
    for w in sorted({w for s in specs for w in s.windows}):
        in_w = j.back <= w
        aggs[f"n_{w}"] = j.n.sum(where=in_w)
        if any(s.value_name and w in s.windows for s in specs):
            aggs[f"v_{w}"] = j.value_sum.sum(where=in_w)
        if any(s.active_days and w in s.windows for s in specs) and not words:
            aggs[f"a_{w}"] = j.n.count(where=in_w)
    if any(s.trend for s in specs):
        aggs["_last"] = j.n.sum(where=j.back <= TREND_DAYS)
        aggs["_prev"] = j.n.sum(where=(j.back > TREND_DAYS) & (j.back <= 2 * TREND_DAYS))
        week_from_oldest = (SLOPE_WEEKS - 1) - (j.back - 1) // 7
        aggs["_slope"] = (j.n * (week_from_oldest - _SLOPE_MEAN) / _SLOPE_SXX).sum(
            where=j.back <= 7 * SLOPE_WEEKS
        )
    if recency_types:
        aggs["_recent"] = j.back.min()
    keys = [*KEYS, "event_type"]
    windowed = j.group_by(keys).aggregate(**aggs, **words)
    if words:
        # masked words (the bits of each active-days window), counted, summed per window
        masked = {
            f"_days_{w}_{k}": windowed[word] & _word_mask(k, w)
            for w in active
            for k, word in enumerate(words)
            if _word_mask(k, w)
        }
        counted = _bit_counts(windowed.mutate(**masked), masked)
        days = {
            f"a_{w}": sum(
                (counted[c] for c in masked if c.startswith(f"_days_{w}_")),
                ibis.literal(0, "int64"),
            )
            for w in active
        }
        windowed = counted.select(*keys, *aggs, **days)
        aggs = {**aggs, **days}
    if not recency_types:
        return windowed
    # Days since the last event look back over all history, not only the windows' reach: the
    # rows beyond the reach, in a second, lighter pass (one aggregate).
    h = events_before(daily, spine, recency_types, None, beyond=reach)
    older = h.group_by(keys).aggregate(_older=h.back.min())
    both = windowed.outer_join(older, keys)
    values = [a for a in aggs if a != "_recent"]
    return both.select(
        *[ibis.coalesce(windowed[k], older[k]).name(k) for k in keys],
        *values,
        back=ibis.coalesce(both._recent, both._older),
    )


def _pick(long: ibis.Table, is_type: ibis.BooleanValue, column: str) -> ibis.Value:
    """The pivot: `column` of the one long row of a type (max keeps the column's type)."""
    return long[column].max(where=is_type)


def event_window_features(
    daily: ibis.Table, spine: ibis.Table, specs: Sequence[EventSpec], per_event: bool = False
) -> FeatureSet:
    """Per event type and window: counts, value sums, active days, trend, days since last.

    Two grouped passes: the event rows joined with the spine (rows strictly before the cutoff)
    are grouped per (customer, cutoff, event type), with one conditional aggregate per window (a
    handful per row, whatever the number of types); that long table (`_per_type`) is then
    pivoted to one row per (customer, cutoff) and left-joined back onto the spine. Grouping per
    type first costs far less than one wide pass with every type's aggregates over every joined
    row.
    """
    long = _per_type(daily, spine, specs, per_event)
    aggs: dict[str, ibis.Value] = {}
    catalog: list[FeatureInfo] = []
    zero: list[str] = []

    def add(col: str, value: ibis.Value, group: str, text: str, fill: bool = True) -> None:
        aggs[col] = value
        if fill:
            zero.append(col)
        if not col.startswith("_"):
            catalog.append(FeatureInfo(col, group, text))

    for s in specs:
        is_t = long.event_type == s.event_type
        pick = partial(_pick, long, is_t)
        name = s.count_name or plural(s.event_type)
        t = slug(s.event_type)
        for w in s.windows:
            add(
                f"{name}_{w}d",
                pick(f"n_{w}"),
                s.group,
                f"number of {s.event_type} events in the {w} days before the cutoff",
            )
            if s.value_name:
                add(
                    f"{t}_{slug(s.value_name)}_{w}d",
                    pick(f"v_{w}"),
                    s.group,
                    f"total {s.value_name} of {s.event_type} events in the {w} "
                    "days before the cutoff",
                )
            if s.active_days:
                add(
                    f"{t}_active_days_{w}d",
                    pick(f"a_{w}"),
                    s.group,
                    f"days with at least one {s.event_type} event in the {w} "
                    "days before the cutoff",
                )
        if s.trend:
            add(f"_{name}_last_{TREND_DAYS}", pick("_last"), s.group, "")
            add(f"_{name}_prev_{TREND_DAYS}", pick("_prev"), s.group, "")
            add(
                f"{name}_weekly_slope_{SLOPE_WEEKS}w",
                pick("_slope"),
                s.group,
                f"least-squares slope of weekly {s.event_type} counts over the "
                f"last {SLOPE_WEEKS} weeks (events per week, per week)",
            )
        if s.days_since:
            add(
                f"days_since_last_{t}",
                pick("back"),
                s.group,
                f"days from the last {s.event_type} event's day to the cutoff "
                "day (1 = the day before); null if never",
                fill=False,
            )
    grouped = long.group_by(list(KEYS)).aggregate(**aggs)
    table = attach(spine, grouped, zero_fill=tuple(zero))
    extra: dict[str, ibis.Value] = {}
    for s in specs:
        if not s.trend:
            continue
        name = s.count_name or plural(s.event_type)
        last = table[f"_{name}_last_{TREND_DAYS}"]
        prev = table[f"_{name}_prev_{TREND_DAYS}"]
        col = f"{name}_{TREND_DAYS}d_minus_prev_{TREND_DAYS}d"
        extra[col] = last - prev
        catalog.append(
            FeatureInfo(
                col,
                s.group,
                f"{s.event_type} events in the last {TREND_DAYS} days minus those "
                f"in the {TREND_DAYS} days before",
            )
        )
        col = f"{name}_{TREND_DAYS}d_over_prev_{TREND_DAYS}d"
        extra[col] = ibis.ifelse(prev > 0, last.cast("float64") / prev, ibis.null("float64"))
        catalog.append(
            FeatureInfo(
                col,
                s.group,
                f"{s.event_type} events in the last {TREND_DAYS} days divided by "
                f"those in the {TREND_DAYS} days before; null if none before",
            )
        )
    table = table.mutate(**extra) if extra else table
    names = [c.name for c in catalog]
    return FeatureSet(table.select(*KEYS, *names), tuple(catalog))


def tenure_days(customers: ibis.Table, spine: ibis.Table) -> FeatureSet:
    """Whole days from the signup day to the cutoff day."""
    sp = with_cutoff_day(spine)
    c = customers.select("customer_id", signup_day=day_number(customers.signup_date))
    j = sp.join(c, "customer_id")
    vals = j.select(*KEYS, tenure_days=j.cutoff_day - j.signup_day)
    info = FeatureInfo("tenure_days", "contract", "days from the signup day to the cutoff day")
    return FeatureSet(attach(spine, vals), (info,))


def merge(spine: ibis.Table, parts: Sequence[FeatureSet]) -> FeatureSet:
    """Join several feature sets over the same spine into one (one row per spine row)."""
    table = spine.select(*KEYS).view()
    catalog: list[FeatureInfo] = []
    for part in parts:
        cols = [c.name for c in part.catalog]
        joined = table.left_join(part.table, list(KEYS))
        table = joined.select(*[c for c in table.columns], *cols)
        catalog.extend(part.catalog)
    return FeatureSet(table, tuple(catalog))


def event_family(name: str, types: Sequence[str], facts: DataFacts, setting: str) -> FamilyDecision:
    """Built when at least one of the configured event `types` occurs in the events table."""
    types = list(dict.fromkeys(t for t in types if t))
    present = [t for t in types if t in facts.event_types]
    absent = [t for t in types if t not in facts.event_types]
    if not types:
        missing: str | None = f"no event types configured ({setting})"
    elif not facts.has_events:
        missing = "no events table"
    elif not present:
        missing = f"no {', '.join(types)} events in the events table ({setting})"
    else:
        missing = None
    note = f"; none of {', '.join(absent)}: not built for those" if absent else ""
    return decision(name, facts, missing, f"{', '.join(present)} events{note}")


def event_types_built(name: str, types: Sequence[str], facts: DataFacts | None) -> list[str]:
    """The configured event types to derive features for: those that occur in the data (every
    one when `facts` is None or the family is forced)."""
    types = [t for t in dict.fromkeys(types) if t]
    if facts is None or name in facts.forced:
        return types
    return [t for t in types if t in facts.event_types]


USAGE = "engagement.usage"
PLAN_CHANGES = "contract.plan_changes"


def _plan_change_types(cfg: FeaturizeParams) -> list[str]:
    t = cfg.plan_change_event_type
    return [t] if t and t not in cfg.event_types else []


def engagement_families(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Tenure (always), usage per event type, plan change counts: built or not, and why."""
    return (
        FamilyDecision("engagement.tenure", True, "customers.signup_date"),
        event_family(USAGE, cfg.event_types, facts, "featurize.event_types"),
        event_family(
            PLAN_CHANGES, _plan_change_types(cfg), facts, "featurize.plan_change_event_type"
        ),
    )


def engagement_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet:
    """Usage per event type and window, recency, trend, plan changes and tenure.

    With `facts`, only the event types that occur in the data (None: every configured type).
    """
    parts = [tenure_days(tables.customers, spine)]
    usage = event_types_built(USAGE, cfg.event_types, facts)
    changes = event_types_built(PLAN_CHANGES, _plan_change_types(cfg), facts)
    types = [*cfg.event_types, cfg.plan_change_event_type]
    daily = events_daily_of(tables, [t for t in types if t])
    if daily is None:
        log.warning("no events table: engagement features other than tenure are skipped")
        return merge(spine, parts)
    specs = [
        EventSpec(
            t,
            "engagement",
            tuple(cfg.windows),
            value_name=cfg.event_value_names.get(t),
            active_days=True,
            trend=True,
        )
        for t in usage
    ]
    specs += [EventSpec(t, "contract", tuple(cfg.windows)) for t in changes]
    if specs:
        parts.append(event_window_features(daily, spine, specs, tables.events_per_event))
    return merge(spine, parts)
