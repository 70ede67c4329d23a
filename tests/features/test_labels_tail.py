"""An incomplete tail (a late load) is warned about, with the figures and the fix; a steady one
is not. The label stage logs the check and returns it."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from features.labels import activity_tail, label_end
from features.tables import Tables

from conftest import TS, to_tables

UTC = dt.UTC
FIRST = dt.datetime(2024, 1, 1, tzinfo=UTC)
LAST = dt.datetime(2024, 9, 30, tzinfo=UTC)  # the last day with events
THIN_FROM = dt.datetime(2024, 9, 11, tzinfo=UTC)  # from here on only a fifth is loaded


def shop(thin_purchases: bool, thin_deliveries: bool = False) -> dict[str, pa.Table]:
    """20 customers; every day 10 purchases and 10 deliveries at noon, thinned to 2 a day from
    THIN_FROM when asked."""
    ids, ts, types = [], [], []
    day = FIRST
    while day <= LAST:
        for kind, thin in (("purchase", thin_purchases), ("delivery", thin_deliveries)):
            n = 2 if thin and day >= THIN_FROM else 10
            for i in range(n):
                ids.append(f"c{(day.toordinal() + i) % 20:02d}")
                ts.append(day + dt.timedelta(hours=12))
                types.append(kind)
        day += dt.timedelta(days=1)
    customers = [f"c{i:02d}" for i in range(20)]
    return {
        "customers": pa.table(
            {
                "customer_id": pa.array(customers, pa.string()),
                "signup_date": pa.array([FIRST - dt.timedelta(days=30)] * 20, TS),
            }
        ),
        "churn_events": None,
        "events": pa.table(
            {
                "customer_id": pa.array(ids, pa.string()),
                "ts": pa.array(ts, TS),
                "event_type": pa.array(types, pa.string()),
            }
        ),
        "responses": None,
        "tickets": None,
    }


def tail_of(tables: Tables, types=("purchase",), data_end=None):
    return activity_tail(tables, label_end(tables, data_end), types, 0.5)


def test_a_thinned_tail_warns_with_dates_rates_and_the_fix(caplog):
    tables = to_tables(shop(thin_purchases=True))
    with caplog.at_level(logging.WARNING, logger="features.labels"):
        tail = tail_of(tables)
    assert tail is not None and tail.incomplete
    # the derived end excludes the last day (09-30): the tail is 09-16 .. 09-29
    assert (tail.tail_first_day, tail.last_day) == (dt.date(2024, 9, 16), dt.date(2024, 9, 29))
    assert tail.tail_per_day == pytest.approx(2.0)
    assert tail.baseline_per_day == pytest.approx(10.0)
    assert tail.baseline_windows == 6
    assert tail.ratio == pytest.approx(0.2)
    assert tail.suggested_data_end == dt.date(2024, 9, 10)  # the last fully loaded day
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    for text in ("2024-09-16 .. 2024-09-29", "2.0 events/day", "10.0/day", "ratio 0.20"):
        assert text in message
    assert "set label.data_end" in message and "2024-09-10" in message


def test_a_steady_tail_does_not_warn(caplog):
    tables = to_tables(shop(thin_purchases=False))
    with caplog.at_level(logging.WARNING, logger="features.labels"):
        tail = tail_of(tables)
    assert tail is not None and not tail.incomplete
    assert tail.ratio == pytest.approx(1.0)
    assert tail.suggested_data_end is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_declaring_the_last_complete_day_silences_the_warning(caplog):
    tables = to_tables(shop(thin_purchases=True))
    with caplog.at_level(logging.WARNING, logger="features.labels"):
        tail = tail_of(tables, data_end="2024-09-10")
    assert tail is not None and not tail.incomplete
    assert tail.last_day == dt.date(2024, 9, 10) and tail.ratio == pytest.approx(1.0)
    assert not caplog.records


def test_the_tail_counts_only_activity_types():
    """Late deliveries do not matter when only purchases are activity, and steady deliveries do
    not hide a thinned purchase tail."""
    late_deliveries = to_tables(shop(thin_purchases=False, thin_deliveries=True))
    tail = tail_of(late_deliveries)
    assert tail is not None and not tail.incomplete
    assert tail_of(late_deliveries, types=("delivery",)).incomplete  # type: ignore[union-attr]
    # every type counted: steady deliveries dilute the thinned purchases, (2 + 10) / 20 = 0.6
    late_purchases = to_tables(shop(thin_purchases=True))
    everything = tail_of(late_purchases, types=None)
    assert everything is not None and everything.ratio == pytest.approx(0.6)
    assert not everything.incomplete


def test_too_little_history_reports_no_ratio():
    data = shop(thin_purchases=False)
    events = data["events"]
    keep = pc.greater_equal(events["ts"], pa.scalar(dt.datetime(2024, 9, 1, tzinfo=UTC)))
    data["events"] = events.filter(keep)
    tail = tail_of(to_tables(data))
    assert tail is not None
    assert tail.baseline_windows == 0 and tail.ratio is None and not tail.incomplete


def test_label_stage_logs_and_returns_the_tail(tmp_path: Path, caplog):
    from pipeline.config import params_from_dict
    from pipeline.label import run

    interim = tmp_path / "interim"
    interim.mkdir()
    for name, t in shop(thin_purchases=True).items():
        if t is not None:
            pq.write_table(t, interim / f"{name}.parquet")
    labels_path = tmp_path / "labels.parquet"

    def params(**label):
        return params_from_dict(
            {
                "label": {
                    "definition": "inactivity",
                    "first_cutoff": "2024-03-01",
                    "activity_event_types": ["purchase"],
                    **label,
                },
                "paths": {"interim": str(interim), "labels": str(labels_path)},
            }
        )

    with caplog.at_level(logging.INFO):
        result = run(params())
    assert result.tail is not None and result.tail.incomplete
    assert result.data_end == "2024-09-29"
    assert any(
        r.levelno == logging.WARNING and "label.data_end" in r.getMessage() for r in caplog.records
    )
    # cutoffs 03-01 .. 08-01 (the August window ends 08-31 <= 09-29; September's does not)
    assert result.cutoffs == 6
    labels = pq.read_table(labels_path).to_pandas()
    august = labels[labels.cutoff == pd.Timestamp("2024-08-01", tz="UTC")]
    assert not august.churned.any()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        cut = run(params(data_end="2024-09-10"))
    assert cut.data_end == "2024-09-10" and cut.tail is not None and not cut.tail.incomplete
    assert cut.cutoffs == 6  # 08-01 + 30 days = 08-31 <= 09-11
    assert not [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "features.labels"
    ]
    assert any("ratio 1.00" in r.getMessage() for r in caplog.records)
