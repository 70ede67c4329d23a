"""SHAP driver analysis (models/explain/drivers.py) and the `explain` stage end to end."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from model_tables import make_model_table
from typer.testing import CliRunner

from features.base.params import ParamsError, from_dict
from features.catalog import GROUP_CHURN_TYPE
from models import tracking
from models.explain import drivers as ex
from models.settings import ExplainParams
from models.training.split import TrainingDataError
from pipeline.cli import app

from helpers import churn, inside

# ------------------------------------------------------------------ a tiny project on disk

GROUPS = {
    "days_since_last_login": "engagement",
    "csat_support_mean_90d": "experience",
    "csat_billing_mean_90d": "experience",
    "csat_billing_last": "experience",
    "payment_failures_90d": "economic",
    "has_discount": "economic",
    "tenure_days": "contract",
    "plan": "contract",
    "noise": "profile",
    "country": "profile",
    "current_monthly_fee": "economic",
}

FEES = {"basic": 20.0, "pro": 50.0, "enterprise": 150.0}
# what a reader must never see in the report: numpy reprs, nan, None, pandas' missing markers
REPR_PATTERNS = re.compile(r"np\.\w+\(|\bnan\b|\bNaN\b|\bNone\b|<NA>|\bNaT\b|float64|\binf\b")


def visible_text(page: str) -> str:
    """The report's HTML without its embedded images (base64 can spell anything)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


PARAMS = {
    "train": {
        "learning_rate": 0.1,
        "num_boost_round": 200,
        "early_stopping_rounds": 20,
        "min_positives": 20,
        "min_data_in_leaf": 40,
    },
    "featurize": {"touchpoints": ["support", "billing"]},
    "explain": {"sample_size": 900, "segment_min_rows": 20, "dependence_top_n": 3},
}


def touchpoint_table(customers: int = 400, cutoffs: int = 4, seed: int = 7) -> pd.DataFrame:
    """The conftest model table plus two touchpoints: support carries the planted CSAT driver,
    billing is rated (higher on average) but has no effect on churn; and a monthly fee by plan
    (value.fee_column's default name) for the money at risk."""
    table, _ = make_model_table(customers=customers, cutoffs=cutoffs, seed=seed)
    rng = np.random.default_rng(seed)
    billing = np.where(rng.random(len(table)) < 0.4, np.nan, rng.normal(8.5, 1.0, len(table)))
    fee = table["plan"].map(FEES).to_numpy(dtype=float)
    return table.rename(columns={"csat_mean_90d": "csat_support_mean_90d"}).assign(
        csat_billing_mean_90d=billing.clip(1, 10),
        csat_billing_last=np.round(billing).clip(1, 10),
        current_monthly_fee=fee,
    )


def build_project(root: Path, alerts: dict | None = None) -> Path:
    """features.parquet, catalog and params.yaml in `root`, then the real `train` stage."""

    table = touchpoint_table()
    (root / "data" / "processed").mkdir(parents=True)
    table.to_parquet(root / "data/processed/features.parquet", index=False)
    catalog = [
        {"name": c, "group": g, "description": f"plain words for {c}"} for c, g in GROUPS.items()
    ]
    (root / "data/processed/feature_catalog.json").write_text(json.dumps(catalog))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    if alerts is not None:
        (root / "reports").mkdir(exist_ok=True)
        (root / "reports/alerts_backtest.json").write_text(json.dumps(alerts))
    assert churn("train") == 0
    return root


ALERTS = {
    "horizon_days": 30,
    "base_rate": 0.08,
    "cutoffs": ["2024-10-01"],
    "rules": [
        {
            "rule": "after_sales_csat_low",
            "level": "high",
            "alerted": 120,
            "churned": 30,
            "precision": 0.25,
            "recall": 0.4,
            "lift": 3.1,
        }
    ],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny project; each test chdirs into it (module scope: train once)."""
    root = tmp_path_factory.mktemp("explain_project")
    with inside(root):
        build_project(root, alerts=ALERTS)
    return root


@pytest.fixture()
def in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project)
    return project


# ------------------------------------------------------------------ sampling


@pytest.mark.parametrize("size", [1, 7, 50, 333, 999])
def test_stratified_sample_keeps_label_shares_and_has_no_duplicates(size: int) -> None:
    frame = pd.DataFrame({"id": range(1000), "churned": np.arange(1000) % 10 == 0})
    sample = ex.stratified_sample(frame, "churned", size, seed=3)
    assert len(sample) == max(size, 2)  # each label keeps at least one row
    assert sample["id"].is_unique and sample["id"].is_monotonic_increasing
    expected_pos = max(1, round(size * 0.1))
    assert abs(int(sample["churned"].sum()) - expected_pos) <= 1


def test_stratified_sample_is_seeded_and_returns_everything_when_small() -> None:
    frame = pd.DataFrame({"id": range(500), "churned": np.arange(500) % 4 == 0})
    a = ex.stratified_sample(frame, "churned", 100, seed=1)
    b = ex.stratified_sample(frame, "churned", 100, seed=1)
    c = ex.stratified_sample(frame, "churned", 100, seed=2)
    assert a["id"].tolist() == b["id"].tolist() != c["id"].tolist()
    assert len(ex.stratified_sample(frame, "churned", 500, seed=1)) == 500


def test_stratified_sample_names_a_missing_label() -> None:
    with pytest.raises(TrainingDataError, match="'churned'"):
        ex.stratified_sample(pd.DataFrame({"x": [1, 2]}), "churned", 1, seed=0)


# ------------------------------------------------------------------ SHAP values


@pytest.fixture(scope="module")
def booster_and_frame() -> tuple[lgb.Booster, pd.DataFrame]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    y = (x["a"] + 0.3 * rng.normal(size=600) > 0.5).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1},
        lgb.Dataset(x, label=y),
        num_boost_round=20,
    )
    return booster, x


def test_shap_values_add_up_to_the_raw_score(booster_and_frame) -> None:
    booster, x = booster_and_frame
    result = ex.shap_values(booster, x)
    assert result.values.shape == (len(x), 2) and result.features == ["a", "b"]
    raw = booster.predict(x, raw_score=True)
    bias = booster.predict(x, pred_contrib=True)[:, -1]
    np.testing.assert_allclose(result.values.sum(axis=1) + bias, raw, atol=1e-9)
    assert result.base_value == pytest.approx(bias.mean())


def test_shap_values_reject_a_wrong_layout(booster_and_frame) -> None:
    booster, x = booster_and_frame
    with pytest.raises(ValueError, match="pred_contrib layout"):
        ex.shap_values(booster, x, contributions=lambda b, f: np.zeros((len(f), 2)))


# ------------------------------------------------------------------ importance tables


def _catalog() -> pd.DataFrame:
    return ex.catalog_frame(
        [
            {"name": "up", "group": "experience", "description": "rises with risk"},
            {"name": "down", "group": "engagement", "description": "falls with risk"},
            {"name": "plan", "group": "contract", "description": "the plan"},
        ]
    )


def _result(n: int = 400, seed: int = 0) -> ex.ShapResult:
    rng = np.random.default_rng(seed)
    up, down, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["basic", "pro"], n)
    data = pd.DataFrame(
        {
            "up": up,
            "down": np.where(rng.random(n) < 0.2, np.nan, down),
            "noise": noise,
            "plan": pd.Categorical(plan),
        }
    )
    values = np.column_stack(
        [2.0 * up, -1.0 * down, 0.05 * rng.normal(size=n), np.where(plan == "basic", 0.3, -0.3)]
    )
    return ex.ShapResult(values=values, base_value=-2.0, features=list(data.columns), data=data)


def test_global_importance_ranks_describes_and_gives_directions() -> None:
    table = ex.global_importance(_result(), _catalog())
    assert table["feature"].tolist()[:2] == ["up", "down"]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["share"].sum() == pytest.approx(1.0)
    by = table.set_index("feature")
    assert (
        by.loc["up", "direction"] == ex.RAISES and by.loc["up", "description"] == "rises with risk"
    )
    assert by.loc["down", "direction"] == ex.LOWERS
    assert by.loc["down", "missing_share"] == pytest.approx(0.2, abs=0.06)
    assert (
        by.loc["noise", "group"] == ex.NOT_IN_CATALOG and by.loc["noise", "description"] == "noise"
    )
    assert by.loc["plan", "kind"] == "categorical" and by.loc["plan", "riskiest_level"] == "basic"
    assert by.loc["up", "churn_type"] == GROUP_CHURN_TYPE["experience"]


def test_group_and_churn_type_sums_add_up() -> None:
    table = ex.global_importance(_result(), _catalog())
    groups = ex.group_importance(table)
    types = ex.churn_type_importance(table)
    total = table["mean_abs_shap"].sum()
    assert groups["mean_abs_shap"].sum() == pytest.approx(total)
    assert types["mean_abs_shap"].sum() == pytest.approx(total)
    g = groups.set_index("group")
    assert g.loc["experience", "top_feature"] == "up" and g.loc["experience", "churn_type"] == (
        "dissatisfaction"
    )
    t = types.set_index("churn_type")
    assert t.loc["dissatisfaction", "share"] == pytest.approx(
        table.set_index("feature").loc["up", "share"]
    )
    assert "contract" in t.loc["other", "groups"]


def test_segment_drivers_find_each_segments_own_driver_and_skip_absent_columns() -> None:
    n = 200
    rng = np.random.default_rng(1)
    region = np.array(["north"] * 100 + ["south"] * 90 + ["tiny"] * 10)
    values = np.zeros((n, 2))
    values[region == "north", 0] = rng.normal(0, 1, 100)  # a drives the north
    values[region == "south", 1] = rng.normal(0.5, 1, 90)  # b drives the south
    result = ex.ShapResult(
        values=values,
        base_value=0.0,
        features=["a", "b"],
        data=pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)}),
    )
    rows = pd.DataFrame({"region": region, "churned": np.arange(n) % 5 == 0})
    table, notes = ex.segment_drivers(
        result, rows, ["region", "value_tier"], _catalog(), top_k=1, min_rows=20
    )
    top = table[table["kind"] == ex.DRIVER].set_index("level")
    assert set(top.index) == {"north", "south"}  # "tiny" has fewer than min_rows customers
    assert top.loc["north", "feature"] == "a" and top.loc["south", "feature"] == "b"
    assert top.loc["south", "mean_shap"] > 0 and top.loc["south", "mean_pp"] > 0
    assert top.loc["north", "customers"] == 100
    assert top.loc["north", "churn_rate"] == pytest.approx(rows["churned"][:100].mean())
    assert any("value_tier" in note and "skipped" in note for note in notes)
    assert any("region" in note and "1 of 3 levels not shown" in note for note in notes)
    assert any(note.endswith("sampled customers): tiny") for note in notes)


def test_a_sixty_level_segment_shows_its_largest_levels_and_groups_the_rest() -> None:
    sizes = [60 - i for i in range(10)] + [10] * 50  # 60 levels, city_00 the largest
    city = np.repeat([f"city_{i:02d}" for i in range(60)], sizes)
    n = len(city)
    rng = np.random.default_rng(2)
    result = ex.ShapResult(
        values=rng.normal(size=(n, 2)),
        base_value=0.0,
        features=["a", "b"],
        data=pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)}),
    )
    rows = pd.DataFrame({"city": city, "churned": np.arange(n) % 4 == 0})
    table, notes = ex.segment_drivers(
        result, rows, ["city"], _catalog(), top_k=1, max_levels=8, min_rows=30
    )
    shown = table[table["kind"] == ex.DRIVER].set_index("level")["customers"]
    assert set(shown.index) == {*(f"city_{i:02d}" for i in range(8)), "(other)"}
    assert shown["(other)"] == n - sum(sizes[:8])  # every customer in exactly one level
    folded = ", ".join(f"city_{i:02d}" for i in range(8, 60))
    assert notes == [
        f"city: 60 levels; the 8 largest are shown and the other 52 are grouped as "
        f"'(other)': {folded}"
    ]


def test_probability_effects_are_the_change_in_calibrated_probability_in_pp() -> None:
    values = np.array([[1.0, 0.0, -0.5], [0.2, 0.3, 0.0]])
    base = -2.0
    effects = ex.probability_effects(values, base, ex.sigmoid)
    raw = base + values.sum(axis=1)
    expected = 100 * (ex.sigmoid(raw)[:, None] - ex.sigmoid(raw[:, None] - values))
    np.testing.assert_allclose(effects, expected)
    assert effects[0, 1] == 0.0 and effects[0, 0] > 0 > effects[0, 2]
    # through a calibrator that halves every probability, the effects halve too
    halved = ex.probability_effects(values, base, lambda r: 0.5 * ex.sigmoid(r))
    np.testing.assert_allclose(halved, effects / 2)
    result = ex.ShapResult(values=values, base_value=base, features=["a", "b", "c"],
                           data=pd.DataFrame({"a": [1, 2], "b": [1, 2], "c": [1, 2]}))  # fmt: skip
    np.testing.assert_allclose(result.pp(), effects)  # no effects given: the sigmoid


def test_global_importance_is_in_percentage_points() -> None:
    result = _result()
    table = ex.global_importance(result, _catalog()).set_index("feature")
    pp = result.pp()
    assert table.loc["up", "mean_abs_pp"] == pytest.approx(np.abs(pp[:, 0]).mean())
    assert table.loc["up", "mean_pp"] == pytest.approx(pp[:, 0].mean())
    assert table.loc["up", "mean_abs_shap"] == pytest.approx(np.abs(result.values[:, 0]).mean())
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["mean_abs_pp"].is_monotonic_decreasing  # ranked by pp


def test_segments_that_share_their_drivers_still_show_what_sets_them_apart() -> None:
    """Every level has the same strongest driver (a), but b pushes one level up and the other
    down: the "apart" rows name b with opposite signs."""
    n = 400
    rng = np.random.default_rng(5)
    tier = np.array(["gold"] * 200 + ["bronze"] * 200)
    values = np.column_stack(
        [rng.normal(0, 1.5, n), np.where(tier == "gold", -0.3, 0.3), rng.normal(0, 0.01, n)]
    )
    data = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": 0.0})
    result = ex.ShapResult(values=values, base_value=-2.5, features=["a", "b", "c"], data=data)
    rows = pd.DataFrame({"tier": tier, "churned": np.arange(n) % 10 == 0})
    table, _ = ex.segment_drivers(result, rows, ["tier"], _catalog(), top_k=1, min_rows=20)
    drivers = table[table["kind"] == ex.DRIVER].set_index("level")
    apart = table[table["kind"] == ex.APART].set_index("level")
    assert set(drivers["feature"]) == {"a"} and set(drivers["overall_rank"]) == {1}
    assert set(apart["feature"]) == {"b"}
    assert apart.loc["bronze", "difference_pp"] > 0 > apart.loc["gold", "difference_pp"]
    assert (apart["difference_pp"].abs() > 2 * apart["difference_se"]).all()  # not noise


def test_segment_churn_rates_and_levels_come_from_every_test_row() -> None:
    """With the population given, a level's customers, churn rate and value at risk are those of
    every test row, not of the sample; the largest levels are chosen by the population."""
    n = 100
    result = ex.ShapResult(
        values=np.full((n, 1), 0.1), base_value=-2.0, features=["a"],
        data=pd.DataFrame({"a": np.zeros(n)}),
    )  # fmt: skip
    rows = pd.DataFrame(
        {"plan": ["basic"] * 60 + ["pro"] * 40, "churned": [True] * 30 + [False] * 70}
    )
    population = pd.DataFrame(
        {
            "plan": ["basic"] * 500 + ["pro"] * 300 + ["rare"] * 10,
            "churned": [True] * 35 + [False] * 465 + [True] * 3 + [False] * 307,
            "value_at_risk": [1.0] * 500 + [2.0] * 300 + [5.0] * 10,
        }
    )
    table, notes = ex.segment_drivers(
        result, rows, ["plan"], _catalog(), top_k=1, max_levels=2, min_rows=20,
        population=population,
    )  # fmt: skip
    levels = table[table["kind"] == ex.DRIVER].set_index("level")
    assert levels.loc["basic", "customers"] == 500 and levels.loc["basic", "sampled"] == 60
    assert levels.loc["basic", "churn_rate"] == pytest.approx(35 / 500)
    assert levels.loc["pro", "value_at_risk"] == pytest.approx(600.0)
    assert any("grouped as '(other)': rare" in note for note in notes)


def test_value_at_risk_is_probability_times_clv_and_says_when_there_is_no_fee() -> None:
    from models.explain.money import value_at_risk
    from models.settings import ValueParams
    from models.value import lifetime_months

    vp = ValueParams(fee_column="fee", margin_rate=0.5, base_churn_rate=0.05)
    rows = pd.DataFrame({"fee": [10.0, 20.0, np.nan]})
    p = np.array([0.1, 0.2, 0.3])
    out, money = value_at_risk(rows, p, vp)
    lifetime = lifetime_months(p, vp)
    np.testing.assert_allclose(out["clv"][:2], [5 * lifetime, 10 * lifetime])
    assert money["available"] and money["value_at_risk"] == pytest.approx(2.5 * lifetime)
    assert np.isnan(out["value_at_risk"].iloc[2]) and money["customers_with_fee"] == 2
    out, money = value_at_risk(rows.drop(columns="fee"), p, vp)
    assert not money["available"] and "'fee'" in money["note"] and "no money" in money["note"]
    assert out["value_at_risk"].isna().all()


def test_money_by_top_reason_adds_up_to_the_total() -> None:
    values = np.array([[1.0, 0.1], [0.2, 0.9], [0.1, 0.8], [-0.5, -0.2]])
    result = ex.ShapResult(values=values, base_value=-2.0, features=["a", "b"],
                           data=pd.DataFrame({"a": range(4), "b": range(4)}))  # fmt: skip
    table = ex.top_reason_money(result, np.array([10.0, 20.0, 30.0, 40.0]), 1000.0, 8, _catalog())
    by = table.set_index("feature")
    assert by.loc["b", "customers"] == 2 and by.loc["b", "value_at_risk"] == pytest.approx(500.0)
    assert by.loc[ex.NO_REASON, "customers"] == 1  # every push lowers the risk
    assert table["value_at_risk"].sum() == pytest.approx(1000.0)
    assert table["estimated_customers"].sum() == pytest.approx(8)
    assert table["feature"].iloc[0] == "b"  # largest money first


def test_money_a_driver_adds_counts_only_the_risk_it_raises() -> None:
    values = np.array([[1.0, -1.0], [0.5, 0.0]])
    result = ex.ShapResult(values=values, base_value=-2.0, features=["a", "b"],
                           data=pd.DataFrame({"a": [0, 1], "b": [0, 1]}))  # fmt: skip
    added = ex.value_at_risk_added(result, np.array([100.0, 200.0]), population_rows=10)
    pp = result.pp()
    assert added["a"] == pytest.approx((pp[0, 0] * 100 + pp[1, 0] * 200) / 100 * 10 / 2)
    assert added["b"] == 0.0  # b only lowers the risk
    assert ex.value_at_risk_added(result, None, 10).isna().all()


def test_touchpoint_features_take_the_longest_matching_name() -> None:
    features = ["csat_after_sales_mean_90d", "csat_sales_last", "csat_mean_90d", "logins_7d"]
    found = ex.touchpoint_features(features, ["sales", "after_sales"])
    assert found == {"sales": ["csat_sales_last"], "after_sales": ["csat_after_sales_mean_90d"]}


def test_touchpoint_analysis_importance_performance_and_quadrants() -> None:
    importance = pd.DataFrame(
        {
            "feature": [
                "csat_support_mean_90d",
                "csat_support_last",
                "csat_billing_mean_90d",
                "csat_billing_last",
                "logins_7d",
            ],
            "mean_abs_shap": [0.3, 0.1, 0.02, 0.01, 0.57],
        }
    )
    rows = pd.DataFrame(
        {
            "csat_support_mean_90d": [2.0, 4.0, np.nan, np.nan],
            "csat_support_last": [2.0, 8.0, np.nan, np.nan],
            "csat_billing_mean_90d": [9.0, 8.0, 10.0, np.nan],
            "csat_billing_last": [9.0, 3.0, 10.0, np.nan],
        }
    )
    table = ex.touchpoint_analysis(
        importance, rows, ["billing", "support", "renewal"], "mean_90d", 8
    )
    t = table.set_index("touchpoint")
    assert table["touchpoint"].tolist()[0] == "support"  # most important first
    assert t.loc["support", "importance"] == pytest.approx(0.4)
    assert t.loc["support", "importance_share"] == pytest.approx(0.4)
    assert t.loc["support", "performance"] == pytest.approx(3.0)  # rated customers only
    assert t.loc["support", "customers_rated"] == 2 and t.loc["support", "pct_rated"] == 0.5
    assert t.loc["support", "pct_satisfied"] == pytest.approx(0.5)
    assert t.loc["billing", "pct_satisfied"] == pytest.approx(2 / 3)
    assert t.loc["support", "quadrant"].startswith("fix first")
    assert t.loc["billing", "quadrant"].startswith("maintain")
    assert t.loc["renewal", "quadrant"] == "no ratings" and t.loc["renewal", "features"] == 0


def test_alerts_backtest_schema_errors_name_the_file_and_the_key() -> None:
    table, header = ex.alerts_backtest_table(ALERTS, "reports/alerts_backtest.json")
    assert table.loc[0, "lift"] == 3.1 and header["horizon_days"] == 30
    bad = {**ALERTS, "rules": [{"rule": "x", "level": "high"}]}
    with pytest.raises(TrainingDataError, match=r"alerts_backtest.json.*rules\[0\].*precision"):
        ex.alerts_backtest_table(bad, "reports/alerts_backtest.json")
    with pytest.raises(TrainingDataError, match="'rules' list"):
        ex.alerts_backtest_table([], "reports/alerts_backtest.json")


def test_explain_params_reject_unknown_keys_and_non_positive_sizes() -> None:
    with pytest.raises(ParamsError, match="sample_sizee"):
        from_dict(ExplainParams, {"sample_sizee": 10})
    with pytest.raises(ParamsError, match="explain.sample_size"):
        ExplainParams(sample_size=0)


# ------------------------------------------------------------------ the stage end to end


def test_explain_stage_writes_the_report_and_logs_it_to_the_models_run(in_project: Path) -> None:
    assert churn("explain") == 0
    out = in_project / "reports/drivers"
    for name in (
        "index.html",
        "importance.csv",
        "groups.csv",
        "churn_types.csv",
        "segments.csv",
        "touchpoints.csv",
        "alerts_backtest.csv",
        "report.json",
    ):
        assert (out / name).exists(), name

    importance = pd.read_csv(out / "importance.csv")
    ranked = importance["feature"].tolist()
    # planted drivers (conftest: login recency, CSAT, payment failures) rank above pure noise
    assert ranked.index("days_since_last_login") < ranked.index("noise")
    assert ranked.index("payment_failures_90d") < ranked.index("noise")
    login = importance.set_index("feature").loc["days_since_last_login"]
    assert login["direction"] == ex.RAISES and login["description"].startswith("plain words")

    touch = pd.read_csv(out / "touchpoints.csv").set_index("touchpoint")
    assert touch.loc["support", "importance"] > touch.loc["billing", "importance"]
    assert touch.loc["billing", "performance"] > touch.loc["support", "performance"]

    segments = pd.read_csv(out / "segments.csv")
    assert {"plan", "country", "value_tier"} == set(segments["segment"])  # tiers: from the fee

    header = json.loads((out / "report.json").read_text())
    summary = json.loads((in_project / "reports/train.json").read_text())
    assert header["run_id"] == summary["run_id"]
    assert header["sample_rows"] == 400  # the test cutoff has 400 rows, fewer than sample_size
    assert any(n.startswith("country: 30 levels") for n in header["segment_notes"])

    page = (out / "index.html").read_text()
    assert f"version {summary['model_version']}" in page and summary["run_id"] in page
    assert header["test_cutoffs"][0] in page
    assert "after_sales_csat_low" in page  # the alert backtest table
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert page.count('src="data:image/png;base64,') >= 6
    # business units: pp, money at risk, one churn rate with its definition, a glossary
    assert "pp</td>" in page and "Mean |SHAP|" not in page
    assert '<section id="money">' in page and "Money at risk at the test cutoff" in page
    assert header["money"]["available"] and header["money"]["value_at_risk"] > 0
    assert '<section id="glossary">' in page and "Net revenue retention" in page
    assert "share of the customers active at the test cutoff" in page
    assert header["data_source"].startswith("simulated business, ")  # which world, in the page
    assert header["data_source"] in page
    # realised churn by rating band, when the model table has a recent mean rating
    has_rating = (
        "csat_mean_90d" in pd.read_parquet(in_project / "data/processed/features.parquet").columns
    )
    assert (out / "rating_bands.csv").exists() == has_rating
    assert ("Ratings and churn" in page) == has_rating
    assert not REPR_PATTERNS.search(visible_text(page)), REPR_PATTERNS.search(visible_text(page))
    reasons = pd.read_csv(out / "top_reasons.csv")
    assert reasons["value_at_risk"].sum() == pytest.approx(header["money"]["value_at_risk"])
    levels = segments[segments["kind"] == "driver"].drop_duplicates(["segment", "level"])
    predictions = pd.read_parquet(in_project / "data/processed/test_predictions.parquet")
    features = pd.read_parquet(in_project / "data/processed/features.parquet")
    test = predictions.merge(
        features[["customer_id", "cutoff", "plan"]], on=["customer_id", "cutoff"]
    )
    basic = levels.set_index(["segment", "level"]).loc[("plan", "basic")]
    assert basic["customers"] == (test["plan"] == "basic").sum()
    assert basic["churn_rate"] == pytest.approx(test.loc[test["plan"] == "basic", "churned"].mean())

    client = MlflowClient(tracking_uri=tracking.tracking_uri("sqlite:///mlflow.db"))
    logged = {a.path for a in client.list_artifacts(summary["run_id"], "drivers")}
    assert {"drivers/index.html", "drivers/importance.csv"} <= logged


def test_explain_without_an_alert_backtest_says_so(in_project: Path) -> None:
    yaml_params = {**PARAMS, "paths": {"backtest_report": "absent.json"}}
    Path("params_no_alerts.yaml").write_text(yaml.safe_dump(yaml_params))
    assert churn("explain", "--params", "params_no_alerts.yaml") == 0
    page = Path("reports/drivers/index.html").read_text()
    assert "absent.json not found" in page
    assert not Path("reports/drivers/alerts_backtest.csv").exists()


def test_explain_without_a_fee_says_so_instead_of_showing_money(in_project: Path) -> None:
    no_fee = {**PARAMS, "value": {"fee_column": "no_such_fee"}}
    no_fee["paths"] = {"drivers": "reports/drivers_no_fee"}
    Path("params_no_fee.yaml").write_text(yaml.safe_dump(no_fee))
    assert churn("explain", "--params", "params_no_fee.yaml") == 0
    page = Path("reports/drivers_no_fee/index.html").read_text()
    assert "no monthly fee" in page and "'no_such_fee'" in page.replace("&#x27;", "'")
    assert "Money at risk at the test cutoff" not in page and "Money at risk</th>" not in page
    assert not REPR_PATTERNS.search(visible_text(page))


def test_explain_without_a_model_exits_2_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("{}\n")
    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(app, ["explain", "--params", "params.yaml"])
    assert result.exit_code == 2, result.output
    assert "test_predictions.parquet" in caplog.text and "churn train" in caplog.text
    assert not Path("reports/drivers").exists()


# ------------------------------------------------------------------ report rendering


def _png_ok(uri: str) -> bool:
    import base64

    head = "data:image/png;base64,"
    return uri.startswith(head) and base64.b64decode(uri[len(head) :])[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_renders_without_touchpoints_segments_or_alerts() -> None:
    from pipeline.reporting import html as report
    from pipeline.reporting import shap_figures

    result = _result()
    importance = ex.global_importance(result, _catalog())
    touchpoints = ex.touchpoint_analysis(importance, result.data, ["support"])
    assert not shap_figures.has_ratings(touchpoints)
    images, dependence = shap_figures.draw_figures(
        result,
        importance,
        ex.group_importance(importance),
        ex.churn_type_importance(importance),
        touchpoints,
        dependence_top_n=4,  # includes the categorical `plan` and `down` with missing values
    )
    assert "touchpoints" not in images and all(_png_ok(u) for u in images.values())
    assert [d[0] for d in dependence] == importance["feature"].tolist()[:4]
    assert all(_png_ok(uri) for _, _, uri in dependence)
    segments, notes = ex.segment_drivers(
        result, pd.DataFrame(index=range(400)), ["plan"], _catalog()
    )
    page = report.render_html(
        report.ReportContent(
            header={"model_name": "m", "model_version": "3", "run_id": "r1"},
            importance=importance,
            groups=ex.group_importance(importance),
            churn_types=ex.churn_type_importance(importance),
            segments=segments,
            segment_notes=notes,
            touchpoints=touchpoints,
            images=images,
            dependence=dependence,
            alerts_note="no backtest yet",
        )
    )
    for key, _title in report.SECTIONS:
        assert f'<section id="{key}">' in page
    assert "No touchpoint ratings" in page and "no backtest yet" in page
    assert "segment column &#x27;plan&#x27; is not in the model table" in page
    assert "rises with risk" in page  # catalog descriptions, not only column names
    assert '<section id="glossary">' in page and "Money at risk was not computed" in page


def test_report_shows_no_repr_nan_or_none_strings() -> None:
    from pipeline.reporting import html as report

    assert report.clean_text("constant in training rows (value np.float64(nan))") == (
        "constant in training rows (value missing)"
    )
    assert report.clean_text("np.float64(0.25) and np.int64(3)") == "0.25 and 3"
    assert report.clean_text("financial nano-plan") == "financial nano-plan"  # words stay
    frame = pd.DataFrame(
        {"a": [np.nan, None, 1.5], "b": ["x", None, np.float64(np.nan)], "c": [pd.NA, 1, 2]}
    )
    table = report.html_table(frame, [("a", "A", "pp"), ("b", "B", ""), ("c", "C", "int")])
    assert not REPR_PATTERNS.search(table) and table.count(report.MISSING) == 5
    body = report.leakage_section(
        [{"column": "x", "auc": np.float64(np.nan), "rule": "x <= np.float64(1.0)",
          "filled_share": None, "reasons": ["own AUC nan"], "kept": False}],
        {"ces_mean_90d": "constant in training rows (value np.float64(nan))"},
    )  # fmt: skip
    assert not REPR_PATTERNS.search(body), body
    assert "x &lt;= 1.0" in body and "(value missing)" in body


def test_report_escapes_catalog_text_and_keeps_plot_titles_renderable() -> None:
    from pipeline.reporting import html as report
    from pipeline.reporting import shap_figures

    frame = pd.DataFrame({"description": ["<b>price</b> (e.g. 'too expensive', 太贵, 비싸요)"]})
    html = report.html_table(frame, [("description", "What", "")])
    assert "&lt;b&gt;price&lt;/b&gt;" in html and "<b>price" not in html
    assert shap_figures._wrap(frame.loc[0, "description"], 70) == "<b>price</b>"


def test_explain_logs_a_warning_when_the_mlflow_run_is_unknown(
    in_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = {**PARAMS, "mlflow": {"tracking_uri": "sqlite:///other.db"}}
    other["paths"] = {"drivers": "reports/drivers_other"}
    Path("params_other.yaml").write_text(yaml.safe_dump(other))
    with caplog.at_level(logging.WARNING):
        assert churn("explain", "--params", "params_other.yaml") == 0
    assert "not found" in caplog.text and "driver report not logged" in caplog.text
    assert Path("reports/drivers_other/index.html").exists()


def test_rating_bands_count_every_customer_once_with_their_churn_rate() -> None:
    rows = pd.DataFrame(
        {
            "csat_mean_90d": [2.0, 4.9, 5.0, 6.5, 7.9, 8.0, 10.0, np.nan, np.nan, 9.0],
            "churned": [1, 1, 1, 1, 0, 0, 0, 1, 0, 0],
        }
    )
    probability = np.linspace(0.1, 1.0, 10)
    bands = ex.rating_bands(rows, "churned", probability).set_index("band")
    assert bands["customers"].sum() == len(rows)
    assert bands.loc["low (below 5)", ["customers", "churned"]].tolist() == [2, 2]
    neutral = bands.loc["neutral (5 to below 8)"]
    assert (neutral["customers"], neutral["churned"]) == (3, 2)
    assert neutral["churn_rate"] == pytest.approx(2 / 3)
    assert neutral["mean_probability"] == pytest.approx(probability[2:5].mean())
    assert bands.loc["high (8 and above)", "churn_rate"] == 0.0
    assert bands.loc["no rating", "churn_rate"] == 0.5
    assert ex.rating_bands(rows.drop(columns="csat_mean_90d"), "churned").empty


def _rated(
    n: int, neutral_churned: int, high_churned: int, cutoff: str = "2025-01-01"
) -> pd.DataFrame:
    """n neutral (6.0) and n high (9.0) raters, customers N0.. and H0.., at one cutoff."""
    return pd.DataFrame(
        {
            "customer_id": [f"N{i}" for i in range(n)] + [f"H{i}" for i in range(n)],
            "cutoff": pd.Timestamp(cutoff, tz="UTC"),
            "csat_mean_90d": [6.0] * n + [9.0] * n,
            "churned": [1] * neutral_churned
            + [0] * (n - neutral_churned)
            + [1] * high_churned
            + [0] * (n - high_churned),
        }
    )


def test_the_rating_band_sentence_says_when_one_cutoff_cannot_tell() -> None:
    def bands(n: int, neutral_churned: int, high_churned: int) -> pd.DataFrame:
        return ex.rating_bands(
            _rated(n, neutral_churned, high_churned), "churned", np.full(2 * n, 0.05)
        )

    small = ex.rating_bands_sentence(bands(50, 4, 3))
    assert "8.0 %" in small and "6.0 %" in small and "too few rated customers" in small
    assert "puts them at 5.0 % and 5.0 %" in small and "labelled cutoffs" not in small
    large = ex.rating_bands_sentence(bands(5000, 600, 300))
    assert "neutral raters left more often" in large and "+6.0 pp" in large
    reverse = ex.rating_bands_sentence(bands(5000, 300, 600))
    assert "high raters left more often" in reverse and "-6.0 pp" in reverse
    assert ex.rating_bands_sentence(pd.DataFrame()) == ""


def test_the_clustered_interval_counts_a_customer_once_across_cutoffs() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.2).astype(float)
    first = np.arange(400) < 200
    one = ex.clustered_rate_difference(y, first, ~first, np.arange(400))
    p1, p2 = y[first].mean(), y[~first].mean()
    half = 1.959964 * np.sqrt(p1 * (1 - p1) / 200 + p2 * (1 - p2) / 200)
    assert one["difference"] == pytest.approx(p1 - p2)
    assert one["high"] - one["difference"] == pytest.approx(half, rel=1e-5)
    # the same customers seen at 4 cutoffs: 4x the rows, no new information
    repeated = ex.clustered_rate_difference(
        np.tile(y, 4), np.tile(first, 4), np.tile(~first, 4), np.tile(np.arange(400), 4)
    )
    assert repeated["difference"] == pytest.approx(one["difference"])
    assert repeated["high"] - repeated["low"] == pytest.approx(one["high"] - one["low"])
    # as 4x as many different customers, the interval halves
    fresh = ex.clustered_rate_difference(
        np.tile(y, 4), np.tile(first, 4), np.tile(~first, 4), np.arange(1600)
    )
    assert fresh["high"] - fresh["low"] == pytest.approx((one["high"] - one["low"]) / 2)


def test_rating_bands_pool_every_labelled_cutoff_and_show_the_models_survey_effect() -> None:
    test = _rated(50, 2, 4, "2025-03-01")  # the test cutoff alone: high raters ahead
    history = pd.concat(
        [_rated(2000, 240, 120, f"2024-{m:02d}-01") for m in range(1, 13)]
        + [test, test.assign(churned=np.nan, cutoff=pd.Timestamp("2025-04-01", tz="UTC"))]
    )
    effect = pd.Series(
        np.r_[np.full(10, 1.5), np.full(10, -0.5)], index=[*range(10), *range(50, 60)]
    )
    bands = ex.rating_bands(
        test, "churned", np.full(100, 0.05), history=history, rating_effect=effect
    )
    by = bands.set_index("band")
    neutral, high = by.loc["neutral (5 to below 8)"], by.loc["high (8 and above)"]
    # the unlabelled cutoff is left out; the test cutoff's own figures stay beside the pooled ones
    assert neutral["rows_all_cutoffs"] == 12 * 2000 + 50
    assert neutral["customers_all_cutoffs"] == 2000
    assert neutral["churn_rate_all_cutoffs"] == pytest.approx((12 * 240 + 2) / (12 * 2000 + 50))
    assert (neutral["customers"], neutral["churned"], high["churned"]) == (50, 2, 4)
    assert (neutral["rating_effect_pp"], high["rating_effect_pp"]) == (1.5, -0.5)
    assert (neutral["sample_customers"], by.loc["no rating", "sample_customers"]) == (10, 0)
    assert bands.attrs["cutoffs"] == 13
    sentence = ex.rating_bands_sentence(bands)
    assert "Over the 13 labelled cutoffs" in sentence
    assert "neutral raters left more often" in sentence  # pooled, though one cutoff says otherwise
    assert "At the test cutoff alone: 4.0 % of 50 against 8.0 % of 50" in sentence
    assert "+1.50 pp" in sentence and "-0.50 pp" in sentence
