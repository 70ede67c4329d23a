"""Stage `label`: point-in-time churn labels per customer and monthly cutoff."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass

from features.base.errors import BadInputError
from features.labels import (
    ActivityTail,
    activity_tail,
    build_labels,
    check_activity_types,
    label_end,
    monthly_cutoffs,
)
from features.tables import KEYS, connect_engine, disconnect, load_tables, read_dataset, write_table
from pipeline.config import Params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelRun:
    """What the stage wrote: rows, cutoffs, the data end and the activity-tail check."""

    rows: int
    cutoffs: int
    data_end: str  # the last day the label sees (ISO date)
    # the activity-tail check; None for the contractual definition, without events or when off
    tail: ActivityTail | None


def run(params: Params) -> LabelRun:
    """Write the label table for every monthly cutoff with a fully observed label window."""
    p, paths = params.label, params.paths
    with tempfile.TemporaryDirectory(prefix="label-") as tmp:
        con = connect_engine(
            params.engine,
            params.featurize.duckdb_memory_limit,
            params.featurize.duckdb_threads,
            tmp,
        )
        tables = load_tables(con, paths.interim)
        end = label_end(tables, p.data_end)  # exclusive: the midnight after the last day seen
        last_day = (end - dt.timedelta(days=1)).date().isoformat()
        check_activity_types(tables, p.activity_event_types)
        tail = None
        if p.definition == "inactivity" and p.tail_warning_ratio > 0:
            tail = activity_tail(tables, end, p.activity_event_types, p.tail_warning_ratio)
            if tail is not None and not tail.incomplete:
                log.info("labels: %s", tail.describe())
        cutoffs = monthly_cutoffs(p.first_cutoff, end, p.lead_days, p.horizon_days)
        if not cutoffs:
            raise BadInputError(
                f"no cutoff from {p.first_cutoff} leaves a full label window "
                f"({p.lead_days} + {p.horizon_days} days) before the data ends on {last_day} "
                f"({'label.data_end' if p.data_end else 'the day before the latest timestamp'}); "
                "lower label.first_cutoff or label.horizon_days"
            )
        labels = build_labels(tables, p, cutoffs)
        write_table(con, labels, paths.labels, order_by=KEYS)
        n = read_dataset(con, paths.labels).count().to_pyarrow().as_py()
        disconnect(con)
    log.info(
        "labels: %d rows, %d cutoffs (%s .. %s), data ends %s (%s) -> %s",
        n,
        len(cutoffs),
        cutoffs[0].date(),
        cutoffs[-1].date(),
        last_day,
        "label.data_end" if p.data_end else "derived from the latest timestamp",
        paths.labels,
    )
    return LabelRun(rows=n, cutoffs=len(cutoffs), data_end=last_day, tail=tail)
