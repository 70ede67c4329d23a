"""Purchase rhythm features (features/families/purchases.py), worked out by hand.

Cutoff 2024-07-01 (day 0). c1 bought on 06-30 (1 day back, 2 events that day: one order),
06-21 (10 back) and 05-02 (60 back); c2 once, on 04-02 (90 back), and once after the cutoff;
c3 only after the cutoff.
"""

from __future__ import annotations

import pytest

from features.build import build_features, family_decisions, plan_families
from features.settings import FeaturizeParams

from conftest import execute, spine_of, table, to_tables

CFG = FeaturizeParams(
    event_types=(),
    rhythm_event_types=("purchase",),
    economic_event_types=("purchase",),
    event_value_names={"purchase": "amount"},
)


def log() -> dict:
    rows = [
        ("c1", "2024-06-30 08:00", 10.0),
        ("c1", "2024-06-30 20:00", 30.0),
        ("c1", "2024-06-21 10:00", 20.0),
        ("c1", "2024-05-02 10:00", 60.0),
        ("c2", "2024-04-02 10:00", 15.0),
        ("c2", "2024-07-01 00:00", 99.0),  # at the cutoff: not seen
        ("c3", "2024-07-05 10:00", 5.0),
    ]
    return {
        "customers": table(
            {
                "customer_id": ["c1", "c2", "c3"],
                "signup_date": ["2024-01-01 00:00"] * 3,
            }
        ),
        "churn_events": None,
        "events": table(
            {
                "customer_id": [r[0] for r in rows],
                "ts": [r[1] for r in rows],
                "event_type": ["purchase"] * len(rows),
                "value": [r[2] for r in rows],
            }
        ),
        "responses": None,
        "tickets": None,
    }


def test_rhythm_features_follow_each_customers_own_history(con):
    tables = to_tables(log())
    fs = build_features(
        tables, spine_of([("c1", "2024-07-01"), ("c2", "2024-07-01"), ("c3", "2024-07-01")]), CFG
    )
    df = execute(con, fs.table).set_index("customer_id")
    # c1: 3 orders, first 60 days back, last 1 back: gaps (60 - 1) / 2 = 29.5
    assert df.loc["c1", "purchase_orders_per_year"] == pytest.approx(3 * 365.25 / 60)
    assert df.loc["c1", "purchase_mean_gap_days"] == pytest.approx(29.5)
    assert df.loc["c1", "purchase_recency_over_gap"] == pytest.approx(1 / 29.5)
    assert df.loc["c1", "purchase_recency_share"] == pytest.approx(1 / 60)
    assert df.loc["c1", "purchase_amount_per_order"] == pytest.approx(120.0 / 3)
    # c2: one order 90 days back; the one at the cutoff is not seen
    assert df.loc["c2", "purchase_orders_per_year"] == pytest.approx(365.25 / 90)
    assert df.loc["c2", "purchase_recency_share"] == 1.0
    assert df.loc["c2", "purchase_amount_per_order"] == 15.0
    assert df.loc["c2", ["purchase_mean_gap_days", "purchase_recency_over_gap"]].isna().all()
    # c3: nothing before the cutoff
    assert df.loc["c3", ["purchase_orders_per_year", "purchase_amount_per_order"]].isna().all()


def test_the_family_is_skipped_without_its_event_type_and_says_why(con):
    data = log()
    tables = to_tables(data)
    no_rhythm = FeaturizeParams(event_types=(), economic_event_types=("purchase",))
    names = [
        f.name for f in build_features(tables, spine_of([("c1", "2024-07-01")]), no_rhythm).catalog
    ]
    assert not [n for n in names if "per_order" in n or "recency_over_gap" in n]
    other = FeaturizeParams(event_types=(), rhythm_event_types=("order",))
    facts = plan_families(tables, other)
    rhythm = {d.name: d for d in family_decisions(facts, other)}["engagement.rhythm"]
    assert not rhythm.built
    assert "order" in rhythm.reason and "featurize.rhythm_event_types" in rhythm.reason
