"""Point-in-time churn labels: who is active at each monthly cutoff, and who churns after it.

Two definitions (`label.definition`):

* contractual: active = signed up before the cutoff and no churn_events row at or before it;
  churned = the first churn in (cutoff + lead, cutoff + lead + horizon].
* inactivity (non-contractual churn): activity = events whose type is in
  `label.activity_event_types` (every event type when null or empty). Active = signed up before
  the cutoff with an activity event in the `inactivity_lookback_days` days before it; churned =
  no activity event on the days [cutoff + lead, cutoff + lead + horizon). An event of another
  type (a delivery, a review) neither makes a customer active nor un-churns them.

Population filter, both definitions: `label.min_prior_purchases` = N keeps the customers with at
least N purchases before the cutoff, a purchase being a distinct timestamp of an activity event
(rows sharing a timestamp, such as an order's line items, count once), counted over all of the
customer's history strictly before the cutoff. N = 2 selects repeat buyers.

Data end: the label sees events up to an exclusive end E, the UTC midnight after
`label.data_end` (the last complete day) or, when it is null, the midnight that starts the day of
the latest timestamp in any table. A cutoff is labelled only when its window ends by E; activity
events from E on are ignored. `activity_tail` compares activity in the last days before E with
the months before, to catch an incomplete tail (a late load makes everyone look churned).

Every population rule reads only data strictly before the cutoff.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import pyarrow as pa

from features.base.errors import BadInputError
from features.base.time import next_month, to_utc, utc_midnight
from features.settings import LabelParams
from features.tables import Tables, day_number, max_timestamp

log = logging.getLogger(__name__)

LABEL_COLUMNS: tuple[str, ...] = ("customer_id", "cutoff", "churned", "churn_type")
TAIL_DAYS = 14  # the tail compared with the months before it
BASELINE_WINDOWS = 6  # how many 30-day windows before the tail make the baseline (their median)
BASELINE_WINDOW_DAYS = 30


def monthly_cutoffs(
    first_cutoff: str | dt.date, data_end: dt.datetime, lead_days: int, horizon_days: int
) -> list[dt.datetime]:
    """Month starts from `first_cutoff` whose label window still ends inside the data.

    A cutoff c is kept when c + lead + horizon <= the last day of data (midnight of the
    latest timestamp's date), so every label window is fully observed.
    """
    start = utc_midnight(first_cutoff)
    if start.day != 1:  # the first month start on or after first_cutoff
        start = next_month(start)
    last_day = utc_midnight(data_end)
    span = dt.timedelta(days=lead_days + horizon_days)
    cutoffs = []
    c = start
    while c + span <= last_day:
        cutoffs.append(c)
        c = next_month(c)
    return cutoffs


def cutoff_table(cutoffs: Sequence[dt.datetime]) -> ibis.Table:
    """A one-column Ibis table of cutoffs (timestamp, UTC)."""
    arr = pa.array([to_utc(c) for c in cutoffs], type=pa.timestamp("us", tz="UTC"))
    return ibis.memtable(pa.table({"cutoff": arr}))


def _signed_up(tables: Tables, cutoffs: ibis.Table) -> ibis.Table:
    """(customer_id, cutoff) for every customer who signed up strictly before the cutoff."""
    customers = tables.customers.select("customer_id", "signup_date")
    pairs = customers.cross_join(cutoffs)
    return pairs.filter(pairs.signup_date < pairs.cutoff).select("customer_id", "cutoff")


def _first_churn(tables: Tables) -> ibis.Table:
    """Per customer: the first churn date and its reason (null when the source has none)."""
    ce = tables.churn_events
    assert ce is not None
    reason = ce.churn_reason.cast("string") if "churn_reason" in ce.columns else ibis.null("string")
    ce = ce.mutate(reason=reason)
    return ce.group_by("customer_id").aggregate(
        first_churn=ce.churn_date.min(), churn_type=ce.reason.argmin(ce.churn_date)
    )


def contractual_active(tables: Tables, cutoffs: ibis.Table) -> ibis.Table:
    """(customer_id, cutoff, first_churn, churn_type): signed up before and not churned by it."""
    pairs = _signed_up(tables, cutoffs)
    if tables.churn_events is None:
        log.warning("no churn_events table: every signed-up customer counts as active")
        return pairs.mutate(
            first_churn=ibis.null("timestamp('UTC')"), churn_type=ibis.null("string")
        )
    first = _first_churn(tables)
    joined = pairs.left_join(first, "customer_id").drop("customer_id_right")
    return joined.filter(joined.first_churn.isnull() | (joined.first_churn > joined.cutoff))


def declared_end(data_end: str | dt.date | None) -> dt.datetime | None:
    """The midnight after `label.data_end` (its last complete day), or None when unset."""
    if data_end is None:
        return None
    try:
        return utc_midnight(data_end) + dt.timedelta(days=1)
    except ValueError:
        raise BadInputError(
            f"label.data_end: expected the last complete day such as 2024-12-30, found {data_end!r}"
        ) from None


def label_end(tables: Tables, data_end: str | dt.date | None = None) -> dt.datetime:
    """The exclusive end E of the data the label sees (a UTC midnight).

    With `data_end` (the last complete day): the midnight after it; that day may not be later
    than the latest timestamp's day. Without: the midnight that starts the latest timestamp's
    day (so that day, possibly partial, is in no label window).
    """
    latest = max_timestamp(tables)
    derived = utc_midnight(latest)
    end = declared_end(data_end)
    if end is None:
        return derived
    if end - dt.timedelta(days=1) > derived:
        raise BadInputError(
            f"label.data_end {data_end} is after the latest timestamp in the data ({latest}): "
            "label windows would reach days with no data and count everyone as churned. Set "
            f"label.data_end to {derived.date()} or earlier, or to null."
        )
    return end


def activity_events(
    tables: Tables,
    activity_event_types: Sequence[str] | None = None,
    end: dt.datetime | None = None,
) -> ibis.Table:
    """The events that count as activity: of `activity_event_types` (all when empty), before
    `end` (all when None)."""
    if tables.events is None:
        raise BadInputError(
            "label.definition 'inactivity' and label.min_prior_purchases need the events table; "
            "none was found in the interim data. Map an events source in ingest.tables, or use "
            "the contractual definition without min_prior_purchases."
        )
    ev = tables.events
    if activity_event_types:
        ev = ev.filter(ev.event_type.cast("string").isin(list(activity_event_types)))
    if end is not None:
        ev = ev.filter(ev.ts < to_utc(end))
    return ev


def _activity_days(activity: ibis.Table) -> ibis.Table:
    """(customer_id, day): the days with at least one activity event."""
    return activity.select("customer_id", day=day_number(activity.ts)).distinct()


def inactivity_active(
    tables: Tables,
    cutoffs: ibis.Table,
    lookback_days: int,
    activity_event_types: Sequence[str] | None = None,
    end: dt.datetime | None = None,
) -> ibis.Table:
    """(customer_id, cutoff): signed up before the cutoff with an activity event in the
    lookback window (the `lookback_days` days before the cutoff's day)."""
    days = _activity_days(activity_events(tables, activity_event_types, end))
    pairs = _signed_up(tables, cutoffs).mutate(cutoff_day=day_number(ibis._.cutoff))
    j = pairs.join(
        days,
        [
            pairs.customer_id == days.customer_id,
            days.day >= pairs.cutoff_day - lookback_days,
            days.day < pairs.cutoff_day,
        ],
    )
    return j.select("customer_id", "cutoff").distinct()


def with_prior_purchases(
    keys: ibis.Table, activity: ibis.Table, min_prior_purchases: int
) -> ibis.Table:
    """The rows of `keys` (customer_id, cutoff, ...) whose customer made at least
    `min_prior_purchases` purchases (distinct activity timestamps) strictly before the cutoff.

    Point-in-time: the N-th purchase is before the cutoff exactly when N purchases are, so
    events at or after the cutoff cannot change the answer.
    """
    if min_prior_purchases <= 0:
        return keys
    purchases = activity.select("customer_id", "ts").distinct()
    ranked = purchases.mutate(
        rank=ibis.row_number().over(group_by=purchases.customer_id, order_by=purchases.ts)
    )
    nth = ranked.filter(ranked["rank"] == min_prior_purchases - 1).select(
        "customer_id", nth_purchase="ts"
    )
    return keys.semi_join(
        nth, [keys.customer_id == nth.customer_id, nth.nth_purchase < keys.cutoff]
    )


def contractual_labels(
    tables: Tables, cutoffs: ibis.Table, lead_days: int, horizon_days: int
) -> ibis.Table:
    """Labels from churn_events: churned = first churn in (cutoff + lead, cutoff + lead + horizon].

    Customers who churn during the lead period (cutoff, cutoff + lead] are left out: they are
    gone before any action could reach them, so they are neither churners nor stayers.
    """
    active = contractual_active(tables, cutoffs)
    start = active.cutoff + ibis.interval(days=lead_days)
    end = active.cutoff + ibis.interval(days=lead_days + horizon_days)
    in_lead = active.first_churn.notnull() & (active.first_churn <= start)
    active = active.filter(~in_lead)
    churned = (
        active.first_churn.notnull() & (active.first_churn > start) & (active.first_churn <= end)
    )
    return active.select(
        "customer_id",
        "cutoff",
        churned=churned,
        churn_type=ibis.ifelse(churned, active.churn_type, ibis.null("string")),
    )


def inactivity_labels(
    tables: Tables,
    cutoffs: ibis.Table,
    lead_days: int,
    horizon_days: int,
    lookback_days: int,
    activity_event_types: Sequence[str] | None = None,
    end: dt.datetime | None = None,
) -> ibis.Table:
    """Labels for non-contractual data: churned = no activity event on the days
    [cutoff + lead, cutoff + lead + horizon)."""
    activity = activity_events(tables, activity_event_types, end)
    active = inactivity_active(tables, cutoffs, lookback_days, activity_event_types, end).mutate(
        cutoff_day=day_number(ibis._.cutoff)
    )
    days = _activity_days(activity)
    j = active.join(
        days,
        [
            active.customer_id == days.customer_id,
            days.day >= active.cutoff_day + lead_days,
            days.day < active.cutoff_day + lead_days + horizon_days,
        ],
    )
    returning = j.select("customer_id", "cutoff").distinct().mutate(returned=True)
    out = active.left_join(returning, ["customer_id", "cutoff"])
    return out.select(
        "customer_id",
        "cutoff",
        churned=out.returned.isnull(),
        churn_type=ibis.null("string"),
    )


def build_labels(tables: Tables, params: LabelParams, cutoffs: Sequence[dt.datetime]) -> ibis.Table:
    """The label table (customer_id, cutoff, churned, churn_type) for the given cutoffs."""
    ct = cutoff_table(cutoffs)
    end = declared_end(params.data_end)
    if params.definition == "inactivity":
        labels = inactivity_labels(
            tables,
            ct,
            params.lead_days,
            params.horizon_days,
            params.inactivity_lookback_days,
            params.activity_event_types,
            end,
        )
    else:
        labels = contractual_labels(tables, ct, params.lead_days, params.horizon_days)
    if params.min_prior_purchases > 0:
        activity = activity_events(tables, params.activity_event_types, end)
        labels = with_prior_purchases(labels, activity, params.min_prior_purchases)
    return labels.select(
        labels.customer_id.cast("string"),
        labels.cutoff,
        labels.churned.cast("boolean"),
        labels.churn_type.cast("string"),
    ).order_by(["cutoff", "customer_id"])


def active_customers(
    tables: Tables,
    cutoffs: Sequence[dt.datetime],
    definition: str = "contractual",
    lookback_days: int = 30,
    *,
    activity_event_types: Sequence[str] | None = None,
    min_prior_purchases: int = 0,
) -> ibis.Table:
    """(customer_id, cutoff) for the customers active at each cutoff, by the label definition
    (and its activity types and prior-purchase filter)."""
    ct = cutoff_table(cutoffs)
    if definition == "inactivity":
        active = inactivity_active(tables, ct, lookback_days, activity_event_types)
    else:
        active = contractual_active(tables, ct).select("customer_id", "cutoff")
    if min_prior_purchases > 0:
        activity = activity_events(tables, activity_event_types)
        active = with_prior_purchases(active, activity, min_prior_purchases)
    return active


def population(tables: Tables, cutoffs: Sequence[dt.datetime], label: LabelParams) -> ibis.Table:
    """The label's population at each cutoff (definition, lookback, activity types, prior
    purchases): the one call scoring and the KPIs make, so both follow the label's settings."""
    return active_customers(
        tables,
        cutoffs,
        label.definition,
        label.inactivity_lookback_days,
        activity_event_types=label.activity_event_types,
        min_prior_purchases=label.min_prior_purchases,
    )


def check_activity_types(tables: Tables, activity_event_types: Sequence[str] | None) -> None:
    """Raise BadInputError when no activity type occurs in the events; warn about those missing."""
    if not activity_event_types or tables.events is None:
        return
    found = {
        str(v)
        for v in tables.events.select(t=tables.events.event_type.cast("string"))
        .distinct()
        .to_pyarrow()
        .column("t")
        .to_pylist()
        if v is not None
    }
    missing = sorted(set(activity_event_types) - found)
    if len(missing) == len(set(activity_event_types)):
        raise BadInputError(
            f"label.activity_event_types {list(activity_event_types)}: none of them occurs in "
            f"the events table, so nobody would be active; event types found: {sorted(found)}. "
            "Fix the names in params.yaml (they are matched exactly)."
        )
    if missing:
        log.warning(
            "label.activity_event_types: %s not found in the events table (found: %s)",
            missing,
            sorted(found),
        )


@dataclass(frozen=True)
class ActivityTail:
    """Activity events per day in the last days before the data end vs the months before."""

    tail_first_day: dt.date
    last_day: dt.date  # the last day the label sees (the day before the exclusive end)
    tail_per_day: float
    baseline_per_day: float | None  # median over the full baseline windows; None: no history
    baseline_windows: int  # how many full 30-day windows the median is taken over
    ratio: float | None  # tail_per_day / baseline_per_day
    incomplete: bool  # ratio below label.tail_warning_ratio: a warning was logged
    suggested_data_end: dt.date | None  # the last day at or above ratio x baseline

    def describe(self) -> str:
        """One line with the figures, for the stage's log."""
        base = "n/a" if self.baseline_per_day is None else f"{self.baseline_per_day:.1f}"
        ratio = "n/a" if self.ratio is None else f"{self.ratio:.2f}"
        return (
            f"activity {self.tail_first_day} .. {self.last_day}: {self.tail_per_day:.1f} "
            f"events/day vs {base}/day (median of {self.baseline_windows} previous "
            f"{BASELINE_WINDOW_DAYS}-day windows), ratio {ratio}"
        )


def activity_tail(
    tables: Tables,
    end: dt.datetime,
    activity_event_types: Sequence[str] | None = None,
    warning_ratio: float = 0.5,
) -> ActivityTail | None:
    """Compare activity events per day over the TAIL_DAYS days before `end` with the median
    daily rate of the BASELINE_WINDOWS 30-day windows before them; log a WARNING when the ratio
    is below `warning_ratio` (an incomplete tail). None without an events table."""
    if tables.events is None:
        return None
    end_day = utc_midnight(end)
    tail_start = end_day - dt.timedelta(days=TAIL_DAYS)
    span = dt.timedelta(days=BASELINE_WINDOWS * BASELINE_WINDOW_DAYS)
    activity = activity_events(tables, activity_event_types, end_day)
    first_ts = activity.ts.min().to_pyarrow().as_py()
    recent = activity.filter(activity.ts >= to_utc(tail_start - span))
    per_day = recent.group_by(day=day_number(recent.ts)).aggregate(n=recent.count()).to_pyarrow()
    counts = dict(
        zip(per_day.column("day").to_pylist(), per_day.column("n").to_pylist(), strict=True)
    )
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    end_n = (end_day - epoch).days
    tail_n = end_n - TAIL_DAYS

    def rate(first: int, last: int) -> float:  # events per day on days [first, last)
        return sum(counts.get(d, 0) for d in range(first, last)) / (last - first)

    first_n = None if first_ts is None else (utc_midnight(first_ts) - epoch).days
    rates = []
    for k in range(BASELINE_WINDOWS):
        hi = tail_n - k * BASELINE_WINDOW_DAYS
        lo = hi - BASELINE_WINDOW_DAYS
        if first_n is not None and lo >= first_n:  # a window fully inside the history
            rates.append(rate(lo, hi))
    tail_rate = rate(tail_n, end_n)
    baseline = statistics.median(rates) if rates else None
    ratio = tail_rate / baseline if baseline else None
    incomplete = ratio is not None and ratio < warning_ratio
    suggested = None
    if incomplete:
        assert baseline is not None
        good = [
            d
            for d in range(tail_n - BASELINE_WINDOW_DAYS, end_n)
            if counts.get(d, 0) >= warning_ratio * baseline
        ]
        suggested = (epoch + dt.timedelta(days=max(good) if good else tail_n - 1)).date()
    tail = ActivityTail(
        tail_first_day=tail_start.date(),
        last_day=(end_day - dt.timedelta(days=1)).date(),
        tail_per_day=tail_rate,
        baseline_per_day=baseline,
        baseline_windows=len(rates),
        ratio=ratio,
        incomplete=incomplete,
        suggested_data_end=suggested,
    )
    if incomplete:
        log.warning(
            "incomplete tail? %s, below label.tail_warning_ratio %.2f. Customers in the last "
            "label windows would look churned because their events are not loaded yet. Check "
            "the sources for a late load; if the data really is complete only up to an earlier "
            "day, set label.data_end to that last complete day (e.g. %s).",
            tail.describe(),
            warning_ratio,
            suggested,
        )
    return tail
