"""Non-contractual labels as an analyst defines them: which event types are activity, a
repeat-buyer population read point-in-time, and a declared data end."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.base.errors import BadInputError
from features.base.params import ParamsError, from_dict
from features.labels import (
    active_customers,
    build_labels,
    check_activity_types,
    label_end,
    monthly_cutoffs,
)
from features.settings import LabelParams

from conftest import TS, execute, table, to_tables

C = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
UTC = dt.UTC


def data_of(rows: list[tuple[str, str, str]], customers: list[str] | None = None) -> dict:
    """Contract tables from (customer_id, ts, event_type) rows; everyone signed up in January."""
    ids = customers or sorted({r[0] for r in rows})
    return {
        "customers": table({"customer_id": ids, "signup_date": ["2024-01-01 00:00"] * len(ids)}),
        "churn_events": None,
        "events": table(
            {
                "customer_id": [r[0] for r in rows],
                "ts": [r[1] for r in rows],
                "event_type": [r[2] for r in rows],
            }
        ),
        "responses": None,
        "tickets": None,
    }


def labels_of(con, data: dict, cutoffs=(C,), **params) -> dict[str, bool]:
    """customer_id -> churned at the single cutoff, for LabelParams(**params)."""
    params = {"definition": "inactivity", "horizon_days": 30, **params}
    got = execute(con, build_labels(to_tables(data), LabelParams(**params), list(cutoffs)))
    return {r.customer_id: bool(r.churned) for r in got.itertuples()}


SHOP = [
    ("buyer_stays", "2024-06-20 10:00", "purchase"),
    ("buyer_stays", "2024-07-10 10:00", "purchase"),
    # bought before; after the cutoff only a delivery and a review: churned when only
    # purchases are activity, "returned" when every event type is
    ("buyer_reviews", "2024-06-20 10:00", "purchase"),
    ("buyer_reviews", "2024-07-03 10:00", "delivery"),
    ("buyer_reviews", "2024-07-12 10:00", "review"),
    # only a delivery in the lookback: not a buyer at the cutoff
    ("delivered_only", "2024-06-25 10:00", "delivery"),
    ("delivered_only", "2024-07-15 10:00", "purchase"),
]


def test_every_event_type_is_activity_by_default(con):
    """Null and [] keep the old behaviour: any event makes a customer active or returning."""
    old = labels_of(con, data_of(SHOP))
    assert old == {"buyer_reviews": False, "buyer_stays": False, "delivered_only": False}
    assert labels_of(con, data_of(SHOP), activity_event_types=[]) == old


def test_activity_types_define_the_population_and_the_churn(con):
    got = labels_of(con, data_of(SHOP), activity_event_types=["purchase"])
    # delivered_only is not active at the cutoff (its only lookback event is a delivery);
    # buyer_reviews' delivery and review after the cutoff do not un-churn them
    assert got == {"buyer_reviews": True, "buyer_stays": False}


def test_active_customers_follow_the_activity_types(con):
    """The scoring/KPI population helper applies the same rules when given them."""
    tables = to_tables(data_of(SHOP))
    everyone = execute(con, active_customers(tables, [C], "inactivity", 30))
    buyers = execute(
        con, active_customers(tables, [C], "inactivity", 30, activity_event_types=["purchase"])
    )
    assert set(everyone.customer_id) == {"buyer_reviews", "buyer_stays", "delivered_only"}
    assert set(buyers.customer_id) == {"buyer_reviews", "buyer_stays"}


REPEAT = [
    ("two_before", "2024-03-01 10:00", "purchase"),  # outside the lookback, still counts
    ("two_before", "2024-06-20 10:00", "purchase"),
    ("one_before_one_at", "2024-06-20 10:00", "purchase"),
    ("one_before_one_at", "2024-07-01 00:00", "purchase"),  # at the cutoff: not before it
    ("line_items", "2024-06-20 10:00", "purchase"),  # one order, two rows: one purchase
    ("line_items", "2024-06-20 10:00", "purchase"),
    ("reviewer", "2024-05-20 10:00", "review"),  # a review is not a purchase
    ("reviewer", "2024-06-20 10:00", "purchase"),
]


def test_min_prior_purchases_selects_repeat_buyers_before_the_cutoff(con):
    data = data_of(REPEAT)
    everyone = labels_of(con, data, activity_event_types=["purchase"])
    assert set(everyone) == {"two_before", "one_before_one_at", "line_items", "reviewer"}
    repeat = labels_of(con, data, activity_event_types=["purchase"], min_prior_purchases=2)
    assert set(repeat) == {"two_before"}
    # with every type as activity the review is a prior "purchase" too
    assert set(labels_of(con, data, min_prior_purchases=2)) == {"two_before", "reviewer"}


def test_min_prior_purchases_filters_the_contractual_population(con):
    data = data_of(REPEAT, customers=["two_before", "line_items", "no_events"])
    data["churn_events"] = table(
        {"customer_id": ["line_items"], "churn_date": ["2024-07-10 00:00"]}
    )
    params = {"definition": "contractual", "activity_event_types": ["purchase"]}
    assert labels_of(con, data, **params) == {
        "line_items": True,
        "no_events": False,
        "two_before": False,
    }
    assert labels_of(con, data, **params, min_prior_purchases=2) == {"two_before": False}


def test_min_prior_purchases_needs_events():
    data = data_of(REPEAT)
    data["events"] = None
    data["churn_events"] = table({"customer_id": ["x"], "churn_date": ["2024-07-10 00:00"]})
    with pytest.raises(BadInputError, match="events table"):
        build_labels(to_tables(data), LabelParams(min_prior_purchases=2), [C])


# -- point-in-time properties ------------------------------------------------------------------

CUSTOMERS = ["a", "b", "c"]
TYPES = ["purchase", "delivery", "review"]
event = st.tuples(
    st.sampled_from(CUSTOMERS),
    st.integers(min_value=-90 * 24, max_value=60 * 24),  # hours from the cutoff
    st.sampled_from(TYPES),
)


def events_table(rows: list[tuple[str, int, str]]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.string()),
            "ts": pa.array([C + dt.timedelta(hours=r[1]) for r in rows], TS),
            "event_type": pa.array([r[2] for r in rows], pa.string()),
        }
    )


def tables_of(rows: list[tuple[str, int, str]]):
    data = data_of([], customers=CUSTOMERS)
    data["events"] = events_table(rows)
    return to_tables(data)


PIT = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PIT
@given(
    before=st.lists(event.filter(lambda e: e[1] < 0), max_size=12),
    after=st.lists(event.filter(lambda e: e[1] >= 0), max_size=12),
    n=st.integers(min_value=0, max_value=3),
    types=st.sampled_from([None, ("purchase",), ("purchase", "review")]),
)
def test_events_at_or_after_the_cutoff_never_change_the_population(con, before, after, n, types):
    """Who is labelled (active, with N prior purchases) is read strictly before the cutoff."""
    params = LabelParams(definition="inactivity", activity_event_types=types, min_prior_purchases=n)

    def population(rows):
        got = execute(con, build_labels(tables_of(rows), params, [C]))
        return set(got.customer_id)

    expected = population(before)
    assert population(before + after) == expected
    kpi = active_customers(
        tables_of(before + after),
        [C],
        "inactivity",
        30,
        activity_event_types=types,
        min_prior_purchases=n,
    )
    assert set(execute(con, kpi).customer_id) == expected


@PIT
@given(
    base=st.lists(event, max_size=12),
    other=st.lists(
        st.tuples(
            st.sampled_from(CUSTOMERS),
            st.integers(min_value=0, max_value=60 * 24),
            st.sampled_from(["delivery", "review"]),
        ),
        max_size=8,
    ),
)
def test_other_event_types_after_the_cutoff_never_unchurn(con, base, other):
    """Deliveries and reviews after the cutoff change no label when only purchases count."""
    params = LabelParams(definition="inactivity", activity_event_types=("purchase",))

    def labels(rows):
        got = execute(con, build_labels(tables_of(rows), params, [C]))
        return dict(zip(got.customer_id, got.churned, strict=True))

    assert labels(base + other) == labels(base)


# -- a declared data end --------------------------------------------------------------------------


def test_label_end_is_declared_or_derived():
    tables = to_tables(data_of([("a", "2024-12-31 18:00", "purchase")]))
    # derived: the latest timestamp's day (maybe partial) is in no window
    assert label_end(tables) == dt.datetime(2024, 12, 31, tzinfo=UTC)
    assert label_end(tables, "2024-10-29") == dt.datetime(2024, 10, 30, tzinfo=UTC)
    assert label_end(tables, "2024-12-31") == dt.datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(BadInputError, match="2024-12-31 or earlier"):
        label_end(tables, "2025-01-01")
    with pytest.raises(BadInputError, match="last complete day"):
        label_end(tables, "end of year")


def test_data_end_drops_the_cutoffs_whose_window_ends_after_it():
    tables = to_tables(data_of([("a", "2024-12-31 18:00", "purchase")]))
    derived = monthly_cutoffs("2024-07-01", label_end(tables), 0, 30)
    assert [c.month for c in derived] == [7, 8, 9, 10, 11, 12]
    # 2024-10-30 is the last complete day: the October window (10-01 .. 10-30) is still whole
    declared = monthly_cutoffs("2024-07-01", label_end(tables, "2024-10-30"), 0, 30)
    assert [c.month for c in declared] == [7, 8, 9, 10]
    declared = monthly_cutoffs("2024-07-01", label_end(tables, "2024-10-29"), 0, 30)
    assert [c.month for c in declared] == [7, 8, 9]


def test_events_after_data_end_are_ignored(con):
    rows = [
        ("late", "2024-06-20 10:00", "purchase"),
        ("late", "2024-07-16 00:00", "purchase"),  # the day after data_end
        ("early", "2024-06-20 10:00", "purchase"),
        ("early", "2024-07-15 23:59", "purchase"),  # on data_end: counts
    ]
    assert labels_of(con, data_of(rows)) == {"early": False, "late": False}
    assert labels_of(con, data_of(rows), data_end="2024-07-15") == {"early": False, "late": True}


# -- the settings ---------------------------------------------------------------------------------


def test_label_settings_from_yaml_values():
    """Null and [] both mean every type; YAML dates become ISO strings; defaults keep today's."""
    default = LabelParams()
    assert (default.activity_event_types, default.min_prior_purchases, default.data_end) == (
        None,
        0,
        None,
    )
    assert from_dict(LabelParams, {"activity_event_types": None}).activity_event_types is None
    got = from_dict(
        LabelParams,
        {"activity_event_types": ["purchase"], "data_end": dt.date(2024, 12, 30)},
        "label",
    )
    assert got.activity_event_types == ("purchase",) and got.data_end == "2024-12-30"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_prior_purchases": -1}, "label.min_prior_purchases"),
        ({"tail_warning_ratio": 1.5}, "label.tail_warning_ratio"),
        ({"activity_event_types": ["purchase", " "]}, "label.activity_event_types"),
    ],
)
def test_bad_label_settings_name_the_key(values, message):
    with pytest.raises(ParamsError, match=message):
        LabelParams(**values)


def test_unknown_activity_types_are_an_error_naming_the_types_found():
    tables = to_tables(data_of(SHOP))
    with pytest.raises(BadInputError, match=r"\['delivery', 'purchase', 'review'\]"):
        check_activity_types(tables, ["order"])
    check_activity_types(tables, ["purchase", "order"])  # one found: a warning, not an error
