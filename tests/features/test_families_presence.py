"""Feature families are built only for what the data has (issue 13, point 2).

A business with only purchase events (a marketplace's order log: no fees, no plans or contracts,
no surveys, no tickets, no text) gets no fee, renewal, contract, experience, service or text
columns, and the decisions name each skipped family with its reason. The default shape (the hand
fixture, the simulated subscription business) still builds every family, with the same columns as
before the check. The decision is taken once from the whole tables, so chunks, customer buckets
and the scoring table get the same columns; `keep` (the model's features) forces a family back.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.build import (
    build_features,
    data_facts,
    family_decisions,
    plan_families,
    scoring_spine,
    write_feature_table,
)
from features.settings import FeaturizeParams
from features.tables import TABLE_NAMES
from pipeline.simulator.calendar import build_calendar
from pipeline.simulator.tables import simulate_chunk

from conftest import execute, hand_data, spine_of, table, to_tables

CFG = FeaturizeParams(max_categories=4)
SPINE = [("c1", "2024-07-01"), ("c2", "2024-07-01"), ("c3", "2024-07-01")]
# column prefixes (or names) of the families a purchases-only business must not get
ABSENT = (
    "current_monthly_fee",
    "monthly_fee_change",
    "days_to_next_renewal",
    "plan_changes_",
    "days_since_last_plan_change",
    "csat_",
    "ces_",
    "nps_",
    "survey_",
    "tickets_",
    "ticket_",
    "days_since_last_ticket",
    "text_",
    "logins_",
    "login_",
    "feature_uses_",
    "payments_",
    "payment_failures_",
    "discount_requests_",
)


def marketplace(empty_tables: bool = False) -> dict[str, pa.Table | None]:
    """Customers without plan, fee or contract columns, and purchase events only.

    `empty_tables`: responses and tickets exist with their columns (text included) but no rows,
    as a source query that finds nothing returns them.
    """
    data = hand_data()
    customers = table(
        {
            "customer_id": ["c1", "c2", "c3"],
            "signup_date": ["2024-01-15 09:00", "2024-03-01 00:00", "2024-05-31 12:00"],
            "country": ["DE", "FR", "DE"],
        }
    )
    events = table(
        {
            "customer_id": ["c1", "c1", "c2", "c3"],
            "ts": ["2024-06-10 10:00", "2024-05-01 10:00", "2024-06-30 10:00", "2024-07-02 10:00"],
            "event_type": ["purchase"] * 4,
            "value": [50.0, 20.0, 35.0, 10.0],
        }
    )
    out: dict[str, pa.Table | None] = {
        "customers": customers,
        "churn_events": None,
        "events": events,
        "responses": None,
        "tickets": None,
    }
    if empty_tables:
        out["responses"] = data["responses"].slice(0, 0)
        out["tickets"] = data["tickets"].slice(0, 0)
    return out


def names_of(fs) -> list[str]:
    return [f.name for f in fs.catalog]


@pytest.mark.parametrize("empty_tables", [False, True], ids=["no tables", "empty tables"])
def test_a_purchases_only_business_gets_only_what_it_has(con, empty_tables):
    tables = to_tables(marketplace(empty_tables))
    fs = build_features(tables, spine_of(SPINE), CFG)
    names = names_of(fs)
    assert [n for n in names if n.startswith(ABSENT)] == []
    assert {
        "tenure_days",
        "purchases_30d",
        "purchase_amount_30d",
        "days_since_last_purchase",
        "country",
    } <= set(names)
    df = execute(con, fs.table)
    assert list(df.columns) == ["customer_id", "cutoff", *names]
    assert len(df) == 3
    # c1 bought on 06-10 (50) and 05-01 (20); c3's purchase is after the cutoff
    row = df.set_index("customer_id")
    assert row.loc["c1", "purchase_amount_30d"] == 50.0
    assert row.loc["c1", "purchases_90d"] == 2
    assert row.loc["c3", "purchases_180d"] == 0


@pytest.mark.parametrize("empty_tables", [False, True], ids=["no tables", "empty tables"])
def test_the_decisions_name_each_skipped_family_and_why(empty_tables):
    facts = data_facts(to_tables(marketplace(empty_tables)), CFG)
    decisions = {d.name: d for d in family_decisions(facts, CFG)}
    built = {name for name, d in decisions.items() if d.built}
    assert built == {
        "engagement.tenure",
        "economic.events",
        "profile.attributes",
    }
    reasons = {name: d.reason for name, d in decisions.items() if not d.built}
    assert reasons["economic.fee"] == (
        "no fee events (plan_change, price_change) with a value and no customers.monthly_fee column"
    )
    assert "no plan, fee or contract in the data" in reasons["contract.renewal"]
    assert "monthly_fee, plan, contract_type" in reasons["contract.renewal"]
    assert reasons["contract.plan_changes"].startswith("no plan_change events")
    assert reasons["engagement.usage"].startswith("no login, feature_use events")
    for name in ("experience.scores", "experience.nps", "experience.response_rate"):
        assert reasons[name] == "no survey responses (the responses table is missing or empty)"
    assert reasons["service.tickets"] == "no tickets (the tickets table is missing or empty)"
    assert reasons["text.feedback"].startswith("no text: responses.comment, tickets.text")
    # economic events: built for purchase, and it says which configured types were not found
    assert decisions["economic.events"].reason.startswith("purchase events; none of payment")
    assert decisions["economic.fee"].to_dict() == {
        "built": False,
        "reason": reasons["economic.fee"],
    }


def test_the_default_shape_builds_every_family_with_the_same_columns(con, tables):
    facts = data_facts(tables, CFG)
    decisions = family_decisions(facts, CFG)
    # the purchase rhythm is opt-in (featurize.rhythm_event_types, empty by default)
    assert [d.name for d in decisions if not d.built] == ["engagement.rhythm"]
    fs = build_features(tables, spine_of(SPINE), CFG)
    names = names_of(fs)
    assert {"days_to_next_renewal", "current_monthly_fee", "monthly_fee_change_90d"} <= set(names)
    assert {"plan_changes_30d", "csat_support_last", "nps_last", "tickets_opened_30d"} <= set(names)
    assert "text_feedback_count_90d" in names
    # forcing every family (the code before the presence check) gives the same table
    everything = replace(facts, forced=frozenset(d.name for d in decisions))
    before = build_features(tables, spine_of(SPINE), CFG, everything)
    assert names_of(before) == names
    pdt.assert_frame_equal(execute(con, before.table), execute(con, fs.table))


def test_the_simulated_business_builds_every_family():
    """The default data (a small simulated subscription business) has every family's inputs."""
    cal = build_calendar("2024-01-01", "2024-12-31")
    raw = simulate_chunk(1, 300, np.random.SeedSequence(3), cal, 30, 0.5)
    tables = to_tables({name: raw[name] for name in TABLE_NAMES})
    cfg = FeaturizeParams()
    decisions = family_decisions(data_facts(tables, cfg), cfg)
    assert [d.name for d in decisions if not d.built] == ["engagement.rhythm"]  # opt-in
    first = raw["customers"]["customer_id"][0].as_py()
    names = names_of(build_features(tables, spine_of([(first, "2024-10-01")]), cfg))
    assert {"days_to_next_renewal", "current_monthly_fee", "monthly_fee_change_pct_90d"} <= set(
        names
    )


def test_a_plan_column_alone_keeps_the_renewal_calendar_but_no_fee():
    data = marketplace()
    data["customers"] = data["customers"].append_column("plan", pa.array(["a", "b", "a"]))
    facts = data_facts(to_tables(data), CFG)
    decisions = {d.name: d for d in family_decisions(facts, CFG)}
    assert decisions["contract.renewal"].built
    assert decisions["contract.renewal"].reason == "customers.plan"
    assert not decisions["economic.fee"].built
    names = names_of(build_features(to_tables(data), spine_of(SPINE), CFG))
    assert "days_to_next_renewal" in names and "current_monthly_fee" not in names


def fee_events_for_one_customer() -> dict[str, pa.Table | None]:
    """A price change for c1 only, and no monthly_fee column: fee features come from events."""
    data = marketplace()
    extra = table(
        {
            "customer_id": ["c1"],
            "ts": ["2024-05-01 10:00"],
            "event_type": ["price_change"],
            "value": [12.0],
        }
    )
    data["events"] = pa.concat_tables([data["events"], extra])
    return data


def test_the_decision_is_the_same_for_every_chunk_and_customer_bucket(con, tmp_path):
    tables = to_tables(fee_events_for_one_customer())
    spine = spine_of(SPINE)
    write_feature_table(con, tables, spine, CFG, tmp_path / "one.parquet", tmp_path / "w1")
    write_feature_table(
        con, tables, spine, CFG, tmp_path / "split.parquet", tmp_path / "w2", rows_per_chunk=1
    )
    whole = pq.read_table(tmp_path / "one.parquet").to_pandas()
    split = pq.read_table(tmp_path / "split.parquet").to_pandas()
    assert "current_monthly_fee" in whole.columns and "days_to_next_renewal" in whole.columns
    split = split.sort_values("customer_id").reset_index(drop=True)
    pdt.assert_frame_equal(whole, split)
    fee = whole.set_index("customer_id")["current_monthly_fee"]
    assert fee["c1"] == 12.0 and fee.drop("c1").isna().all()


def test_scoring_gets_the_training_columns_from_the_same_tables(con, tmp_path):
    tables = to_tables(marketplace())
    train = write_feature_table(con, tables, spine_of(SPINE), CFG, tmp_path / "train.parquet")
    score = write_feature_table(
        con, tables, scoring_spine(tables, "2024-07-01"), CFG, tmp_path / "score.parquet"
    )
    assert names_of_catalog(score) == names_of_catalog(train)


def names_of_catalog(catalog) -> list[str]:
    return [f.name for f in catalog]


def test_keep_forces_the_families_a_model_reads(con, tmp_path):
    """A model trained where fees and logins existed still gets those columns at scoring."""
    tables = to_tables(marketplace())
    keep = ["days_to_next_renewal", "logins_30d", "purchases_30d"]
    facts = plan_families(tables, CFG, keep)
    assert facts.forced == {"contract.renewal", "engagement.usage"}
    decisions = {d.name: d for d in family_decisions(facts, CFG)}
    assert decisions["contract.renewal"].built
    assert "built anyway: the model reads its columns" in decisions["contract.renewal"].reason
    assert not decisions["economic.fee"].built  # no model column needs it
    catalog = write_feature_table(
        con, tables, spine_of(SPINE), CFG, tmp_path / "f.parquet", keep=keep
    )
    names = names_of_catalog(catalog)
    assert {"days_to_next_renewal", "logins_30d", "feature_uses_30d"} <= set(names)
    assert "current_monthly_fee" not in names
    out = pq.read_table(tmp_path / "f.parquet").to_pandas()
    assert (out["logins_30d"] == 0).all()


def test_keep_cannot_bring_back_a_table_that_is_missing():
    facts = plan_families(to_tables(marketplace()), CFG, ["tickets_opened_30d"])
    assert facts.forced == frozenset()
