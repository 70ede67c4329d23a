"""Every feature family checked against values worked out by hand from conftest.hand_data()."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import ibis
import pandas.testing as pdt
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from features.base.params import ParamsError, from_dict
from features.build import build_features, scoring_spine, training_spine, write_feature_table
from features.catalog import GROUPS
from features.families.economic import days_to_next_renewal, economic_features
from features.families.engagement import all_event_types, engagement_features, event_rows
from features.families.experience import experience_features
from features.families.profile import profile_features
from features.families.service import service_features
from features.labels import build_labels
from features.settings import FeaturizeParams, LabelParams

from conftest import execute, hand_data, spine_of, table, to_tables

CFG = FeaturizeParams(max_categories=4)
SPINE = [("c1", "2024-07-01"), ("c2", "2024-07-01"), ("c3", "2024-07-01")]
NAN = float("nan")


def rows(con, fs) -> dict[str, dict]:
    df = execute(con, fs.table)
    assert list(df.columns[:2]) == ["customer_id", "cutoff"]
    assert set(df.columns[2:]) == {f.name for f in fs.catalog}
    return {r["customer_id"]: r for r in df.to_dict("records")}


def check(got: dict[str, dict], expected: dict[str, dict]) -> None:
    problems = []
    for cid, values in expected.items():
        for name, want in values.items():
            have = got[cid][name]
            same = (
                (have is None or (isinstance(have, float) and math.isnan(have)))
                if (want is None or (isinstance(want, float) and math.isnan(want)))
                else have == pytest.approx(want)
            )
            if not same:
                problems.append(f"{cid}.{name}: expected {want}, got {have}")
    assert not problems, "\n".join(problems)


def test_engagement_by_hand(con, tables):
    got = rows(con, engagement_features(tables, spine_of(SPINE), CFG))
    assert len(got) == 3
    check(
        got,
        {
            # c1 logins before 2024-07-01 (days back = cutoff day - event day):
            # 06-30 23:30 (1, 10 min), 06-30 08:00 (1, 5), 06-24 (7, 20), 06-23 (8, 7),
            # 05-15 (47, 30);
            # 07-01 00:00 is at the cutoff and 07-05 after it: excluded.
            "c1": {
                "tenure_days": 168,  # 01-15 -> 07-01: 17 + 29 + 31 + 30 + 31 + 30
                "logins_7d": 3,
                "login_minutes_7d": 35,
                "login_active_days_7d": 2,
                "logins_30d": 4,
                "login_minutes_30d": 42,
                "login_active_days_30d": 3,
                "logins_90d": 5,
                "login_minutes_90d": 72,
                "login_active_days_90d": 4,
                "logins_180d": 5,
                "days_since_last_login": 1,
                # last 30 days: 4, days 31-60: 1 (the 05-15 login)
                "logins_30d_minus_prev_30d": 3,
                "logins_30d_over_prev_30d": 4.0,
                # weekly counts oldest..newest (weeks 0..7): [0,1,0,0,0,0,1,3];
                # slope = sum (j - 3.5) y_j / 42 = (-2.5 + 2.5 + 3 * 3.5) / 42
                "logins_weekly_slope_8w": 0.25,
                # feature_use on 06-01: 30 days back, week j = 7 - 29 // 7 = 3 -> (3 - 3.5) / 42
                "feature_uses_7d": 0,
                "feature_uses_30d": 1,
                "days_since_last_feature_use": 30,
                "feature_uses_weekly_slope_8w": -0.5 / 42,
                "feature_uses_30d_over_prev_30d": NAN,
                "plan_changes_180d": 0,  # the 07-15 plan change is after the cutoff
                "days_since_last_plan_change": NAN,
            },
            "c2": {
                "tenure_days": 122,  # 03-01 -> 07-01
                "logins_90d": 0,
                "logins_180d": 1,
                "login_minutes_180d": 3,
                "days_since_last_login": 91,  # 04-01 -> 07-01
                "logins_weekly_slope_8w": 0.0,
                "plan_changes_90d": 0,
                "plan_changes_180d": 1,
                "days_since_last_plan_change": 108,  # 03-15 -> 07-01: 17 + 30 + 31 + 30
            },
            "c3": {"tenure_days": 31, "logins_180d": 0, "days_since_last_login": NAN},
        },
    )


def test_economic_by_hand(con, tables):
    got = rows(con, economic_features(tables, spine_of(SPINE), CFG))
    check(
        got,
        {
            "c1": {
                # price_change to 12 on 05-01 (61 days back); nothing before 04-02 -> base fee 10
                "current_monthly_fee": 12.0,
                "monthly_fee_change_90d": 2.0,
                "monthly_fee_change_pct_90d": 0.2,
                "days_to_next_renewal": 14,  # signed up on the 15th
                "days_to_next_anniversary": 198,  # 2024-01-15 -> 2025-01-15
                "purchases_7d": 0,
                "purchases_30d": 1,
                "purchase_amount_30d": 50.0,
                "payments_30d": 1,
                "payments_90d": 2,
                "payment_amount_90d": 20.0,
                "payment_failures_7d": 0,
                "payment_failures_30d": 1,
                "days_since_last_payment_failure": 17,
                "discount_requests_7d": 0,
                "discount_requests_30d": 1,
                "days_since_last_discount_request": 11,
            },
            "c2": {
                # plan_change to 25 on 03-15: before both the cutoff and cutoff - 90 days
                "current_monthly_fee": 25.0,
                "monthly_fee_change_90d": 0.0,
                "days_to_next_renewal": 0,  # signed up on the 1st: renews on the cutoff day
                "days_to_next_anniversary": 243,  # 2024-03-01 -> 2025-03-01
                "payment_failures_7d": 2,
                "days_since_last_payment_failure": 1,
            },
            "c3": {
                "current_monthly_fee": 10.0,
                "monthly_fee_change_pct_90d": 0.0,
                "days_to_next_renewal": 30,  # signed up on the 31st: 07-31
                "days_to_next_anniversary": 334,  # 2024-05-31 -> 2025-05-31
                "purchases_180d": 0,
                "days_since_last_purchase": NAN,
            },
        },
    )


def test_renewal_clamps_to_month_end(con, tables):
    # c3 signed up on 05-31; June has 30 days, so the June renewal is on 06-30: 29 days from 06-01
    got = rows(con, economic_features(tables, spine_of([("c3", "2024-06-01")]), CFG))
    assert got["c3"]["days_to_next_renewal"] == 29


@pytest.mark.parametrize(
    ("signup", "cutoff", "days"),
    [
        ("2023-07-01 08:00", "2024-07-01", 0),  # the anniversary is the cutoff day
        ("2023-06-30 23:00", "2024-07-01", 364),  # a day past: next year's (2025-06-30)
        ("2020-02-29 10:00", "2025-02-01", 27),  # no 29 February in 2025: renews on the 28th
        ("2020-02-29 10:00", "2028-02-01", 28),  # 2028 is a leap year: on the 29th
    ],
)
def test_anniversary_is_yearly_and_leap_aware(con, signup, cutoff, days):
    customers = table({"customer_id": ["a"], "signup_date": [signup], "plan": ["basic"]})
    got = rows(con, days_to_next_renewal(ibis.memtable(customers), spine_of([("a", cutoff)])))
    assert got["a"]["days_to_next_anniversary"] == days


def test_experience_by_hand(con, tables):
    got = rows(con, experience_features(tables, spine_of(SPINE), CFG))
    check(
        got,
        {
            "c1": {
                # support CSAT 3 (06-20, 11 days back) and 6 (05-01, 61 days back);
                # the 1 at the cutoff is excluded
                "csat_support_last": 3.0,
                "csat_support_min_90d": 3.0,
                "csat_support_mean_90d": 4.5,
                "csat_support_low_90d": 1,
                "csat_support_low_ever": 1,
                # after_sales CSAT 2 on 02-01: 151 days back
                "csat_after_sales_last": 2.0,
                "csat_after_sales_min_90d": NAN,
                "csat_after_sales_min_180d": 2.0,
                "csat_after_sales_low_90d": 0,
                "csat_after_sales_low_180d": 1,
                "csat_mean_90d": 4.5,
                "csat_mean_180d": 11 / 3,
                "ces_mean_90d": 4.0,
                # NPS 9 (03-01) then 5 (06-01)
                "nps_last": 5.0,
                "nps_category_last": "detractor",
                "nps_change_vs_previous": -4.0,
                # 90 days: csat 06-20, 05-01, nps 06-01, ces 06-10;
                # 180 days: + nps 03-01, csat 02-01
                "survey_responses_90d": 4,
                "survey_responses_180d": 6,
                "survey_response_rate_180d": 3.0,  # 6 responses / 2 survey_sent (06-05, 04-01)
            },
            "c2": {
                "nps_last": 8.0,
                "nps_category_last": "passive",
                "nps_change_vs_previous": NAN,
                "csat_onboarding_last": 9.0,
                "csat_onboarding_min_90d": NAN,
                "csat_onboarding_mean_180d": 9.0,
                "survey_responses_90d": 1,
                "survey_response_rate_180d": NAN,  # none sent
            },
            "c3": {"nps_last": NAN, "nps_category_last": None, "csat_support_low_ever": 0},
        },
    )


def test_service_by_hand(con, tables):
    got = rows(con, service_features(tables, spine_of(SPINE), CFG))
    check(
        got,
        {
            # c1: T1 06-01 10:00 -> 06-03 10:00 (48 h, billing, escalated, satisfaction 2);
            # T2 opened 06-28, closed 07-02: open at the cutoff, its escalation/satisfaction unknown
            "c1": {
                "tickets_opened_7d": 1,
                "tickets_opened_30d": 2,
                "tickets_open_at_cutoff": 1,
                "tickets_billing_90d": 1,
                "tickets_technical_90d": 1,
                "tickets_escalated_90d": 1,
                "ticket_hours_to_resolve_mean_90d": 48.0,
                "ticket_satisfaction_mean_90d": 2.0,
                "days_since_last_ticket": 3,
            },
            # c2: T4 opened 02-01, never closed (open); T5 05-10 00:00 -> 12:00 (billing, sat 4)
            "c2": {
                "tickets_opened_30d": 0,
                "tickets_opened_90d": 1,
                "tickets_opened_180d": 2,
                "tickets_open_at_cutoff": 1,
                "tickets_billing_90d": 1,
                "tickets_account_90d": 0,
                "tickets_account_180d": 1,
                "tickets_escalated_180d": 0,
                "ticket_hours_to_resolve_mean_90d": 12.0,
                "ticket_satisfaction_mean_180d": 4.0,
                "days_since_last_ticket": 52,
            },
            "c3": {
                "tickets_opened_180d": 0,
                "tickets_open_at_cutoff": 0,
                "ticket_hours_to_resolve_mean_90d": NAN,
            },
        },
    )


def test_profile_by_hand(con, tables):
    fs = profile_features(tables, spine_of(SPINE), CFG)
    groups = {f.name: f.group for f in fs.catalog}
    # email has 5 distinct values > max_categories = 4: dropped; signup_date is a date: dropped
    assert groups == {
        "plan": "contract",
        "monthly_fee": "contract",
        "country": "profile",
        "noise": "profile",
    }
    got = rows(con, fs)
    check(
        got, {"c1": {"plan": "basic", "noise": 0.5}, "c2": {"country": "FR", "monthly_fee": 30.0}}
    )


def test_build_one_row_per_spine_row_and_catalog(con, tables):
    fs = build_features(tables, spine_of(SPINE + [("c1", "2024-08-01")]), CFG)
    df = execute(con, fs.table)
    assert len(df) == 4
    names = [f.name for f in fs.catalog]
    assert len(names) == len(set(names))
    assert {f.group for f in fs.catalog} <= set(GROUPS)
    assert all(f.description for f in fs.catalog)


def test_scoring_table_equals_training_table_at_same_cutoff(con, tables):
    labels = build_labels(tables, LabelParams(), [dt.datetime(2024, 7, 1, tzinfo=dt.UTC)])
    train = execute(con, build_features(tables, training_spine(labels), CFG).table)
    score_spine = scoring_spine(tables, "2024-07-01")
    score = execute(con, build_features(tables, score_spine, CFG).table)
    assert list(score.customer_id) == ["c1", "c2", "c3"]
    train = train[train.customer_id.isin(score.customer_id)].reset_index(drop=True)
    pdt.assert_frame_equal(train, score)


def test_missing_optional_tables_and_columns_do_not_crash(con, data):
    reduced = dict(data)
    reduced["responses"] = None
    reduced["churn_events"] = None
    reduced["tickets"] = data["tickets"].drop_columns(["closed_at", "escalated", "satisfaction"])
    reduced["events"] = data["events"].drop_columns(["value"])
    fs = build_features(to_tables(reduced), spine_of(SPINE), CFG)
    names = {f.name for f in fs.catalog}
    assert "tickets_opened_30d" in names and "tickets_open_at_cutoff" not in names
    assert not any(n.startswith("csat_") for n in names)
    assert len(execute(con, fs.table)) == 3
    no_events = dict(data, events=None)
    assert len(execute(con, build_features(to_tables(no_events), spine_of(SPINE), CFG).table)) == 3


def test_event_types_come_from_params(con, tables):
    cfg = FeaturizeParams(
        max_categories=4, event_types=("purchase",), economic_event_types=("login",)
    )
    fs = engagement_features(tables, spine_of(SPINE), cfg)
    names = {f.name for f in fs.catalog}
    assert "purchases_30d" in names and "logins_30d" not in names


def test_unknown_featurize_key_is_an_error():
    with pytest.raises(ParamsError, match="windowz"):
        from_dict(FeaturizeParams, {"windowz": [7]})


def test_write_feature_table_streams_chunks(con, tmp_path):
    import pyarrow.parquet as pq

    tables = to_tables(hand_data())
    spine = spine_of(SPINE + [("c1", "2024-08-01")]).mutate(churned=False)
    catalog = write_feature_table(con, tables, spine, CFG, tmp_path / "f.parquet", tmp_path / "w")
    out = pq.read_table(tmp_path / "f.parquet")
    assert out.num_rows == 4
    assert out.column_names == ["customer_id", "cutoff", "churned", *[f.name for f in catalog]]


def test_one_big_cutoff_is_split_by_customer_and_gives_the_same_table(con, tmp_path):
    """Scoring many customers at one as-of date: customer buckets, same rows and values."""
    import pyarrow.parquet as pq

    tables = to_tables(hand_data())
    spine = spine_of([(c, "2024-07-01") for c in ("c1", "c2", "c3")])
    write_feature_table(con, tables, spine, CFG, tmp_path / "one.parquet", tmp_path / "w1")
    write_feature_table(
        con, tables, spine, CFG, tmp_path / "split.parquet", tmp_path / "w2", rows_per_chunk=1
    )
    parts = list((tmp_path / "w2").glob("part-*.parquet"))
    assert len(parts) == 3  # 3 rows, 1 row per chunk: 3 hash buckets (some may be empty)
    whole = pq.read_table(tmp_path / "one.parquet").to_pandas()
    split = pq.read_table(tmp_path / "split.parquet").to_pandas()
    split = split.sort_values("customer_id").reset_index(drop=True)
    pdt.assert_frame_equal(whole, split)


# Per-event rows (what write_feature_table reads on DuckDB) against the daily aggregate (what
# build_features computes without them): the same features, several events a day included.
# 200-day windows need four 62-day bitmap words for active days; purchases are a rhythm type
# (orders are distinct days over all history) and an economic type.
PER_EVENT_CFG = FeaturizeParams(
    max_categories=4, windows=(7, 30, 62, 63, 200), rhythm_event_types=("purchase",)
)
PER_EVENT_SPINE = [("c1", "2024-07-01"), ("c1", "2024-08-01"), ("c2", "2024-07-01")]
_event_rows = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c2"]),
        st.integers(min_value=-40, max_value=260),  # days before 2024-07-01 (negative: after)
        st.sampled_from([0, 1, 12 * 60, 23 * 60 + 59]),  # minute of the day
        st.sampled_from(["login", "feature_use", "purchase", "payment"]),
        st.sampled_from([None, 0.5, 2.0]),
    ),
    max_size=40,
)
# every word edge of the bitmap (days 1, 62, 63, 124, 125, 186, 187, 200, 201 before the
# cutoff), some days twice
_EDGES = [
    ("c1", d, m, "login", 1.0) for d in (1, 62, 63, 124, 125, 186, 187, 200, 201) for m in (0, 1)
] + [("c1", 7, 0, "purchase", 2.0), ("c1", 7, 5, "purchase", None), ("c1", 8, 0, "login", None)]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(rows=_EDGES)
@given(rows=_event_rows)
def test_per_event_rows_give_the_daily_aggregates_features(con, rows):
    cutoff = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    rows = [("c2", 3, 0, "login", None), *rows]  # the login features are always built
    data = {**hand_data(), "responses": None, "tickets": None}  # event families only
    data["events"] = table(
        {
            "customer_id": [r[0] for r in rows],
            "ts": pa.array(
                [cutoff - dt.timedelta(days=r[1]) + dt.timedelta(minutes=r[2]) for r in rows],
                pa.timestamp("us", tz="UTC"),
            ),
            "event_type": pa.array([r[3] for r in rows], pa.string()),
            "value": pa.array([r[4] for r in rows], pa.float64()),
        }
    )
    tables = to_tables(data)
    spine = spine_of(PER_EVENT_SPINE)
    types = list(all_event_types(PER_EVENT_CFG))
    per_event = replace(
        tables, events_daily=event_rows(tables.events, types), events_per_event=True
    )
    daily = build_features(tables, spine, PER_EVENT_CFG)
    ours = build_features(per_event, spine, PER_EVENT_CFG)
    assert [f.name for f in ours.catalog] == [f.name for f in daily.catalog]
    assert "login_active_days_200d" in {f.name for f in ours.catalog}
    a, b = execute(con, daily.table), execute(con, ours.table)
    assert list(a.dtypes) == list(b.dtypes)
    pdt.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
