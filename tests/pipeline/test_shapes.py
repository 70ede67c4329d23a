"""Every stage writes every declared output for a business unlike the default one (issue 13,
point 3): a marketplace's order log with no fees at all and a 60-level `city` segment, through
the CLI on a small simulated project whose interim tables lose their fees and gain the city."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from models.segments import OTHER_LEVEL

from helpers import churn, inside

ROOT = Path(__file__).resolve().parents[2]
FEE_EVENTS = ("plan_change", "price_change")


def _without_fees_with_a_city(interim: Path) -> None:
    """No customers.monthly_fee, no fee values on events; a `city` of 60 levels on customers
    (city_00 .. city_07 hold most customers, one each for the 52 others)."""
    customers = pd.read_parquet(interim / "customers.parquet").drop(columns="monthly_fee")
    n = len(customers)
    big = np.array([f"city_{i % 8:02d}" for i in range(n)], dtype=object)
    big[:52] = [f"city_{i:02d}" for i in range(8, 60)]
    customers["city"] = big
    customers.to_parquet(interim / "customers.parquet", index=False)
    events = pd.read_parquet(interim / "events.parquet")
    events = events.loc[~events["event_type"].isin(FEE_EVENTS)]
    events.to_parquet(interim / "events.parquet", index=False)


@pytest.fixture(scope="module")
def marketplace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Simulate, ingest, strip the fees, then label, featurize, train and evaluate."""
    root = tmp_path_factory.mktemp("marketplace")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    settings = yaml.safe_load((ROOT / "settings.yaml").read_text(encoding="utf-8"))
    params["simulate"].update(customers=900, start_date="2024-06-01")
    params["label"]["first_cutoff"] = "2025-03-01"
    params["train"].update(min_positives=10, num_boost_round=100)
    params["evaluate"].update(bootstrap=10, segments=["plan", "city"])
    params["value"]["kpi_segments"] = ["plan", "city"]
    params["explain"].update(segments=["plan", "city"], sample_size=400)
    settings["featurize"]["lexicon"] = str(ROOT / settings["featurize"]["lexicon"])
    settings["alert"]["rules"] = str(ROOT / settings["alert"]["rules"])
    for name, data in (("params.yaml", params), ("settings.yaml", settings)):
        (root / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with inside(root):
        for stage in ("simulate", "ingest"):
            assert churn(stage) == 0, stage
        _without_fees_with_a_city(root / settings["paths"]["interim"])
        for stage in ("label", "featurize", "train", "evaluate"):
            assert churn(stage) == 0, stage
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _read(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def test_score_writes_the_priority_list_ranked_by_churn_probability(marketplace: Path) -> None:
    with inside(marketplace):
        assert churn("score", "--model", "artifacts/model") == 0
        scores = pd.read_parquet("data/scores/scores.parquet")
        priority = pd.read_csv("reports/priority.csv")
        report = _read("reports/score.json")
    assert len(scores) > 0 and scores["clv"].isna().all() and scores["value_tier"].isna().all()
    assert len(priority) == len(scores)
    assert priority["churn_probability"].is_monotonic_decreasing
    assert priority["priority_rank"].tolist() == list(range(1, len(priority) + 1))
    assert report["notes"][0].startswith("no monthly fee column `current_monthly_fee`")


def test_kpis_have_no_revenue_and_fold_the_city(marketplace: Path) -> None:
    with inside(marketplace):
        assert churn("kpis") == 0
        report = _read("reports/kpis.json")
        monthly = pd.read_csv("reports/kpis/monthly_churn.csv")
    assert report["churn"]["all"]["nrr"] is None and report["churn"]["all"]["churn_rate"]
    assert report["notes"][0].startswith("no revenue per period")
    assert any(n.startswith("city: 60 levels; the 8 largest") for n in report["notes"])
    cities = set(monthly.loc[monthly["segment_column"] == "city", "segment"])
    assert len(cities) == 9 and OTHER_LEVEL in cities


def test_evaluate_says_what_became_of_the_city(marketplace: Path) -> None:
    """More than featurize.max_categories levels: city is not a feature, hence not in the model
    table; the metrics say so instead of leaving it out in silence."""
    with inside(marketplace):
        metrics = _read("reports/metrics.json")
        segments = _read("reports/segments.json")
    assert "plan" in segments and "city" not in segments
    assert any(
        n.startswith("city: not a column of the model table") for n in metrics["segment_notes"]
    )


def test_explain_and_alert_run_after_score(marketplace: Path) -> None:
    with inside(marketplace):
        assert churn("score", "--model", "artifacts/model") == 0
        assert churn("alert-backtest") == 0
        assert churn("explain") == 0
        assert churn("alert") == 0
        page = Path("reports/drivers/index.html").read_text(encoding="utf-8")
    assert "segment column &#x27;city&#x27; is not in the model table" in page
