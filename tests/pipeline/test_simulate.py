"""The simple world (`simulate.world: simple`): determinism, the input contract, observable
planted drivers, exact truth. The realistic world's tests are in test_world_realistic.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.settings import SimulateParams
from pipeline.simulator import tables
from pipeline.simulator.calendar import build_calendar, horizon_probability
from pipeline.simulator.texts import COMMENT_TEXTS, TICKET_TEXTS, WARNING_WORDS
from pipeline.simulator.world import (
    CHURN_TYPES,
    DRIVERS,
    EVENT_TYPES,
    LANGUAGES,
    LIFE_EVENT_PROBABILITY,
    LOW_ENGAGEMENT_LOGIN_DAYS,
    NOISE_COLUMNS,
    TOUCHPOINTS,
)

from helpers import churn

HORIZON = 30
TABLE_FILES = [f"{name}.parquet" for name in tables.TABLES] + ["simulation.json"]


def _params_file(tmp: Path, **simulate: object) -> Path:
    lines = ["simulate:"] + [f"  {k}: {v}" for k, v in simulate.items()]
    lines += ["label:", f"  horizon_days: {HORIZON}"]
    path = tmp / "params.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 simulated customers in 3 chunks (exercises chunk seeds and writers)."""
    tmp = tmp_path_factory.mktemp("sim")
    params = _params_file(tmp, world="simple", seed=7, customers=1500, chunk_size=500)
    assert churn("simulate", "--params", params, "--out-dir", tmp / "raw") == 0
    return tmp / "raw"


@pytest.fixture(scope="module")
def con(raw: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    for name in tables.TABLES:
        c.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{raw / name}.parquet')")
    # one row per customer-month at risk, with the raw-data churn outcome
    c.execute(
        """
        CREATE TABLE cm AS
        SELECT t.*, c.segment, c.plan, c.signup_date, c.marketing_opt_in, c.device_os,
               c.birth_month, ce.churn_date,
               coalesce(ce.churn_date > t.month_start
                        AND ce.churn_date < t.month_start + INTERVAL 1 MONTH, false)
                   AS churned_in_month
        FROM truth t JOIN customers c USING (customer_id)
        LEFT JOIN churn_events ce USING (customer_id)
        ORDER BY customer_id, month_start
        """
    )
    return c


@pytest.fixture(scope="module")
def meta(raw: Path) -> dict:
    return json.loads((raw / "simulation.json").read_text(encoding="utf-8"))


def _run(tmp: Path, name: str, seed: int) -> Path:
    params = SimulateParams(world="simple", seed=seed, customers=300, chunk_size=128)
    tables.simulate(params, HORIZON, tmp / name)
    return tmp / name


# ----------------------------------------------------------------------------- determinism
def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    a, b, c = _run(tmp_path, "a", 11), _run(tmp_path, "b", 11), _run(tmp_path, "c", 12)
    assert sorted(p.name for p in a.iterdir()) == sorted(TABLE_FILES)
    for name in TABLE_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("events.parquet", "customers.parquet", "truth.parquet"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_crash_leaves_previous_output_untouched(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    (out / "old.txt").write_text("previous run", encoding="utf-8")
    calls = {"n": 0}
    real = tables.simulate_chunk

    def failing_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(tables, "simulate_chunk", failing_chunk)
    with pytest.raises(RuntimeError, match="disk full"):
        tables.simulate(SimulateParams(customers=200, chunk_size=100), HORIZON, out)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no staging left behind


def test_bad_params_are_named() -> None:
    with pytest.raises(ValueError, match="start_date 2025-01-01 must be before"):
        build_calendar("2025-01-01", "2024-12-31")
    with pytest.raises(ValueError, match="first day of a month, found 2024-01-15"):
        build_calendar("2024-01-15", "2024-12-31")
    with pytest.raises(ValueError, match="customers"):
        tables.simulate(SimulateParams(customers=0), HORIZON, "unused")


# ----------------------------------------------------------------------------- contract
def test_tables_follow_the_input_contract(raw: Path) -> None:
    for name, schema in tables.SCHEMAS.items():
        table = pq.read_table(raw / f"{name}.parquet")
        assert table.schema.equals(schema), name
        assert table.schema.field("customer_id").type == pa.string()
        for field in table.schema:
            if pa.types.is_timestamp(field.type):
                assert field.type == pa.timestamp("us", tz="UTC"), (name, field.name)
    customers = pq.read_table(raw / "customers.parquet")
    ids = customers["customer_id"].to_pylist()
    assert ids[0] == "C0000001" and len(set(ids)) == len(ids) == 1500
    assert all(re.fullmatch(r"C\d{7}", i) for i in ids)


def test_values_are_in_range(con: duckdb.DuckDBPyConnection) -> None:
    bad = con.execute(
        """
        SELECT
          (SELECT count(*) FROM responses WHERE metric = 'csat' AND score NOT BETWEEN 1 AND 10),
          (SELECT count(*) FROM responses WHERE metric = 'nps' AND score NOT BETWEEN 0 AND 10),
          (SELECT count(*) FROM responses WHERE metric = 'nps' AND touchpoint <> 'relationship'),
          (SELECT count(*) FROM tickets WHERE satisfaction NOT BETWEEN 1 AND 10),
          (SELECT count(*) FROM tickets WHERE closed_at <= opened_at),
          (SELECT count(*) FROM tickets WHERE satisfaction IS NOT NULL AND closed_at IS NULL),
          (SELECT count(*) FROM events WHERE event_type = 'feature_use' AND feature IS NULL),
          (SELECT count(*) FROM events WHERE event_type IN ('login', 'payment') AND value <= 0),
          (SELECT count(*) FROM customers c JOIN customers d USING (customer_id)
             WHERE c.language <> CASE WHEN c.country IN ('US','GB','AU') THEN 'en'
               WHEN c.country IN ('CN','SG') THEN 'zh' WHEN c.country = 'KR' THEN 'ko'
               ELSE 'ru' END)
        """
    ).fetchone()
    assert bad == (0,) * 9
    kinds = con.execute("SELECT DISTINCT event_type FROM events").fetchall()
    assert {k for (k,) in kinds} == set(EVENT_TYPES)
    touchpoints = con.execute("SELECT DISTINCT touchpoint FROM responses").fetchall()
    assert {t for (t,) in touchpoints} == set(TOUCHPOINTS)
    # one login per customer per day at most
    dup = con.execute(
        "SELECT count(*) FROM (SELECT customer_id, ts::DATE d FROM events "
        "WHERE event_type = 'login' GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()[0]
    assert dup == 0


def test_nothing_happens_before_signup_or_after_churn(con: duckdb.DuckDBPyConnection) -> None:
    for table, ts in (
        ("events", "ts"),
        ("responses", "ts"),
        ("tickets", "opened_at"),
        ("tickets", "closed_at"),
        ("churn_events", "churn_date"),
    ):
        outside = con.execute(
            f"""
            SELECT count(*) FROM {table} x JOIN customers c USING (customer_id)
            LEFT JOIN churn_events ce USING (customer_id)
            WHERE x.{ts} < c.signup_date
               OR (ce.churn_date IS NOT NULL AND x.{ts} > ce.churn_date)
               OR x.{ts} >= TIMESTAMPTZ '2026-01-01 00:00:00+00'
               OR x.{ts} < TIMESTAMPTZ '2023-10-01 00:00:00+00'
            """
        ).fetchone()[0]
        assert outside == 0, (table, ts)
    in_range = con.execute(
        "SELECT min(churn_date) >= TIMESTAMPTZ '2024-01-01 00:00:00+00' FROM churn_events"
    ).fetchone()[0]
    assert in_range


def test_texts_are_in_the_customers_language_and_warnings_are_detectable() -> None:
    words = [w for ws in WARNING_WORDS.values() for w in ws]
    for lang in LANGUAGES:
        for group, (warning, neutral) in TICKET_TEXTS[lang].items():
            for text in warning:
                assert any(w in text.lower() for w in WARNING_WORDS[lang]), (lang, text)
            for text in neutral:
                assert not any(w in text.lower() for w in words), (lang, group, text)
        warning, neutral, positive = COMMENT_TEXTS[lang]
        assert all(any(w in t.lower() for w in WARNING_WORDS[lang]) for t in warning)
        assert not any(w in t.lower() for t in neutral + positive for w in words)
    scripts = {"zh": r"[\u4e00-\u9fff]", "ko": r"[\uac00-\ud7af]", "ru": r"[\u0400-\u04ff]"}
    for lang, pattern in scripts.items():
        texts = [t for g in TICKET_TEXTS[lang].values() for ts in g for t in ts]
        assert all(re.search(pattern, t) for t in texts), lang


def test_comments_follow_language_and_warnings_follow_low_scores(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = con.execute(
        """
        SELECT c.language, r.comment, r.score, r.metric FROM responses r
        JOIN customers c USING (customer_id) WHERE r.comment IS NOT NULL
        """
    ).fetchall()
    assert len(rows) > 500
    by_lang = {lang: {t for ts in COMMENT_TEXTS[lang] for t in ts} for lang in LANGUAGES}
    assert all(text in by_lang[lang] for lang, text, _, _ in rows)

    def warns(lang: str, text: str) -> bool:
        return any(w in text.lower() for w in WARNING_WORDS[lang])

    low = [warns(lang, t) for lang, t, s, m in rows if m == "csat" and s <= 5]
    high = [warns(lang, t) for lang, t, s, m in rows if m == "csat" and s >= 8]
    assert np.mean(low) > 0.5 and np.mean(high) < 0.15


# ----------------------------------------------------------------------------- observability
def _flag(con: duckdb.DuckDBPyConnection, source: str, days: int) -> np.ndarray:
    """Per customer-month (cm order): any row of `source` (customer_id, ts) in [m - days, m)."""
    return con.execute(
        f"""
        SELECT count(s.customer_id) > 0 FROM cm
        LEFT JOIN ({source}) s ON s.customer_id = cm.customer_id
          AND s.ts >= cm.month_start - INTERVAL {days} DAY AND s.ts < cm.month_start
        GROUP BY cm.customer_id, cm.month_start ORDER BY cm.customer_id, cm.month_start
        """
    ).fetchnumpy()["(count(s.customer_id) > 0)"]


def _contrib(con: duckdb.DuckDBPyConnection, driver: str) -> np.ndarray:
    return con.execute(
        f"SELECT contrib_{driver} FROM cm ORDER BY customer_id, month_start"
    ).fetchnumpy()[f"contrib_{driver}"]


def test_every_hazard_input_is_observable_before_the_month_start(
    con: duckdb.DuckDBPyConnection, meta: dict
) -> None:
    """Recompute each driver from the raw tables alone and find exactly the simulator's values."""
    coef = {d["name"]: d["coefficient"] for d in meta["drivers"]}
    words = [w for ws in meta["warning_words"].values() for w in ws]
    pattern = "|".join(re.escape(w) for w in words)
    flags = {
        "after_sales_csat_low": (
            "SELECT customer_id, ts FROM responses "
            "WHERE touchpoint = 'after_sales' AND metric = 'csat' AND score <= 5",
            90,
        ),
        "csat_low_other": (
            "SELECT customer_id, ts FROM responses "
            "WHERE touchpoint <> 'after_sales' AND metric = 'csat' AND score <= 5",
            90,
        ),
        "ticket_escalated": (
            "SELECT customer_id, opened_at AS ts FROM tickets WHERE escalated",
            90,
        ),
        "complaint_text": (
            f"SELECT customer_id, ts FROM responses "
            f"WHERE regexp_matches(lower(comment), '{pattern}') "
            f"UNION ALL SELECT customer_id, opened_at FROM tickets "
            f"WHERE regexp_matches(lower(text), '{pattern}')",
            90,
        ),
        "discount_request": (
            "SELECT customer_id, ts FROM events WHERE event_type = 'discount_request'",
            30,
        ),
        "payment_failure": (
            "SELECT customer_id, ts FROM events WHERE event_type = 'payment_failure'",
            30,
        ),
    }
    for driver, (source, days) in flags.items():
        observed = _flag(con, source, days)
        assert observed.mean() > 0.01, driver
        np.testing.assert_array_equal(observed * coef[driver], _contrib(con, driver), driver)

    # price increase x sensitivity of (segment, plan at signup)
    increased = _flag(
        con, "SELECT customer_id, ts FROM events WHERE event_type = 'price_change'", 90
    )
    seg_plan = con.execute(
        "SELECT segment, plan FROM cm ORDER BY customer_id, month_start"
    ).fetchall()
    sens = np.array([meta["price_sensitivity"][s][p] for s, p in seg_plan])
    np.testing.assert_allclose(
        increased * sens * coef["price_increase_sensitive"],
        _contrib(con, "price_increase_sensitive"),
    )
    # open ticket at the month start
    open_at = con.execute(
        """
        SELECT count(t.customer_id) > 0 AS f FROM cm LEFT JOIN tickets t
          ON t.customer_id = cm.customer_id AND t.opened_at < cm.month_start
         AND (t.closed_at IS NULL OR t.closed_at >= cm.month_start)
        GROUP BY cm.customer_id, cm.month_start ORDER BY cm.customer_id, cm.month_start
        """
    ).fetchnumpy()["f"]
    np.testing.assert_array_equal(open_at * coef["ticket_open"], _contrib(con, "ticket_open"))
    # login days in the last 30 days, tenure, plan
    rows = con.execute(
        """
        SELECT count(e.customer_id) AS logins,
               any_value(epoch(cm.month_start) - epoch(cm.signup_date)) / 86400 AS tenure,
               any_value(cm.plan) AS plan
        FROM cm LEFT JOIN events e ON e.customer_id = cm.customer_id
          AND e.event_type = 'login' AND e.ts >= cm.month_start - INTERVAL 30 DAY
          AND e.ts < cm.month_start
        GROUP BY cm.customer_id, cm.month_start ORDER BY cm.customer_id, cm.month_start
        """
    ).fetchnumpy()
    tenure_days = rows["tenure"]
    threshold = LOW_ENGAGEMENT_LOGIN_DAYS
    low = np.clip((threshold - rows["logins"]) / threshold, 0, 1) * (tenure_days >= 30)
    np.testing.assert_allclose(low * coef["low_engagement"], _contrib(con, "low_engagement"))
    np.testing.assert_array_equal(
        (tenure_days < 90) * coef["new_customer"], _contrib(con, "new_customer")
    )
    np.testing.assert_array_equal(
        (rows["plan"] == "basic") * coef["basic_plan"], _contrib(con, "basic_plan")
    )


# ----------------------------------------------------------------------------- planted effects
def _churn_rate(con: duckdb.DuckDBPyConnection, condition: str) -> tuple[float, float]:
    """Monthly churn rate of customer-months with and without `condition`."""
    with_, without = con.execute(
        f"""
        SELECT avg(churned_in_month::INT) FILTER (WHERE {condition}),
               avg(churned_in_month::INT) FILTER (WHERE NOT ({condition}))
        FROM cm
        """
    ).fetchone()
    return with_, without


def test_planted_drivers_raise_churn_in_the_raw_data(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE OR REPLACE TABLE flags AS
        SELECT cm.customer_id, cm.month_start,
          bool_or(r.touchpoint = 'after_sales' AND r.metric = 'csat' AND r.score <= 5)
            AS after_sales_low
        FROM cm LEFT JOIN responses r ON r.customer_id = cm.customer_id
          AND r.ts >= cm.month_start - INTERVAL 90 DAY AND r.ts < cm.month_start
        GROUP BY ALL
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE flags2 AS
        SELECT cm.customer_id, cm.month_start,
          bool_or(e.event_type = 'price_change') AS price_increase,
          bool_or(e.event_type = 'payment_failure'
                  AND e.ts >= cm.month_start - INTERVAL 30 DAY) AS payment_failure
        FROM cm LEFT JOIN events e ON e.customer_id = cm.customer_id
          AND e.event_type IN ('price_change', 'payment_failure')
          AND e.ts >= cm.month_start - INTERVAL 90 DAY AND e.ts < cm.month_start
        GROUP BY ALL
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE cm AS
        SELECT cm.*, coalesce(f.after_sales_low, false) AS after_sales_low,
               coalesce(g.price_increase, false) AS price_increase,
               coalesce(g.payment_failure, false) AS payment_failure
        FROM cm JOIN flags f USING (customer_id, month_start)
        JOIN flags2 g USING (customer_id, month_start)
        ORDER BY customer_id, month_start
        """
    )
    overall = con.execute("SELECT avg(churned_in_month::INT) FROM cm").fetchone()[0]
    assert 0.03 < overall < 0.09
    for condition, min_lift in (
        ("after_sales_low", 2.0),
        ("price_increase AND segment = 'consumer' AND plan IN ('basic', 'standard')", 2.0),
        ("payment_failure", 2.0),
    ):
        with_, without = _churn_rate(con, condition)
        assert with_ >= min_lift * without, (condition, with_, without)
    # price increases hardly matter for insensitive customers (enterprise)
    with_, without = _churn_rate(con, "price_increase AND segment = 'enterprise'")
    sensitive, _ = _churn_rate(con, "price_increase AND segment = 'consumer' AND plan = 'basic'")
    assert with_ < 0.6 * sensitive


def test_noise_attributes_have_no_material_effect(con: duckdb.DuckDBPyConnection) -> None:
    for condition in ("marketing_opt_in", "device_os = 'ios'", "birth_month <= 6"):
        with_, without = _churn_rate(con, condition)
        assert 0.75 < with_ / without < 1.33, (condition, with_, without)
    # and they are absent from the hazard: same true probability on both sides
    for condition in ("marketing_opt_in", "birth_month <= 6"):
        a, b = con.execute(
            f"SELECT avg(true_probability) FILTER (WHERE {condition}), "
            f"avg(true_probability) FILTER (WHERE NOT {condition}) FROM cm"
        ).fetchone()
        assert abs(a / b - 1) < 0.1, condition


# ----------------------------------------------------------------------------- truth
def test_truth_is_internally_consistent(con: duckdb.DuckDBPyConnection, meta: dict) -> None:
    contrib = " + ".join(f"contrib_{d['name']}" for d in meta["drivers"])
    worst = con.execute(
        f"""
        SELECT max(abs(hazard_dissatisfaction + hazard_economic + hazard_situational
                       - (contrib_baseline + {contrib}))),
               max(abs(prob_dissatisfaction + prob_economic + prob_situational
                       - true_probability)),
               max(abs(probability_this_month - (1 - (1 - {LIFE_EVENT_PROBABILITY})
                   * exp(-(hazard_dissatisfaction + hazard_economic + hazard_situational))))),
               min(true_probability), max(true_probability),
               count(*) FILTER (WHERE true_churn_type IS NOT NULL) - count(*) FILTER (
                   WHERE churned_in_month),
               count(*) FILTER (WHERE (true_churn_type IS NOT NULL) <> churned_in_month)
        FROM cm
        """
    ).fetchone()
    assert worst[0] < 1e-12 and worst[1] < 1e-12 and worst[2] < 1e-12
    assert 0 < worst[3] and worst[4] < 1
    assert worst[5] == 0 and worst[6] == 0
    # churn_events agree with truth: reason = true_churn_type in the churn month
    mismatch = con.execute(
        "SELECT count(*) FROM cm JOIN churn_events ce USING (customer_id) "
        "WHERE cm.churned_in_month AND cm.true_churn_type <> ce.churn_reason"
    ).fetchone()[0]
    assert mismatch == 0


def test_true_probability_is_calibrated_and_ranks_churners(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = con.execute(
        f"""
        SELECT true_probability,
               coalesce(churn_date > month_start
                        AND churn_date <= month_start + INTERVAL {HORIZON} DAY, false) AS y
        FROM cm WHERE month_start + INTERVAL {HORIZON} DAY <= TIMESTAMPTZ '2026-01-01 00:00:00+00'
        """
    ).fetchnumpy()
    p, y = rows["true_probability"], rows["y"].astype(float)
    se = np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(p.mean() - y.mean()) < 4 * se, (p.mean(), y.mean(), se)
    deciles = np.empty(len(p), np.int64)  # equal-size groups by rank (many p are tied)
    deciles[np.argsort(p, kind="stable")] = np.arange(len(p)) * 10 // len(p)
    rates = np.array([y[deciles == d].mean() for d in range(10)])
    assert rates[-1] > 3 * rates[0], rates
    assert np.corrcoef(np.arange(10), rates)[0, 1] > 0.85, rates
    # calibration within deciles: observed ≈ predicted
    predicted = np.array([p[deciles == d].mean() for d in range(10)])
    counts = np.array([(deciles == d).sum() for d in range(10)])
    z = (rates - predicted) / np.sqrt(predicted * (1 - predicted) / counts)
    assert np.all(np.abs(z) < 4.5), z


def test_horizon_probability_is_exact_within_the_month_and_frozen_beyond() -> None:
    cal = build_calendar("2024-01-01", "2024-12-31")
    p = np.array([0.0, 0.1, 1.0])
    k_feb = cal.first_scored + 1  # February 2024: 29 days
    np.testing.assert_allclose(horizon_probability(p, k_feb, cal, 29), p)
    np.testing.assert_allclose(horizon_probability(p, k_feb, cal, 10), p * 10 / 29)
    # 30 days from Feb 1: all of February, then 1 of March's 31 days at the same p
    np.testing.assert_allclose(horizon_probability(p, k_feb, cal, 30), p + (1 - p) * p / 31)


def test_simulation_json_describes_the_drivers(meta: dict) -> None:
    assert meta["rows"]["customers"] == 1500
    assert meta["horizon_days"] == HORIZON
    names = [d["name"] for d in meta["drivers"]]
    assert names == [d.name for d in DRIVERS]
    for d in meta["drivers"]:
        assert d["churn_type"] in CHURN_TYPES and d["observable"] and d["coefficient"] > 0
    assert set(meta["strongest_drivers"]) == {
        "price_increase_sensitive",
        "after_sales_csat_low",
        "payment_failure",
    }
    assert set(meta["noise_columns"]) == set(NOISE_COLUMNS)


def test_a_disabled_simulator_writes_only_a_note(tmp_path: Path) -> None:
    """Real-data presets switch the simulator off: its DVC output is a note, no data, no truth."""
    params = _params_file(tmp_path, enabled="false")
    assert churn("simulate", "--params", params, "--out-dir", tmp_path / "raw") == 0
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["README.md"]
    assert "simulate.enabled" in (tmp_path / "raw" / "README.md").read_text(encoding="utf-8")
