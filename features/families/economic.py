"""Economic: what the customer pays, price changes, payment trouble, purchases, renewal timing."""

from __future__ import annotations

import logging

import ibis

from features.catalog import FeatureInfo, FeatureSet
from features.families.engagement import EventSpec, event_window_features, events_daily_of, merge
from features.settings import FeaturizeParams
from features.tables import KEYS, Tables, attach, with_cutoff_day

log = logging.getLogger(__name__)

FEE_CHANGE_DAYS = 90


def monthly_fee_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams
) -> FeatureSet | None:
    """Current fee (last fee event before the cutoff, else customers.monthly_fee) and its
    90-day change."""
    customers = tables.customers
    has_base = "monthly_fee" in customers.columns
    types = list(cfg.fee_event_types)
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
    month end)."""
    c = customers.select("customer_id", renew_dom=customers.signup_date.day())
    sp = spine.select(*KEYS).view()
    j = sp.join(c, "customer_id")
    cut = j.cutoff.date()
    this_month = cut.truncate("M")
    next_month = this_month + ibis.interval(months=1)
    after_next = this_month + ibis.interval(months=2)

    def renewal_in(month_start: ibis.DateValue, following: ibis.DateValue) -> ibis.DateValue:
        days_in_month = (following - ibis.interval(days=1)).day()
        return month_start + (ibis.least(j.renew_dom, days_in_month) - 1).as_interval("D")

    this_renewal = renewal_in(this_month, next_month)
    next_renewal = ibis.ifelse(
        this_renewal >= cut, this_renewal, renewal_in(next_month, after_next)
    )
    days = next_renewal.epoch_seconds() // 86_400 - cut.epoch_seconds() // 86_400
    values = j.select(*KEYS, days_to_next_renewal=days.cast("int64"))
    info = FeatureInfo(
        "days_to_next_renewal",
        "contract",
        "days from the cutoff day to the next monthly renewal (0 = renews on the cutoff day)",
    )
    return FeatureSet(attach(spine, values), (info,))


def economic_features(tables: Tables, spine: ibis.Table, cfg: FeaturizeParams) -> FeatureSet:
    """Fee level and change, payment failures, discount requests, purchases, renewal timing."""
    parts = [days_to_next_renewal(tables.customers, spine)]
    fee = monthly_fee_features(tables, spine, cfg)
    if fee is not None:
        parts.append(fee)
    daily = events_daily_of(tables, list(cfg.economic_event_types))
    if daily is None or not cfg.economic_event_types:
        log.warning("no events table or no economic_event_types: economic event features skipped")
    else:
        specs = [
            EventSpec(t, "economic", tuple(cfg.windows), value_name=cfg.event_value_names.get(t))
            for t in cfg.economic_event_types
            if t not in cfg.event_types  # already an engagement feature
        ]
        if specs:
            parts.append(event_window_features(daily, spine, specs))
    return merge(spine, parts)
