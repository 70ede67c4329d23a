"""Validate every source table into the interim tables of the input contract, quarantining bad
rows (the `ingest` stage).

Everything runs in DuckDB (out of core, bounded by `ingest.memory_limit`); no table is loaded
into pandas. Per table:

1. Open the source (a file: CSV, Parquet, JSON lines; or a DuckDB `sql:` query) as a view.
   CSV and JSON contract columns are read as text, so that ids keep leading zeros and a bad
   value is quarantined as written.
2. Fatal checks, all problems of all tables reported at once, before any row is written: file
   readable, required columns present, each column parses in at least
   `ingest.min_parse_fraction` of its values, at least one row (one aggregate query per table,
   contract.fatal_checks_sql). Any failure: IngestError, exit 2, no output touched.
3. Row checks (features.contract.row_rules): one reason per bad row, the first that matches.
   Exact duplicate rows keep one copy, the others get `duplicate_row`; in customers, a repeated
   customer_id keeps the earliest signup_date, the others get `duplicate_customer_id`.
   Duplicates are found by hashing whole rows: only rows whose hash repeats are compared whole
   (`_row_reasons`), so a table of any size streams from source to output in three scans (hash
   keys, bad rows and candidates, kept rows) without being materialised or spilled.
4. Kept rows → <out_dir>/<table>.parquet (normalised types; every contract column, then the
   extra columns); bad rows → <quarantine_dir>/<table>.parquet (the source columns as read,
   plus `reason`). Both directories are staged and swapped in only when every table passed.

If a table's quarantined share exceeds `ingest.max_quarantine_fraction`, the stage fails the
same way (exit 2, nothing swapped in). `reports/ingest.json` is written on success and on
failure (status, error, and the counts of the tables processed), so that a failed run says why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from features.base.errors import BadInputError
from features.base.io import atomic_directory, write_json
from features.base.params import ParamsError
from features.contract import (
    CONTRACTS,
    KIND_SQL_TYPE,
    KIND_WORDS,
    PARSED_SUFFIX,
    TABLE_ORDER,
    TableContract,
    bad_row_sql,
    fatal_checks_sql,
    literal,
    parse_sql,
    quote,
    reason_case_sql,
    row_rules,
)
from features.settings import IngestParams, TableSource

log = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
READERS = {
    "csv": "read_csv({path}{opts})",
    "parquet": "read_parquet({path})",
    "json": "read_json({path}, format='newline_delimited'{opts})",
}
EXAMPLE_LEN = 80
# Exact duplicates: each row gets a key, the top KEY_BITS bits of a hash of the whole row; the keys
# that occur more than once are found by sorting them in memory (numpy, 4 bytes a row: 400 MB at
# 100 M rows), and only rows whose key repeats are compared whole. About n**2 / 2**(KEY_BITS + 1)
# keys repeat by chance (1.2 M at 100 M rows), which costs a larger candidate set, never a wrong
# answer.
KEY_BITS = 32
# Up to this many rows the keys come from DuckDB in one fetch (n * 5 bytes, twice); above, in Arrow
# batches of KEY_BATCH_ROWS, so that memory stays at the 4 bytes a row of the sorted keys.
FETCH_ALL_MAX_ROWS = 16_000_000
KEY_BATCH_ROWS = 1_000_000
# Parquet as written: zstd level 1 costs about a third less CPU than the default level 3, for files
# about 30 % larger; a dictionary only for columns of up to 1,000 distinct values per row group, so
# that a high-cardinality column (customer_id) is not first built into a dictionary and then
# abandoned (~10 % of the write). Format version 1 on purpose: version 2 writes doubles as
# BYTE_STREAM_SPLIT, which Spark 4.0's vectorized reader cannot read (engine: spark reads these).
PARQUET_OPTIONS = (
    "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, DICTIONARY_SIZE_LIMIT 1000"
)


class IngestError(BadInputError):
    """A fatal ingest problem: names the table, file, column and an example value, and the fix."""

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        file: str | None = None,
        column: str | None = None,
        example: Any = None,
    ) -> None:
        super().__init__(message)
        self.table, self.file, self.column, self.example = table, file, column, example


@dataclass
class Problem:
    """One fatal problem found in a source table."""

    column: str | None
    what: str
    example: Any
    fix: str

    def describe(self) -> str:
        col = f"column {self.column!r}: " if self.column else ""
        ex = f" Example: {_short(self.example)}." if self.example is not None else ""
        return f"{col}{self.what}.{ex} Fix: {self.fix}"


@dataclass
class Source:
    """An opened source table: its DuckDB view, its columns and their DuckDB types."""

    table: str
    where: str  # the file, or "sql: ..."
    view: str
    types: dict[str, str]


@dataclass
class TableReport:
    """Row accounting of one table, as written to reports/ingest.json."""

    source: dict[str, Any]
    output: str
    quarantine: str
    read: int = 0
    kept: int = 0
    quarantined: int = 0
    quarantined_fraction: float = 0.0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    status: str = "ok"


def validate_sources(
    params: IngestParams,
    out_dir: Path | str,
    quarantine_dir: Path | str,
    report_path: Path | str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Validate and normalise every configured table into `out_dir` (kept rows) and
    `quarantine_dir` (bad rows with their reason); return (and write) the ingest report."""
    now_sql = _now_sql(params, now)
    report: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "now": now_sql,
        "max_quarantine_fraction": params.max_quarantine_fraction,
        "tables": {},
    }
    try:
        _ingest(params, Path(out_dir), Path(quarantine_dir), now_sql, report["tables"])
        report["status"] = "ok"
        return report
    except IngestError as exc:
        report["error"] = str(exc)
        raise
    finally:
        write_json(report_path, report)


def _ingest(
    params: IngestParams, out_dir: Path, quarantine_dir: Path, now_sql: str, tables: dict[str, Any]
) -> None:
    sources = _configured(params)
    with (
        atomic_directory(out_dir) as interim,
        atomic_directory(quarantine_dir) as quarantine,
        _duckdb(params) as con,
    ):
        opened = _open_all(con, sources, params)
        for name, src in opened.items():
            contract = CONTRACTS[name]
            rep = TableReport(
                source=_describe(sources[name]),
                output=str(out_dir / f"{name}.parquet"),
                quarantine=str(quarantine_dir / f"{name}.parquet"),
            )
            tables[name] = rep.__dict__
            _process(
                con,
                contract,
                src,
                sources[name],
                params,
                now_sql,
                interim / f"{name}.parquet",
                quarantine / f"{name}.parquet",
                rep,
            )
            log.info(
                "%s: read %d, kept %d, quarantined %d %s",
                name,
                rep.read,
                rep.kept,
                rep.quarantined,
                rep.quarantined_by_reason or "",
            )
            if rep.read and rep.quarantined_fraction > params.max_quarantine_fraction:
                rep.status = "failed"
                raise _too_many_bad_rows(con, src, rep, params.max_quarantine_fraction)
        for name, source in sources.items():
            if name not in opened:
                tables[name] = {"source": _describe(source), "status": "skipped: file not found"}


# --- configuration -------------------------------------------------------------------------


def _configured(params: IngestParams) -> dict[str, TableSource]:
    """The configured tables in contract order; unknown table names are an error."""
    unknown = sorted(set(params.tables) - set(CONTRACTS))
    if unknown:
        raise IngestError(
            f"params ingest.tables: unknown table(s) {unknown}; "
            f"the contract has {list(CONTRACTS)}. "
            "Fix: rename the entry in params.yaml or remove it."
        )
    if params.tables and "customers" not in params.tables:
        raise IngestError(
            "params ingest.tables: no `customers` entry; every other table refers to it. "
            "Fix: add ingest.tables.customers with a `path` or `sql`.",
            table="customers",
        )
    for name, src in params.tables.items():
        if (src.path is None) == (src.sql is None):
            raise IngestError(
                f"params ingest.tables.{name}: give exactly one of `path` or `sql`.", table=name
            )
    return {name: params.tables[name] for name in TABLE_ORDER if name in params.tables}


def _now_sql(params: IngestParams, now: dt.datetime | None) -> str:
    if params.now is not None:
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            row = con.execute("SELECT TRY_CAST(? AS TIMESTAMPTZ)", [params.now]).fetchone()
        if row is None or row[0] is None:
            raise IngestError(
                f"params ingest.now = {params.now!r} is not a timestamp. "
                "Fix: write it as ISO 8601, e.g. '2025-12-31T00:00:00Z', or remove it."
            )
        now = row[0]
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(dt.UTC).isoformat()


def _describe(src: TableSource) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(src).items() if v not in (None, ())}


@contextmanager
def _duckdb(params: IngestParams) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with bounded memory, spilling to a private temp directory."""
    work = Path(tempfile.mkdtemp(prefix="churn-ingest-", dir=params.temp_dir))
    con = duckdb.connect(str(work / "ingest.duckdb"))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET memory_limit = {literal(params.memory_limit)}")
        con.execute(f"SET temp_directory = {literal(str(work / 'spill'))}")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET enable_progress_bar = false")
        if params.threads:
            con.execute(f"SET threads = {int(params.threads)}")
        yield con
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)


# --- opening sources and fatal checks -----------------------------------------------------------


def _open_all(
    con: duckdb.DuckDBPyConnection, sources: dict[str, TableSource], params: IngestParams
) -> dict[str, Source]:
    """Open and check every source; raise one IngestError listing every fatal problem."""
    opened: dict[str, Source] = {}
    errors: list[IngestError] = []
    for name, src in sources.items():
        try:
            source = _open(con, name, src)
            if source is not None:
                _check_source(con, CONTRACTS[name], source, src, params.min_parse_fraction)
                opened[name] = source
        except IngestError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        first = errors[0]
        raise IngestError(
            f"{len(errors)} tables cannot be ingested:\n" + "\n".join(f"- {e}" for e in errors),
            table=first.table,
            file=first.file,
            column=first.column,
            example=first.example,
        )
    return opened


def _format(src: TableSource) -> str:
    if src.format != "auto":
        if src.format not in READERS:
            raise ParamsError(f"format {src.format!r} is not one of {sorted(READERS)}")
        return src.format
    suffixes = [s.lower() for s in Path(str(src.path)).suffixes if s.lower() not in (".gz", ".zst")]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise ParamsError(
            f"{src.path}: cannot tell the format from the suffix; "
            f"set `format:` to one of {sorted(READERS)}"
        )
    return fmt


def _open(con: duckdb.DuckDBPyConnection, name: str, src: TableSource) -> Source | None:
    """Create view raw_<name> over the source; None for a missing optional file."""
    contract = CONTRACTS[name]
    view = f"raw_{name}"
    if src.sql is not None:
        where = "sql: " + " ".join(src.sql.split())
        body = src.sql.strip().rstrip(";")
        fix = "run the query in the duckdb shell and correct it"
    else:
        where = str(src.path)
        path = Path(src.path)  # type: ignore[arg-type]
        if not path.exists():
            if not src.required:
                log.warning("%s: %s not found; skipped (required: false)", name, path)
                return None
            raise IngestError(
                f"table {name!r}, file {where}: file not found. "
                "Fix: create it (e.g. `churn simulate`) "
                f"or point ingest.tables.{name}.path at the right file.",
                table=name,
                file=where,
            )
        try:
            fmt = _format(src)
        except ParamsError as exc:
            raise IngestError(
                f"table {name!r}, file {where}: {exc}", table=name, file=where
            ) from exc
        body = "SELECT * FROM " + READERS[fmt].format(path=literal(where), opts="")
        fix = f"check that it is a valid {fmt} file (or set ingest.tables.{name}.format)"
        if fmt in ("csv", "json"):
            # contract columns as text: ids keep leading zeros, bad values are kept as written
            types = _describe_sql(con, body, name, where, fix)
            wanted = {c.name for c in contract.columns}
            if fmt == "csv":
                overrides = {k: "VARCHAR" for k in types if k in wanted}
                opts = f", types={_struct(overrides)}" if overrides else ""
            else:
                cols = {k: ("VARCHAR" if k in wanted else t) for k, t in types.items()}
                opts = f", columns={_struct(cols)}"
            body = "SELECT * FROM " + READERS[fmt].format(path=literal(where), opts=opts)
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS {body}")
    except duckdb.Error as exc:
        raise _unreadable(name, where, fix, exc) from exc
    types = _describe_sql(con, f"SELECT * FROM {quote(view)}", name, where, fix)
    return Source(table=name, where=where, view=view, types=types)


def _describe_sql(
    con: duckdb.DuckDBPyConnection, body: str, name: str, where: str, fix: str
) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE {body}").fetchall()
    except duckdb.Error as exc:
        raise _unreadable(name, where, fix, exc) from exc
    return {r[0]: r[1] for r in rows}


def _unreadable(name: str, where: str, fix: str, exc: duckdb.Error) -> IngestError:
    """The error for a source DuckDB cannot read: table, file or query, DuckDB's reason, fix."""
    return IngestError(
        f"table {name!r}, {_where(where)}: cannot be read ({_first_line(exc)}). Fix: {fix}.",
        table=name,
        file=where,
        example=_first_line(exc),
    )


def _parse_exprs(
    contract: TableContract, source: Source, src: TableSource, prefix: str = ""
) -> dict[str, str]:
    """Normalising expression per contract column present in the source."""
    return {
        c.name: parse_sql(
            c, f"{prefix}{quote(c.name)}", source.types[c.name], src.timestamp_formats
        )
        for c in contract.columns
        if c.name in source.types
    }


def _check_source(
    con: duckdb.DuckDBPyConnection,
    contract: TableContract,
    source: Source,
    src: TableSource,
    min_parse_fraction: float,
) -> None:
    """Fatal checks of a raw source, all problems at once: required columns present, each column
    that needs parsing parses in at least `min_parse_fraction` of its non-blank values, at least
    one row. One aggregate query over the source (contract.fatal_checks_sql)."""
    exprs = _parse_exprs(contract, source, src)
    # only columns whose parse can fail are checked: text and plain casts always succeed
    fallible = sorted(
        c.name
        for c in contract.columns
        if c.name in exprs
        and c.kind in ("timestamp", "float", "bool")
        and ("TRY_" in exprs[c.name].upper() or exprs[c.name].startswith("CAST(NULL"))
    )
    checked = f"checked_{source.table}"
    companions = "".join(f", {exprs[c]} AS {quote(c + PARSED_SUFFIX)}" for c in fallible)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote(checked)} AS "
        f"SELECT *{companions} FROM {quote(source.view)}"
    )
    row = con.execute(fatal_checks_sql(checked, fallible, source.types)).fetchone()
    n_rows, parsed_counts = int(row[0]), row[1:]  # type: ignore[index]
    problems = [  # missing columns first, then unparseable columns, then emptiness: fix order
        Problem(
            c.name,
            "required column is missing",
            f"columns found: {[c for c in source.types]}",
            "rename the column in the source, or map it with "
            f"ingest.tables.{source.table}.sql (SELECT <your column> AS {c.name} ...)",
        )
        for c in contract.columns
        if c.required and c.name not in source.types
    ]
    for i, col in enumerate(fallible):
        n_present, n_parsed = int(parsed_counts[2 * i]), int(parsed_counts[2 * i + 1])
        if n_present and n_parsed < n_present * min_parse_fraction:
            problems.append(_parse_problem(con, contract, source, src, col))
    if n_rows == 0:
        problems.append(
            Problem(
                None,
                "the table has zero rows",
                None,
                "check the export that produced it, or the path/query",
            )
        )
    if problems:
        first = problems[0]
        if len(problems) == 1:
            text = first.describe()
        else:
            text = f"{len(problems)} problems:\n" + "\n".join(
                f"  - {p.describe()}" for p in problems
            )
        raise IngestError(
            f"table {source.table!r}, {_where(source.where)}: {text}",
            table=source.table,
            file=source.where,
            column=first.column,
            example=first.example,
        )


def _parse_problem(
    con: duckdb.DuckDBPyConnection,
    contract: TableContract,
    source: Source,
    src: TableSource,
    col: str,
) -> Problem:
    spec = contract.column(col)
    raw, parsed = quote(col), quote(col + PARSED_SUFFIX)
    present = f"NULLIF(TRIM(CAST({raw} AS VARCHAR)), '') IS NOT NULL"
    n_present, n_bad = con.execute(
        f"SELECT count(*) FILTER (WHERE {present}), "
        f"count(*) FILTER (WHERE {present} AND {parsed} IS NULL) "
        f"FROM {quote('checked_' + source.table)}"
    ).fetchone()  # type: ignore[misc]
    example = con.execute(
        f"SELECT CAST({raw} AS VARCHAR) FROM {quote('checked_' + source.table)} "
        f"WHERE {present} AND {parsed} IS NULL LIMIT 1"
    ).fetchone()
    raw_type = source.types[col]
    what = (
        f"{n_bad} of {n_present} values ({n_bad / max(n_present, 1):.0%}) cannot be read as "
        f"{KIND_WORDS[spec.kind]} (source type {raw_type})"
    )
    if spec.kind == "timestamp":
        fix = (
            "write ISO 8601 timestamps ('2024-05-01T13:45:00Z'; no zone = UTC), "
            f"or list the format in ingest.tables.{source.table}.timestamp_formats "
            "(strptime, e.g. '%d/%m/%Y %H:%M'), or convert "
            f"it in ingest.tables.{source.table}.sql (e.g. to_timestamp({col}) for epoch seconds)"
        )
    else:
        fix = (
            f"write {KIND_WORDS[spec.kind]} in column {col!r}, or convert it in "
            f"ingest.tables.{source.table}.sql"
        )
    return Problem(col, what, example[0] if example else None, fix)


# --- row checks, quarantine and outputs ----------------------------------------------------------


def _process(
    con: duckdb.DuckDBPyConnection,
    contract: TableContract,
    source: Source,
    src: TableSource,
    params: IngestParams,
    now_sql: str,
    out: Path,
    bad: Path,
    rep: TableReport,
) -> None:
    """Row checks of one table in DuckDB; write kept and quarantined rows; fill in `rep`."""
    name = contract.name
    if src.sql is not None or _format(src) != "parquet":
        # the checks scan the source several times: a CSV or JSON file is parsed (a query run)
        # once, into a table of the on-disk work database (exact types, bounded memory, no spill)
        table = quote(f"source_{name}")
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {quote(source.view)}")
        source = dataclasses.replace(source, view=f"source_{name}")
    raw_cols = list(source.types)
    exprs = _parse_exprs(contract, source, src)
    present = set(exprs)
    is_customers = name == "customers"
    rules = row_rules(
        contract,
        raw=lambda c: quote(c),
        parsed=lambda c: quote("__p_" + c),
        present=present,
        now_sql=f"TIMESTAMPTZ {literal(now_sql)}",
        customer_known_sql=None if is_customers else "__known",
        signup_sql=None if is_customers or not params.quarantine_before_signup else "__signup",
        raw_types=source.types,
    )
    parsed_cols = ", ".join(f"{e} AS {quote('__p_' + c)}" for c, e in exprs.items())
    reason = reason_case_sql(rules)

    # kept rows: every contract column (absent optional ones as typed NULLs), then the extras
    select = []
    for c in contract.columns:
        if c.name in present:
            select.append(f"{quote('__p_' + c.name)} AS {quote(c.name)}")
        else:
            select.append(f"CAST(NULL AS {KIND_SQL_TYPE[c.kind]}) AS {quote(c.name)}")
    contract_names = {c.name for c in contract.columns}
    select += [_extra(c, source.types[c]) for c in raw_cols if c not in contract_names]
    # quarantined rows: the source columns as read, and the reason
    raw_sel = ", ".join(
        quote(c) if c != "reason" else f"{quote(c)} AS source_reason" for c in raw_cols
    )
    if is_customers:
        read, kept_sql = _customer_reasons(con, source, contract, parsed_cols, reason, raw_sel)
    else:
        read, kept_sql = _row_reasons(con, source, parsed_cols, reason, bad_row_sql(rules), raw_sel)
    quarantined = quote(f"quarantined_{name}")
    n_bad = _copy(con, f"SELECT * FROM {quarantined}", bad)
    counts = con.execute(f"SELECT reason, count(*) FROM {quarantined} GROUP BY 1").fetchall()
    n_kept = _copy(con, kept_sql.format(select=", ".join(select)), out)
    if n_kept + n_bad != read:  # pragma: no cover - a bug, not bad input
        raise RuntimeError(f"{name}: read {read} rows but kept {n_kept} + quarantined {n_bad}")
    by_reason = {r: int(n) for r, n in counts if n}
    rep.read, rep.kept, rep.quarantined = read, n_kept, n_bad
    rep.quarantined_by_reason = dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    rep.quarantined_fraction = rep.quarantined / rep.read if rep.read else 0.0
    if rep.quarantined_fraction <= params.max_quarantine_fraction:  # else kept for the example
        con.execute(f"DROP VIEW {quarantined}")
        con.execute(f"DROP TABLE IF EXISTS {quote('flagged_' + name)}")
        con.execute(f"DROP TABLE IF EXISTS {quote('flagged_keys_' + name)}")
        con.execute(f"DROP TABLE IF EXISTS {quote('staged_' + name)}")
        con.execute(f"DROP TABLE IF EXISTS {quote('source_' + name)}")


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """Write `query` to Parquet at `path`; the number of rows written."""
    row = con.execute(f"COPY ({query}) TO {literal(str(path))} ({PARQUET_OPTIONS})").fetchone()
    return int(row[0]) if row else 0


def _customer_reasons(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    contract: TableContract,
    parsed_cols: str,
    reason: str,
    raw_sel: str,
) -> tuple[int, str]:
    """Customers (small, one row per customer): exact duplicate rows grouped first, then a repeated
    customer_id keeps the earliest signup_date. Creates `quarantined_customers` and
    `kept_customers`; returns the rows read and the kept rows' query (`{select}` to fill in)."""
    raw_cols = list(source.types)
    order = ", ".join([quote("__p_" + str(contract.order_by))] + [quote(c) for c in raw_cols])
    staged = quote("staged_customers")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {staged} AS
        WITH g AS (SELECT *, count(*) AS __n FROM {quote(source.view)} GROUP BY ALL),
        r AS (SELECT p.*, {reason} AS __reason0 FROM (SELECT g.*, {parsed_cols} FROM g) p)
        SELECT r.*, COALESCE(__reason0, CASE WHEN row_number() OVER (
            PARTITION BY __p_customer_id, __reason0 IS NULL ORDER BY {order}
        ) > 1 THEN 'duplicate_customer_id' END) AS __reason FROM r
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW quarantined_customers AS
        SELECT {raw_sel}, __reason AS reason FROM {staged}, range(__n) WHERE __reason IS NOT NULL
        UNION ALL
        SELECT {raw_sel}, 'duplicate_row' AS reason FROM {staged}, range(__n - 1)
        WHERE __reason IS NULL AND __n > 1
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE kept_customers AS
        SELECT __p_customer_id AS customer_id, __p_signup_date AS signup_date
        FROM {staged} WHERE __reason IS NULL
    """)
    read = con.execute(f"SELECT coalesce(sum(__n), 0)::BIGINT FROM {staged}").fetchone()
    return int(read[0]), f"SELECT {{select}} FROM {staged} WHERE __reason IS NULL"  # type: ignore[index]


def _row_reasons(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    parsed_cols: str,
    reason: str,
    bad: str,
    raw_sel: str,
) -> tuple[int, str]:
    """Tables that refer to customers (any size): reasons without materialising the table.

    Exact duplicates are found by hashing: a row can only repeat if its hash key repeats. Scan 1
    evaluates the row rules and collects the keys that repeat or belong to a bad row; scan 2 takes
    the rows with those keys (few) into a small table where their reasons are given and whole
    rows are compared; scan 3 streams every other row, good and unique by construction, to the
    output. Creates `quarantined_<table>`; returns the rows read and the kept rows' query
    (`{select}` to fill in).
    """
    name = source.table
    view = quote(source.view)
    read = int(con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0])
    hashed = "hash(" + ", ".join(quote(c) for c in source.types) + ")"
    key = f"CAST({hashed} >> {64 - KEY_BITS} AS UINTEGER)"
    dup = quote(f"flagged_keys_{name}")

    def checked(rows: str, select: str = f"j.*, {reason} AS __reason0") -> str:
        """`rows` (raw columns) with parsed columns and customer facts: `select` from them (by
        default all of them and the first reason)."""
        return f"""
            WITH p AS (SELECT *, {parsed_cols} FROM {rows}),
            j AS (
                SELECT p.*, k.customer_id IS NOT NULL AS __known, k.signup_date AS __signup
                FROM p LEFT JOIN kept_customers k ON p.__p_customer_id = k.customer_id
            )
            SELECT {select} FROM j"""

    keys = _flagged_keys(con, checked(view, f"{key} AS k, {bad} AS bad"), read)
    log.info("%s: %d row keys repeat or belong to a bad row", name, len(keys))
    con.register("__flagged_keys", {"__dup_key": keys})
    con.execute(f"CREATE OR REPLACE TEMP TABLE {dup} AS SELECT __dup_key FROM __flagged_keys")
    con.unregister("__flagged_keys")
    # the flagged rows: every copy of a bad row keeps its reason; of a good row repeated exactly,
    # the first copy is kept and the others are duplicate_row
    flagged = quote(f"flagged_{name}")
    partition = ", ".join(quote(c) for c in source.types)
    candidates = f"(SELECT * FROM {view} WHERE {key} IN (SELECT __dup_key FROM {dup}))"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {flagged} AS
        SELECT *, COALESCE(__reason0, CASE WHEN row_number() OVER (PARTITION BY {partition}) > 1
                                      THEN 'duplicate_row' END) AS __reason
        FROM ({checked(candidates)})
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {quote("quarantined_" + name)} AS
        SELECT {raw_sel}, __reason AS reason FROM {flagged} WHERE __reason IS NOT NULL
    """)
    others = (
        f"(SELECT *, {parsed_cols} FROM {view} WHERE {key} NOT IN (SELECT __dup_key FROM {dup}))"
    )
    kept = (
        f"SELECT {{select}} FROM {others} "
        f"UNION ALL SELECT {{select}} FROM {flagged} WHERE __reason IS NULL"
    )
    return read, kept


def _flagged_keys(con: duckdb.DuckDBPyConnection, query: str, read: int) -> np.ndarray:
    """The distinct keys (numpy uint32, sorted) that occur more than once in `query`'s column `k`
    or belong to a row whose column `bad` is true; `query` yields `read` rows."""
    if read <= FETCH_ALL_MAX_ROWS:
        columns = con.execute(query).fetchnumpy()
        keys = np.asarray(columns["k"], dtype=np.uint32)
        bad_keys = keys[np.asarray(columns["bad"], dtype=bool)]
        del columns
    else:
        keys = np.empty(read, dtype=np.uint32)
        bad_parts, n = [], 0
        for batch in con.sql(query).to_arrow_reader(KEY_BATCH_ROWS):
            k = batch.column(0).to_numpy()
            bad = batch.column(1).to_numpy(zero_copy_only=False)
            keys[n : n + len(k)] = k
            n += len(k)
            if bad.any():
                bad_parts.append(k[bad])
        if n != read:  # pragma: no cover - a bug, not bad input
            raise RuntimeError(f"counted {read} rows but the key scan saw {n}")
        bad_keys = np.concatenate(bad_parts) if bad_parts else keys[:0]
    return np.union1d(repeated_keys(keys), bad_keys)


def repeated_keys(keys: np.ndarray) -> np.ndarray:
    """The distinct values that occur more than once in the numpy array `keys` (sorted in place)."""
    keys.sort()
    return np.unique(keys[1:][keys[1:] == keys[:-1]])


def _extra(col: str, raw_type: str) -> str:
    """An extra column, normalised: timestamps to UTC, decimals to double, JSON to text."""
    t = raw_type.upper()
    if t.startswith("TIMESTAMP"):
        return f"CAST({quote(col)} AS TIMESTAMPTZ) AS {quote(col)}"
    if t.startswith("DECIMAL"):
        return f"CAST({quote(col)} AS DOUBLE) AS {quote(col)}"
    if t == "JSON":
        return f"CAST({quote(col)} AS VARCHAR) AS {quote(col)}"
    return quote(col)


def _too_many_bad_rows(
    con: duckdb.DuckDBPyConnection, source: Source, rep: TableReport, limit: float
) -> IngestError:
    reason, column = next(iter(rep.quarantined_by_reason)), None
    row = con.execute(
        f"SELECT * FROM {quote('quarantined_' + source.table)} WHERE reason = ? LIMIT 1", [reason]
    ).fetchone()
    names = [d[0] for d in con.description]  # type: ignore[union-attr]
    example = {k: v for k, v in zip(names, row, strict=True) if k in source.types} if row else None
    for c in CONTRACTS[source.table].columns:
        if reason.endswith("_" + c.name):
            column = c.name
    counts = ", ".join(f"{r}: {n}" for r, n in rep.quarantined_by_reason.items())
    return IngestError(
        f"table {source.table!r}, {_where(source.where)}: {rep.quarantined} of {rep.read} rows "
        f"({rep.quarantined_fraction:.2%}) are bad, "
        f"above ingest.max_quarantine_fraction = {limit:g} "
        f"({counts}). Most common: {reason}"
        + (f" (column {column!r})" if column else "")
        + f"; example row: {_short(example, 300)}. Fix: correct the source, or raise "
        "ingest.max_quarantine_fraction if these rows are expected; the report lists every reason.",
        table=source.table,
        file=source.where,
        column=column,
        example=example,
    )


# --- small helpers -------------------------------------------------------------------------------


def _struct(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in mapping.items()) + "}"


def _where(where: str) -> str:
    return where if where.startswith("sql: ") else f"file {where}"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _short(value: Any, limit: int = EXAMPLE_LEN) -> str:
    text = (
        repr(value)
        if not isinstance(value, dict)
        else "{" + ", ".join(f"{k}: {v!r}" for k, v in value.items()) + "}"
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."
