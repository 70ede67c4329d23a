"""Promotion as the business needs it: compared on the same rows, never a worse model, never from
`dvc exp run`, and `churn promote` to apply the rule (or force it) afterwards. Real LightGBM and a
real MLflow registry (sqlite in tmp_path)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from model_tables import make_model_table

from models import tracking

from helpers import churn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_stage import _project  # noqa: E402


def _champion() -> str:
    client = MlflowClient(tracking_uri=tracking.tracking_uri("sqlite:///mlflow.db"))
    return str(client.get_model_version_by_alias("churn-model", "champion").version)


def _decision() -> dict:
    return json.loads(Path("reports/promotion.json").read_text(encoding="utf-8"))


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    table, _ = make_model_table(customers=500, cutoffs=5, seed=3)
    return _project(tmp_path, table, None)


def test_experiments_never_promote_and_churn_promote_applies_the_rule(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = pd.read_parquet("data/processed/features.parquet")
    assert churn("train") == 0 and churn("evaluate") == 0
    assert _champion() == "1"

    # v2 learns from shuffled labels (the test cutoff keeps its real outcomes): it loses on the
    # same rows, so evaluate and promote keep v1
    shuffled = good.copy()
    before_test = shuffled["cutoff"] < shuffled["cutoff"].max()
    labels = shuffled.loc[before_test, "churned"].to_numpy()
    shuffled.loc[before_test, "churned"] = np.random.default_rng(1).permutation(labels)
    shuffled.to_parquet("data/processed/features.parquet", index=False)
    assert churn("train") == 0 and churn("evaluate") == 0
    lost = _decision()
    assert lost["promoted"] is False and lost["challenger_wins"] is False
    assert lost["champion_version"] == "1" and lost["champion_value"] > lost["challenger_value"]
    assert churn("promote") == 0
    assert _decision()["promoted"] is False and _champion() == "1"
    assert churn("promote", "--force") == 0  # the operator decides
    assert _decision()["mode"] == "forced" and _champion() == "2"

    # v3 learns from the real labels again and beats v2 on the same rows, but inside
    # `dvc exp run` (DVC sets DVC_EXP_NAME) it is only compared, not promoted
    good.to_parquet("data/processed/features.parquet", index=False)
    monkeypatch.setenv("DVC_EXP_NAME", "lr-0.05")
    assert churn("train") == 0 and churn("evaluate") == 0
    wins = _decision()
    assert wins["challenger_wins"] is True and wins["promoted"] is False
    assert wins["mode"] == "experiment" and "churn promote" in wins["reason"]
    assert _champion() == "2"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert churn("promote") == 0
    assert _decision()["promoted"] is True and _champion() == "3"


def test_an_old_tolerance_key_names_its_replacement(project: Path) -> None:
    Path("params.yaml").write_text("registry:\n  tolerance: 0.005\n", encoding="utf-8")
    assert churn("evaluate") == 2
