"""The realistic world (`simulate.world: realistic`, the default): deterministic, contract-valid
tables, neutral ratings that raise the true hazard, a regime shift from its date, a truth that
the features cannot read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from models.evaluation.truth import group_importance, truth_world
from pipeline.settings import SimulateParams
from pipeline.simulator import tables
from pipeline.simulator.world import (
    FRAILTY_RATIONALE,
    FRAILTY_SHAPE,
    LATENT_DRIVERS,
    REALISTIC_LIFE_EVENT_PROBABILITY,
    REGIME_SHIFT_COUNTRY,
    REGIME_SHIFT_DATE,
)

ROOT = Path(__file__).resolve().parents[2]
HORIZON = 30
CONTRACT = ("customers", "churn_events", "events", "responses", "tickets")


def _run(out: Path, seed: int, customers: int = 300, chunk_size: int = 128) -> Path:
    params = SimulateParams(
        world="realistic", seed=seed, customers=customers, chunk_size=chunk_size
    )
    tables.simulate(params, HORIZON, out)
    return out


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 realistic customers in 2 chunks."""
    return _run(tmp_path_factory.mktemp("real") / "raw", seed=5, customers=4000, chunk_size=2000)


@pytest.fixture(scope="module")
def con(raw: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    for name in (*CONTRACT, "truth"):
        c.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{raw / name}.parquet')")
    return c


def test_the_default_world_is_realistic() -> None:
    assert SimulateParams().world == "realistic"
    with pytest.raises(ValueError, match="simulate.world"):
        tables.simulate_chunk(1, 10, np.random.SeedSequence(1), None, HORIZON, 0.5, "flat")  # type: ignore[arg-type]


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    a, b, c = (_run(tmp_path / n, s) for n, s in (("a", 11), ("b", 11), ("c", 12)))
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted([f"{t}.parquet" for t in tables.TABLES] + ["simulation.json"])
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("events.parquet", "responses.parquet", "truth.parquet"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_tables_follow_the_same_contract_as_the_simple_world(
    raw: Path, con: duckdb.DuckDBPyConnection
) -> None:
    for name in CONTRACT:
        assert pq.read_schema(raw / f"{name}.parquet").equals(tables.SCHEMAS[name]), name
    ids = pq.read_table(raw / "customers.parquet")["customer_id"].to_pylist()
    assert len(set(ids)) == 4000 and all(re.fullmatch(r"C\d{7}", i) for i in ids)
    # nothing before signup or after churn (closed_at may follow the churn: it is then null)
    late = con.execute(
        """
        SELECT count(*) FROM (
            SELECT customer_id, ts FROM events UNION ALL SELECT customer_id, ts FROM responses
            UNION ALL SELECT customer_id, opened_at FROM tickets) x
        JOIN customers c USING (customer_id) LEFT JOIN churn_events ce USING (customer_id)
        WHERE x.ts < c.signup_date OR x.ts >= coalesce(ce.churn_date, TIMESTAMPTZ '2100-01-01')
        """
    ).fetchone()[0]
    assert late == 0
    scores = con.execute(
        "SELECT min(score), max(score), count(DISTINCT touchpoint), count(*) FROM responses"
    ).fetchone()
    assert 0 <= scores[0] and scores[1] <= 10 and scores[2] == 6 and scores[3] > 0


def test_surveys_are_answered_by_a_biased_minority(con: duckdb.DuckDBPyConnection) -> None:
    sent, answered = con.execute(
        "SELECT (SELECT count(*) FROM events WHERE event_type = 'survey_sent'), "
        "(SELECT count(*) FROM responses)"
    ).fetchone()
    assert answered < 0.35 * sent, (answered, sent)
    # some customers never answer at all in the whole period
    silent = con.execute(
        "SELECT avg((customer_id NOT IN (SELECT customer_id FROM responses))::int) "
        "FROM customers WHERE signup_date < TIMESTAMPTZ '2025-01-01 00:00:00+00'"
    ).fetchone()[0]
    assert silent > 0.1, silent


def test_truth_is_internally_consistent(raw: Path, con: duckdb.DuckDBPyConnection) -> None:
    contrib = " + ".join(f"contrib_{d.name}" for d in LATENT_DRIVERS)
    worst = con.execute(
        f"""
        SELECT max(abs(hazard_dissatisfaction + hazard_economic + hazard_situational
                       - (contrib_baseline + {contrib}))),
               max(abs(prob_dissatisfaction + prob_economic + prob_situational
                       - true_probability)),
               max(abs(probability_this_month - (1 - (1 - {REALISTIC_LIFE_EVENT_PROBABILITY})
                   * exp(-(hazard_dissatisfaction + hazard_economic + hazard_situational))))),
               min(true_probability), max(true_probability)
        FROM truth
        """
    ).fetchone()
    assert worst[0] < 1e-12 and worst[1] < 1e-12 and worst[2] < 1e-12
    assert 0 < worst[3] and worst[4] < 1
    world, groups = truth_world(raw / "truth.parquet")
    meta = json.loads((raw / "simulation.json").read_text(encoding="utf-8"))
    assert world == meta["world"] == "realistic"
    assert groups == meta["proxy_feature_groups"]
    assert meta["regime_shift"]["country"] == REGIME_SHIFT_COUNTRY
    assert groups["frailty"] == []  # unobserved: no proxy


def test_the_frailty_is_a_hidden_customer_constant_of_the_documented_size(
    raw: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """The frailty implied by the truth (H / (H - contrib_frailty)) is one value per customer,
    mean 1 and spread 1/sqrt(FRAILTY_SHAPE) as documented; it is one driver among the others,
    not larger than the observable ones together."""
    contrib = " + ".join(f"contrib_{d.name}" for d in LATENT_DRIVERS)
    per_customer = con.execute(
        f"""
        WITH h AS (SELECT customer_id, contrib_frailty,
                          contrib_baseline + {contrib} AS hazard FROM truth)
        SELECT customer_id, min(hazard / (hazard - contrib_frailty)) AS lo,
               max(hazard / (hazard - contrib_frailty)) AS hi
        FROM h GROUP BY customer_id
        """
    ).fetchnumpy()
    assert np.allclose(per_customer["lo"], per_customer["hi"], rtol=1e-9)
    frailty = per_customer["lo"]
    assert abs(frailty.mean() - 1.0) < 0.05
    assert abs(frailty.std() / frailty.mean() - FRAILTY_SHAPE**-0.5) < 0.05
    observable = " + ".join(f"avg(abs(contrib_{d.name}))" for d in LATENT_DRIVERS if d.proxy_group)
    frail, others = con.execute(
        f"SELECT avg(abs(contrib_frailty)), {observable} FROM truth"
    ).fetchone()
    assert frail < others, (frail, others)
    meta = json.loads((raw / "simulation.json").read_text(encoding="utf-8"))
    assert meta["frailty"] == {"shape": FRAILTY_SHAPE, "why": FRAILTY_RATIONALE}


def test_neutral_ratings_raise_the_true_hazard(con: duckdb.DuckDBPyConnection) -> None:
    """Customer-months whose latest CSAT in the 90 days before the month is neutral (5-7) carry a
    higher true churn probability than those whose latest is high (8-10)."""
    rows = con.execute(
        """
        WITH latest AS (
            SELECT t.customer_id, t.month_start, t.true_probability,
                   arg_max(r.score, r.ts) AS last_score
            FROM truth t JOIN responses r
              ON r.customer_id = t.customer_id AND r.metric = 'csat'
             AND r.ts < t.month_start AND r.ts >= t.month_start - INTERVAL 90 DAY
            GROUP BY ALL)
        SELECT CASE WHEN last_score >= 8 THEN 'high' WHEN last_score >= 5 THEN 'neutral'
                    ELSE 'low' END AS band,
               avg(true_probability) AS p, count(*) AS n
        FROM latest GROUP BY band
        """
    ).fetchall()
    p = {band: (prob, n) for band, prob, n in rows}
    assert p["neutral"][1] > 200 and p["high"][1] > 200, p
    assert p["neutral"][0] > 1.2 * p["high"][0], p


def test_the_regime_shift_changes_hazards_from_its_date(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        f"""
        SELECT c.country = '{REGIME_SHIFT_COUNTRY}' AS shifted,
               t.month_start >= TIMESTAMPTZ '{REGIME_SHIFT_DATE} 00:00:00+00' AS after,
               avg(t.probability_this_month) AS p, max(t.contrib_competitor) AS competitor
        FROM truth t JOIN customers c USING (customer_id) GROUP BY ALL
        """
    ).fetchall()
    f = {(shifted, after): (p, comp) for shifted, after, p, comp in rows}
    # no competitor anywhere before the date, nor outside the country after it
    assert f[(True, False)][1] == 0 and f[(False, True)][1] == 0 and f[(False, False)][1] == 0
    assert f[(True, True)][1] > 0
    # difference in differences of the monthly churn probability: the country's rises more
    rise_shifted = f[(True, True)][0] / f[(True, False)][0]
    rise_others = f[(False, True)][0] / f[(False, False)][0]
    assert rise_shifted > 1.15 * rise_others, (rise_shifted, rise_others)


def test_truth_and_latent_states_are_not_readable_by_the_features() -> None:
    """The truth file is no ingest source, no feature code names it, and no contract table holds
    a truth column (latent contributions, hazards, true probabilities)."""
    settings = (ROOT / "settings.yaml").read_text(encoding="utf-8")
    sources = settings.split("tables:", 2)[1].split("memory_limit")[0]
    assert "truth" not in sources
    for path in (ROOT / "features").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "truth.parquet" not in text and "paths.truth" not in text, path
    hidden = set(tables.truth_schema("realistic").names) - {"customer_id"}
    for name in CONTRACT:
        assert not hidden & set(tables.SCHEMAS[name].names), name


def test_proxy_groups_sum_mean_abs_shap_and_leave_other_features_alone() -> None:
    import pandas as pd

    importance = pd.Series(
        {"logins_30d": 0.3, "csat_mean_90d": 0.25, "tenure_days": 0.2, "login_minutes_30d": 0.1}
    )
    totals, members = group_importance(
        importance, {"need": ["login*"], "satisfaction": ["csat_*"], "stress": ["payment*"]}
    )
    assert list(totals.index) == [
        "group:need",
        "group:satisfaction",
        "tenure_days",
        "group:stress",
    ]
    assert totals["group:need"] == pytest.approx(0.4)
    assert members == {
        "need": ["logins_30d", "login_minutes_30d"],
        "satisfaction": ["csat_mean_90d"],
        "stress": [],
    }
