"""Stages `alert` and `alert_backtest`: early-warning alerts from experience data and scores.

`churn alert [--as-of DATE]` evaluates the rules file (`alert.rules`) at the as-of date, groups
what fired into one work item per customer and owner team (models/warning/alerts.py
`work_items`: every rule with its evidence and action text, due from the run's time, contact
columns), writes them (`paths.alerts`: alerts.parquet and .csv) and `paths.alerts_report`, each
atomically, then delivers new items to the owner teams' enabled channels (pipeline/delivery.py).
The priority list's owners (`value.tier_owners`) must be teams of the rules file. Default
as-of: the scores' as_of when the scores exist, else the day after the latest timestamp in the
data (so every record counts). The as-of day itself is never read (models/warning/alerts.py).

`churn alert-backtest` evaluates every rule at the label cutoffs (`paths.labels`) and writes
`paths.backtest_report` (precision, recall, lift per rule).

A delivery channel that is down is not an error: its alerts stay pending for the next run.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from features.base.errors import BadInputError, require_inputs
from features.base.io import atomic_path, write_json, write_parquet, write_text
from features.lexicon import load_lexicon
from features.tables import connect, load_tables
from models.warning.alerts import (
    SCORE_FIELD_TYPES,
    WORK_COLUMNS,
    alerts_table,
    backtest,
    build_alerts,
    work_items,
)
from models.warning.window import (
    default_as_of,
    load_checked_rules,
    read_optional,
    schema_fields,
    snapshot_at,
    snapshots_at_cutoffs,
)
from pipeline.config import Params
from pipeline.delivery import channels_of, deliver, load_ledger
from pipeline.reporting.markdown import alerts_report

log = logging.getLogger(__name__)


def run(params: Params, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Write the alerts files and the report; deliver; return the alerts."""
    cfg, paths = params.alert, params.paths
    lexicon = load_lexicon(params.featurize.lexicon)
    with tempfile.TemporaryDirectory(prefix="alert-") as tmp:
        con = connect(cfg.duckdb_memory_limit, cfg.duckdb_threads, tmp)
        tables = load_tables(con, paths.interim)
        as_of = as_of if as_of is not None else default_as_of(tables, paths.scores)
        rules_file = load_checked_rules(
            cfg.rules,
            lexicon,
            tables,
            schema_fields(paths.score_features),
            schema_fields(paths.scores),
        )
        channels = channels_of(rules_file)  # a bad channel is bad input before any alert
        check_owner_teams(rules_file.team_names, params.value.tier_owners, cfg.rules)
        snapshot = snapshot_at(tables, rules_file, as_of, paths.score_features, paths.scores)
        con.disconnect()
    fired = build_alerts(rules_file, snapshot, lexicon)
    raised_at = pd.Timestamp.now(tz="UTC").floor("s")
    alerts = work_items(fired, rules_file, raised_at, snapshot)
    out_dir = Path(paths.alerts)
    table = alerts_table(alerts, [*WORK_COLUMNS, *rules_file.contact_columns])
    write_parquet(out_dir / "alerts.parquet", table)
    with atomic_path(out_dir / "alerts.csv") as tmp_csv:
        table.to_pandas().to_csv(tmp_csv, index=False)
    write_text(paths.alerts_report, alerts_report(fired, alerts, rules_file, as_of, []))
    deliveries = []
    if cfg.delivery.enabled:
        deliveries = deliver(alerts, channels, paths.ledger, cfg.delivery)
    if not Path(paths.ledger).exists():  # a declared (persisted) DVC output: always present
        write_json(paths.ledger, load_ledger(paths.ledger))
    if deliveries:
        write_text(paths.alerts_report, alerts_report(fired, alerts, rules_file, as_of, deliveries))
    log.info(
        "alerts at %s: %d rule firing(s) -> %d work item(s) (customer x owner team) -> %s",
        as_of.date(),
        len(fired),
        len(alerts),
        out_dir,
    )
    return alerts


def check_owner_teams(teams: tuple[str, ...], tier_owners: dict[str, str], rules: str) -> None:
    """The priority list and the alerts route to one set of teams (those of the rules file)."""
    unknown = sorted({t for t in tier_owners.values() if t not in teams})
    if unknown:
        raise BadInputError(
            f"value.tier_owners names team(s) {unknown} that {rules} does not declare (teams: "
            f"{list(teams)}); the priority list and the alerts must route to the same teams: "
            "use those names in value.tier_owners or declare the teams under `teams:`"
        )


def run_backtest(params: Params) -> dict[str, Any]:
    """Each rule at the past label cutoffs; write `paths.backtest_report` and return it."""
    cfg, paths = params.alert, params.paths
    require_inputs(paths.labels, produced_by="churn label")
    labels = pd.read_parquet(paths.labels, columns=["customer_id", "cutoff", "churned"])
    labels["customer_id"] = labels["customer_id"].astype(str)
    labels["cutoff"] = pd.to_datetime(labels["cutoff"], utc=True)
    lexicon = load_lexicon(params.featurize.lexicon)
    with tempfile.TemporaryDirectory(prefix="alert-backtest-") as tmp:
        con = connect(cfg.duckdb_memory_limit, cfg.duckdb_threads, tmp)
        tables = load_tables(con, paths.interim)
        # Scores exist only at scoring time: the declared score fields let rules that read them
        # type-check; the backtest reports them as not backtested.
        rules_file = load_checked_rules(
            cfg.rules, lexicon, tables, schema_fields(paths.features), dict(SCORE_FIELD_TYPES)
        )
        channels_of(rules_file)  # the same rules file as `churn alert`: reject a bad channel too
        at = snapshots_at_cutoffs(tables, rules_file, paths.features)
        predictions = read_optional(paths.test_predictions)
        result = backtest(rules_file, lexicon, labels, at, params.label.horizon_days, predictions)
        con.disconnect()
    result["rules_file"] = str(cfg.rules)
    write_json(paths.backtest_report, result)
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
