"""Stages `train` and `evaluate` end to end in a temporary project: real LightGBM, real MLflow
(sqlite store and registry in tmp_path), real files; bad inputs exit with code 2 and a message."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from model_tables import make_model_table
from typer.testing import CliRunner

from models import tracking
from models.evaluation.truth import truth_check
from pipeline.cli import app

from helpers import churn, inside

PARAMS = {
    "train": {
        "learning_rate": 0.1,
        "num_boost_round": 300,
        "early_stopping_rounds": 20,
        "min_positives": 20,
    },
    "evaluate": {
        "bootstrap": 50,
        "truth": {
            "driver_features": {
                "disengagement": ["days_since_last_login"],
                "payment": ["payment_failures_90d"],
            }
        },
    },
}


def _project(root: Path, table: pd.DataFrame, truth: pd.DataFrame | None) -> Path:
    (root / "data" / "processed").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    table.to_parquet(root / "data/processed/features.parquet", index=False)
    catalog = [{"name": c, "group": "engagement", "description": c} for c in table.columns[4:]]
    (root / "data/processed/feature_catalog.json").write_text(json.dumps(catalog))
    if truth is not None:
        truth.to_parquet(root / "data/raw/truth.parquet", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return root


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    table, truth = make_model_table(customers=500, cutoffs=5, seed=3)
    rng = np.random.default_rng(0)
    truth["contrib_disengagement"] = 0.09 * table["days_since_last_login"].to_numpy()
    truth["contrib_payment"] = 0.8 * table["payment_failures_90d"].to_numpy()
    truth["contrib_noise"] = rng.normal(0, 0.01, len(truth))
    return _project(tmp_path, table, truth)


def test_train_and_evaluate_end_to_end_then_a_worse_challenger_is_not_promoted(
    project: Path,
) -> None:
    assert churn("train") == 0
    assert churn("evaluate") == 0

    for path in (
        "artifacts/model/MLmodel",
        "artifacts/model/artifacts/booster.txt",
        "data/processed/test_predictions.parquet",
        "reports/train.json",
        "reports/metrics.json",
        "reports/truth.json",
        "reports/promotion.json",
        "reports/plots/roc/model.csv",
        "reports/plots/lift/rule.csv",
    ):
        assert (project / path).exists(), path
    metrics = json.loads(Path("reports/metrics.json").read_text())
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "recall_at_10"):
        assert key in metrics and key in metrics["baselines"]["logreg"]
    assert set(metrics["baselines"]) == {"logreg", "rule"}
    assert metrics["ci95"]["roc_auc"][0] < metrics["roc_auc"] < metrics["ci95"]["roc_auc"][1]
    assert {"plan", "country", "tenure_band"} <= set(metrics["segments_roc_auc"])
    # train.refit (default): ours and both baselines trained on the train + valid cutoffs, ours
    # and the rule selected on the valid cutoff; the test cutoff in none of them
    summary = json.loads(Path("reports/train.json").read_text())
    split = summary["split"]
    seen = sorted(split["train"]["cutoffs"] + split["valid"]["cutoffs"])
    assert split["test"]["cutoffs"] == metrics["test_cutoffs"]
    for entry in (metrics, *metrics["baselines"].values()):
        assert entry["trained_on_cutoffs"] == seen
        assert not set(entry["trained_on_cutoffs"]) & set(metrics["test_cutoffs"])
    assert metrics["selected_on_cutoffs"] == split["valid"]["cutoffs"]
    assert metrics["baselines"]["rule"]["selected_on_cutoffs"] == split["valid"]["cutoffs"]
    assert summary["trained_on_cutoffs"] == seen
    refit = summary["refit"]
    assert refit["rows"] == split["train"]["rows"] + split["valid"]["rows"]
    assert refit["rounds"] == min(
        PARAMS["train"]["num_boost_round"],
        round(summary["best_iteration"] * refit["rows"] / split["train"]["rows"]),
    )
    truth = json.loads(Path("reports/truth.json").read_text())
    assert truth["skipped"] is False and truth["rows_matched"] == truth["rows"]
    assert truth["oracle_roc_auc"] > 0.6 and truth["mean_abs_probability_error"] < 0.1
    assert {d["driver"] for d in truth["drivers"]} == {"disengagement", "payment", "noise"}

    # The saved MLflow model predicts the calibrated probabilities written for evaluate.
    preds = pd.read_parquet("data/processed/test_predictions.parquet")
    test = pd.read_parquet("data/processed/features.parquet")
    test = test[test["cutoff"] == test["cutoff"].max()].reset_index(drop=True)
    pyfunc = mlflow.pyfunc.load_model("artifacts/model")
    np.testing.assert_allclose(pyfunc.predict(test).to_numpy(), preds["p_model"], rtol=1e-9)

    first = json.loads(Path("reports/promotion.json").read_text())
    assert first["promoted"] is True and first["reason"] == "no champion yet"
    client = MlflowClient(tracking_uri=tracking.tracking_uri("sqlite:///mlflow.db"))
    run = client.get_run(summary["run_id"])
    assert "test_pr_auc" in run.data.metrics and "test_logreg_roc_auc" in run.data.metrics
    assert "valid_roc_auc" in run.data.metrics and run.data.params["lgb.deterministic"] == "True"
    assert run.data.params["train.refit"] == "True"
    assert run.data.params["refit_rounds"] == str(refit["rounds"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model", "reports", "feature_catalog.json"} <= artifacts

    # A challenger trained on shuffled labels must not replace the champion.
    table = pd.read_parquet("data/processed/features.parquet")
    before_test = table["cutoff"] < table["cutoff"].max()  # the test outcomes stay real
    labels = table.loc[before_test, "churned"].to_numpy()
    table.loc[before_test, "churned"] = np.random.default_rng(1).permutation(labels)
    table.to_parquet("data/processed/features.parquet", index=False)
    assert churn("train") == 0
    assert churn("evaluate") == 0
    second = json.loads(Path("reports/promotion.json").read_text())
    assert second["promoted"] is False
    assert second["challenger_value"] < second["champion_value"] + second["min_improvement"]
    assert second["rows"] == len(pd.read_parquet("data/processed/test_predictions.parquet"))
    assert str(client.get_model_version_by_alias("churn-model", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("churn-model", "challenger").version) == "2"


@pytest.mark.parametrize("path", [None, "data/raw/absent.parquet"])
def test_truth_check_is_skipped_without_a_truth_table(tmp_path: Path, path: str | None) -> None:
    truth_path = None if path is None else tmp_path / path  # None: evaluate.truth.check false
    truth = truth_check(pd.DataFrame(), pd.DataFrame(), None, truth_path, {})  # type: ignore[arg-type]
    assert truth["skipped"] is True
    assert ("check is false" if path is None else "not found") in truth["reason"]


def _few_training_positives(table: pd.DataFrame) -> pd.DataFrame:
    """Keep every churner in the valid/test cutoffs but only a handful in the training ones."""
    late = table["cutoff"] >= sorted(table["cutoff"].unique())[-2]
    return table.assign(churned=table["churned"] & (late | (table.index % 40 == 0)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(churned=False), "`churned` has a single class"),
        (_few_training_positives, "train.min_positives"),
        (lambda t: t.drop(columns="cutoff"), "cutoff"),
    ],
    ids=["single-class", "few-positives", "missing-column"],
)
def test_bad_training_table_exits_2_with_a_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    change,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    table, _ = make_model_table(customers=200, cutoffs=4, seed=5)
    _project(tmp_path, change(table), truth=None)
    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 2, result.output
    assert message in caplog.text and "features.parquet" in caplog.text
    assert not (tmp_path / "artifacts").exists()


def test_missing_model_table_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 2
    assert "churn featurize" in caplog.text


def test_train_reports_a_vendor_churn_score_by_its_name(tmp_path: Path) -> None:
    """Issue 13, point 10: a vendor's `churn_score` (AUC about 0.95, below the 0.98 of the AUC
    rule) and an exit-survey answer filled in only for churners are suspects in train.json, the
    score with its name as evidence; kept (allow_leaky), the summary says too good to be true."""
    table, _ = make_model_table(customers=200, cutoffs=4, seed=5)
    rng = np.random.default_rng(2)
    y = table["churned"].to_numpy(dtype=int)
    table["churn_score"] = np.clip(np.round(50 + 28 * y + rng.normal(0, 12, len(y))), 0, 100)
    table["survey_answer"] = pd.Series(
        np.where((y == 1) & (rng.random(len(y)) < 0.5), "moving to a competitor", None),
        dtype="object",
    )
    _project(tmp_path, table, truth=None)
    with inside(tmp_path):
        assert churn("train") == 0
        leakage = json.loads(Path("reports/train.json").read_text())["leakage"]
        suspects = {s["feature"]: s for s in leakage["suspects"]}
        assert {"churn_score", "survey_answer"} <= set(suspects), suspects
        assert suspects["churn_score"]["name_words"] == ["churn", "score"]
        assert any("model's output" in r for r in suspects["churn_score"]["reasons"])
        assert {"churn_score", "survey_answer"} <= set(leakage["excluded"])
        assert leakage["too_good_to_be_true"] is False  # the honest model is about 0.8

        params = yaml.safe_load(Path("params.yaml").read_text())
        Path("params.yaml").write_text(yaml.safe_dump({**params, "leakage": {"allow_leaky": True}}))
        assert churn("train") == 0
        leakage = json.loads(Path("reports/train.json").read_text())["leakage"]
    assert leakage["excluded"] == [] and "churn_score" in leakage["kept_suspects"]
    assert leakage["too_good_to_be_true"] is True
    assert any("churn_score" in r for r in leakage["too_good_reasons"])
