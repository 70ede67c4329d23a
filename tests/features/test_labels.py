"""Labels: window boundaries, lead time, inactivity definition, who counts as active."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.base.params import ParamsError
from features.labels import build_labels, monthly_cutoffs
from features.settings import LabelParams

from conftest import execute, table, to_tables

C = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)


def contract_data():
    ids = ["at_cutoff", "at_lead", "at_end", "after_end", "never", "late_signup", "gone", "in_lead"]
    customers = table(
        {
            "customer_id": ids,
            "signup_date": ["2024-01-01 00:00"] * 5
            + ["2024-07-01 00:00", "2024-01-01 00:00", "2024-01-01 00:00"],
        }
    )
    churn = table(
        {
            "customer_id": ["at_cutoff", "at_lead", "at_end", "after_end", "gone", "in_lead"],
            # lead = 5 days, horizon = 30 days: window (07-06, 08-05]
            "churn_date": [
                "2024-07-01 00:00",  # at the cutoff: not active
                # exactly cutoff + lead: not in (c + lead, ...] -> left out (lead period)
                "2024-07-06 00:00",
                "2024-08-05 00:00",  # exactly cutoff + lead + horizon: churned
                "2024-08-05 00:00:01",  # just after: not churned
                "2024-03-01 00:00",  # churned long before
                "2024-07-03 00:00",  # inside the lead period: left out
            ],
            "churn_reason": ["economic", "other", "dissatisfaction", "economic", "other", "other"],
        }
    )
    return {
        "customers": customers,
        "churn_events": churn,
        "events": None,
        "responses": None,
        "tickets": None,
    }


def test_contractual_boundaries(con):
    labels = build_labels(
        to_tables(contract_data()), LabelParams(lead_days=5, horizon_days=30), [C]
    )
    got = execute(con, labels).set_index("customer_id")
    # not active: at_cutoff (churn <= cutoff), late_signup (signup not < cutoff), gone;
    # at_lead and in_lead churned during the lead period: neither churner nor stayer
    assert sorted(got.index) == ["after_end", "at_end", "never"]
    assert (
        bool(got.loc["at_end", "churned"]) and got.loc["at_end", "churn_type"] == "dissatisfaction"
    )
    assert not got.loc["after_end", "churned"] and pd.isna(got.loc["after_end", "churn_type"])
    assert not got.loc["never", "churned"]


def test_contractual_without_lead(con):
    labels = build_labels(
        to_tables(contract_data()), LabelParams(lead_days=0, horizon_days=30), [C]
    )
    got = execute(con, labels).set_index("customer_id")
    # window (07-01, 07-31]: at_lead (07-06) and in_lead (07-03) churn in it
    assert set(got.index[got.churned]) == {"at_lead", "in_lead"}
    assert list(got.columns) == ["cutoff", "churned", "churn_type"]


def test_inactivity_definition(con):
    customers = table(
        {
            "customer_id": ["active_stays", "active_leaves", "dormant", "edge"],
            "signup_date": ["2024-01-01 00:00"] * 4,
        }
    )
    events = table(
        {
            "customer_id": [
                "active_stays",
                "active_stays",
                "active_leaves",
                "dormant",
                "edge",
                "edge",
            ],
            "ts": [
                "2024-06-30 10:00",
                "2024-07-20 10:00",  # before and in the window
                "2024-06-15 10:00",  # active (lookback 30 days), nothing after: churned
                "2024-05-01 10:00",  # outside the 30-day lookback: not active, no row
                "2024-06-01 00:00",  # first day of the lookback [06-01, 07-01): active
                "2024-07-31 00:00",  # = cutoff + 30 days: outside [07-01, 07-31): churned
            ],
            "event_type": ["login"] * 6,
        }
    )
    data = {
        "customers": customers,
        "churn_events": None,
        "events": events,
        "responses": None,
        "tickets": None,
    }
    params = LabelParams(definition="inactivity", inactivity_lookback_days=30, horizon_days=30)
    got = execute(con, build_labels(to_tables(data), params, [C])).set_index("customer_id")
    assert sorted(got.index) == ["active_leaves", "active_stays", "edge"]
    assert got.churned.to_dict() == {"active_leaves": True, "active_stays": False, "edge": True}
    assert got.churn_type.isna().all()


def test_monthly_cutoffs_need_a_full_window():
    end = dt.datetime(2024, 12, 31, 18, 0, tzinfo=dt.UTC)
    cutoffs = monthly_cutoffs("2024-07-01", end, lead_days=0, horizon_days=30)
    # 12-01 + 30 days = 12-31 <= 12-31 (the last day): kept
    assert [c.month for c in cutoffs] == [7, 8, 9, 10, 11, 12]
    assert monthly_cutoffs("2024-07-15", end, 0, 30)[0] == dt.datetime(2024, 8, 1, tzinfo=dt.UTC)
    assert monthly_cutoffs("2024-07-01", end, 1, 30)[-1].month == 11


def test_bad_definition_is_an_error():
    with pytest.raises(ParamsError, match="inactivity"):
        LabelParams(definition="whatever")
