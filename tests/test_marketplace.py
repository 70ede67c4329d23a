"""A hand-made non-subscription business through the real `dvc repro`: a marketplace's orders,
deliveries and reviews (no fees, no contracts, churn = no repeat purchase), review comments in
Portuguese and Japanese, a 60-level city. Every stage writes its declared outputs, no renewal or fee
feature is built, and the Portuguese and Japanese mentions are counted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_end_to_end import BIN, _copy_project, _declared_outputs, _run, commit_and_repro  # noqa: E402

pytestmark = pytest.mark.slow

COMPLAINTS = [
    "Muito caro, não vale o preço.",  # pt: price
    "A entrega atrasou demais, péssimo atendimento.",  # pt: speed, service
    "Vou cancelar minha conta.",  # pt: cancel intent
    "値段が高いです。",  # ja: price
    "配送が遅い。対応が悪い。",  # ja: speed, service
    "解約したいです。",  # ja: cancel intent
]
PRAISE = ["Ótimo, recomendo!", "とても良い商品でした。", "Chegou rápido, tudo certo."]


def _marketplace(root: Path, customers: int = 1200, seed: int = 5) -> None:
    """Orders over 2024, a hidden propensity to stop buying that shows in low review scores and
    complaint comments; deliveries and reviews follow orders (they are not purchases)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    cities = [f"city_{i:02d}" for i in range(60)]
    rows_c, rows_e, rows_r = [], [], []
    for i in range(customers):
        cid = f"m{i:05d}"
        signup = start + pd.Timedelta(days=int(rng.integers(0, 120)))
        unhappy = rng.random() < 0.35
        stop = signup + pd.Timedelta(days=int(rng.integers(60, 330))) if unhappy else None
        rows_c.append((cid, signup, cities[int(rng.zipf(1.3)) % 60]))
        day = signup
        while day < pd.Timestamp("2024-12-31", tz="UTC"):
            if stop is not None and day >= stop:
                break
            rows_e.append((cid, day, "purchase", float(rng.gamma(2.0, 30.0))))
            rows_e.append((cid, day + pd.Timedelta(days=3), "delivery", None))
            if rng.random() < 0.6:
                review_day = day + pd.Timedelta(days=5)
                near_stop = stop is not None and (stop - day).days < 90
                score = int(rng.integers(1, 5)) if near_stop else int(rng.integers(6, 11))
                text = (
                    COMPLAINTS[int(rng.integers(len(COMPLAINTS)))]
                    if near_stop
                    else (PRAISE[int(rng.integers(len(PRAISE)))])
                )
                rows_r.append((cid, review_day, "review", "csat", score, text))
                rows_e.append((cid, review_day, "review", None))
            day = day + pd.Timedelta(days=int(rng.integers(10, 45)))
    src = root / "marketplace"
    src.mkdir()
    pd.DataFrame(rows_c, columns=["customer_id", "signup_date", "city"]).to_csv(
        src / "customers.csv", index=False
    )
    pd.DataFrame(rows_e, columns=["customer_id", "ts", "event_type", "value"]).to_csv(
        src / "events.csv", index=False
    )
    pd.DataFrame(
        rows_r, columns=["customer_id", "ts", "touchpoint", "metric", "score", "comment"]
    ).to_csv(src / "responses.csv", index=False)


RULES = {
    "default_owner": "call_centre",
    "rules": [
        {
            "name": "low_review",
            "description": "A review scored 4 or less.",
            "action": "Call about the order.",
            "source": "responses",
            "condition": "score <= 4",
            "level": "high",
        },
        {
            "name": "cancel_words",
            "description": "A review that says the customer will leave.",
            "source": "responses",
            "condition": "mentions(cancel_intent)",
            "level": "critical",
        },
    ],
}

PRESET = {
    "simulate": {"enabled": False},
    "paths": {"sources": "marketplace"},
    "ingest": {
        "tables": {
            "customers": {"path": "marketplace/customers.csv"},
            "events": {"path": "marketplace/events.csv"},
            "responses": {"path": "marketplace/responses.csv"},
        },
        "now": "2025-01-01T00:00:00Z",
    },
    "label": {
        "definition": "inactivity",
        "activity_event_types": ["purchase"],
        "first_cutoff": "2024-05-01",
        "horizon_days": 60,
        "inactivity_lookback_days": 120,
    },
    "split": {"valid_cutoffs": 1, "test_cutoffs": 1},
    "train": {"min_positives": 10, "min_negatives": 10, "num_boost_round": 300},
    "featurize": {
        "event_types": ["purchase"],
        "event_value_names": {"purchase": "amount"},
        "economic_event_types": [],
        "fee_event_types": [],
        "plan_change_event_type": "",
        "touchpoints": ["review"],
        "ticket_categories": [],
        "contract_columns": [],
    },
    "evaluate": {"segments": ["city"], "bootstrap": 20, "truth": {"check": False}},
    "explain": {"segments": ["city"], "sample_size": 500},
    "value": {"kpi_segments": ["city"]},
    "alert": {"rules": "marketplace/alerts.yaml"},
    "mlflow": {"experiment": "churn-marketplace"},
    "registry": {"model_name": "churn-model-marketplace"},
    "score": {"model": "models:/churn-model-marketplace@champion"},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("marketplace")
    _copy_project(dest)
    _marketplace(dest)
    (dest / "marketplace" / "alerts.yaml").write_text(yaml.safe_dump(RULES), encoding="utf-8")
    preset = dest / "marketplace" / "preset.yaml"
    preset.write_text(yaml.safe_dump(PRESET, allow_unicode=True), encoding="utf-8")
    result = _run([str(BIN / "churn"), "preset", str(preset)], dest)
    assert result.returncode == 0, result.stderr[-2000:]
    return commit_and_repro(dest)


def test_every_stage_writes_its_declared_outputs(project: Path) -> None:
    missing = [str(p.relative_to(project)) for p in _declared_outputs(project) if not p.exists()]
    assert missing == []
    assert not (project / "data/raw/customers.parquet").exists()  # the simulator stayed off
    priority = pd.read_csv(project / "reports/priority.csv")
    assert len(priority) > 0  # no fee: every customer, riskiest first


def test_no_renewal_or_fee_feature_is_built(project: Path) -> None:
    catalog = json.loads((project / "data/processed/feature_catalog.json").read_text())
    names = {f["name"] for f in catalog}
    assert "days_to_next_renewal" not in names
    assert not [n for n in names if "monthly_fee" in n or n.startswith("fee_")]
    families = json.loads((project / "data/processed/feature_families.json").read_text())
    assert families["economic.fee"]["built"] is False
    assert families["contract.renewal"]["built"] is False


def test_portuguese_and_japanese_mentions_are_counted(project: Path) -> None:
    table = pd.read_parquet(project / "data/processed/features.parquet")
    for topic in ("price", "speed", "service", "cancel_intent"):
        column = f"text_{topic}_mentions_90d"
        assert column in table.columns and table[column].sum() > 0, column
    responses = pd.read_csv(project / "marketplace/responses.csv")
    japanese = responses["comment"].str.contains("解約")
    assert japanese.any()  # the Japanese cancel-intent comments are among those counted


def test_deliveries_and_reviews_do_not_unchurn(project: Path) -> None:
    """Only purchases count as activity: every labelled churner bought nothing in the window,
    however many deliveries and reviews came in it."""
    labels = pd.read_parquet(project / "data/processed/labels.parquet")
    events = pd.read_csv(project / "marketplace/events.csv", parse_dates=["ts"])
    assert labels["churned"].any() and not labels["churned"].all()
    churned = labels[labels["churned"].astype(bool)].head(200)
    purchases = events[events["event_type"] == "purchase"]
    for row in churned.itertuples():
        cutoff = pd.Timestamp(row.cutoff)
        bought = purchases[
            (purchases["customer_id"] == row.customer_id)
            & (purchases["ts"] >= cutoff)
            & (purchases["ts"] < cutoff + pd.Timedelta(days=60))
        ]
        assert bought.empty, (row.customer_id, cutoff)
