"""Churn KPIs from the contract tables: churn, MRR churn, NRR, cohorts, NPS/CSAT, repeat buys.

Every KPI is monthly (calendar months, UTC) and computed overall and per segment (customers
columns, their values at signup). The event-sized tables stay in DuckDB: only aggregates (one row
per month and segment) come back to pandas.

Definitions
-----------
* Active at a month start m: `features.labels.population` (the label's definition), the
  same population the model scores. Contractual: signed up before m and no churn at or before m
  (the FIRST churn_event ends the customer's life; a customer who comes back after churning,
  i.e. later events or a second churn_event, is not active again and is not counted as a
  churner twice, exactly as the labels treat them). Inactivity: an event in the lookback window
  before m; such a customer can return and churn again.
* Churned in month m, contractual: active at m and not active at the next month start (first
  churn in (m, m_next]). Inactivity: the label of cutoff m, i.e. active at m and no activity
  event on the days [m + lead, m + lead + horizon) (`features.labels.build_labels`), so the
  churn rate is the rate the model predicts; being active at m_next would need only one event in
  the (long) lookback, and would show no churn at all for years. Months whose label window
  has not ended by the label's data end are not known yet: they are left out of the churn
  table and the summary says so (`matured_months`).
* Churn rate = churned / active at m. MRR at m = sum of the monthly fees in force at m of the
  customers active at m (fee = the `value` of the last fee event, plan_change / price_change,
  before m, else customers.monthly_fee; `features.families.economic.monthly_fee_features`).
  MRR churn rate = MRR at m of the churners / MRR at m. Net revenue retention = MRR at m_next
  of the customers active at m who are still active at m_next (new fees included, churners 0)
  / MRR at m.
* Cohort retention: customers by signup month c; retention at age k months = share of the
  cohort active at month start c + k. Only cohorts whose first month start is observed
  (c >= first month - 1) are shown.
* NPS per touchpoint and month = % promoters (9-10) - % detractors (0-6) of the NPS responses.
  CSAT = % of CSAT responses with score >= value.csat_satisfied_min.
* Repeat-purchase rate per month = customers with >= 2 purchases / customers with >= 1.

A month or segment without customers (or responses, or buyers) has a null rate, never 0 and
never a division error.

Shapes of business
------------------
* No revenue (no customers.monthly_fee and no fee events with a value, e.g. a marketplace's
  order log): the MRR columns are empty (null), MRR churn and NRR are null, the summary says so
  in "notes" and the plots have no MRR or NRR panel (`has_revenue`).
* A segment column with more than `KpiSpec.max_segment_levels` levels (8 by default) keeps its
  largest levels by customers; the others are grouped as "(other)" (models/segments.py, the rule
  the test metrics and the SHAP drivers use too), and the summary's "notes" list them.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from ibis.backends.duckdb import Backend as DuckDBBackend

from features.base.errors import BadInputError
from features.base.time import month_start, next_month, utc_midnight
from features.families.economic import monthly_fee_features
from features.labels import build_labels, label_end, population
from features.settings import FeaturizeParams, LabelParams
from features.tables import KEYS, Tables, max_timestamp
from models.segments import MAX_SEGMENT_LEVELS, OTHER_LEVEL, Folding, fold_levels

log = logging.getLogger(__name__)

ALL = "all"  # segment_column and segment of the whole population
MISSING = "(missing)"  # segment value of customers with a null segment column
PROMOTER_MIN = 9
DETRACTOR_MAX = 6
TS = pa.timestamp("us", tz="UTC")


class KpiInputError(BadInputError, ValueError):
    """The contract tables cannot give the requested KPIs (missing column, no months)."""


@dataclass(frozen=True)
class KpiSpec:
    """What to compute: segments, the active definition, survey and purchase conventions."""

    segments: tuple[str, ...] = ("plan", "country")
    label: LabelParams = LabelParams()  # who is active at a month start: the label's population
    csat_satisfied_min: float = 8.0
    purchase_event_type: str = "purchase"
    featurize: FeaturizeParams = FeaturizeParams()
    max_segment_levels: int = MAX_SEGMENT_LEVELS  # more levels: the largest + "(other)"


def month_boundaries(first_month: dt.datetime, data_end: dt.datetime) -> list[dt.datetime]:
    """Month starts from `first_month` to the end of the last fully observed month (inclusive).

    Month m is observed when its next month start is at most the end of the data's last day.
    Returns N + 1 boundaries for N months; fewer than two means no complete month.
    """
    end = utc_midnight(data_end) + dt.timedelta(days=1)
    bounds = [month_start(first_month)]
    while next_month(bounds[-1]) <= end:
        bounds.append(next_month(bounds[-1]))
    return bounds


def default_first_month(tables: Tables) -> dt.datetime:
    """The month of the first recorded churn; without churns, the month after the first signup."""
    if tables.churn_events is not None:
        first = tables.churn_events.churn_date.min().to_pyarrow().as_py()
        if first is not None:
            return month_start(first)
    first_signup = tables.customers.signup_date.min().to_pyarrow().as_py()
    if first_signup is None:
        raise KpiInputError("customers: the table is empty; nothing to compute KPIs on")
    return next_month(month_start(first_signup))


def kpi_months(tables: Tables, first_month: str | None) -> list[dt.datetime]:
    """Month boundaries for the KPIs (first month from params or the data), checked non-empty."""
    first = month_start(first_month) if first_month else default_first_month(tables)
    data_end = max_timestamp(tables)
    bounds = month_boundaries(first, data_end)
    if len(bounds) < 2:
        raise KpiInputError(
            f"no complete month between {first.date()} and the end of the data ({data_end}); "
            "set value.kpi_first_month to an earlier month start"
        )
    return bounds


def check_segments(tables: Tables, segments: Sequence[str]) -> None:
    """Raise KpiInputError naming a segment column the customers table lacks."""
    missing = [s for s in segments if s not in tables.customers.columns]
    if missing:
        raise KpiInputError(
            f"customers table: segment column(s) {missing} not found; found "
            f"{list(tables.customers.columns)}. Fix value.kpi_segments in params.yaml."
        )


def segment_foldings(
    tables: Tables, segments: Sequence[str], max_levels: int = MAX_SEGMENT_LEVELS
) -> dict[str, Folding]:
    """Per segment column: its largest levels by customers kept, the others folded into
    "(other)" when it has more than `max_levels` (models/segments.py)."""
    c = tables.customers
    out = {}
    for s in segments:
        level = c[s].cast("string").fill_null(MISSING).name("level")
        counts = c.group_by(level).aggregate(n=c.count()).to_pyarrow().to_pandas()
        out[s] = fold_levels(s, dict(zip(counts["level"], counts["n"], strict=True)), max_levels)
    return out


def _segments_of(
    tables: Tables, segments: Sequence[str], max_levels: int = MAX_SEGMENT_LEVELS
) -> ibis.Table:
    """customer_id and each segment column as text, nulls as MISSING, levels beyond the
    `max_levels` largest as "(other)"."""
    c = tables.customers
    foldings = segment_foldings(tables, segments, max_levels)
    columns = []
    for s in segments:
        value = c[s].cast("string").fill_null(MISSING)
        folding = foldings[s]
        if folding.folded:
            value = ibis.ifelse(value.isin(list(folding.kept)), value, ibis.literal(OTHER_LEVEL))
        columns.append(value.name(s))
    return c.select(c.customer_id.cast("string").name("customer_id"), *columns)


def _boundary_map(bounds: Sequence[dt.datetime], shift: int) -> ibis.Table:
    """(cutoff, month): cutoff = bounds[i + shift] for month bounds[i], i over the N months."""
    months = list(bounds[:-1])
    cutoffs = list(bounds[shift : shift + len(months)])
    return ibis.memtable(pa.table({"cutoff": pa.array(cutoffs, TS), "month": pa.array(months, TS)}))


def matured_months(
    tables: Tables, bounds: Sequence[dt.datetime], label: LabelParams
) -> list[dt.datetime]:
    """The month starts m whose inactivity label window [m + lead, m + lead + horizon) ends by
    the label's data end (`features.labels.label_end`): the months whose churn is known."""
    end = label_end(tables, label.data_end)
    window = dt.timedelta(days=label.lead_days + label.horizon_days)
    return [m for m in bounds[:-1] if m + window <= end]


def customer_months(tables: Tables, bounds: Sequence[dt.datetime], spec: KpiSpec) -> ibis.Table:
    """Per (customer_id, month) active at the month start: fee_start, retained, fee_end.

    Inactivity: retained = not churned by the label of cutoff m (module docstring); the caller
    keeps only `matured_months`."""
    active = population(tables, bounds, spec.label)
    active = active.select(active.customer_id.cast("string").name("customer_id"), "cutoff")
    fees = monthly_fee_features(tables, active, spec.featurize)
    if fees is None:
        with_fee = active.mutate(fee=ibis.null("float64"))
    else:
        with_fee = fees.table.select(*KEYS, fee=fees.table.current_monthly_fee)
    start = with_fee.join(_boundary_map(bounds, 0), "cutoff").select(
        "customer_id", "month", fee_start="fee"
    )
    end = with_fee.join(_boundary_map(bounds, 1), "cutoff").select(
        "customer_id", "month", fee_end="fee", retained=ibis.literal(True)
    )
    j = start.left_join(end, ["customer_id", "month"])
    j = j.select(
        "customer_id",
        "month",
        "fee_start",
        retained=j.retained.fill_null(False),
        fee_end=j.fee_end,
    )
    if spec.label.definition != "inactivity":
        return j
    labels = build_labels(tables, spec.label, list(bounds[:-1]))
    labels = labels.join(_boundary_map(bounds, 0), "cutoff").select(
        "customer_id", "month", kept=~labels.churned
    )
    k = j.left_join(labels, ["customer_id", "month"])
    return k.select("customer_id", "month", "fee_start", retained=k.kept, fee_end=k.fee_end)


def _materialise(con: DuckDBBackend, expr: ibis.Table, what: str) -> ibis.Table:
    """Compute `expr` once into a DuckDB temp table: it is aggregated once per segment column."""
    return con.create_table(f"kpi_{what}_{uuid.uuid4().hex[:12]}", expr, temp=True)


def _by_segment(
    con: DuckDBBackend,
    rows: ibis.Table,
    keys: Sequence[str],
    segments: Sequence[str],
    metrics: dict[str, Any],
) -> pd.DataFrame:
    """Aggregate `rows` per keys, overall and per segment column; long format with segment cols.

    `metrics` maps an output name to a function of the table returning an Ibis reduction.
    """
    frames = []
    for column in (None, *segments):
        group = [*keys] if column is None else [*keys, column]
        agg = rows.group_by(group).aggregate(**{k: f(rows) for k, f in metrics.items()})
        df = con.to_pyarrow(agg).to_pandas()
        df.insert(0, "segment_column", ALL if column is None else column)
        df.insert(1, "segment", ALL if column is None else df.pop(column).astype(str))
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _segment_values(con: DuckDBBackend, segs: ibis.Table, segments: Sequence[str]):
    """[(segment_column, segment)] for the whole population and every segment value."""
    pairs = [(ALL, ALL)]
    for s in segments:
        values = con.to_pyarrow(segs.select(s).distinct()).column(s).to_pylist()
        pairs += [(s, str(v)) for v in sorted(values, key=str)]
    return pairs


def _grid(
    data: pd.DataFrame,
    pairs: list[tuple[str, str]],
    extra: dict[str, Sequence[Any]],
    counts: Sequence[str],
) -> pd.DataFrame:
    """Every (segment, extra keys) combination, absent ones with zero counts and null sums."""
    names = ["segment_column", "segment", *extra]
    index = pd.MultiIndex.from_tuples(
        [(*pair, *rest) for pair in pairs for rest in _product(list(extra.values()))], names=names
    )
    full = data.set_index(names).reindex(index).reset_index()
    for c in counts:
        full[c] = full[c].fillna(0).astype("int64")
    return full


def _product(lists: list[Sequence[Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    for values in lists:
        out = [(*head, v) for head in out for v in values]
    return out


def _ratio(num: pd.Series, den: pd.Series, scale: float = 1.0) -> pd.Series:
    """num / den, null where den is 0 or null (a month without customers has no rate)."""
    den = den.astype(float)
    return (scale * num.astype(float) / den.where(den > 0)).astype(float)


def _months_utc(frame: pd.DataFrame, column: str = "month") -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def monthly_churn(
    con: DuckDBBackend, tables: Tables, bounds: Sequence[dt.datetime], spec: KpiSpec
) -> pd.DataFrame:
    """Per segment and month: active_start, churned, churn_rate, MRR, mrr_churn_rate, nrr."""
    check_segments(tables, spec.segments)
    segs = _segments_of(tables, spec.segments, spec.max_segment_levels)
    cm = customer_months(tables, bounds, spec)
    months = list(bounds[:-1])
    if spec.label.definition == "inactivity":
        months = matured_months(tables, bounds, spec.label)
        cm = cm.filter(cm.month.isin(months))
    rows = _materialise(con, cm.join(segs, "customer_id"), "customer_months")
    data = _by_segment(
        con,
        rows,
        ["month"],
        spec.segments,
        {
            "active_start": lambda t: t.count(),
            "churned": lambda t: (~t.retained).cast("int64").sum(),
            "mrr_start": lambda t: t.fee_start.sum(),
            "mrr_churned": lambda t: t.fee_start.sum(where=~t.retained),
            "mrr_end_retained": lambda t: t.fee_end.sum(where=t.retained),
        },
    )
    months = pd.to_datetime(months, utc=True)
    data = _months_utc(data)
    full = _grid(
        data,
        _segment_values(con, segs, spec.segments),
        {"month": months},
        ["active_start", "churned"],
    )
    has_fee = data["mrr_start"].notna().any()
    for c in ("mrr_start", "mrr_churned", "mrr_end_retained"):
        full[c] = full[c].astype(float)
        if has_fee:
            full[c] = full[c].fillna(0.0)
    full["churn_rate"] = _ratio(full["churned"], full["active_start"])
    full["mrr_churn_rate"] = _ratio(full["mrr_churned"], full["mrr_start"])
    full["nrr"] = _ratio(full["mrr_end_retained"], full["mrr_start"])
    return full


def cohort_retention(
    con: DuckDBBackend, tables: Tables, bounds: Sequence[dt.datetime], spec: KpiSpec
) -> pd.DataFrame:
    """Per segment, signup-month cohort and age k >= 1: cohort size, active, retention."""
    check_segments(tables, spec.segments)
    segs = _segments_of(tables, spec.segments, spec.max_segment_levels)
    first_cohort = month_start(bounds[0] - dt.timedelta(days=1))
    last = bounds[-1]
    c = tables.customers
    cust = c.select(customer_id=c.customer_id.cast("string"), cohort=c.signup_date.truncate("M"))
    cust = cust.filter((cust.cohort >= first_cohort) & (cust.cohort < last))
    cust = cust.join(segs, "customer_id")
    sizes = _by_segment(con, cust, ["cohort"], spec.segments, {"customers": lambda t: t.count()})
    active = population(tables, bounds, spec.label)
    active = active.select(active.customer_id.cast("string").name("customer_id"), "cutoff")
    a = active.join(cust, "customer_id")
    a = a.filter(a.cutoff > a.cohort).mutate(
        age_months=(a.cutoff.year() * 12 + a.cutoff.month())
        - (a.cohort.year() * 12 + a.cohort.month())
    )
    a = _materialise(con, a, "cohort_activity")
    counts = _by_segment(
        con, a, ["cohort", "age_months"], spec.segments, {"active": lambda t: t.count()}
    )
    sizes = _months_utc(sizes, "cohort")
    counts = _months_utc(counts, "cohort")
    out = []
    for row in sizes.itertuples(index=False):
        cohort = row.cohort.to_pydatetime()
        ages = (last.year * 12 + last.month) - (cohort.year * 12 + cohort.month)
        out.append(
            pd.DataFrame(
                {
                    "segment_column": row.segment_column,
                    "segment": row.segment,
                    "cohort": row.cohort,
                    "age_months": np.arange(1, ages + 1, dtype="int64"),
                    "customers": int(row.customers),
                }
            )
        )
    columns = ["segment_column", "segment", "cohort", "age_months", "customers", "active"]
    if not out:
        return pd.DataFrame(columns=[*columns, "retention"])
    grid = pd.concat(out, ignore_index=True)
    counts["age_months"] = counts["age_months"].astype("int64")
    full = grid.merge(counts, on=["segment_column", "segment", "cohort", "age_months"], how="left")
    full["active"] = full["active"].fillna(0).astype("int64")
    full["retention"] = _ratio(full["active"], full["customers"])
    return full[[*columns, "retention"]].sort_values(columns[:4], ignore_index=True)


def experience(
    con: DuckDBBackend, tables: Tables, bounds: Sequence[dt.datetime], spec: KpiSpec
) -> pd.DataFrame:
    """Per KPI (nps, csat_pct), touchpoint (and ALL), segment and month: responses and value."""
    check_segments(tables, spec.segments)
    columns = ["kpi", "touchpoint", "segment_column", "segment", "month", "responses", "value"]
    if tables.responses is None:
        return pd.DataFrame(columns=columns)
    f = spec.featurize
    r = tables.responses
    r = r.filter(
        r.metric.isin([f.nps_metric, f.csat_metric])
        & r.score.notnull()
        & (r.ts >= bounds[0])
        & (r.ts < bounds[-1])
    )
    r = r.select(
        customer_id=r.customer_id.cast("string"),
        month=r.ts.truncate("M"),
        metric=r.metric.cast("string"),
        touchpoint=r.touchpoint.cast("string"),
        score=r.score.cast("float64"),
    )
    segs = _segments_of(tables, spec.segments, spec.max_segment_levels)
    j = r.left_join(segs, "customer_id")
    rows = j.select(
        "month",
        "metric",
        "touchpoint",
        *[j[s].fill_null(MISSING).name(s) for s in spec.segments],
        "score",
    )
    rows = _materialise(con, rows, "responses")
    both = rows.union(rows.mutate(touchpoint=ibis.literal(ALL)))
    metrics = {
        "responses": lambda t: t.count(),
        "promoters": lambda t: (t.score >= PROMOTER_MIN).cast("int64").sum(),
        "detractors": lambda t: (t.score <= DETRACTOR_MAX).cast("int64").sum(),
        "satisfied": lambda t: (t.score >= spec.csat_satisfied_min).cast("int64").sum(),
    }
    data = _by_segment(con, both, ["metric", "touchpoint", "month"], spec.segments, metrics)
    data = _months_utc(data)
    months = pd.to_datetime(list(bounds[:-1]), utc=True)
    pairs = _segment_values(con, segs, spec.segments)
    out = []
    for metric, kpi in ((f.nps_metric, "nps"), (f.csat_metric, "csat_pct")):
        part = data.loc[data["metric"] == metric].drop(columns="metric")
        if part.empty:
            continue
        touchpoints = sorted(set(part["touchpoint"]) - {ALL}) + [ALL]
        full = _grid(
            part,
            pairs,
            {"touchpoint": touchpoints, "month": months},
            ["responses", "promoters", "detractors", "satisfied"],
        )
        if kpi == "nps":
            full["value"] = _ratio(full["promoters"] - full["detractors"], full["responses"], 100)
        else:
            full["value"] = _ratio(full["satisfied"], full["responses"], 100)
        full.insert(0, "kpi", kpi)
        out.append(full)
    if not out:
        return pd.DataFrame(columns=columns)
    res = pd.concat(out, ignore_index=True)
    return res[[*columns, "promoters", "detractors", "satisfied"]]


def repeat_purchase(
    con: DuckDBBackend, tables: Tables, bounds: Sequence[dt.datetime], spec: KpiSpec
) -> pd.DataFrame | None:
    """Per segment and month: buyers, repeat_buyers (>= 2 purchases), rate; None if no purchases."""
    check_segments(tables, spec.segments)
    ev = tables.events
    if ev is None:
        return None
    p = ev.filter(
        (ev.event_type == spec.purchase_event_type) & (ev.ts >= bounds[0]) & (ev.ts < bounds[-1])
    )
    if con.to_pyarrow(p.count()).as_py() == 0:
        return None
    per = p.group_by(customer_id=p.customer_id.cast("string"), month=p.ts.truncate("M")).aggregate(
        purchases=p.count()
    )
    segs = _segments_of(tables, spec.segments, spec.max_segment_levels)
    j = per.left_join(segs, "customer_id")
    rows = j.select("month", "purchases", *[j[s].fill_null(MISSING).name(s) for s in spec.segments])
    rows = _materialise(con, rows, "purchases")
    data = _by_segment(
        con,
        rows,
        ["month"],
        spec.segments,
        {
            "buyers": lambda t: t.count(),
            "repeat_buyers": lambda t: (t.purchases >= 2).cast("int64").sum(),
        },
    )
    data = _months_utc(data)
    months = pd.to_datetime(list(bounds[:-1]), utc=True)
    full = _grid(
        data,
        _segment_values(con, segs, spec.segments),
        {"month": months},
        ["buyers", "repeat_buyers"],
    )
    full["repeat_purchase_rate"] = _ratio(full["repeat_buyers"], full["buyers"])
    return full


def has_revenue(churn: pd.DataFrame) -> bool:
    """Whether `monthly_churn` found any monthly fee (else no MRR, MRR churn or NRR)."""
    return bool(churn["mrr_start"].notna().any()) if "mrr_start" in churn.columns else False


NO_REVENUE_NOTE = (
    "no revenue per period (no customers.monthly_fee and no fee events with a value): MRR, "
    "MRR churn and net revenue retention are empty and not plotted"
)


def _num(value: Any) -> float | None:
    """A JSON-safe number: NaN/None -> None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return float(value)


def _churn_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Pooled over the months (weighted by customers) and the latest month's figures."""
    latest = frame.loc[frame["month"] == frame["month"].max()]
    active, churned = frame["active_start"].sum(), frame["churned"].sum()
    mrr = frame["mrr_start"].sum(min_count=1)

    def share(num: float, den: float) -> float | None:
        return _num(num / den) if den and not pd.isna(den) and den > 0 else None

    return {
        "customer_months": int(active),
        "churned": int(churned),
        "churn_rate": share(churned, active),
        "mrr_churn_rate": share(frame["mrr_churned"].sum(min_count=1), mrr),
        "nrr": share(frame["mrr_end_retained"].sum(min_count=1), mrr),
        "latest_month": {
            "active_start": int(latest["active_start"].sum()),
            "churn_rate": _num(latest["churn_rate"].iloc[0]) if len(latest) else None,
            "mrr_start": _num(latest["mrr_start"].iloc[0]) if len(latest) else None,
            "mrr_churn_rate": _num(latest["mrr_churn_rate"].iloc[0]) if len(latest) else None,
            "nrr": _num(latest["nrr"].iloc[0]) if len(latest) else None,
        },
    }


def summary(
    churn: pd.DataFrame,
    cohorts: pd.DataFrame,
    exp: pd.DataFrame,
    purchases: pd.DataFrame | None,
    bounds: Sequence[dt.datetime],
    spec: KpiSpec,
    foldings: dict[str, Folding] | None = None,
) -> dict[str, Any]:
    """reports/kpis.json: pooled and latest figures, overall and per segment (details in CSVs);
    "notes" (only when there is something to say): no revenue, segment levels grouped as
    "(other)" (`foldings`, from `segment_foldings`)."""
    out: dict[str, Any] = {
        "definition": spec.label.definition,
        "months": {
            "first": bounds[0].date().isoformat(),
            "last": bounds[-2].date().isoformat(),
            "count": len(bounds) - 1,
        },
        "segments": list(spec.segments),
        "churn": {},
    }
    for (col, seg), frame in churn.groupby(["segment_column", "segment"], sort=True):
        key = ALL if col == ALL else f"{col}={seg}"
        out["churn"][key] = _churn_summary(frame)
    overall = cohorts.loc[cohorts["segment_column"] == ALL]
    retention = {}
    for age in (1, 3, 6, 12):
        at = overall.loc[overall["age_months"] == age]
        n = at["customers"].sum()
        retention[f"month_{age}"] = _num(at["active"].sum() / n) if n > 0 else None
    out["cohort_retention_pooled"] = retention
    exp_out: dict[str, Any] = {}
    for (kpi, tp, col, seg), frame in exp.groupby(
        ["kpi", "touchpoint", "segment_column", "segment"], sort=True
    ):
        n = frame["responses"].sum()
        if kpi == "nps":
            value = (frame["promoters"].sum() - frame["detractors"].sum()) / n * 100 if n else None
        else:
            value = frame["satisfied"].sum() / n * 100 if n else None
        key = ALL if col == ALL else f"{col}={seg}"
        exp_out.setdefault(kpi, {}).setdefault(tp, {})[key] = {
            "responses": int(n),
            "value": _num(value),
        }
    out["experience"] = exp_out
    if purchases is None:
        out["repeat_purchase"] = {"available": False, "reason": "no purchase events"}
    else:
        rp: dict[str, Any] = {"available": True}
        for (col, seg), frame in purchases.groupby(["segment_column", "segment"], sort=True):
            buyers = frame["buyers"].sum()
            rp[ALL if col == ALL else f"{col}={seg}"] = {
                "buyer_months": int(buyers),
                "repeat_purchase_rate": _num(frame["repeat_buyers"].sum() / buyers)
                if buyers
                else None,
            }
        out["repeat_purchase"] = rp
    notes = [] if has_revenue(churn) else [NO_REVENUE_NOTE]
    if spec.label.definition == "inactivity":
        known = churn["month"].max() if len(churn) else None
        lab = spec.label
        notes.append(
            f"inactivity churn: churned in month m = active at m and no activity on the days "
            f"[m + {lab.lead_days}, m + {lab.lead_days + lab.horizon_days}) (the model's label); "
            + (
                f"known for the months to {known.date().isoformat()}, later months wait for "
                "their label window to end"
                if known is not None and not pd.isna(known)
                else "no month's label window has ended yet"
            )
        )
    notes += [f.note() for f in (foldings or {}).values() if f.folded]
    if notes:
        out["notes"] = notes
    return out
