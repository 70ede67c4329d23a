"""Point-in-time churn labels: who is active at each monthly cutoff, and who churns after it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import ibis
import pyarrow as pa

from features.base.errors import BadInputError
from features.base.time import next_month, to_utc, utc_midnight
from features.settings import LabelParams
from features.tables import Tables, day_number

log = logging.getLogger(__name__)

LABEL_COLUMNS: tuple[str, ...] = ("customer_id", "cutoff", "churned", "churn_type")


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


def inactivity_active(tables: Tables, cutoffs: ibis.Table, lookback_days: int) -> ibis.Table:
    """(customer_id, cutoff): signed up before the cutoff with an event in the lookback window."""
    if tables.events is None:
        raise BadInputError(
            "label.definition 'inactivity' needs the events table; none was found in the interim "
            "data. Map an events source in ingest.tables, or use the contractual definition."
        )
    pairs = _signed_up(tables, cutoffs).mutate(cutoff_day=day_number(ibis._.cutoff))
    ev = tables.events
    days = ev.select("customer_id", day=day_number(ev.ts)).distinct()
    j = pairs.join(
        days,
        [
            pairs.customer_id == days.customer_id,
            days.day >= pairs.cutoff_day - lookback_days,
            days.day < pairs.cutoff_day,
        ],
    )
    return j.select("customer_id", "cutoff").distinct()


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
    tables: Tables, cutoffs: ibis.Table, lead_days: int, horizon_days: int, lookback_days: int
) -> ibis.Table:
    """Labels for non-contractual data: churned = no event in [cutoff + lead, cutoff + lead +
    horizon)."""
    active = inactivity_active(tables, cutoffs, lookback_days).mutate(
        cutoff_day=day_number(ibis._.cutoff)
    )
    ev = tables.events
    assert ev is not None
    days = ev.select("customer_id", day=day_number(ev.ts)).distinct()
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
    if params.definition == "inactivity":
        labels = inactivity_labels(
            tables, ct, params.lead_days, params.horizon_days, params.inactivity_lookback_days
        )
    else:
        labels = contractual_labels(tables, ct, params.lead_days, params.horizon_days)
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
) -> ibis.Table:
    """(customer_id, cutoff) for the customers active at each cutoff, by the label definition."""
    ct = cutoff_table(cutoffs)
    if definition == "inactivity":
        return inactivity_active(tables, ct, lookback_days)
    return contractual_active(tables, ct).select("customer_id", "cutoff")
