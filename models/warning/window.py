"""What the rules see at an as-of date: the records of their windows (read in DuckDB, strictly
before the as-of date), the customers, and the features and scores at the as-of date.

The rules file is checked here against the fields the data really has (`load_checked_rules`),
before anything is evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.base.io import parquet_schema
from features.base.time import day_after
from features.lexicon import Lexicon
from features.tables import Tables, max_timestamp
from models.warning.alerts import (
    HIDDEN_FEATURE_COLUMNS,
    RECORD_SOURCES,
    ROUTING_COLUMNS,
    TIME_COLUMNS,
    Snapshot,
    event_types_read,
    fields_by_source,
    lookback_by_source,
    tickets_known_at,
)
from models.warning.rules import (
    FieldType,
    RuleError,
    RulesFile,
    check_rules,
    field_types_of_schema,
    load_rules,
)

log = logging.getLogger(__name__)


def schema_fields(path: Path | str) -> dict[str, FieldType] | None:
    """Field types of a Parquet table's columns (one file or a directory of part files; nothing is
    read), None when it does not exist."""
    path = Path(path)
    return field_types_of_schema(parquet_schema(path)) if path.exists() else None


def record_fields(tables: Tables) -> dict[str, dict[str, FieldType]]:
    """Field types of each record table (from the interim schemas, nothing is read)."""
    out: dict[str, dict[str, FieldType]] = {}
    for source in RECORD_SOURCES:
        table = getattr(tables, source)
        if table is not None:
            out[source] = field_types_of_schema(table.schema().to_pyarrow())
    return out


def load_checked_rules(
    rules_path: Path | str,
    lexicon: Lexicon,
    tables: Tables,
    feature_fields: dict[str, FieldType] | None,
    score_fields: dict[str, FieldType] | None,
) -> RulesFile:
    """The rules file, parsed and type-checked against the fields the data has."""
    fields = fields_by_source(
        record_fields(tables),
        field_types_of_schema(tables.customers.schema().to_pyarrow()),
        feature_fields,
        score_fields,
    )
    missing = [s for s in RECORD_SOURCES if s not in fields]
    rules_file = load_rules(rules_path, fields)
    for rule in rules_file.rules:
        if rule.source in missing:
            raise RuleError(
                f"{rules_path}: rule {rule.name!r} reads {rule.source}, which is not in the "
                "interim data; remove the rule or ingest that table"
            )
    try:
        check_rules(rules_file, fields, lexicon)
    except RuleError as exc:
        if feature_fields is None:
            raise RuleError(
                f"{exc}\n  (no customer features were found, so none are fields: the feature "
                "file of the scoring stage or the feature table is missing)"
            ) from None
        raise
    return rules_file


def records_before(
    tables: Tables,
    lookback: dict[str, int],
    end: pd.Timestamp,
    event_types: frozenset | None = None,
) -> dict[str, pd.DataFrame]:
    """The record tables the rules read, each restricted in DuckDB to [end - its lookback, end)
    and, for events, to the types the rules can fire on (`event_types`; None = all)."""
    out = {}
    for source, days in lookback.items():
        table = getattr(tables, source)
        if table is None:
            continue
        col = table[TIME_COLUMNS[source]]
        start = end - pd.Timedelta(days=days)
        table = table.filter(col >= start.to_pydatetime(), col < end.to_pydatetime())
        if source == "events" and event_types is not None:
            table = table.filter(table.event_type.isin(sorted(event_types, key=str)))
        frame = table.to_pandas()
        if source == "tickets":  # nothing known at or after `end`
            frame = tickets_known_at(frame, end).drop(columns="is_open")
        out[source] = frame
    return out


def customers_frame(tables: Tables) -> pd.DataFrame:
    """The customers table in pandas (one row per customer, string ids)."""
    frame = tables.customers.to_pandas()
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def departed_before(tables: Tables, as_of: pd.Timestamp) -> frozenset[str]:
    """Customers whose churn date is before as_of: they get no alerts."""
    if tables.churn_events is None:
        return frozenset()
    events = tables.churn_events
    gone = events.filter(events.churn_date < as_of.to_pydatetime()).select("customer_id")
    return frozenset(gone.to_pandas()["customer_id"].astype(str))


def read_optional(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame | None:
    """A Parquet file's `columns` (those it has), None when it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    available = set(parquet_schema(path).names)
    cols = None if columns is None else [c for c in columns if c in available]
    frame = pq.read_table(path, columns=cols).to_pandas()
    if "customer_id" in frame.columns:
        frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def customer_fields_needed(rules_file: RulesFile) -> list[str]:
    """The customer-level columns the rules (and the routing) read."""
    names = set(ROUTING_COLUMNS)
    for rule in rules_file.rules:
        names |= rule.fields
    return sorted(names)


def default_as_of(tables: Tables, scores: Path | str) -> pd.Timestamp:
    """The scores' as-of date when there are scores, else the day after the latest data."""
    scores = Path(scores)
    if scores.exists():
        as_of = pq.read_table(scores, columns=["as_of"]).column("as_of")
        if len(as_of):
            return pd.Timestamp(pa.compute.max(as_of).as_py()).tz_convert("UTC")
    return day_after(max_timestamp(tables))


def rows_at(
    frame: pd.DataFrame | None, column: str, as_of: pd.Timestamp, what: str
) -> tuple[pd.DataFrame | None, pd.Timestamp | None]:
    """The rows of `frame` dated `column` == the latest date <= as_of; None if all are later."""
    if frame is None or column not in frame.columns or frame.empty:
        return None, None
    dates = pd.to_datetime(frame[column], utc=True)
    usable = dates[dates <= as_of]
    if usable.empty:
        log.warning(
            "%s: dated %s, after the as-of date %s: not used (it would leak the "
            "future); score fields are missing",
            what,
            dates.max().date(),
            as_of.date(),
        )
        return None, None
    latest = usable.max()
    if latest < as_of:
        log.warning(
            "%s: dated %s, before the as-of date %s: using these older values",
            what,
            latest.date(),
            as_of.date(),
        )
    return frame[dates == latest].drop(columns=[column]), latest


def snapshot_at(
    tables: Tables,
    rules_file: RulesFile,
    as_of: pd.Timestamp,
    score_features: Path | str,
    scores: Path | str,
) -> Snapshot:
    """What is known at `as_of` for `churn alert`: records before it, the customers, their
    features and scores at the as-of date (the latest not after it), who has left."""
    records = records_before(
        tables, lookback_by_source(rules_file), as_of, event_types_read(rules_file)
    )
    needed = ["customer_id", "cutoff", *customer_fields_needed(rules_file)]
    features, _ = rows_at(
        read_optional(score_features, needed), "cutoff", as_of, str(score_features)
    )
    scored, scores_as_of = rows_at(read_optional(scores), "as_of", as_of, str(scores))
    return Snapshot(
        as_of,
        records,
        customers_frame(tables),
        features,
        scored,
        scores_as_of,
        departed_before(tables, as_of),
    )


def snapshots_at_cutoffs(
    tables: Tables, rules_file: RulesFile, features_path: Path | str
) -> Callable[[pd.Timestamp], Snapshot]:
    """For the backtest: what was known at each label cutoff (records before it, the feature
    table's row at it; the label columns are never visible)."""
    customers = customers_frame(tables)
    needed = ["customer_id", "cutoff", *customer_fields_needed(rules_file)]
    needed = [
        c for c in needed if c not in HIDDEN_FEATURE_COLUMNS or c in ("customer_id", "cutoff")
    ]
    features = read_optional(features_path, needed)
    lookback = lookback_by_source(rules_file)
    event_types = event_types_read(rules_file)

    def at(cutoff: pd.Timestamp) -> Snapshot:
        records = records_before(tables, lookback, cutoff, event_types)
        rows = None
        if features is not None:
            rows = features[pd.to_datetime(features["cutoff"], utc=True) == cutoff]
            rows = rows.drop(columns=["cutoff"])
        return Snapshot(cutoff, records, customers, rows)

    return at
