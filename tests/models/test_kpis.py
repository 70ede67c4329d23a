"""Churn KPIs on a hand-made business: every expected number is worked out in the comments.

Months: Jan, Feb, Mar 2024 (boundaries Jan 1, Feb 1, Mar 1, Apr 1; the data ends Mar 31).

customer  plan        country  signup      fee  what happens
a         basic       DE       2023-12-10  10   churns Feb 15; comes back (login Mar 5) and has a
                                                second churn_event Mar 20: not active again
b         pro         DE       2023-11-01  30   price_change Jan 20 -> 36; stays
c         basic       FR       2024-01-10  10   churns exactly at Mar 1 00:00 (in February)
d         pro         FR       2024-02-20  30   plan_change Mar 10 -> 15; stays
e         basic       DE       2023-06-01  10   churns Jan 31
f         enterprise  DE       2024-03-25  200  signs up in March: never active at a month start

Active at Jan 1: a b e (MRR 10+30+10 = 50); Feb 1: a b c (10+36+10 = 56); Mar 1: b d (36+30 = 66);
Apr 1: b d f (fees at Apr 1: b 36, d 15).
"""

from __future__ import annotations

import datetime as dt
import json
import math

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from features.settings import LabelParams
from features.tables import Tables, connect
from models.kpis import (
    ALL,
    NO_REVENUE_NOTE,
    KpiInputError,
    KpiSpec,
    cohort_retention,
    experience,
    has_revenue,
    kpi_months,
    month_boundaries,
    monthly_churn,
    repeat_purchase,
    summary,
)
from models.segments import OTHER_LEVEL

from helpers import churn

UTC = dt.UTC
TS = pa.timestamp("us", tz="UTC")
JAN, FEB, MAR, APR = (dt.datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4))
NAN = float("nan")


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def customers() -> pa.Table:
    rows = [
        ("a", "2023-12-10 09:00", "basic", "DE", 10.0),
        ("b", "2023-11-01 09:00", "pro", "DE", 30.0),
        ("c", "2024-01-10 09:00", "basic", "FR", 10.0),
        ("d", "2024-02-20 09:00", "pro", "FR", 30.0),
        ("e", "2023-06-01 09:00", "basic", "DE", 10.0),
        ("f", "2024-03-25 09:00", "enterprise", "DE", 200.0),
    ]
    return pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "signup_date": pa.array([ts(r[1]) for r in rows], TS),
            "plan": [r[2] for r in rows],
            "country": [r[3] for r in rows],
            "monthly_fee": [r[4] for r in rows],
        }
    )


def churn_events() -> pa.Table:
    rows = [("a", "2024-02-15 10:00"), ("a", "2024-03-20 10:00"), ("c", "2024-03-01 00:00")]
    rows.append(("e", "2024-01-31 23:00"))
    return pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "churn_date": pa.array([ts(r[1]) for r in rows], TS),
        }
    )


def events(with_purchases: bool = True) -> pa.Table:
    rows = [
        ("b", "2024-01-20 10:00", "price_change", 36.0),
        ("d", "2024-03-10 10:00", "plan_change", 15.0),
        ("a", "2024-03-05 10:00", "login", 3.0),  # after a's churn: a return, not activity
        ("b", "2024-03-31 12:00", "login", 3.0),  # the last timestamp: the data ends Mar 31
    ]
    if with_purchases:
        rows += [
            ("a", "2024-01-03 10:00", "purchase", 20.0),
            ("a", "2024-01-09 10:00", "purchase", 25.0),
            ("b", "2024-01-15 10:00", "purchase", 5.0),
            ("b", "2024-02-02 10:00", "purchase", 5.0),
            ("b", "2023-12-30 10:00", "purchase", 5.0),  # before the first month
        ]
    return pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "ts": pa.array([ts(r[1]) for r in rows], TS),
            "event_type": [r[2] for r in rows],
            "value": pa.array([r[3] for r in rows], pa.float64()),
        }
    )


def responses() -> pa.Table:
    rows = [
        ("a", "2024-01-05 10:00", "relationship", "nps", 10.0),  # promoter
        ("b", "2024-01-20 10:00", "relationship", "nps", 9.0),  # promoter
        ("e", "2024-01-25 10:00", "relationship", "nps", 3.0),  # detractor
        ("a", "2024-02-02 10:00", "support", "csat", 8.0),  # satisfied (>= 8)
        ("c", "2024-02-10 10:00", "support", "csat", 7.0),  # not satisfied
        ("c", "2024-02-11 10:00", "onboarding", "csat", 10.0),  # satisfied
        ("d", "2024-03-03 10:00", "onboarding", "csat", 5.0),  # not satisfied
        ("d", "2024-03-04 10:00", "onboarding", "csat", None),  # no score: ignored
        ("b", "2024-03-05 10:00", "billing", "ces", 2.0),  # another metric: ignored
        ("b", "2023-12-20 10:00", "support", "csat", 1.0),  # before the first month: ignored
    ]
    return pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "ts": pa.array([ts(r[1]) for r in rows], TS),
            "touchpoint": [r[2] for r in rows],
            "metric": [r[3] for r in rows],
            "score": pa.array([r[4] for r in rows], pa.float64()),
        }
    )


def hand_tables(with_purchases: bool = True) -> Tables:
    return Tables(
        customers=ibis.memtable(customers()),
        churn_events=ibis.memtable(churn_events()),
        events=ibis.memtable(events(with_purchases)),
        responses=ibis.memtable(responses()),
    )


SPEC = KpiSpec(segments=("plan", "country"))
BOUNDS = [JAN, FEB, MAR, APR]


@pytest.fixture(scope="module")
def con():
    c = connect("1GB", 2)
    yield c
    c.disconnect()


def row(frame: pd.DataFrame, column: str, segment: str, month: dt.datetime, **keys) -> pd.Series:
    sel = (
        (frame["segment_column"] == column)
        & (frame["segment"] == segment)
        & (frame["month"] == pd.Timestamp(month))
    )
    for k, v in keys.items():
        sel &= frame[k] == v
    hits = frame.loc[sel]
    assert len(hits) == 1, f"{column}={segment} {month} {keys}: {len(hits)} rows"
    return hits.iloc[0]


def test_months_follow_the_data():
    tables = hand_tables()
    # default first month: the month of the first churn (e, Jan 31); last: March (data ends Mar 31)
    assert kpi_months(tables, None) == BOUNDS
    assert kpi_months(tables, "2024-02-15") == [FEB, MAR, APR]
    # a month is complete only when the data covers its last day
    assert month_boundaries(JAN, ts("2024-03-30 23:59")) == [JAN, FEB, MAR]
    assert month_boundaries(JAN, ts("2024-03-31 00:00")) == BOUNDS


def test_no_complete_month_is_a_clear_error():
    with pytest.raises(KpiInputError, match="kpi_first_month"):
        kpi_months(hand_tables(), "2024-04-01")


def test_monthly_churn_overall(con):
    got = monthly_churn(con, hand_tables(), BOUNDS, SPEC)
    jan, feb, mar = (row(got, ALL, ALL, m) for m in (JAN, FEB, MAR))
    # Jan: a b e active, e churns; MRR 50, e's 10 lost; a + b at Feb 1 = 10 + 36 (price change)
    assert (jan.active_start, jan.churned) == (3, 1)
    assert jan.churn_rate == pytest.approx(1 / 3)
    assert (jan.mrr_start, jan.mrr_churned) == pytest.approx((50.0, 10.0))
    assert jan.mrr_churn_rate == pytest.approx(0.2)
    assert jan.nrr == pytest.approx(46 / 50)
    # Feb: a b c active; a churns, c churns exactly at Mar 1 00:00 (still February's churn)
    assert (feb.active_start, feb.churned) == (3, 2)
    assert feb.churn_rate == pytest.approx(2 / 3)
    assert feb.mrr_churn_rate == pytest.approx(20 / 56)
    assert feb.nrr == pytest.approx(36 / 56)
    # Mar: b d active; a came back and churned again on Mar 20 but is not counted again;
    # d's downgrade to 15 lowers NRR
    assert (mar.active_start, mar.churned) == (2, 0)
    assert mar.churn_rate == 0.0
    assert mar.nrr == pytest.approx((36 + 15) / 66)


def test_monthly_churn_by_segment_and_empty_months(con):
    got = monthly_churn(con, hand_tables(), BOUNDS, SPEC)
    # FR has nobody active on Jan 1 (c signs up Jan 10): rates are null, not 0, no error
    fr_jan = row(got, "country", "FR", JAN)
    assert fr_jan.active_start == 0 and fr_jan.churned == 0
    assert math.isnan(fr_jan.churn_rate) and math.isnan(fr_jan.mrr_churn_rate)
    assert math.isnan(fr_jan.nrr)
    assert row(got, "country", "FR", FEB).churn_rate == 1.0  # c
    assert row(got, "country", "DE", FEB).churn_rate == 0.5  # a of a, b
    assert row(got, "plan", "pro", MAR).nrr == pytest.approx(51 / 66)
    # enterprise (f) is never active at a month start: a row per month, every rate null
    ent = got.loc[(got["segment_column"] == "plan") & (got["segment"] == "enterprise")]
    assert len(ent) == 3 and (ent["active_start"] == 0).all() and ent["churn_rate"].isna().all()
    # segment rows add up to the whole
    for column in ("plan", "country"):
        parts = got.loc[got["segment_column"] == column].groupby("month")["churned"].sum()
        whole = got.loc[got["segment_column"] == ALL].set_index("month")["churned"]
        pd.testing.assert_series_equal(parts, whole, check_names=False)


def test_cohort_retention(con):
    got = cohort_retention(con, hand_tables(), BOUNDS, SPEC)
    overall = got.loc[got["segment_column"] == ALL]
    curves = {
        pd.Timestamp(c).strftime("%Y-%m"): list(f.sort_values("age_months")["retention"])
        for c, f in overall.groupby("cohort")
    }
    # b (Nov) and e (Jun) signed up before the first observed cohort (Dec) and are left out
    assert curves == {
        "2023-12": [1.0, 1.0, 0.0, 0.0],  # a: active Jan 1, Feb 1; churned Feb 15
        "2024-01": [1.0, 0.0, 0.0],  # c: active Feb 1; churned Mar 1
        "2024-02": [1.0, 1.0],  # d
        "2024-03": [1.0],  # f: active Apr 1
    }
    assert set(overall["customers"]) == {1}


def test_experience_nps_and_csat(con):
    got = experience(con, hand_tables(), BOUNDS, SPEC)
    nps = row(got, ALL, ALL, JAN, kpi="nps", touchpoint="relationship")
    assert nps.responses == 3
    assert nps.value == pytest.approx(100 * (2 - 1) / 3)
    assert row(got, ALL, ALL, JAN, kpi="nps", touchpoint=ALL).value == pytest.approx(100 / 3)
    assert math.isnan(row(got, ALL, ALL, FEB, kpi="nps", touchpoint="relationship").value)
    csat = {
        tp: row(got, ALL, ALL, FEB, kpi="csat_pct", touchpoint=tp).value
        for tp in ("support", "onboarding", ALL)
    }
    assert csat == pytest.approx({"support": 50.0, "onboarding": 100.0, ALL: 200 / 3})
    mar = row(got, ALL, ALL, MAR, kpi="csat_pct", touchpoint="onboarding")
    assert (mar.responses, mar.value) == (1, 0.0)  # the null score is not a response
    assert math.isnan(row(got, ALL, ALL, MAR, kpi="csat_pct", touchpoint="support").value)
    assert math.isnan(row(got, ALL, ALL, JAN, kpi="csat_pct", touchpoint=ALL).value)
    assert row(got, "country", "FR", FEB, kpi="csat_pct", touchpoint=ALL).value == 50.0
    assert row(got, "country", "DE", FEB, kpi="csat_pct", touchpoint=ALL).value == 100.0
    assert "ces" not in set(got["kpi"])


def test_csat_threshold_is_a_param(con):
    spec = KpiSpec(segments=(), csat_satisfied_min=7.0)
    got = experience(con, hand_tables(), BOUNDS, spec)
    assert row(got, ALL, ALL, FEB, kpi="csat_pct", touchpoint="support").value == 100.0


def test_repeat_purchase(con):
    got = repeat_purchase(con, hand_tables(), BOUNDS, SPEC)
    jan, feb, mar = (row(got, ALL, ALL, m) for m in (JAN, FEB, MAR))
    assert (jan.buyers, jan.repeat_buyers, jan.repeat_purchase_rate) == (2, 1, 0.5)  # a twice
    assert (feb.buyers, feb.repeat_buyers, feb.repeat_purchase_rate) == (1, 0, 0.0)
    assert mar.buyers == 0 and math.isnan(mar.repeat_purchase_rate)
    assert row(got, "plan", "basic", JAN).repeat_purchase_rate == 1.0


def test_no_purchase_events_means_no_repeat_purchase_kpi(con):
    assert repeat_purchase(con, hand_tables(with_purchases=False), BOUNDS, SPEC) is None


def test_unknown_segment_column_is_named(con):
    with pytest.raises(KpiInputError, match=r"\['tier'\].*kpi_segments"):
        monthly_churn(con, hand_tables(), BOUNDS, KpiSpec(segments=("tier",)))


def test_inactivity_churn_is_the_label_and_customers_return(con):
    """Inactivity: churned in month m = active at m and no activity in the label window
    [m, m + 30 days); a customer who comes back is active (and can churn) again; a month whose
    window has not ended by the data end is left out (not known yet), and the summary says so."""
    cust = pa.table(
        {
            "customer_id": ["g", "h"],
            "signup_date": pa.array([ts("2023-12-01 00:00")] * 2, TS),
            "plan": ["basic", "basic"],
        }
    )
    rows = [
        ("g", "2024-01-15 10:00"),  # active Feb 1; nothing in [Feb 1, Mar 2): churns in Feb
        ("g", "2024-03-10 10:00"),  # back: active Apr 1; nothing in [Apr 1, May 1): churns again
        ("h", "2023-12-20 10:00"),
        ("h", "2024-01-20 10:00"),
        ("h", "2024-02-20 10:00"),
        ("h", "2024-03-20 10:00"),  # active Apr 1; next event May 15: churns in Apr
        ("h", "2024-05-15 10:00"),  # the data end: May's window [May 1, May 31) has not ended
    ]
    ev = pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "ts": pa.array([ts(r[1]) for r in rows], TS),
            "event_type": ["login"] * len(rows),
        }
    )
    tables = Tables(customers=ibis.memtable(cust), events=ibis.memtable(ev))
    label = LabelParams(definition="inactivity", inactivity_lookback_days=30, horizon_days=30)
    spec = KpiSpec(segments=(), label=label)
    may, june = (dt.datetime(2024, m, 1, tzinfo=UTC) for m in (5, 6))
    bounds = [*BOUNDS, may, june]
    got = monthly_churn(con, tables, bounds, spec)
    months = (JAN, FEB, MAR, APR)
    counts = [
        tuple(int(v) for v in row(got, ALL, ALL, m)[["active_start", "churned"]]) for m in months
    ]
    # Jan 1: h. Feb 1: g, h (g churns). Mar 1: h. Apr 1: g (back), h: both churn.
    assert counts == [(1, 0), (2, 1), (1, 0), (2, 2)]
    assert set(pd.to_datetime(got["month"], utc=True)) == {pd.Timestamp(m) for m in months}
    cohorts = pd.DataFrame(columns=["segment_column", "age_months", "customers", "active"])
    exp = pd.DataFrame(columns=["kpi", "touchpoint", "segment_column", "segment", "responses"])
    notes = summary(got, cohorts, exp, None, bounds, spec)["notes"]
    assert any("known for the months to 2024-04-01" in n for n in notes), notes


def test_stage_writes_reports(tmp_path):
    """`churn kpis` end to end on the hand tables written as interim Parquet files."""

    interim = tmp_path / "interim"
    interim.mkdir()
    data = {
        "customers": customers(),
        "churn_events": churn_events(),
        "events": events(),
        "responses": responses(),
    }
    for name, table in data.items():
        pq.write_table(table, interim / f"{name}.parquet")
    params = {
        "paths": {
            "interim": str(interim),
            "kpis_report": str(tmp_path / "kpis.json"),
            "kpis_dir": str(tmp_path / "kpis"),
        },
        "value": {"kpi_first_month": "2024-01-01"},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    assert churn("kpis", "--params", path) == 0
    report = json.loads((tmp_path / "kpis.json").read_text(encoding="utf-8"))
    assert report["months"] == {"first": "2024-01-01", "last": "2024-03-01", "count": 3}
    overall = report["churn"][ALL]
    assert (overall["customer_months"], overall["churned"]) == (8, 3)
    assert overall["churn_rate"] == pytest.approx(3 / 8)
    assert overall["nrr"] == pytest.approx((46 + 36 + 51) / (50 + 56 + 66))
    assert report["churn"]["plan=enterprise"]["churn_rate"] is None
    assert report["repeat_purchase"][ALL]["repeat_purchase_rate"] == pytest.approx(1 / 3)
    files = {p.name for p in (tmp_path / "kpis").iterdir()}
    assert {"monthly_churn.csv", "cohort_retention.csv", "experience.csv", "churn.png"} <= files
    monthly = pd.read_csv(tmp_path / "kpis" / "monthly_churn.csv")
    assert len(monthly) == 3 * (1 + 3 + 2)  # months x (all + 3 plans + 2 countries)
    assert "notes" not in report  # fees and few levels: nothing to say
    assert _width_over_height(tmp_path / "kpis" / "churn.png") > 2.5  # churn, MRR churn, NRR


def _width_over_height(png) -> float:
    from matplotlib.image import imread

    height, width = imread(png).shape[:2]
    return width / height


def test_no_fee_means_no_revenue_and_a_churn_figure_without_mrr_panels(con):
    from pipeline.reporting.kpi_figures import plot_churn

    no_fee = Tables(
        customers=ibis.memtable(customers().drop_columns(["monthly_fee"])),
        churn_events=ibis.memtable(churn_events()),
        events=ibis.memtable(events().drop_columns(["value"])),
    )
    got = monthly_churn(con, no_fee, BOUNDS, SPEC)
    assert not has_revenue(got) and has_revenue(monthly_churn(con, hand_tables(), BOUNDS, SPEC))
    assert got[["mrr_start", "mrr_churn_rate", "nrr"]].isna().all().all()
    assert row(got, ALL, ALL, JAN).churn_rate == pytest.approx(1 / 3)  # churn is unchanged
    titles = [ax.get_title() for ax in plot_churn(got).axes]
    assert titles == ["Customer churn rate"]


def marketplace(n_cities: int = 60) -> dict[str, pa.Table]:
    """An order log without fees: 100 customers in `n_cities` cities (city_00 .. city_07 have
    6 customers each, the others 1), signed up Dec 2023; every 5th churns in February."""
    ids = [f"c{i:03d}" for i in range(100)]
    city = [
        f"city_{i:02d}" if i < n_cities else f"city_{(i - n_cities) % 8:02d}" for i in range(100)
    ]
    cust = pa.table(
        {
            "customer_id": ids,
            "signup_date": pa.array([ts("2023-12-01 09:00")] * 100, TS),
            "city": city,
        }
    )
    churners = ids[::5]
    ce = pa.table(
        {
            "customer_id": churners,
            "churn_date": pa.array([ts("2024-02-10 10:00")] * len(churners), TS),
        }
    )
    ev = pa.table(
        {
            "customer_id": ids,
            "ts": pa.array([ts("2024-03-31 12:00")] * 100, TS),
            "event_type": ["purchase"] * 100,
        }
    )
    return {"customers": cust, "churn_events": ce, "events": ev}


def test_stage_without_revenue_and_a_sixty_level_segment(tmp_path, caplog):
    """`churn kpis` on a marketplace: no MRR/NRR (a note), 8 cities + "(other)" (a note)."""
    interim = tmp_path / "interim"
    interim.mkdir()
    for name, table in marketplace().items():
        pq.write_table(table, interim / f"{name}.parquet")
    params = {
        "paths": {
            "interim": str(interim),
            "kpis_report": str(tmp_path / "kpis.json"),
            "kpis_dir": str(tmp_path / "kpis"),
        },
        "value": {"kpi_first_month": "2024-01-01", "kpi_segments": ["city"]},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    assert churn("kpis", "--params", path) == 0
    report = json.loads((tmp_path / "kpis.json").read_text(encoding="utf-8"))
    overall = report["churn"][ALL]
    assert overall["churned"] == 20 and overall["churn_rate"] is not None
    assert overall["mrr_churn_rate"] is None and overall["nrr"] is None
    top = [f"city_{i:02d}" for i in range(8)]
    assert set(report["churn"]) == {ALL, *(f"city={c}" for c in top), f"city={OTHER_LEVEL}"}
    # 52 customers (one per folded city) in Jan and Feb; the 10 of them who churn in Feb not in Mar
    assert report["churn"][f"city={OTHER_LEVEL}"]["customer_months"] == 52 + 52 + 42
    folded = ", ".join(f"city_{i:02d}" for i in range(8, 60))
    assert report["notes"] == [
        NO_REVENUE_NOTE,
        f"city: 60 levels; the 8 largest are shown and the other 52 are grouped as "
        f"'(other)': {folded}",
    ]
    assert NO_REVENUE_NOTE in caplog.text
    out = tmp_path / "kpis"
    assert {"monthly_churn.csv", "churn.png", "churn_by_city.png"} <= {
        p.name for p in out.iterdir()
    }
    monthly = pd.read_csv(out / "monthly_churn.csv")
    assert len(monthly) == 3 * (1 + 8 + 1)  # months x (all + 8 cities + other)
    assert _width_over_height(out / "churn.png") < 2  # the customer churn panel alone


def test_stage_bad_segment_exits_2(tmp_path, caplog):

    interim = tmp_path / "interim"
    interim.mkdir()
    pq.write_table(customers(), interim / "customers.parquet")
    pq.write_table(churn_events(), interim / "churn_events.parquet")
    params = {
        "paths": {
            "interim": str(interim),
            "kpis_report": str(tmp_path / "reports" / "kpis.json"),
            "kpis_dir": str(tmp_path / "reports" / "kpis"),
        },
        "value": {"kpi_segments": ["tier"]},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    assert churn("kpis", "--params", path) == 2
    assert "segment column(s) ['tier'] not found" in caplog.text
    assert not (tmp_path / "reports").exists()
