"""Ingest quarantine: every kind of bad row of every table, each with its hand-written reason.

Pins which rows are kept and which are quarantined with which reason (the behaviour of the
GROUP BY ALL implementation this replaced, checked against it before the switch), for both ways
the row keys of exact duplicates are fetched (one fetch for small tables, Arrow batches for large
ones) and for keys so short that nearly every row collides: all must agree row for row.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import validation
from features.settings import IngestParams, TableSource
from features.validation import validate_sources

NOW = "2025-01-01T00:00:00Z"

CUSTOMERS = [  # customer_id, signup_date, plan | reason
    (("c1", "2024-01-01", "basic"), None),
    (("c2", "2024-01-01", "pro"), None),
    (("c2", "2024-01-01", "pro"), "duplicate_row"),
    (("c3", "2024-02-01", "pro"), "duplicate_customer_id"),  # a later signup of c3
    (("c3", "2024-01-15", "team"), "duplicate_customer_id"),  # same signup: 'basic' < 'team'
    (("c3", "2024-01-15", "basic"), None),
    ((" c4 ", "2024-01-01", None), None),  # trimmed to c4; a null extra column
    ((" c4 ", "2024-01-01", None), "duplicate_row"),  # a duplicate with a null in it
    ((None, "2024-01-01", "pro"), "null_customer_id"),
    ((None, "2024-01-01", "pro"), "null_customer_id"),  # a duplicate bad row: both quarantined
    (("c5", None, "pro"), "null_signup_date"),
    (("c6", "yesterday", "pro"), "unparseable_signup_date"),
    (("c7", "2031-01-01", "pro"), "future_signup_date"),
    (("c8", "2031-01-01", "pro"), "future_signup_date"),
    (("c8", "2024-06-01", "pro"), None),  # c8's only good row is kept
]

EVENTS = [  # customer_id, ts, event_type, value, device | reason
    (("c1", "2024-05-01 10:00:00", "login", None, "ios"), None),
    (("c1", "2024-05-01 10:00:00", "login", None, "ios"), "duplicate_row"),
    (("c1", "2024-05-01 10:00:00", "login", None, "ios"), "duplicate_row"),
    (("c1", "2024-05-01 10:00:00", "login", None, "web"), None),  # differs in an extra column
    (("c1", "2024-05-01 10:00:00", "purchase", "12.5", "ios"), None),
    ((" c1 ", "2024-05-03", "login", None, None), None),  # kept, its id trimmed
    (("c2", "2024-05-02T10:00:00+02:00", "login", None, None), None),
    ((None, "2024-05-01", "login", None, None), "null_customer_id"),
    ((" ", "2031-01-01", "login", None, None), "null_customer_id"),  # first reason wins
    (("c1", None, "login", None, None), "null_ts"),
    (("c1", "2024-05-01", " ", None, None), "null_event_type"),
    (("c1", "31/02/2024", "login", None, None), "unparseable_ts"),
    (("c1", "31/02/2024", "login", None, None), "unparseable_ts"),  # bad duplicate: both
    (("c1", "2024-05-01", "purchase", "ten", None), "unparseable_value"),
    (("c1", "2031-01-01", "login", None, None), "future_ts"),
    (("nobody", "2024-05-01", "login", None, None), "unknown_customer_id"),
    (("c5", "2024-05-01", "login", None, None), "unknown_customer_id"),  # c5 was quarantined
    (("c1", "2023-12-31 23:59:59", "login", None, None), "before_signup_ts"),
    (("c8", "2024-05-01", "login", None, None), "before_signup_ts"),  # c8 signed up in June
]

RESPONSES = [  # customer_id, ts, touchpoint, metric, score, comment | reason
    (("c1", "2024-05-01", "support", "nps", "0", None), None),
    (("c1", "2024-05-01", "support", " CSAT ", "10", "très bien"), None),
    (("c1", "2024-05-01", "support", " CSAT ", "10", "très bien"), "duplicate_row"),
    (("c1", "2024-05-01", "support", "ces", "7", None), None),
    (("c1", "2024-05-01", "support", "csat", "11", None), "out_of_range_score"),
    (("c1", "2024-05-01", "support", "ces", "8", None), "out_of_range_score"),
    (("c1", "2024-05-01", "support", "nps", "-1", None), "out_of_range_score"),
    (("c1", "2024-05-01", "support", "sus", "5", None), "invalid_metric"),
    (("c1", "2024-05-01", "support", "csat", "n/a", None), "unparseable_score"),
    (("c1", "2024-05-01", "support", "csat", None, None), "null_score"),
    (("c1", "2024-05-01", None, "csat", "5", None), "null_touchpoint"),
    (("c1", "2024-05-01", "support", None, "5", None), "null_metric"),
    (("c1", "2031-05-01", "support", "csat", "5", None), "future_ts"),
    (("c9", "2024-05-01", "support", "csat", "5", None), "unknown_customer_id"),
]

TICKETS = [  # customer_id, opened_at, category, closed_at, escalated, satisfaction | reason
    (("c1", "2024-05-01", "billing", "2024-05-02", "true", "3"), None),
    (("c1", "2024-05-01", "billing", "2024-05-02", "true", "3"), "duplicate_row"),
    (("c1", "2024-05-03", "billing", None, None, None), None),
    (("c1", None, "billing", None, None, None), "null_opened_at"),
    (("c1", "2024-05-01", None, None, None, None), "null_category"),
    (("c1", "2024-05-01", "billing", "someday", None, None), "unparseable_closed_at"),
    (("c1", "2024-05-01", "billing", None, "perhaps", None), "unparseable_escalated"),
    (("c1", "2024-05-01", "billing", None, None, "good"), "unparseable_satisfaction"),
    (("c1", "2024-05-01", "billing", None, None, "11"), "out_of_range_satisfaction"),
    (("c1", "2024-05-01", "billing", "2031-01-01", None, None), "future_closed_at"),
    (("c1", "2031-01-01", "billing", None, None, None), "future_opened_at"),
    (("c1", "2023-06-01", "billing", None, None, None), "before_signup_opened_at"),
]

CHURN_EVENTS = [  # customer_id, churn_date, churn_reason | reason
    (("c1", "2024-09-01", "Economic"), None),
    (("c2", "2024-09-01", None), None),
    (("c2", "2024-09-01", None), "duplicate_row"),
    (("c3", "2024-09-01", "bored"), "invalid_churn_reason"),
    (("c3", "2031-09-01", "other"), "future_churn_date"),
    (("zz", "2024-09-01", "other"), "unknown_customer_id"),
]

TABLES = {
    "customers": (["customer_id", "signup_date", "plan"], CUSTOMERS),
    "events": (["customer_id", "ts", "event_type", "value", "device"], EVENTS),
    "responses": (["customer_id", "ts", "touchpoint", "metric", "score", "comment"], RESPONSES),
    "tickets": (
        ["customer_id", "opened_at", "category", "closed_at", "escalated", "satisfaction"],
        TICKETS,
    ),
    "churn_events": (["customer_id", "churn_date", "churn_reason"], CHURN_EVENTS),
}


def write_sources(root: Path) -> dict[str, TableSource]:
    """Each table as Parquet of text columns plus a row_id (copied by exact duplicates)."""
    sources = {}
    for name, (header, rows) in TABLES.items():
        ids, seen = [], {}
        for values, _ in rows:  # an exact duplicate repeats the row_id of its first copy
            ids.append(seen.setdefault(values, len(seen)))
        columns = {c: [v[i] for v, _ in rows] for i, c in enumerate(header)}
        table = pa.table({**columns, "row_id": ids}, schema=None)
        path = root / f"{name}.parquet"
        pq.write_table(table, path)
        sources[name] = TableSource(path=str(path))
    return sources


def expected(name: str) -> tuple[Counter, Counter]:
    """(kept row_ids, (row_id, reason) of quarantined rows) from the hand-written reasons."""
    header, rows = TABLES[name]
    kept, bad, seen = Counter(), Counter(), {}
    for values, reason in rows:
        row_id = seen.setdefault(values, len(seen))
        if reason is None:
            kept[row_id] += 1
        else:
            bad[(row_id, reason)] += 1
    return kept, bad


@pytest.mark.parametrize("dedup", ["one fetch", "batches", "collisions"])
def test_every_kind_of_bad_row_gets_its_reason(tmp_path, monkeypatch, dedup):
    if dedup == "batches":  # the large-table path on a tiny table: same rows, same reasons
        monkeypatch.setattr(validation, "FETCH_ALL_MAX_ROWS", 0)
        monkeypatch.setattr(validation, "KEY_BATCH_ROWS", 3)
    if dedup == "collisions":  # 2-bit row keys: nearly every row is a candidate, compared whole
        monkeypatch.setattr(validation, "KEY_BITS", 2)
    params = IngestParams(tables=write_sources(tmp_path), max_quarantine_fraction=1.0, now=NOW)
    report = validate_sources(params, tmp_path / "out", tmp_path / "bad", tmp_path / "r.json")
    for name, (_, rows) in TABLES.items():
        kept_ids, bad_pairs = expected(name)
        kept = pq.read_table(tmp_path / "out" / f"{name}.parquet").to_pydict()
        bad = pq.read_table(tmp_path / "bad" / f"{name}.parquet").to_pydict()
        assert Counter(kept["row_id"]) == kept_ids, name
        assert Counter(zip(bad["row_id"], bad["reason"], strict=True)) == bad_pairs, name
        t = report["tables"][name]
        assert t["read"] == len(rows) == t["kept"] + t["quarantined"], name
        assert t["quarantined_by_reason"] == dict(Counter(r for _, r in bad_pairs.elements()))
        # kept values are normalised, whether or not the table had a value to normalise
        assert all(v == v.strip() for v in kept["customer_id"]), name
    assert set(pq.read_table(tmp_path / "out" / "responses.parquet")["metric"].to_pylist()) == {
        "csat",
        "nps",
        "ces",
    }


def test_quarantined_rows_are_the_source_rows_as_read(tmp_path):
    """A quarantined row carries its raw values (not the normalised ones) and its reason."""
    params = IngestParams(tables=write_sources(tmp_path), max_quarantine_fraction=1.0, now=NOW)
    validate_sources(params, tmp_path / "out", tmp_path / "bad", tmp_path / "r.json")
    bad = pq.read_table(tmp_path / "bad" / "responses.parquet").to_pylist()
    dup = [r for r in bad if r["reason"] == "duplicate_row"]
    assert dup == [
        {
            "customer_id": "c1",
            "ts": "2024-05-01",
            "touchpoint": "support",
            "metric": " CSAT ",
            "score": "10",
            "comment": "très bien",
            "row_id": 1,
            "reason": "duplicate_row",
        }
    ]
