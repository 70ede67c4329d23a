"""The contract: row rules in precedence order, evaluated by DuckDB on one hand-written row."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.contract import (
    CONTRACTS,
    bad_row_sql,
    parse_sql,
    quote,
    reason_case_sql,
    row_rules,
)


def reason_of(table: str, row: dict[str, str | None], known: bool = True) -> str | None:
    """The quarantine reason DuckDB gives one all-text row of `table` (and checks that the
    bad-row predicate agrees: true exactly when there is a reason)."""
    contract = CONTRACTS[table]
    present = set(row)
    exprs = {
        c.name: parse_sql(c, quote(c.name), "VARCHAR") for c in contract.columns if c.name in row
    }
    rules = row_rules(
        contract,
        raw=quote,
        parsed=lambda c: f"({exprs[c]})",
        present=present,
        now_sql="TIMESTAMPTZ '2025-01-01 00:00:00+00'",
        customer_known_sql="__known",
        signup_sql="TIMESTAMPTZ '2024-01-01 00:00:00+00'",
    )
    cols = ", ".join(f"CAST(? AS VARCHAR) AS {quote(k)}" for k in row)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    checks = f"{reason_case_sql(rules)}, {bad_row_sql(rules)}"
    sql = f"SELECT {checks} FROM (SELECT {cols}, ? AS __known)"
    reason, bad = con.execute(sql, [*row.values(), known]).fetchone()
    assert bad is (reason is not None)
    return reason


EVENT = {"customer_id": "c1", "ts": "2024-05-01", "event_type": "login", "value": "1"}


@pytest.mark.parametrize(
    ("changes", "known", "reason"),
    [
        ({}, True, None),
        ({"customer_id": " ", "ts": "garbage"}, True, "null_customer_id"),  # null before parse
        ({"ts": None, "event_type": None}, True, "null_ts"),  # contract column order
        ({"ts": "garbage"}, False, "unparseable_ts"),  # parse before unknown id
        ({"ts": "2030-01-01"}, False, "future_ts"),  # future before unknown id
        ({"ts": "2023-06-01"}, False, "unknown_customer_id"),  # unknown before before-signup
        ({"ts": "2023-06-01"}, True, "before_signup_ts"),
        ({"value": "ten"}, True, "unparseable_value"),
        ({"value": None}, True, None),  # optional
    ],
)
def test_event_reason_precedence(changes, known, reason):
    assert reason_of("events", EVENT | changes, known) == reason


@pytest.mark.parametrize(
    ("metric", "score", "reason"),
    [
        ("csat", "10", None),
        ("CSAT ", "1", None),  # enumerated values are trimmed and lower-cased
        ("csat", "0", "out_of_range_score"),
        ("nps", "0", None),
        ("nps", "10.5", "out_of_range_score"),
        ("ces", "7", None),
        ("ces", "8", "out_of_range_score"),
        ("sus", "200", "invalid_metric"),  # invalid value before range
        ("csat", "high", "unparseable_score"),
    ],
)
def test_response_score_ranges(metric, score, reason):
    row = {
        "customer_id": "c1",
        "ts": "2024-05-01",
        "touchpoint": "support",
        "metric": metric,
        "score": score,
    }
    assert reason_of("responses", row) == reason


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab ~\t\n\u00a0\u3000é\x7f!")), max_size=6))
def test_id_parse_skips_trim_only_where_trim_is_a_no_op(value):
    """The fast id/category parse (TRIM only when an end is not printable ASCII) equals TRIM."""
    spec = CONTRACTS["events"].column("customer_id")
    fast = parse_sql(spec, "x", "VARCHAR")
    plain = "NULLIF(TRIM(CAST(x AS VARCHAR)), '')"
    con = duckdb.connect()
    row = con.execute(f"SELECT {fast}, {plain} FROM (SELECT ?::VARCHAR AS x)", [value]).fetchone()
    assert row[0] == row[1]


def test_naive_parquet_timestamp_parse_equals_the_utc_cast():
    """A naive TIMESTAMP parses to the session-UTC CAST, value for value."""
    spec = CONTRACTS["events"].column("ts")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    fast = parse_sql(spec, "ts", "TIMESTAMP")
    values = ["1970-01-01 00:00:00", "1969-12-31 23:59:59.999999", "2024-02-29 12:34:56.789012"]
    rows = con.execute(
        f"SELECT {fast}, CAST(ts AS TIMESTAMPTZ) FROM (SELECT unnest(?)::TIMESTAMP AS ts)", [values]
    ).fetchall()
    assert [a for a, _ in rows] == [b for _, b in rows] and len(rows) == 3
