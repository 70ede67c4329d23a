"""The contract tables as Ibis expressions, and the engine connection (DuckDB or Spark) that
reads them."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as idt
from ibis.backends.duckdb import Backend as DuckDBBackend

from features.base.errors import BadInputError, InputNotFoundError
from features.base.io import atomic_path
from features.catalog import FeatureInfo, FeatureSet
from features.contract import CONTRACTS, TABLE_ORDER
from features.settings import EngineParams
from features.spark import connect_spark, is_spark, write_dataset

log = logging.getLogger(__name__)

# The input contract is defined once, in features/contract.py.
TABLE_NAMES: tuple[str, ...] = TABLE_ORDER
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in contract.columns if c.required)
    for name, contract in CONTRACTS.items()
}
SECONDS_PER_DAY = 86_400


class TableContractError(BadInputError, ValueError):
    """An interim table misses a column that the feature code needs."""


@dataclass(frozen=True)
class Tables:
    """The input contract tables; every table but `customers` may be missing (None)."""

    customers: ibis.Table
    churn_events: ibis.Table | None = None
    events: ibis.Table | None = None
    responses: ibis.Table | None = None
    tickets: ibis.Table | None = None
    # Optional: the event rows every event feature reads, (customer_id, event_type, day, n,
    # value_sum) for the event types features use: `events` aggregated per (customer_id,
    # event_type, day) (features.families.engagement.daily_events), or with
    # `events_per_event`, one row per event (n = 1; engagement.event_rows), which is what the
    # embedded engine reads: no aggregation pass over every event.
    events_daily: ibis.Table | None = None
    events_per_event: bool = False

    def replace(self, **tables: ibis.Table | None) -> Tables:
        """A copy with some tables swapped (e.g. a pre-aggregated or filtered one)."""
        return replace(self, **tables)


def connect(
    memory_limit: str = "3GB", threads: int = 2, temp_directory: str | Path | None = None
) -> DuckDBBackend:
    """An Ibis DuckDB connection with bounded memory, spilling to `temp_directory`, UTC clock."""
    _epoch_of_instants()
    config: dict[str, object] = {"memory_limit": memory_limit, "threads": threads}
    if temp_directory is not None:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    con = ibis.duckdb.connect(**config)
    # Day arithmetic below relies on UTC: a timestamp's day is its UTC calendar day.
    con.raw_sql("SET TimeZone = 'UTC'")
    con.raw_sql("SET preserve_insertion_order = false")
    return con


def _epoch_of_instants() -> None:
    """Make Ibis take the epoch of a UTC timestamp directly in DuckDB SQL.

    Ibis 12 writes `ts.epoch_seconds()` as EPOCH(CAST(ts AS TIMESTAMP)): for a timezone-aware
    column that cast converts every value to the session's wall clock, 15x the cost of EPOCH(ts)
    itself (0.17 s per 3 M events; every event feature computes its day number, `day_number`).
    EPOCH of an instant is its epoch: the same number as the cast's in the UTC session that
    `connect` sets (and the correct one in any other).
    """
    from ibis.backends.sql.compilers.duckdb import DuckDBCompiler

    visit = DuckDBCompiler.visit_ExtractEpochSeconds
    if getattr(visit, "epoch_of_instants", False):
        return

    def visit_epoch(self: Any, op: Any, *, arg: Any) -> Any:
        dtype = op.arg.dtype
        if dtype.is_timestamp() and dtype.timezone is not None:
            return self.f.epoch(arg)
        return visit(self, op, arg=arg)

    visit_epoch.epoch_of_instants = True  # type: ignore[attr-defined]
    DuckDBCompiler.visit_ExtractEpochSeconds = visit_epoch  # type: ignore[method-assign]


def connect_engine(
    engine: EngineParams,
    memory_limit: str = "3GB",
    threads: int = 2,
    temp_directory: str | Path | None = None,
) -> ibis.BaseBackend:
    """The connection of the configured engine: DuckDB (`connect`, with these limits) or Spark
    (`engine.spark`: master, conf; the DuckDB limits do not apply)."""
    if engine.name == "spark":
        return connect_spark(engine.spark)
    return connect(memory_limit, threads, temp_directory)


def disconnect(con: ibis.BaseBackend) -> None:
    """Release a connection: DuckDB closes; a Spark session is left to the process (stopping it
    would stop every other user of the same session, e.g. a test session)."""
    if not is_spark(con):
        con.disconnect()


def read_dataset(
    con: ibis.BaseBackend, path: str | Path, table_name: str | None = None
) -> ibis.Table:
    """A Parquet table written by either engine: one file, or a directory of part files."""
    path = Path(path)
    if path.is_dir() and not is_spark(con):
        return con.read_parquet(f"{path}/*.parquet", table_name=table_name)
    return con.read_parquet(path, table_name=table_name)


def output_schema(schema: ibis.Schema) -> ibis.Schema:
    """The types a table is written with on every engine: decimals as float64 (Spark types a
    float literal DECIMAL), timestamps as UTC instants, everything else as declared (counts
    int64, ratios and means float64)."""
    out: dict[str, idt.DataType] = {}
    for name, dtype in schema.items():
        if dtype.is_decimal():
            dtype = idt.float64
        elif dtype.is_timestamp():
            dtype = idt.Timestamp(timezone="UTC", scale=6)
        out[name] = dtype
    return ibis.schema(out)


def write_table(
    con: ibis.BaseBackend,
    expr: ibis.Table,
    out: str | Path,
    order_by: tuple[str, ...] = (),
    schema: ibis.Schema | None = None,
) -> None:
    """Write `expr` atomically with explicit output types (`output_schema`): on DuckDB one Parquet
    file, on Spark a dataset directory of part files written by the executors."""
    schema = schema or output_schema(expr.schema())
    if is_spark(con):
        write_dataset(con, expr, out, schema, order_by)
        return
    typed = cast_to(expr, schema)
    if order_by:
        typed = typed.order_by(list(order_by))
    with atomic_path(replaceable(out)) as tmp:
        typed.to_parquet(tmp)


def cast_to(table: ibis.Table, schema: ibis.Schema) -> ibis.Table:
    """`table`'s columns of `schema`, each cast to its type there."""
    return table.select(*[table[n].cast(t).name(n) for n, t in schema.items()])


def replaceable(out: str | Path) -> Path:
    """`out`, after removing a dataset directory there (a Spark run's output) so that a single
    file can be renamed over it."""
    out = Path(out)
    if out.is_dir():
        shutil.rmtree(out)
    return out


def check_columns(table: ibis.Table, name: str, where: str = "") -> None:
    """Raise TableContractError naming the table and the missing required columns."""
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in table.columns]
    if missing:
        raise TableContractError(
            f"{where or name}: table {name!r} lacks required column(s) {missing}; "
            f"found {list(table.columns)}. Map them in the ingest params."
        )


def load_tables(con: ibis.BaseBackend, interim_dir: str | Path) -> Tables:
    """Read data/interim/<table>.parquet lazily; optional tables that are absent become None."""
    interim_dir = Path(interim_dir)
    found: dict[str, ibis.Table | None] = {}
    for name in TABLE_NAMES:
        path = interim_dir / f"{name}.parquet"
        if not path.exists():
            if name == "customers":
                raise InputNotFoundError(
                    f"{path}: the customers table is required; run `churn ingest` first"
                )
            log.warning("%s not found: features that read %s are skipped", path, name)
            found[name] = None
            continue
        table = con.read_parquet(path, table_name=f"interim_{name}")
        check_columns(table, name, str(path))
        found[name] = table
    return Tables(**found)  # type: ignore[arg-type]


def day_number(ts: ibis.TimestampValue) -> ibis.IntegerValue:
    """Whole days since 1970-01-01 UTC: the calendar day of a timestamp as an integer."""
    return (ts.epoch_seconds() // SECONDS_PER_DAY).cast("int64")


def max_timestamp(tables: Tables) -> dt.datetime:
    """The latest timestamp in any table: the end of the observed data (one query per column)."""
    return max(v for v in (t[c].max().to_pyarrow().as_py() for t, c in _time_columns(tables)) if v)


def timestamp_range(tables: Tables) -> tuple[dt.datetime, dt.datetime]:
    """The earliest and the latest timestamp in any table (one aggregate per column)."""
    found = [
        t.aggregate(lo=t[c].min(), hi=t[c].max()).to_pyarrow().to_pylist()[0]
        for t, c in _time_columns(tables)
    ]
    return (
        min(f["lo"] for f in found if f["lo"] is not None),
        max(f["hi"] for f in found if f["hi"] is not None),
    )


def _time_columns(tables: Tables) -> list[tuple[ibis.Table, str]]:
    """(table, column) of every timestamp that marks observed data."""
    pairs = [(tables.customers, "signup_date")]
    if tables.churn_events is not None:
        pairs.append((tables.churn_events, "churn_date"))
    if tables.events is not None:
        pairs.append((tables.events, "ts"))
    if tables.responses is not None:
        pairs.append((tables.responses, "ts"))
    if tables.tickets is not None:
        pairs.append((tables.tickets, "opened_at"))
        if "closed_at" in tables.tickets.columns:
            pairs.append((tables.tickets, "closed_at"))
    return pairs


KEYS: tuple[str, ...] = ("customer_id", "cutoff")


def slug(value: str) -> str:
    """A column-name-safe form of a data value: 'After Sales' -> 'after_sales'."""
    out = "".join(ch if ch.isalnum() else "_" for ch in str(value).strip().lower())
    return "_".join(part for part in out.split("_") if part) or "blank"


def plural(event_type: str) -> str:
    """'login' -> 'logins', 'discount_request' -> 'discount_requests'."""
    name = slug(event_type)
    return name if name.endswith("s") else f"{name}s"


def with_cutoff_day(spine: ibis.Table) -> ibis.Table:
    """The spine's keys plus the cutoff's day number (cutoffs are UTC midnights)."""
    # .view(): the spine may itself be a join; a view keeps later joins from merging into it.
    return spine.select(*KEYS, cutoff_day=day_number(spine.cutoff)).view()


def attach(
    spine: ibis.Table,
    values: ibis.Table,
    zero_fill: tuple[str, ...] = (),
) -> ibis.Table:
    """Left-join per-(customer_id, cutoff) values onto the spine keys; zero-fill the counts.

    Keeps exactly one row per spine row (values must be unique on the keys), and only the
    keys and `values`' non-key columns.
    """
    base = spine.select(*KEYS).view()
    joined = base.left_join(values, list(KEYS))
    cols = [c for c in values.columns if c not in KEYS]
    return joined.select(
        *KEYS,
        *[joined[c].fill_null(0).name(c) if c in zero_fill else joined[c] for c in cols],
    )


class Aggregates:
    """Named per-(customer_id, cutoff) aggregates of one feature group, with catalog entries."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.exprs: dict[str, ibis.Value] = {}
        self.catalog: list[FeatureInfo] = []
        self.zero_fill: list[str] = []

    def add(self, name: str, expr: ibis.Value, text: str, fill: bool = False) -> None:
        """Register feature `name`; `fill` marks a count whose absence means 0."""
        self.exprs[name] = expr
        self.catalog.append(FeatureInfo(name, self.group, text))
        if fill:
            self.zero_fill.append(name)

    def feature_set(self, joined: ibis.Table, spine: ibis.Table) -> FeatureSet:
        """Aggregate `joined` per spine key and attach the result to the spine."""
        grouped = joined.group_by(list(KEYS)).aggregate(**self.exprs)
        return FeatureSet(
            attach(spine, grouped, zero_fill=tuple(self.zero_fill)), tuple(self.catalog)
        )
