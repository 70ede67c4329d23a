"""Hand-made contract tables: a few customers, a few dozen events, responses and tickets.

Cutoff of the hand check: 2024-07-01 (UTC midnight). Every value the tests expect is worked
out by hand in tests/features/test_features.py from the rows below.
"""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pyarrow as pa
import pytest

from features.tables import Tables, connect

UTC = dt.UTC
TS = pa.timestamp("us", tz="UTC")


def ts(text: str) -> dt.datetime:
    """'2024-06-30 23:30' -> aware UTC datetime."""
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC)


def table(columns: dict[str, list], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    types = types or {}
    arrays = {}
    for name, values in columns.items():
        if name in types:
            arrays[name] = pa.array(values, types[name])
        elif (
            values
            and isinstance(next((v for v in values if v is not None), None), str)
            and name in {"signup_date", "churn_date", "ts", "opened_at", "closed_at"}
        ):
            arrays[name] = pa.array([ts(v) if v else None for v in values], TS)
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def hand_data() -> dict[str, pa.Table]:
    """The hand-checked fixture (see module docstring)."""
    customers = table(
        {
            "customer_id": ["c1", "c2", "c3", "c4", "c5"],
            "signup_date": [
                "2024-01-15 09:00",
                "2024-03-01 00:00",
                "2024-05-31 12:00",
                "2024-07-10 00:00",
                "2024-01-01 00:00",
            ],
            "plan": ["basic", "pro", "basic", "pro", "basic"],
            "monthly_fee": [10.0, 30.0, 10.0, 30.0, 10.0],
            "country": ["DE", "FR", "DE", "FR", "ES"],
            "noise": [0.5, 1.5, 2.5, 3.5, 4.5],
            "email": ["a@x", "b@x", "c@x", "d@x", "e@x"],  # 5 distinct > max_categories=4 in tests
        }
    )
    churn_events = table(
        {
            "customer_id": ["c5", "c2"],
            "churn_date": ["2024-06-15 00:00", "2024-07-20 00:00"],
            "churn_reason": ["economic", "dissatisfaction"],
        }
    )
    ev = [
        # customer, ts, type, value
        ("c1", "2024-06-30 23:30", "login", 10.0),
        ("c1", "2024-06-30 08:00", "login", 5.0),
        ("c1", "2024-06-24 12:00", "login", 20.0),
        ("c1", "2024-06-23 12:00", "login", 7.0),
        ("c1", "2024-05-15 12:00", "login", 30.0),
        ("c1", "2024-07-01 00:00", "login", 100.0),  # at the cutoff: not before it
        ("c1", "2024-07-05 10:00", "login", 100.0),
        ("c1", "2024-06-01 10:00", "feature_use", None),
        ("c1", "2024-06-10 10:00", "purchase", 50.0),
        ("c1", "2024-06-15 10:00", "payment", 10.0),
        ("c1", "2024-05-15 10:00", "payment", 10.0),
        ("c1", "2024-06-14 10:00", "payment_failure", None),
        ("c1", "2024-06-20 10:00", "discount_request", None),
        ("c1", "2024-05-01 10:00", "price_change", 12.0),
        ("c1", "2024-07-15 10:00", "plan_change", 40.0),
        ("c1", "2024-06-05 10:00", "survey_sent", None),
        ("c1", "2024-04-01 10:00", "survey_sent", None),
        ("c2", "2024-04-01 10:00", "login", 3.0),
        ("c2", "2024-03-15 10:00", "plan_change", 25.0),
        ("c2", "2024-06-29 10:00", "payment_failure", None),
        ("c2", "2024-06-30 10:00", "payment_failure", None),
        ("c2", "2024-08-10 10:00", "login", 3.0),
    ]
    events = table(
        {
            "customer_id": [e[0] for e in ev],
            "ts": [e[1] for e in ev],
            "event_type": [e[2] for e in ev],
            "value": pa.array([e[3] for e in ev], pa.float64()).to_pylist(),
            "feature": ["x"] * len(ev),
        },
        {"value": pa.float64()},
    )
    rs = [
        # customer, ts, touchpoint, metric, score, comment
        ("c1", "2024-06-20 10:00", "support", "csat", 3.0, "too slow"),
        ("c1", "2024-05-01 10:00", "support", "csat", 6.0, None),
        ("c1", "2024-02-01 10:00", "after_sales", "csat", 2.0, "expensive"),
        ("c1", "2024-07-01 00:00", "support", "csat", 1.0, "awful"),  # at the cutoff
        ("c1", "2024-03-01 10:00", "relationship", "nps", 9.0, None),
        ("c1", "2024-06-01 10:00", "relationship", "nps", 5.0, None),
        ("c1", "2024-06-10 10:00", "billing", "ces", 4.0, None),
        ("c2", "2024-05-05 10:00", "relationship", "nps", 8.0, None),
        ("c2", "2024-03-05 10:00", "onboarding", "csat", 9.0, None),
    ]
    responses = table(
        {
            "customer_id": [r[0] for r in rs],
            "ts": [r[1] for r in rs],
            "touchpoint": [r[2] for r in rs],
            "metric": [r[3] for r in rs],
            "score": [r[4] for r in rs],
            "comment": [r[5] for r in rs],
        },
        {"comment": pa.string()},
    )
    tk = [
        # customer, opened, closed, category, priority, escalated, satisfaction, text
        (
            "c1",
            "2024-06-01 10:00",
            "2024-06-03 10:00",
            "billing",
            "high",
            True,
            2.0,
            "charged twice",
        ),
        (
            "c1",
            "2024-06-28 09:00",
            "2024-07-02 00:00",
            "technical",
            "low",
            True,
            5.0,
            "app crashes",
        ),
        ("c1", "2024-07-03 09:00", None, "billing", "low", False, None, "refund"),
        ("c2", "2024-02-01 10:00", None, "account", "low", False, None, "password"),
        ("c2", "2024-05-10 00:00", "2024-05-10 12:00", "billing", "low", False, 4.0, "invoice"),
    ]
    tickets = table(
        {
            "customer_id": [t[0] for t in tk],
            "opened_at": [t[1] for t in tk],
            "closed_at": [t[2] for t in tk],
            "category": [t[3] for t in tk],
            "priority": [t[4] for t in tk],
            "escalated": [t[5] for t in tk],
            "satisfaction": [t[6] for t in tk],
            "text": [t[7] for t in tk],
        }
    )
    return {
        "customers": customers,
        "churn_events": churn_events,
        "events": events,
        "responses": responses,
        "tickets": tickets,
    }


def to_tables(data: dict[str, pa.Table | None]) -> Tables:
    """Ibis memtables over the given Arrow tables (None stays None)."""
    return Tables(**{k: (ibis.memtable(v) if v is not None else None) for k, v in data.items()})


def spine_of(pairs: list[tuple[str, str]]) -> ibis.Table:
    """An Ibis spine from (customer_id, 'YYYY-MM-DD') pairs."""
    return ibis.memtable(
        pa.table(
            {
                "customer_id": pa.array([p[0] for p in pairs], pa.string()),
                "cutoff": pa.array([ts(p[1] + " 00:00") for p in pairs], TS),
            }
        )
    )


@pytest.fixture(scope="session")
def con():
    c = connect("1GB", 2)
    yield c
    c.disconnect()


@pytest.fixture(scope="session")
def data() -> dict[str, pa.Table]:
    return hand_data()


@pytest.fixture
def tables(data) -> Tables:
    return to_tables(data)


def execute(con, expr: ibis.Table) -> pd.DataFrame:
    """Run an Ibis expression on the test connection, sorted by the keys, indexed by customer_id."""
    df = con.to_pyarrow(expr).to_pandas()
    return df.sort_values(list(df.columns[:2])).reset_index(drop=True)
