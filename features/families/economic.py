"""Economic: what the customer pays, price changes, payment trouble, purchases, renewal timing."""

from __future__ import annotations

import logging

import ibis

from features.catalog import DataFacts, FamilyDecision, FeatureInfo, FeatureSet, decision
from features.families.engagement import (
    EventSpec,
    event_family,
    event_types_built,
    event_window_features,
    events_daily_of,
    merge,
)
from features.settings import FeaturizeParams
from features.tables import KEYS, Tables, attach, with_cutoff_day

log = logging.getLogger(__name__)

FEE_CHANGE_DAYS = 90

FEE = "economic.fee"
RENEWAL = "contract.renewal"
ECONOMIC_EVENTS = "economic.events"
# customers columns that say the business sells a plan, a recurring fee or a contract: with none of
# them (and no fee or plan change events) there is no renewal, and a renewal calendar made from
# signup anniversaries would be invented
SUBSCRIPTION_COLUMNS = ("monthly_fee", "plan", "contract_type")


def fee_family(facts: DataFacts, cfg: FeaturizeParams) -> FamilyDecision:
    """Fee features need customers.monthly_fee or fee events with a value."""
    types = [t for t in cfg.fee_event_types if t in facts.valued_event_types]
    has_base = "monthly_fee" in facts.customer_columns
    missing = None
    if not has_base and not types:
        configured = ", ".join(cfg.fee_event_types) or "none configured"
        missing = f"no fee events ({configured}) with a value and no customers.monthly_fee column"
    found = ["customers.monthly_fee"] if has_base else []
    found += [f"{t} events" for t in types]
    return decision(FEE, facts, missing, ", ".join(found))


def renewal_family(facts: DataFacts, cfg: FeaturizeParams) -> FamilyDecision:
    """The monthly renewal calendar needs a plan, fee or contract: one of SUBSCRIPTION_COLUMNS
    in customers, or fee / plan change events."""
    columns = [f"customers.{c}" for c in SUBSCRIPTION_COLUMNS if c in facts.customer_columns]
    types = [
        f"{t} events"
        for t in dict.fromkeys([*cfg.fee_event_types, cfg.plan_change_event_type])
        if t and t in facts.event_types
    ]
    missing = None
    if not columns and not types:
        events = ", ".join(t for t in [*cfg.fee_event_types, cfg.plan_change_event_type] if t)
        missing = (
            f"no plan, fee or contract in the data (no customers column among "
            f"{', '.join(SUBSCRIPTION_COLUMNS)}, no {events or 'fee'} events): no renewals"
        )
    return decision(RENEWAL, facts, missing, ", ".join([*columns, *types]))


def _economic_types(cfg: FeaturizeParams) -> list[str]:
    return [t for t in cfg.economic_event_types if t not in cfg.event_types]


def economic_families(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Renewal calendar, fee, money events: built or not, and why."""
    return (
        renewal_family(facts, cfg),
        fee_family(facts, cfg),
        event_family(
            ECONOMIC_EVENTS, _economic_types(cfg), facts, "featurize.economic_event_types"
        ),
    )


def monthly_fee_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet | None:
    """Current fee (last fee event before the cutoff, else customers.monthly_fee) and its
    90-day change. With `facts`, only the fee event types that occur with a value."""
    customers = tables.customers
    has_base = "monthly_fee" in customers.columns
    types = list(cfg.fee_event_types)
    if facts is not None and FEE not in facts.forced:
        types = [t for t in types if t in facts.valued_event_types]
    ev = tables.events
    has_events = ev is not None and bool(types) and "value" in ev.columns
    if not has_base and not has_events:
        log.warning("no customers.monthly_fee and no fee events: fee features skipped")
        return None
    sp = with_cutoff_day(spine)
    base = customers.select(
        "customer_id",
        base_fee=customers.monthly_fee.cast("float64") if has_base else ibis.null("float64"),
    )
    fees = sp.join(base, "customer_id").select(*KEYS, "base_fee")
    if has_events:
        assert ev is not None
        fe = ev.filter(ev.event_type.isin(types) & ev.value.notnull()).select(
            "customer_id", "ts", fee=ev.value.cast("float64")
        )
        j = sp.join(fe, [sp.customer_id == fe.customer_id, fe.ts < sp.cutoff])
        before = j.ts < j.cutoff - ibis.interval(days=FEE_CHANGE_DAYS)
        last = j.group_by(list(KEYS)).aggregate(
            fee_now=j.fee.argmax(j.ts),
            fee_then=j.fee.argmax(j.ts, where=before),
        )
        f = fees.left_join(last, list(KEYS))
        fees = f.select(
            *KEYS,
            now=f.fee_now.coalesce(f.base_fee),
            then=f.fee_then.coalesce(f.base_fee),
        )
    else:
        fees = fees.select(*KEYS, now=fees.base_fee, then=fees.base_fee)
    values = fees.select(
        *KEYS,
        current_monthly_fee=fees.now,
        monthly_fee_change_90d=fees.now - fees.then,
        monthly_fee_change_pct_90d=ibis.ifelse(
            fees.then != 0, (fees.now - fees.then) / fees.then, ibis.null("float64")
        ),
    )
    src = "the last plan/price change before the cutoff, else the customer's monthly_fee"
    catalog = (
        FeatureInfo("current_monthly_fee", "economic", f"monthly fee at the cutoff: {src}"),
        FeatureInfo(
            "monthly_fee_change_90d",
            "economic",
            f"monthly fee at the cutoff minus {FEE_CHANGE_DAYS} days before",
        ),
        FeatureInfo(
            "monthly_fee_change_pct_90d",
            "economic",
            f"relative change of the monthly fee over the {FEE_CHANGE_DAYS} days before the cutoff",
        ),
    )
    return FeatureSet(attach(spine, values), catalog)


def days_to_next_renewal(customers: ibis.Table, spine: ibis.Table) -> FeatureSet:
    """Days from the cutoff day to the next monthly renewal (signup day of month, clamped to
    month end) and to the next yearly anniversary of signup (when annual contracts renew and
    price questions come up; 29 February renews on 28 February in other years)."""
    sd = customers.signup_date
    c = customers.select("customer_id", renew_dom=sd.day(), renew_month=sd.month())
    sp = spine.select(*KEYS).view()
    j = sp.join(c, "customer_id")
    cut = j.cutoff.date()
    this_month = cut.truncate("M")
    next_month = this_month + ibis.interval(months=1)
    after_next = this_month + ibis.interval(months=2)

    def renewal_in(month_start: ibis.DateValue, following: ibis.DateValue) -> ibis.DateValue:
        days_in_month = (following - ibis.interval(days=1)).day()
        return month_start + (ibis.least(j.renew_dom, days_in_month) - 1).as_interval("D")

    def anniversary_in(year: ibis.IntegerValue) -> ibis.DateValue:
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        day = ibis.ifelse((j.renew_month == 2) & (j.renew_dom == 29) & ~leap, 28, j.renew_dom)
        return ibis.date(year, j.renew_month, day)

    def days_to(day: ibis.DateValue) -> ibis.IntegerValue:
        return (day.epoch_seconds() // 86_400 - cut.epoch_seconds() // 86_400).cast("int64")

    this_renewal = renewal_in(this_month, next_month)
    next_renewal = ibis.ifelse(
        this_renewal >= cut, this_renewal, renewal_in(next_month, after_next)
    )
    this_year = anniversary_in(cut.year())
    next_anniversary = ibis.ifelse(this_year >= cut, this_year, anniversary_in(cut.year() + 1))
    values = j.select(
        *KEYS,
        days_to_next_renewal=days_to(next_renewal),
        days_to_next_anniversary=days_to(next_anniversary),
    )
    infos = (
        FeatureInfo(
            "days_to_next_renewal",
            "contract",
            "days from the cutoff day to the next monthly renewal (0 = renews on the cutoff day)",
        ),
        FeatureInfo(
            "days_to_next_anniversary",
            "contract",
            "days from the cutoff day to the next yearly anniversary of signup, when annual "
            "contracts renew (0 = on the cutoff day)",
        ),
    )
    return FeatureSet(attach(spine, values), infos)


def economic_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet:
    """Fee level and change, payment failures, discount requests, purchases, renewal timing.

    With `facts`, only what the data has inputs for (`economic_families`); None: everything.
    """
    parts = []
    if facts is None or renewal_family(facts, cfg).built:
        parts.append(days_to_next_renewal(tables.customers, spine))
    if facts is None or fee_family(facts, cfg).built:
        fee = monthly_fee_features(tables, spine, cfg, facts)
        if fee is not None:
            parts.append(fee)
    types = event_types_built(ECONOMIC_EVENTS, _economic_types(cfg), facts)
    daily = events_daily_of(tables, list(cfg.economic_event_types))
    if daily is None or not cfg.economic_event_types:
        log.warning("no events table or no economic_event_types: economic event features skipped")
    else:
        specs = [
            EventSpec(t, "economic", tuple(cfg.windows), value_name=cfg.event_value_names.get(t))
            for t in types
        ]
        if specs:
            parts.append(event_window_features(daily, spine, specs))
    return merge(spine, parts)
