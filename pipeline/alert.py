"""Stages `alert` and `alert_backtest`: early-warning alerts from experience data and scores.

`churn alert [--as-of DATE]` evaluates the rules file (`alert.rules`) at the as-of date and writes
data/alerts/alerts.parquet and .csv and reports/alerts.md, each atomically, then delivers new
alerts to the owner teams' enabled channels (pipeline/delivery.py). Default as-of: the scores'
as_of when data/scores/scores.parquet exists, else the day after the latest timestamp in the
data (so every record counts). The as-of day itself is never read (see features/alerts.py).

`churn alert-backtest` evaluates every rule at the label cutoffs of data/processed/labels.parquet
and writes reports/alerts_backtest.json (precision, recall, lift per rule).

Exit codes: 0 ok (also when a delivery channel is down: its alerts stay pending), 2 bad input
(invalid rules file, missing tables).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.alerts import (
    ALERT_COLUMNS,
    HIDDEN_FEATURE_COLUMNS,
    RECORD_SOURCES,
    ROUTING_COLUMNS,
    SCORE_FIELD_TYPES,
    TIME_COLUMNS,
    Snapshot,
    backtest,
    build_alerts,
    event_types_read,
    fields_by_source,
    lookback_by_source,
    tickets_known_at,
)
from features.labels import utc_midnight
from features.lexicon import LexiconError, load_lexicon
from features.rules import FieldType, RuleError, RulesFile, check_rules, field_types_of_schema
from features.rules import load_rules as read_rules_file
from features.tables import TableContractError, Tables, connect, load_tables, max_timestamp
from pipeline.config import AlertParams, ParamsError, load_params
from pipeline.delivery import DeliverySettings, deliver, load_ledger
from pipeline.io import atomic_path, write_json, write_parquet, write_text

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2


# ---------------------------------------------------------------- inputs


def _schema_fields(path: Path) -> dict[str, FieldType] | None:
    return field_types_of_schema(pq.read_schema(path)) if path.exists() else None


def record_fields(tables: Tables) -> dict[str, dict[str, FieldType]]:
    """Field types of each record table (from the interim schemas, nothing is read)."""
    out: dict[str, dict[str, FieldType]] = {}
    for source in RECORD_SOURCES:
        table = getattr(tables, source)
        if table is not None:
            out[source] = field_types_of_schema(table.schema().to_pyarrow())
    return out


def load_checked_rules(
    cfg: AlertParams,
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
    lexicon = load_lexicon(cfg.lexicon)
    missing = [s for s in RECORD_SOURCES if s not in fields]
    rules_file = read_rules_file(cfg.rules, fields)
    for rule in rules_file.rules:
        if rule.source in missing:
            raise RuleError(
                f"{cfg.rules}: rule {rule.name!r} reads {rule.source}, which is not "
                f"in {cfg.interim_dir}; remove the rule or ingest that table"
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


def _records(
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


def _customers(tables: Tables) -> pd.DataFrame:
    frame = tables.customers.to_pandas()
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def _departed(tables: Tables, as_of: pd.Timestamp) -> frozenset[str]:
    """Customers whose churn date is before as_of: they get no alerts."""
    if tables.churn_events is None:
        return frozenset()
    events = tables.churn_events
    gone = events.filter(events.churn_date < as_of.to_pydatetime()).select("customer_id")
    return frozenset(gone.to_pandas()["customer_id"].astype(str))


def _read_optional(path: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
    if not path.exists():
        return None
    available = set(pq.read_schema(path).names)
    cols = None if columns is None else [c for c in columns if c in available]
    frame = pq.read_table(path, columns=cols).to_pandas()
    if "customer_id" in frame.columns:
        frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def _needed_customer_fields(rules_file: RulesFile) -> list[str]:
    names = set(ROUTING_COLUMNS)
    for rule in rules_file.rules:
        names |= rule.fields
    return sorted(names)


def parse_as_of(value: str) -> pd.Timestamp:
    """'2025-12-01' or an ISO timestamp -> the UTC midnight starting that day."""
    try:
        return pd.Timestamp(utc_midnight(value))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--as-of {value!r}: expected a date such as 2025-12-01") from exc


def default_as_of(cfg: AlertParams, tables: Tables) -> pd.Timestamp:
    """The scores' as-of date, else the day after the latest timestamp in the data."""
    scores = Path(cfg.scores)
    if scores.exists():
        as_of = pq.read_table(scores, columns=["as_of"]).column("as_of")
        if len(as_of):
            return pd.Timestamp(pa.compute.max(as_of).as_py()).tz_convert("UTC")
    latest = max_timestamp(tables)
    return pd.Timestamp(utc_midnight(latest)) + pd.Timedelta(days=1)


def _at_as_of(
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


# ---------------------------------------------------------------- alert stage


def run(cfg: AlertParams, as_of: str | None = None) -> pd.DataFrame:
    """Write the alerts files and the report; deliver; return the alerts."""
    with tempfile.TemporaryDirectory(prefix="alert-") as tmp:
        con = connect(cfg.duckdb_memory_limit, cfg.duckdb_threads, tmp)
        tables = load_tables(con, cfg.interim_dir)
        moment = parse_as_of(as_of) if as_of else default_as_of(cfg, tables)
        score_fields = _schema_fields(Path(cfg.scores))
        feature_fields = _schema_fields(Path(cfg.score_features))
        rules_file = load_checked_rules(cfg, tables, feature_fields, score_fields)
        lexicon = load_lexicon(cfg.lexicon)
        records = _records(
            tables, lookback_by_source(rules_file), moment, event_types_read(rules_file)
        )
        customers = _customers(tables)
        departed = _departed(tables, moment)
        con.disconnect()
    needed = ["customer_id", "cutoff", *_needed_customer_fields(rules_file)]
    features, _ = _at_as_of(
        _read_optional(Path(cfg.score_features), needed), "cutoff", moment, f"{cfg.score_features}"
    )
    scores, scores_as_of = _at_as_of(
        _read_optional(Path(cfg.scores)), "as_of", moment, f"{cfg.scores}"
    )
    snapshot = Snapshot(moment, records, customers, features, scores, scores_as_of, departed)
    alerts = build_alerts(rules_file, snapshot, lexicon)
    write_outputs(cfg, alerts, rules_file, moment)
    reports = []
    if cfg.deliver:
        settings = DeliverySettings(
            cfg.max_attempts,
            cfg.backoff_seconds,
            cfg.timeout_seconds,
            cfg.batch_size,
            cfg.ledger_retention_days,
        )
        reports = deliver(alerts, rules_file, cfg.ledger, settings)
    if not Path(cfg.ledger).exists():  # a declared (persisted) DVC output: always present
        write_json(cfg.ledger, load_ledger(cfg.ledger))
    if reports:
        write_text(cfg.report, alerts_report(alerts, rules_file, moment, reports))
    log.info("alerts at %s: %d -> %s", moment.date(), len(alerts), cfg.out_dir)
    return alerts


def write_outputs(
    cfg: AlertParams, alerts: pd.DataFrame, rules_file: RulesFile, as_of: pd.Timestamp
) -> None:
    """alerts.parquet, alerts.csv and the markdown report, each written atomically."""
    out_dir = Path(cfg.out_dir)
    table = _alerts_table(alerts)
    write_parquet(out_dir / "alerts.parquet", table)
    with atomic_path(out_dir / "alerts.csv") as tmp:
        table.to_pandas().to_csv(tmp, index=False)
    write_text(cfg.report, alerts_report(alerts, rules_file, as_of, []))


_ARROW_TYPES: dict[str, pa.DataType] = {
    "as_of": pa.timestamp("us", tz="UTC"),
    "triggered_at": pa.timestamp("us", tz="UTC"),
    "due_at": pa.timestamp("us", tz="UTC"),
    "churn_probability": pa.float64(),
}


def _alerts_table(alerts: pd.DataFrame) -> pa.Table:
    """A fixed schema, so that an empty run writes the same columns as a full one."""
    arrays = []
    for col in ALERT_COLUMNS:
        kind = _ARROW_TYPES.get(col, pa.string())
        values = alerts[col] if col in alerts.columns else pd.Series([], dtype=object)
        if pa.types.is_timestamp(kind):
            values = pd.to_datetime(values, utc=True)
        elif kind == pa.float64():
            values = pd.to_numeric(values, errors="coerce")
        else:
            values = values.astype(object).where(values.notna(), None)
        arrays.append(pa.array(values, type=kind, from_pandas=True))
    return pa.Table.from_arrays(arrays, names=list(ALERT_COLUMNS))


def _count_table(alerts: pd.DataFrame, column: str, order: list[str] | None = None) -> list[str]:
    counts = alerts[column].value_counts() if len(alerts) else pd.Series(dtype=int)
    keys = order if order is not None else sorted(counts.index)
    rows = [f"| {column} | alerts |", "|---|---:|"]
    rows += [f"| {k} | {int(counts.get(k, 0))} |" for k in keys]
    return rows


def alerts_report(
    alerts: pd.DataFrame, rules_file: RulesFile, as_of: pd.Timestamp, deliveries: list[Any]
) -> str:
    """reports/alerts.md: counts by rule, level and owner team (and the delivery outcome)."""
    lines = [
        f"# Early-warning alerts at {as_of.date().isoformat()}",
        "",
        f"{len(alerts)} alert(s) from {len(rules_file.rules)} rule(s) in `{rules_file.path}`; "
        f"{alerts['customer_id'].nunique() if len(alerts) else 0} customer(s).",
        "",
        "## By rule",
        "",
        *_count_table(alerts, "rule", [r.name for r in rules_file.rules]),
        "",
        "## By level",
        "",
        *_count_table(alerts, "level", ["critical", "high", "medium", "low"]),
        "",
        "## By owner team",
        "",
        *_count_table(alerts, "owner_team"),
        "",
    ]
    if deliveries:
        lines += [
            "## Delivery",
            "",
            "| team | channel | delivered | pending | error |",
            "|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {d.team} | {d.channel} | {d.delivered} | {d.pending} | {d.error or ''} |"
            for d in deliveries
        ]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- backtest stage


def run_backtest(cfg: AlertParams, horizon_days: int) -> dict[str, Any]:
    """Write reports/alerts_backtest.json; return it."""
    labels_path = Path(cfg.labels)
    if not labels_path.exists():
        raise FileNotFoundError(f"{labels_path}: labels not found; run `churn label` first")
    labels = pd.read_parquet(labels_path, columns=["customer_id", "cutoff", "churned"])
    labels["customer_id"] = labels["customer_id"].astype(str)
    labels["cutoff"] = pd.to_datetime(labels["cutoff"], utc=True)
    feature_path = Path(cfg.features)
    feature_fields = _schema_fields(feature_path)
    with tempfile.TemporaryDirectory(prefix="alert-backtest-") as tmp:
        con = connect(cfg.duckdb_memory_limit, cfg.duckdb_threads, tmp)
        tables = load_tables(con, cfg.interim_dir)
        # Scores exist only at scoring time: the declared score fields let rules that read them
        # type-check; the backtest reports them as not backtested.
        rules_file = load_checked_rules(cfg, tables, feature_fields, dict(SCORE_FIELD_TYPES))
        lexicon = load_lexicon(cfg.lexicon)
        customers = _customers(tables)
        needed = ["customer_id", "cutoff", *_needed_customer_fields(rules_file)]
        needed = [
            c for c in needed if c not in HIDDEN_FEATURE_COLUMNS or c in ("customer_id", "cutoff")
        ]
        features = _read_optional(feature_path, needed)
        lookback = lookback_by_source(rules_file)
        event_types = event_types_read(rules_file)

        def snapshot_at(cutoff: pd.Timestamp) -> Snapshot:
            records = _records(tables, lookback, cutoff, event_types)
            at = None
            if features is not None:
                at = features[pd.to_datetime(features["cutoff"], utc=True) == cutoff]
                at = at.drop(columns=["cutoff"])
            return Snapshot(cutoff, records, customers, at)

        preds = _read_optional(Path(cfg.test_predictions))
        result = backtest(rules_file, lexicon, labels, snapshot_at, horizon_days, preds)
        con.disconnect()
    result["rules_file"] = str(cfg.rules)
    write_json(cfg.backtest_report, result)
    for entry in result["rules"]:
        log.info(
            "backtest %-28s alerted %6d churned %5d precision %.3f recall %.3f lift %.2f",
            entry["rule"],
            entry["alerted"],
            entry["churned"],
            entry["precision"],
            entry["recall"],
            entry["lift"],
        )
    return result


# ---------------------------------------------------------------- entry points


# Bad rules, lexicon, params or input tables: exit code 2 with the message.
BAD_INPUT = (
    RuleError,
    LexiconError,
    ParamsError,
    TableContractError,
    FileNotFoundError,
    ValueError,
)


def main(params_path: Path | str = "params.yaml", as_of: str | None = None) -> int:
    """Entry point of the `alert` stage; returns the exit code."""
    try:
        cfg = load_params(params_path).alert
        run(cfg, as_of)
    except BAD_INPUT as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    return 0


def main_backtest(params_path: Path | str = "params.yaml") -> int:
    """Entry point of the `alert_backtest` stage; returns the exit code."""
    try:
        params = load_params(params_path)
        run_backtest(params.alert, params.label.horizon_days)
    except BAD_INPUT as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    return 0
