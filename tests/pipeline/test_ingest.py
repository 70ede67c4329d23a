"""Stage `ingest`: tiny hand-written sources through the real DuckDB and the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from pathlib import Path

import duckdb
import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from features.contract import CONTRACTS, output_schema
from features.settings import IngestParams, TableSource
from features.validation import validate_sources
from pipeline.cli import app

from helpers import inside

NOW = "2025-01-01T00:00:00Z"
UTC_US = pa.timestamp("us", tz="UTC")


# --- fixtures -------------------------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


CUSTOMERS_CSV = """
customer_id,signup_date,plan,monthly_fee,country
007,2024-01-01,basic,9.5,DE
008,2024-02-01T10:00:00+02:00,pro,19.0,FR
009,2024-03-01 12:00:00,basic,9.5,ES
"""


def make_raw(root: Path) -> dict[str, dict]:
    """A tiny valid 5-table dataset in CSV, Parquet and JSON lines; returns ingest.tables."""
    raw = root / "data" / "raw"
    write_csv(raw / "customers.csv", CUSTOMERS_CSV)
    write_csv(
        raw / "churn_events.csv",
        "customer_id,churn_date,churn_reason\n009,2024-09-01,Economic\n",
    )
    write_parquet(
        raw / "events.parquet",
        pd.DataFrame(
            {
                "customer_id": ["007", "007", "008", "009"],
                "ts": pd.to_datetime(
                    ["2024-05-01 10:00", "2024-05-02 11:00", "2024-05-03 12:00", "2024-05-04 00:00"]
                ),  # naive: UTC
                "event_type": ["login", "purchase", "login", "payment_failure"],
                "value": [None, 12.5, None, 9.5],
                "device": ["ios", "web", "web", "android"],
            }
        ),
    )
    write_jsonl(
        raw / "responses.jsonl",
        [
            {
                "customer_id": "007",
                "ts": "2024-06-01T09:00:00Z",
                "touchpoint": "onboarding",
                "metric": "csat",
                "score": 9,
                "comment": "très bien",
            },
            {
                "customer_id": "008",
                "ts": "2024-06-02T09:00:00+05:30",
                "touchpoint": "support",
                "metric": "NPS",
                "score": 0,
                "comment": None,
            },
            {
                "customer_id": "009",
                "ts": "2024-06-03",
                "touchpoint": "billing",
                "metric": "ces",
                "score": 7,
            },
        ],
    )
    write_parquet(
        raw / "tickets.parquet",
        pd.DataFrame(
            {
                "customer_id": ["008"],
                "opened_at": pd.to_datetime(["2024-07-01 08:00"], utc=True),
                "category": ["billing"],
                "closed_at": pd.to_datetime(["2024-07-02 08:00"], utc=True),
                "priority": ["high"],
                "escalated": [True],
                "satisfaction": [3.0],
                "text": ["charged twice"],
            }
        ),
    )
    return {
        "customers": {"path": "data/raw/customers.csv"},
        "churn_events": {"path": "data/raw/churn_events.csv"},
        "events": {"path": "data/raw/events.parquet"},
        "responses": {"path": "data/raw/responses.jsonl"},
        "tickets": {"path": "data/raw/tickets.parquet"},
    }


def ingest(params: IngestParams) -> dict:
    """Validate into the default paths of a project (data/interim, data/quarantine)."""
    return validate_sources(params, "data/interim", "data/quarantine", "reports/ingest.json")


def write_params(root: Path, tables: dict, **ingest_params) -> Path:
    section = {"tables": tables, "now": NOW, **ingest_params}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"ingest": section}), encoding="utf-8")
    return path


def run_cli(params: Path, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        result = CliRunner().invoke(app, ["ingest", "--params", str(params)])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, "\n".join(errors)


def read(path: Path | str) -> pa.Table:
    return pq.read_table(path)


# --- happy path ---------------------------------------------------------------------------------


def test_happy_path_writes_every_table_normalised(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path, make_raw(tmp_path))

    code, errors = run_cli(params, caplog)

    assert code == 0, errors
    report = json.loads(Path("reports/ingest.json").read_text())
    assert report["status"] == "ok"
    for name in CONTRACTS:
        t = report["tables"][name]
        assert t["read"] == t["kept"] + t["quarantined"]
        assert t["quarantined"] == 0, t
        assert Path(f"data/interim/{name}.parquet").exists()
        assert Path(f"data/quarantine/{name}.parquet").exists()
    customers = read("data/interim/customers.parquet")
    assert customers.schema.field("customer_id").type == pa.string()
    assert customers.schema.field("signup_date").type == UTC_US
    assert sorted(customers["customer_id"].to_pylist()) == ["007", "008", "009"]  # zeros kept
    assert {"plan", "monthly_fee", "country"} <= set(customers.column_names)  # extras kept
    events = read("data/interim/events.parquet")
    assert events.schema.field("ts").type == UTC_US
    assert events.schema.field("value").type == pa.float64()
    assert "device" in events.column_names
    responses = read("data/interim/responses.parquet").to_pandas()
    assert set(responses["metric"]) == {"csat", "nps", "ces"}  # lower-cased
    assert responses["score"].dtype == "float64"
    tickets = read("data/interim/tickets.parquet")
    assert tickets.schema.field("escalated").type == pa.bool_()
    churn = read("data/interim/churn_events.parquet").to_pylist()
    assert churn[0]["churn_reason"] == "economic"


def test_outputs_satisfy_the_pandera_output_contract(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tables = make_raw(tmp_path)
    ingest(IngestParams(tables={k: TableSource(**v) for k, v in tables.items()}, now=NOW))
    con = ibis.duckdb.connect()
    for name, contract in CONTRACTS.items():
        con.raw_sql(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet('data/interim/{name}.parquet')"
        )
        output_schema(contract).validate(con.table(name), lazy=True)


# --- row accounting -----------------------------------------------------------------------------

SIGNUP = "2024-01-01"
# kind of event row → (customer_id, ts, event_type, value) and the expected reason
EVENT_KINDS = {
    "good": (("c1", "2024-05-01 10:00:00", "login", "1.5"), None),
    "null_customer_id": (("", "2024-05-01 10:00:00", "login", ""), "null_customer_id"),
    "null_ts": (("c1", "", "login", ""), "null_ts"),
    "null_event_type": (("c1", "2024-05-01", " ", ""), "null_event_type"),
    "unparseable_ts": (("c1", "31/02/2024", "login", ""), "unparseable_ts"),
    "unparseable_value": (("c1", "2024-05-01", "purchase", "ten"), "unparseable_value"),
    "future_ts": (("c1", "2031-01-01", "login", ""), "future_ts"),
    "unknown_customer_id": (("nobody", "2024-05-01", "login", ""), "unknown_customer_id"),
    "before_signup_ts": (("c1", "2023-12-31 23:59:59", "login", ""), "before_signup_ts"),
}
RESPONSE_KINDS = {
    "good": (("c1", "2024-05-01", "support", "nps", "0"), None),
    "csat_too_high": (("c1", "2024-05-01", "support", "csat", "11"), "out_of_range_score"),
    "ces_too_high": (("c1", "2024-05-01", "support", "ces", "8"), "out_of_range_score"),
    "nps_negative": (("c1", "2024-05-01", "support", "nps", "-1"), "out_of_range_score"),
    "invalid_metric": (("c1", "2024-05-01", "support", "sus", "5"), "invalid_metric"),
    "unparseable_score": (("c1", "2024-05-01", "support", "csat", "n/a"), "unparseable_score"),
    "null_score": (("c1", "2024-05-01", "support", "csat", ""), "null_score"),
}


def rows_strategy(kinds: dict) -> st.SearchStrategy:
    """Lists of (kind, is_duplicate_of_previous) with at least one row."""
    return st.lists(
        st.tuples(st.sampled_from(sorted(kinds)), st.booleans()), min_size=1, max_size=30
    )


def build_rows(plan, kinds, header) -> tuple[list[dict], dict[int, str | None]]:
    """CSV rows with a unique row_id (copied by duplicates) and the expected reason per row."""
    rows, expected = [], {}
    for kind, duplicate in plan:
        if duplicate and rows:
            rows.append(dict(rows[-1]))  # an exact copy of the previous row
            continue
        values, reason = kinds[kind]
        row = dict(zip(header, values, strict=True), row_id=len(rows))
        rows.append(row)
        expected[row["row_id"]] = reason
    return rows, expected


def check_accounting(table: str, rows: list[dict], expected: dict, out: Path, bad: Path) -> None:
    kept = read(out / f"{table}.parquet").to_pandas()
    quarantined = read(bad / f"{table}.parquet").to_pandas()
    assert len(rows) == len(kept) + len(quarantined)
    copies = pd.Series([r["row_id"] for r in rows]).value_counts()
    kept_ids = kept["row_id"].astype(int).value_counts()
    bad_reasons = quarantined.groupby(quarantined["row_id"].astype(int))["reason"].agg(list)
    for row_id, reason in expected.items():
        n = copies[row_id]
        if reason is None:  # a good row: one copy kept, the others are duplicate rows
            assert kept_ids.get(row_id, 0) == 1
            assert bad_reasons.get(row_id, []) == ["duplicate_row"] * (n - 1)
        else:  # a bad row: every copy quarantined with its own reason
            assert kept_ids.get(row_id, 0) == 0
            assert bad_reasons[row_id] == [reason] * n


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_plan=rows_strategy(EVENT_KINDS), responses_plan=rows_strategy(RESPONSE_KINDS))
def test_every_row_is_kept_or_quarantined_with_its_reason(events_plan, responses_plan):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_csv(root / "customers.csv", f"customer_id,signup_date\nc1,{SIGNUP}\nc2,{SIGNUP}")
        ev_rows, ev_expected = build_rows(
            events_plan, EVENT_KINDS, ["customer_id", "ts", "event_type", "value"]
        )
        rs_rows, rs_expected = build_rows(
            responses_plan, RESPONSE_KINDS, ["customer_id", "ts", "touchpoint", "metric", "score"]
        )
        pd.DataFrame(ev_rows).to_csv(root / "events.csv", index=False)
        pd.DataFrame(rs_rows).to_csv(root / "responses.csv", index=False)
        params = IngestParams(
            tables={
                "customers": TableSource(path=str(root / "customers.csv")),
                "events": TableSource(path=str(root / "events.csv")),
                "responses": TableSource(path=str(root / "responses.csv")),
            },
            max_quarantine_fraction=1.0,
            min_parse_fraction=0.0,  # a random mix may be mostly bad: not fatal here
            now=NOW,
        )
        report = validate_sources(
            params, root / "interim", root / "quarantine", root / "ingest.json"
        )
        for table, rows, expected in (
            ("events", ev_rows, ev_expected),
            ("responses", rs_rows, rs_expected),
        ):
            t = report["tables"][table]
            assert t["read"] == len(rows) == t["kept"] + t["quarantined"]
            assert sum(t["quarantined_by_reason"].values()) == t["quarantined"]
            check_accounting(table, rows, expected, root / "interim", root / "quarantine")


def test_duplicate_customer_id_keeps_the_earliest_signup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(
        tmp_path / "customers.csv",
        "customer_id,signup_date,plan\nc1,2024-03-01,pro\nc1,2024-01-01,basic\nc1,2024-01-01,basic",
    )
    params = IngestParams(
        tables={"customers": TableSource(path="customers.csv")},
        max_quarantine_fraction=1.0,
        now=NOW,
    )
    report = ingest(params)
    assert report["tables"]["customers"]["quarantined_by_reason"] == {
        "duplicate_customer_id": 1,
        "duplicate_row": 1,
    }
    assert read("data/interim/customers.parquet")["plan"].to_pylist() == ["basic"]


# --- fatal problems -----------------------------------------------------------------------------


def _missing_file(root: Path, tables: dict) -> tuple[str, str | None, str | None]:
    tables["events"] = {"path": "data/raw/nope.csv"}
    return "data/raw/nope.csv", None, None


def _unreadable_file(root: Path, tables: dict):
    (root / "data/raw/events.parquet").write_bytes(b"PAR1 this is not parquet")
    return "data/raw/events.parquet", None, "cannot be read"


def _missing_column(root: Path, tables: dict):
    write_csv(root / "data/raw/events.csv", "customer_id,ts,kind\n007,2024-05-01,login")
    tables["events"] = {"path": "data/raw/events.csv"}
    return "data/raw/events.csv", "event_type", "['customer_id', 'ts', 'kind']"


def _uncoercible_column(root: Path, tables: dict):
    write_csv(
        root / "data/raw/events.csv",
        "customer_id,ts,event_type\n007,yesterday,login\n007,last week,login\n007,2024-05-01,login",
    )
    tables["events"] = {"path": "data/raw/events.csv"}
    return "data/raw/events.csv", "ts", "yesterday"


def _zero_rows(root: Path, tables: dict):
    write_csv(root / "data/raw/events.csv", "customer_id,ts,event_type")
    tables["events"] = {"path": "data/raw/events.csv"}
    return "data/raw/events.csv", None, "zero rows"


def _too_many_bad_rows(root: Path, tables: dict):
    write_csv(
        root / "data/raw/events.csv",
        "customer_id,ts,event_type\n007,2024-05-01,login\n007,2031-05-01,login\n008,2024-05-01,x",
    )
    tables["events"] = {"path": "data/raw/events.csv"}
    return "data/raw/events.csv", "ts", "2031-05-01"


@pytest.mark.parametrize(
    "breakage",
    [
        _missing_file,
        _unreadable_file,
        _missing_column,
        _uncoercible_column,
        _zero_rows,
        _too_many_bad_rows,
    ],
)
def test_fatal_problem_exits_2_names_it_and_writes_nothing(breakage, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    tables = make_raw(tmp_path)
    file, column, example = breakage(tmp_path, tables)
    old = tmp_path / "data/interim/customers.parquet"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"previous run")

    code, message = run_cli(write_params(tmp_path, tables), caplog)

    assert code == 2
    assert "'events'" in message and file in message and "Fix:" in message, message
    if column:
        assert f"column {column!r}" in message, message
    if example:
        assert example in message, message
    assert sorted(p.name for p in old.parent.iterdir()) == ["customers.parquet"]
    assert old.read_bytes() == b"previous run"
    assert not Path("data/quarantine").exists()
    report = json.loads(Path("reports/ingest.json").read_text())
    assert report["status"] == "failed" and file in report["error"]


def test_unknown_table_in_params_is_an_error(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    tables = make_raw(tmp_path) | {"invoices": {"path": "data/raw/invoices.csv"}}
    code, message = run_cli(write_params(tmp_path, tables), caplog)
    assert code == 2 and "invoices" in message


# --- source shapes --------------------------------------------------------------------------------


def test_sql_source_maps_a_foreign_schema(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    write_csv(
        tmp_path / "crm/accounts.csv", "acct,created,tier\nA-1,2024-01-05,gold\nA-2,2024-02-05,"
    )
    write_csv(
        tmp_path / "crm/activity.csv",
        "acct,happened,what\nA-1,2024-03-01 08:00,login\nA-2,2024-03-02 09:00,logout",
    )
    tables = {
        "customers": {
            "sql": "SELECT acct AS customer_id, created AS signup_date, tier "
            "FROM read_csv('crm/accounts.csv')"
        },
        "events": {
            "sql": "SELECT acct AS customer_id, happened AS ts, what AS event_type "
            "FROM read_csv('crm/activity.csv')"
        },
    }
    code, errors = run_cli(write_params(tmp_path, tables), caplog)
    assert code == 0, errors
    customers = read("data/interim/customers.parquet").to_pandas()
    assert sorted(customers["customer_id"]) == ["A-1", "A-2"]
    report = json.loads(Path("reports/ingest.json").read_text())
    assert report["tables"]["events"]["kept"] == 2
    assert "read_csv('crm/activity.csv')" in report["tables"]["events"]["source"]["sql"]


def test_timestamps_in_other_zones_and_naive_normalise_to_utc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "customers.csv", "customer_id,signup_date\nc1,2020-01-01")
    stamps = {
        "2024-05-01 10:00:00": "2024-05-01 10:00:00",  # naive = UTC
        "2024-05-01T10:00:00Z": "2024-05-01 10:00:00",
        "2024-05-01T12:00:00+02:00": "2024-05-01 10:00:00",
        "2024-05-01 06:00:00-04:00": "2024-05-01 10:00:00",
        "2024-05-01 12:00:00 Europe/Berlin": "2024-05-01 10:00:00",  # CEST
        "2024-05-01": "2024-05-01 00:00:00",
        "01/05/2024 10:00": "2024-05-01 10:00:00",  # via timestamp_formats
    }
    events = pd.DataFrame(
        {
            "customer_id": "c1",
            "ts": list(stamps),
            "event_type": [str(i) for i in range(len(stamps))],
        }
    )
    events.to_csv(tmp_path / "events.csv", index=False)
    params = IngestParams(
        tables={
            "customers": TableSource(path="customers.csv"),
            "events": TableSource(path="events.csv", timestamp_formats=("%d/%m/%Y %H:%M",)),
        },
        now=NOW,
    )
    ingest(params)
    out = read("data/interim/events.parquet")
    assert out.schema.field("ts").type == UTC_US
    got = dict(zip(out["event_type"].to_pylist(), out["ts"].to_pylist(), strict=True))
    for i, want in enumerate(stamps.values()):
        assert got[str(i)] == dt.datetime.fromisoformat(want).replace(tzinfo=dt.UTC)


def test_naive_parquet_timestamps_are_utc_and_duckdb_agrees(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_raw(tmp_path)
    ingest(
        IngestParams(
            tables={
                "customers": TableSource(path="data/raw/customers.csv"),
                "events": TableSource(path="data/raw/events.parquet"),
            },
            now=NOW,
        )
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    first = con.execute(
        "SELECT min(ts)::VARCHAR FROM read_parquet('data/interim/events.parquet')"
    ).fetchone()
    assert first == ("2024-05-01 10:00:00+00",)


def test_sources_outside_paths_sources_are_found(tmp_path: Path) -> None:
    """DVC reruns ingest when paths.sources changes; a source elsewhere would go unnoticed."""
    from pipeline.config import params_from_dict
    from pipeline.ingest import sources_outside

    tables = {
        "customers": {"path": "data/raw/customers.csv"},
        "events": {"sql": "SELECT * FROM read_csv('exports/events.csv.gz')"},
        "tickets": {"sql": "SELECT * FROM read_parquet('data/raw/tickets.parquet')"},
    }
    with inside(tmp_path):
        params = params_from_dict({"ingest": {"tables": tables}})
        assert sources_outside(params) == ["events: exports/events.csv.gz"]
        moved = params_from_dict({"ingest": {"tables": tables}, "paths": {"sources": "."}})
        assert sources_outside(moved) == []
