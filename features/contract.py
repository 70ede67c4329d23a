"""The input contract, defined once: what `ingest` accepts and what it writes to data/interim/.

Everything else is derived from `CONTRACTS`:

- `fatal_checks_sql`: one DuckDB aggregate for the fatal checks of a raw source table, run before
  any row is written (missing column, column that mostly does not parse, zero rows).
- `output_schema`: a pandera (Ibis backend) schema for a normalised table in data/interim/.
- `parse_sql` / `row_reason_sql`: the DuckDB expressions that normalise each column and name the
  reason a row is quarantined, in precedence order (the first matching reason wins).

Decisions (see also features/validation.py):

- Ids are strings, trimmed; an empty id is a null id.
- Timestamps are `TIMESTAMP WITH TIME ZONE` in UTC (Parquet `timestamp[us, tz=UTC]`). A string
  with an offset or a zone name is converted; a naive string or a naive Parquet timestamp is
  taken to be UTC; a date is midnight UTC.
- Score scales: csat 1–10, nps 0–10, ces 1–7, ticket satisfaction 1–10. A 1–5 csat survey must
  be rescaled in the source `sql:`; it is not guessed.
- Enumerated values (metric, churn_reason) are lower-cased and trimmed; other categories are
  trimmed only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandera.ibis as pa

Kind = Literal["id", "timestamp", "category", "text", "float", "bool"]


@dataclass(frozen=True)
class ColumnSpec:
    """One contract column: its kind, whether it must exist, may be null, and its allowed values."""

    name: str
    kind: Kind
    required: bool = True  # the column must be present in the source
    nullable: bool = False  # a null value is allowed in a kept row
    allowed: tuple[str, ...] = ()  # enumerated values (after lower/trim)
    value_range: tuple[float, float] | None = None  # inclusive


@dataclass(frozen=True)
class TableContract:
    """One contract table: its columns, a score range that depends on another column, uniqueness."""

    name: str
    columns: tuple[ColumnSpec, ...]
    # (score column, category column, {category: (min, max)}): e.g. responses' score by metric
    range_by: tuple[str, str, dict[str, tuple[float, float]]] | None = None
    unique: str | None = None  # a column whose duplicates (beyond exact duplicate rows) are bad
    order_by: str | None = None  # which duplicate of `unique` is kept: the smallest value of this
    timestamp_col: str | None = None  # the row's event time, compared with signup_date

    def column(self, name: str) -> ColumnSpec:
        """The spec of column `name`."""
        return next(c for c in self.columns if c.name == name)


SCORE_RANGES: dict[str, tuple[float, float]] = {"csat": (1, 10), "nps": (0, 10), "ces": (1, 7)}
CHURN_REASONS = ("dissatisfaction", "economic", "situational", "other")

CUSTOMER_ID = ColumnSpec("customer_id", "id")

CONTRACTS: dict[str, TableContract] = {
    c.name: c
    for c in (
        TableContract(
            "customers",
            (CUSTOMER_ID, ColumnSpec("signup_date", "timestamp")),
            unique="customer_id",
            order_by="signup_date",
        ),
        TableContract(
            "churn_events",
            (
                CUSTOMER_ID,
                ColumnSpec("churn_date", "timestamp"),
                ColumnSpec(
                    "churn_reason", "category", required=False, nullable=True, allowed=CHURN_REASONS
                ),
            ),
            timestamp_col="churn_date",
        ),
        TableContract(
            "events",
            (
                CUSTOMER_ID,
                ColumnSpec("ts", "timestamp"),
                ColumnSpec("event_type", "category"),
                ColumnSpec("value", "float", required=False, nullable=True),
            ),
            timestamp_col="ts",
        ),
        TableContract(
            "responses",
            (
                CUSTOMER_ID,
                ColumnSpec("ts", "timestamp"),
                ColumnSpec("touchpoint", "category"),
                ColumnSpec("metric", "category", allowed=tuple(SCORE_RANGES)),
                ColumnSpec("score", "float"),
                ColumnSpec("comment", "text", required=False, nullable=True),
            ),
            range_by=("score", "metric", SCORE_RANGES),
            timestamp_col="ts",
        ),
        TableContract(
            "tickets",
            (
                CUSTOMER_ID,
                ColumnSpec("opened_at", "timestamp"),
                ColumnSpec("category", "category"),
                ColumnSpec("closed_at", "timestamp", required=False, nullable=True),
                ColumnSpec("priority", "category", required=False, nullable=True),
                ColumnSpec("escalated", "bool", required=False, nullable=True),
                ColumnSpec(
                    "satisfaction", "float", required=False, nullable=True, value_range=(1, 10)
                ),
                ColumnSpec("text", "text", required=False, nullable=True),
            ),
            timestamp_col="opened_at",
        ),
    )
}

# The order in which tables are ingested: customers first, the others refer to it.
TABLE_ORDER: tuple[str, ...] = tuple(CONTRACTS)

# What each kind is called in messages, and the DuckDB type it is normalised to.
KIND_WORDS: dict[str, str] = {
    "id": "an id",
    "timestamp": "a timestamp",
    "category": "a category",
    "text": "text",
    "float": "a number",
    "bool": "true/false",
}
KIND_SQL_TYPE: dict[str, str] = {
    "id": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "category": "VARCHAR",
    "text": "VARCHAR",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
}

_STRING_TYPES = ("VARCHAR", "JSON")
_NUMERIC_PREFIXES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)


def quote(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


def parse_sql(
    spec: ColumnSpec, raw: str, raw_type: str, timestamp_formats: tuple[str, ...] = ()
) -> str:
    """DuckDB expression normalising `raw` (of DuckDB type `raw_type`); NULL if it fails."""
    raw_type = raw_type.upper()
    is_string = raw_type in _STRING_TYPES
    text = f"NULLIF(TRIM(CAST({raw} AS VARCHAR)), '')"
    if spec.kind in ("id", "category"):
        out = text
        if raw_type == "VARCHAR":  # TRIM is a no-op when both ends are printable ASCII: skip it
            ends = " AND ".join(f"ascii({e}) BETWEEN 33 AND 126" for e in (raw, f"reverse({raw})"))
            out = f"CASE WHEN {ends} THEN {raw} ELSE {text} END"
        if spec.allowed:
            out = f"LOWER({out})"
        return out
    if spec.kind == "text":
        return f"CAST({raw} AS VARCHAR)"
    if spec.kind == "float":
        if is_string:
            return f"TRY_CAST({text} AS DOUBLE)"
        if raw_type.startswith(_NUMERIC_PREFIXES) or raw_type == "BOOLEAN":
            return f"CAST({raw} AS DOUBLE)"
        return "CAST(NULL AS DOUBLE)"
    if spec.kind == "bool":
        if is_string or raw_type.startswith(_NUMERIC_PREFIXES) or raw_type == "BOOLEAN":
            return f"TRY_CAST({text} AS BOOLEAN)"
        return "CAST(NULL AS BOOLEAN)"
    # timestamp: the session time zone is UTC, so naive values are read as UTC
    if is_string:
        parsed = f"TRY_CAST({text} AS TIMESTAMPTZ)"
        if timestamp_formats:
            formats = "[" + ", ".join(literal(f) for f in timestamp_formats) + "]"
            parsed = f"COALESCE({parsed}, CAST(try_strptime({text}, {formats}) AS TIMESTAMPTZ))"
        return parsed
    if raw_type == "TIMESTAMP":  # naive microseconds = UTC; the same value as the CAST, which
        # goes through the session time zone (ICU) value by value and costs ~10x more
        return f"make_timestamptz(epoch_us({raw}))"
    if raw_type.startswith(("TIMESTAMP", "DATE")):
        return f"CAST({raw} AS TIMESTAMPTZ)"
    # numbers (epoch seconds? milliseconds?) and anything else are not guessed
    return "CAST(NULL AS TIMESTAMPTZ)"


# DuckDB types whose text is never blank: for them "missing" is just NULL (no cast to text,
# which for timestamps and doubles is the most expensive part of the row checks)
_NEVER_BLANK_PREFIXES = (*_NUMERIC_PREFIXES, "TIMESTAMP", "DATE", "TIME", "BOOLEAN", "UUID")


def missing_sql(raw: str, raw_type: str | None = None) -> str:
    """DuckDB predicate: the raw value (of DuckDB type `raw_type`, if known) is null or blank."""
    if raw_type is not None and raw_type.upper().startswith(_NEVER_BLANK_PREFIXES):
        return f"{raw} IS NULL"
    return f"NULLIF(TRIM(CAST({raw} AS VARCHAR)), '') IS NULL"


def parses_sql(raw: str, parsed: str, raw_type: str | None = None) -> str:
    """DuckDB predicate: the raw value is missing (null or blank) or it parsed."""
    if raw_type is not None and raw_type.upper().startswith(_NEVER_BLANK_PREFIXES):
        return f"({raw} IS NULL OR {parsed} IS NOT NULL)"
    return f"({raw} IS NULL OR {missing_sql(raw, raw_type)} OR {parsed} IS NOT NULL)"


@dataclass(frozen=True)
class RowRule:
    """A reason a row is quarantined, and the DuckDB predicate that detects it."""

    reason: str
    predicate: str
    column: str | None = None


def row_rules(
    contract: TableContract,
    raw: Callable[[str], str],
    parsed: Callable[[str], str],
    present: set[str],
    *,
    now_sql: str,
    customer_known_sql: str | None,
    signup_sql: str | None,
    raw_types: Mapping[str, str] | None = None,
) -> list[RowRule]:
    """The row checks of `contract` in precedence order: the first that matches is the reason.

    Precedence: null required value (null_customer_id first), then value that does not parse,
    then value not allowed / out of range, then future timestamp, then unknown customer, then
    event before the customer's signup. Within a group, columns go in contract order. Duplicates
    (`duplicate_customer_id`, `duplicate_row`) come last and are applied in ingest.
    `raw_types` (DuckDB type per raw column, when known) only makes the predicates cheaper.
    """
    types = raw_types or {}
    cols = [c for c in contract.columns if c.name in present]
    rules: list[RowRule] = []
    for c in cols:
        if not c.nullable:
            rules.append(
                RowRule(
                    f"null_{c.name}",
                    # an id or category parses to NULL exactly when it is null or blank
                    f"{parsed(c.name)} IS NULL"
                    if c.kind in ("id", "category")
                    else missing_sql(raw(c.name), types.get(c.name)),
                    c.name,
                )
            )
    for c in cols:
        if c.kind in ("timestamp", "float", "bool"):
            rules.append(
                RowRule(
                    f"unparseable_{c.name}",
                    f"NOT {parses_sql(raw(c.name), parsed(c.name), types.get(c.name))}",
                    c.name,
                )
            )
    for c in cols:
        if c.allowed:
            values = ", ".join(literal(v) for v in c.allowed)
            rules.append(
                RowRule(f"invalid_{c.name}", f"{parsed(c.name)} NOT IN ({values})", c.name)
            )
        if c.value_range is not None:
            lo, hi = c.value_range
            rules.append(
                RowRule(
                    f"out_of_range_{c.name}", f"{parsed(c.name)} NOT BETWEEN {lo} AND {hi}", c.name
                )
            )
    if contract.range_by is not None and {contract.range_by[0], contract.range_by[1]} <= present:
        score, by, ranges = contract.range_by
        cases = " ".join(
            f"WHEN {literal(k)} THEN {parsed(score)} NOT BETWEEN {lo} AND {hi}"
            for k, (lo, hi) in ranges.items()
        )
        rules.append(
            RowRule(f"out_of_range_{score}", f"CASE {parsed(by)} {cases} ELSE FALSE END", score)
        )
    for c in cols:
        if c.kind == "timestamp":
            rules.append(RowRule(f"future_{c.name}", f"{parsed(c.name)} > {now_sql}", c.name))
    if customer_known_sql is not None:
        rules.append(RowRule("unknown_customer_id", f"NOT {customer_known_sql}", "customer_id"))
    if signup_sql is not None and contract.timestamp_col in present:
        rules.append(
            RowRule(
                f"before_signup_{contract.timestamp_col}",
                f"{parsed(contract.timestamp_col)} < {signup_sql}",
                contract.timestamp_col,
            )
        )
    return rules


def reason_case_sql(rules: list[RowRule]) -> str:
    """A CASE expression giving the first matching rule's reason, NULL for a good row."""
    if not rules:
        return "CAST(NULL AS VARCHAR)"
    whens = "\n    ".join(
        f"WHEN COALESCE({r.predicate}, FALSE) THEN {literal(r.reason)}" for r in rules
    )
    return f"CASE\n    {whens}\n    ELSE NULL END"


def bad_row_sql(rules: list[RowRule]) -> str:
    """A predicate true exactly when `reason_case_sql(rules)` is not NULL (some rule matches); for
    a scan that needs only whether a row is bad, it is cheaper than the CASE."""
    if not rules:
        return "FALSE"
    return " OR ".join(f"COALESCE({r.predicate}, FALSE)" for r in rules)


# --- pandera (Ibis backend) schemas derived from the contract -------------------------------

PARSED_SUFFIX = "__parsed"


def fatal_checks_sql(view: str, parsed_columns: list[str], raw_types: Mapping[str, str]) -> str:
    """One DuckDB aggregate over `view` (raw columns with `<col>__parsed` companions) for the fatal
    checks of a source: its row count, then per column of `parsed_columns` the number of
    non-blank values and the number of those that parsed."""
    aggregates = ["count(*)"]
    for col in parsed_columns:
        raw, parsed = quote(col), quote(col + PARSED_SUFFIX)
        present = f"NOT ({missing_sql(raw, raw_types.get(col))})"
        aggregates += [
            f"count(*) FILTER (WHERE {present})",
            f"count(*) FILTER (WHERE {present} AND {parsed} IS NOT NULL)",
        ]
    return f"SELECT {', '.join(aggregates)} FROM {quote(view)}"


# --- pandera (Ibis backend) schema of the outputs, derived from the contract ----------------------


def output_schema(contract: TableContract) -> pa.DataFrameSchema:
    """Pandera schema of a normalised table in data/interim/ (kept rows; extra columns allowed)."""
    import ibis  # imported here: pandera and ibis take ~0.6 s to import, the ingest needs neither
    import ibis.expr.datatypes as dt
    import pandera.ibis as pa

    ibis_type = {
        "id": dt.String(),
        "timestamp": dt.Timestamp(timezone="UTC", scale=6),
        "category": dt.String(),
        "text": dt.String(),
        "float": dt.Float64(),
        "bool": dt.Boolean(),
    }
    columns = {}
    for c in contract.columns:
        checks = []
        if c.allowed:
            checks.append(pa.Check.isin(list(c.allowed)))
        if c.value_range is not None:
            checks.append(pa.Check.in_range(*c.value_range))
        columns[c.name] = pa.Column(
            ibis_type[c.kind], checks=checks, nullable=c.nullable, required=c.required
        )
    frame_checks = []
    if contract.range_by is not None:
        score, by, ranges = contract.range_by

        def score_in_range(data: pa.IbisData) -> ibis.expr.types.BooleanColumn:
            t = data.table
            ok = ibis.literal(True)
            for k, (lo, hi) in ranges.items():
                ok = ok & ((t[by] != k) | t[score].between(lo, hi))
            return ok

        frame_checks.append(pa.Check(score_in_range, name=f"{score}_in_range_by_{by}"))
    return pa.DataFrameSchema(
        columns,
        checks=frame_checks,
        name=contract.name,
        unique=[contract.unique] if contract.unique else None,
    )
