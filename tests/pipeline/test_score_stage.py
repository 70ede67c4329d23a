"""Stage `score` on a small simulated business, trained for real (DuckDB, LightGBM, MLflow registry
in tmp_path): scores equal the model's predictions on the training rows, reasons are the exact
contributions, bad inputs exit 2 with a message, and a killed job leaves the previous file."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from models.explain.treeshap import contributions
from models.model import load_model
from models.scoring import NO_STRONG_REASON, REASON_MIN_CONTRIBUTION

from helpers import churn, inside

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECTIONS = (
    "simulate", "ingest", "label", "featurize", "split", "train", "evaluate", "registry", "mlflow",
    "score",
    "value",
)  # fmt: skip


def _sections(path: Path) -> dict:
    """The SECTIONS of a params or settings file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k in SECTIONS}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained project: simulate 900 customers, ingest, label, featurize, train, evaluate."""
    root = tmp_path_factory.mktemp("score-project")
    params, settings = (_sections(ROOT / name) for name in ("params.yaml", "settings.yaml"))
    params["simulate"].update(customers=900, start_date="2024-06-01")
    params["label"]["first_cutoff"] = "2025-03-01"
    settings["featurize"]["lexicon"] = str(ROOT / settings["featurize"]["lexicon"])
    params["train"].update(min_positives=10, num_boost_round=200)
    params["evaluate"]["bootstrap"] = 10
    settings["score"]["chunk_rows"] = 200  # several chunks even on a small business
    for name, data in (("params.yaml", params), ("settings.yaml", settings)):
        (root / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with inside(root):
        for stage in ("simulate", "ingest", "label", "featurize", "train", "evaluate"):
            assert churn(stage) == 0, stage
    return root


@pytest.fixture()
def in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project)
    return project


def _test_cutoff(project: Path) -> pd.Timestamp:
    predictions = pd.read_parquet(project / "data/processed/test_predictions.parquet")
    return pd.to_datetime(predictions["cutoff"], utc=True).max()


def test_scores_equal_the_models_predictions_on_the_training_rows(in_project: Path) -> None:
    cutoff = _test_cutoff(in_project)
    assert churn("score", "--as-of", cutoff.date().isoformat()) == 0

    scores = pd.read_parquet("data/scores/scores.parquet")
    table = pd.read_parquet("data/processed/features.parquet")
    table = table[pd.to_datetime(table["cutoff"], utc=True) == cutoff]
    # the same customers: everyone active at the cutoff, one row each
    assert scores["customer_id"].is_unique
    assert set(scores["customer_id"]) == set(table["customer_id"].astype(str))
    model = load_model("artifacts/model")
    expected = pd.Series(model.predict(table), index=table["customer_id"].astype(str).to_numpy())
    got = scores.set_index("customer_id")["churn_probability"]
    # bit for bit: the monitor's realised AUC must equal evaluate's, calibration ties included
    np.testing.assert_array_equal(got.loc[expected.index].to_numpy(), expected.to_numpy())
    # the scoring features are the training features (same code path, same cutoff)
    feats = pd.read_parquet("data/scores/features.parquet").set_index("customer_id")
    train_rows = table.set_index(table["customer_id"].astype(str))
    for col in model.spec.numeric:
        np.testing.assert_allclose(
            feats.loc[train_rows.index, col].astype(float).to_numpy(),
            train_rows[col].astype(float).to_numpy(),
            equal_nan=True,
            err_msg=col,
        )
    summary = json.loads(Path("reports/score.json").read_text(encoding="utf-8"))
    assert summary["customers"] == len(scores) and summary["model_version"] == "1"


def test_reasons_are_the_largest_exact_contributions(in_project: Path) -> None:
    assert churn("score", "--model", "artifacts/model") == 0
    scores = pd.read_parquet("data/scores/scores.parquet")
    feats = pd.read_parquet("data/scores/features.parquet")
    model = load_model("artifacts/model")
    contrib = contributions(model.booster, model.model_frame(feats))
    names = model.booster.feature_name()
    top = np.argsort(-contrib[:, :-1], axis=1, kind="stable")[:, :3]
    by_id = scores.set_index("customer_id")
    for row in (0, len(feats) // 2, len(feats) - 1):
        got = by_id.loc[str(feats["customer_id"].iloc[row])]
        for k in range(3):
            name, push = names[top[row, k]], contrib[row, top[row, k]]
            if push >= REASON_MIN_CONTRIBUTION:  # a reason only when it raises the risk enough
                assert got[f"reason_{k + 1}"] == name
                assert got[f"reason_{k + 1}_contribution"] == pytest.approx(push)
                assert got[f"reason_{k + 1}_text"].endswith("(raises risk)")
            else:
                assert pd.isna(got[f"reason_{k + 1}"])
                if k == 0:
                    assert got["reason_1_text"] == NO_STRONG_REASON
    pushes = [scores[f"reason_{k}_contribution"].fillna(-np.inf) for k in (1, 2, 3)]
    assert (pushes[0] >= pushes[1]).all() and (pushes[1] >= pushes[2]).all()
    for k in (1, 2, 3):
        assert (scores[f"reason_{k}_contribution"].dropna() >= REASON_MIN_CONTRIBUTION).all()
    assert set(scores["risk_decile"]) == set(range(1, 11))
    top_decile = scores.loc[scores["risk_decile"] == 1, "churn_probability"].min()
    assert top_decile >= scores.loc[scores["risk_decile"] == 2, "churn_probability"].max()
    assert scores["model_version"].eq("unregistered").all()
    assert (
        scores["churn_type"]
        .isin({"dissatisfaction", "economic", "disengagement", "other", "none"})
        .all()
    )
    # value and priority (models/value.py): present, and the rank follows the expected gain
    for col in ("monthly_fee", "clv", "value_tier", "value_at_risk", "priority_rank"):
        assert scores[col].notna().all(), col
    np.testing.assert_allclose(
        scores["value_at_risk"], scores["churn_probability"] * scores["clv"], rtol=1e-12
    )
    ranked = scores.sort_values("priority_rank")
    assert ranked["expected_gain"].is_monotonic_decreasing
    assert ranked["priority_rank"].tolist() == list(range(1, len(scores) + 1))
    priority = pd.read_csv("reports/priority.csv")
    assert len(priority) == int((scores["expected_gain"] > 0).sum())
    assert priority["priority_rank"].tolist() == sorted(priority["priority_rank"])
    csv = pd.read_csv("data/scores/scores.csv")
    assert len(csv) == len(scores) and list(csv.columns) == list(scores.columns)


def test_missing_model_exits_2_with_a_message(
    in_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = (
        Path("data/scores/scores.parquet").read_bytes()
        if Path("data/scores/scores.parquet").exists()
        else None
    )
    with caplog.at_level(logging.ERROR):
        assert churn("score", "--model", "models:/no-such-model@champion") == 2
    assert "no-such-model" in caplog.text and "registry" in caplog.text
    with caplog.at_level(logging.ERROR):
        assert churn("score", "--model", "nowhere/model") == 2
    assert "nowhere/model" in caplog.text
    after = Path("data/scores/scores.parquet").read_bytes() if before is not None else None
    assert after == before


def test_features_that_do_not_match_the_model_exit_2(
    in_project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "model"
    shutil.copytree("artifacts/model", other)
    meta_path = other / "artifacts" / "model_meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["spec"]["numeric"].append("loyalty_points_30d")
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert churn("score", "--model", str(other)) == 2
    assert "loyalty_points_30d" in caplog.text and "re-run" in caplog.text


def test_missing_interim_tables_exit_2(
    in_project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    params["paths"] = {
        "interim": str(tmp_path / "empty"),
        "scores": str(tmp_path / "scores.parquet"),
    }
    alt = tmp_path / "params.yaml"
    alt.write_text(yaml.safe_dump(params), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert churn("score", "--params", alt) == 2
    assert "customers" in caplog.text and "churn ingest" in caplog.text
    assert not (tmp_path / "scores.parquet").exists()


def test_killing_the_job_midway_leaves_the_previous_scores(in_project: Path) -> None:
    assert churn("score", "--model", "artifacts/model") == 0
    out = Path("data/scores/scores.parquet")
    outputs = [
        out,
        Path("data/scores/scores.csv"),
        Path("data/scores/features.parquet"),
        Path("reports/priority.csv"),
        Path("reports/score.json"),
    ]
    before = out.read_bytes()
    every_before = [p.read_bytes() for p in outputs]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen(
        [str(BIN / "churn"), "score", "--model", "artifacts/model", "--as-of", "2025-06-01"],
        cwd=in_project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # kill it once it is building the new scores (its work directory exists)
    deadline = time.monotonic() + 120
    while not list(Path("data/scores").glob(".score-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the job ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert out.read_bytes() == before
    assert [p.read_bytes() for p in outputs] == every_before  # the whole set, not only scores
    assert pq.read_table(out).num_rows > 0
    assert list(Path("data/scores").glob(".score-*"))  # the killed job's work directory
    # the next run removes it and succeeds
    assert churn("score", "--model", "artifacts/model") == 0
    assert not list(Path("data/scores").glob(".score-*"))
    assert not list(Path("data/scores").glob(".scores.parquet.*"))


def _score_params(tmp_path: Path, interim: Path, **score: object) -> Path:
    """The project's params (and settings beside them) with the scoring inputs and outputs in
    tmp_path."""
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    settings = yaml.safe_load(Path("settings.yaml").read_text(encoding="utf-8"))
    settings["paths"] = {
        "interim": str(interim),
        **{
            key: str(tmp_path / "out" / name)
            for key, name in (
                ("score_features", "features.parquet"),
                ("scores", "scores.parquet"),
                ("scores_csv", "scores.csv"),
                ("score_report", "score.json"),
                ("priority", "priority.csv"),
            )
        },
    }
    params["score"].update(score)
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    path = tmp_path / f"params-{len(score)}.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def test_values_never_seen_in_training_are_counted_and_fail_the_job_above_the_limit(
    in_project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    interim = tmp_path / "interim"
    shutil.copytree("data/interim", interim)
    params = _score_params(tmp_path, interim)
    assert churn("score", "--params", params, "--model", "artifacts/model") == 0
    report = tmp_path / "out" / "score.json"
    before = json.loads(report.read_text(encoding="utf-8"))["unseen"]
    scored = set(pd.read_parquet(tmp_path / "out" / "scores.parquet")["customer_id"])

    # a new plan for every 8th customer, a new country for every 40th, a new event type
    customers = pd.read_parquet(interim / "customers.parquet")
    new_plan = customers.index % 8 == 0
    new_country = customers.index % 40 == 0
    customers.loc[new_plan, "plan"] = "platinum_plus"
    customers.loc[new_country, "country"] = "Atlantis"
    customers.to_parquet(interim / "customers.parquet", index=False)
    events = pd.read_parquet(interim / "events.parquet")
    teleports = events.loc[events["ts"] == events["ts"].max()].head(1)
    teleports = pd.concat([teleports] * 7, ignore_index=True).assign(event_type="teleport")
    pd.concat([events, teleports], ignore_index=True).to_parquet(
        interim / "events.parquet", index=False
    )
    with caplog.at_level(logging.WARNING):
        assert churn("score", "--params", params, "--model", "artifacts/model") == 0
    unseen = json.loads(report.read_text(encoding="utf-8"))["unseen"]
    n = len(scored)
    for column, mask, value in (
        ("plan", new_plan, "platinum_plus"),
        ("country", new_country, "Atlantis"),
    ):
        changed = len(scored & set(customers.loc[mask, "customer_id"].astype(str)))
        expected = before.get(column, {}).get("count", 0) + changed
        assert changed > 0 and unseen[column]["count"] == expected, column
        assert unseen[column]["share"] == pytest.approx(expected / n)
        assert value in unseen[column]["examples"]
        assert f"{column}: {expected} of {n}" in caplog.text and value in caplog.text
    assert unseen["events.event_type"]["count"] == 7
    assert unseen["events.event_type"]["examples"] == ["teleport"]

    # above score.max_unseen_share: exit 2 naming column, share, example and fix; scores kept
    scores_before = (tmp_path / "out" / "scores.parquet").read_bytes()
    strict = _score_params(tmp_path, interim, max_unseen_share=0.05)
    with caplog.at_level(logging.ERROR):
        assert churn("score", "--params", strict, "--model", "artifacts/model") == 2
    share = unseen["plan"]["share"]
    assert f"plan: {share:.1%}" in caplog.text and "platinum_plus" in caplog.text
    assert "max_unseen_share" in caplog.text and "churn train" in caplog.text
    assert "country:" not in caplog.text.split("ERROR")[-1]  # below the limit: a warning only
    assert (tmp_path / "out" / "scores.parquet").read_bytes() == scores_before


def test_without_a_fee_column_the_value_columns_are_empty_and_the_list_ranks_by_risk(
    in_project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """value.fee_column absent from the scoring table (a business without fees): every output
    is written; value columns null, priority by churn probability, a note in score.json."""
    params = _score_params(tmp_path, Path("data/interim").resolve())
    data = yaml.safe_load(params.read_text(encoding="utf-8"))
    data["value"]["fee_column"] = "monthly_subscription_fee"  # not a model-table column
    params.write_text(yaml.safe_dump(data), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert churn("score", "--params", params, "--model", "artifacts/model") == 0
    out = tmp_path / "out"
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) > 0
    for col in ("monthly_fee", "clv", "value_tier", "value_at_risk", "expected_gain"):
        assert scores[col].isna().all(), col
    # empty, yet typed as the contract says (the alert rules compare value_tier with text)
    assert str(pq.read_schema(out / "scores.parquet").field("value_tier").type) == "string"
    ranked = scores.sort_values("priority_rank")
    assert ranked["priority_rank"].tolist() == list(range(1, len(scores) + 1))
    assert ranked["churn_probability"].is_monotonic_decreasing
    priority = pd.read_csv(out / "priority.csv")
    with_fee = pd.read_csv("reports/priority.csv", nrows=0)  # the columns with fees
    assert list(priority.columns) == list(with_fee.columns)
    assert len(priority) == len(scores)  # everyone, riskiest first
    assert priority["priority_rank"].tolist() == list(range(1, len(scores) + 1))
    assert priority["churn_probability"].is_monotonic_decreasing
    assert priority[["clv", "value_tier", "value_at_risk", "expected_gain"]].isna().all().all()
    report = json.loads((out / "score.json").read_text(encoding="utf-8"))
    note = "no monthly fee column `monthly_subscription_fee`"
    assert len(report["notes"]) == 1 and report["notes"][0].startswith(note)
    assert "churn probability" in report["notes"][0]
    assert note in caplog.text
    csv = pd.read_csv(out / "scores.csv")
    assert list(csv.columns) == list(scores.columns)


def _published_as_of(project: Path) -> dict[str, set[str]]:
    """The as-of dates each published output of `churn score` holds (one run's set has one)."""
    stamp = lambda values: {pd.Timestamp(v).isoformat() for v in values}  # noqa: E731
    scores = pd.read_parquet(project / "data/scores/scores.parquet", columns=["as_of"])
    features = pd.read_parquet(project / "data/scores/features.parquet", columns=["cutoff"])
    csv = pd.read_csv(project / "data/scores/scores.csv", usecols=["as_of"])
    priority = pd.read_csv(project / "reports/priority.csv", usecols=["as_of"])
    summary = json.loads((project / "reports/score.json").read_text(encoding="utf-8"))
    return {
        "scores.parquet": stamp(scores["as_of"].unique()),
        "features.parquet": stamp(features["cutoff"].unique()),
        "scores.csv": stamp(csv["as_of"].unique()),
        "priority.csv": stamp(priority["as_of"].unique()),
        "score.json": stamp([summary["as_of"]]),
    }


def test_two_racing_runs_never_leave_a_mixed_set_of_outputs(in_project: Path) -> None:
    """Two real `churn score` processes started together, for different as-of dates: one wins the
    lock and publishes its whole set; the other waits for nothing and exits 2 with a message (or,
    when the first had already finished, runs after it). Never outputs of both."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    test_cutoff = _test_cutoff(in_project)
    dates = {"early": test_cutoff - pd.Timedelta(days=92), "late": test_cutoff}
    outcomes = []
    for _ in range(2):  # two races: the winner differs from race to race
        procs = {
            name: subprocess.Popen(
                [str(BIN / "churn"), "score", "--model", "artifacts/model", "--as-of", f"{day:%F}"],
                cwd=in_project,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, day in dates.items()
        }
        results = {name: (p.wait(timeout=300), p.stderr.read()) for name, p in procs.items()}
        codes = sorted(code for code, _ in results.values())
        assert codes in ([0, 0], [0, 2]), results
        for code, err in results.values():
            if code == 2:
                assert "already running" in err, err
        published = _published_as_of(in_project)
        assert all(len(v) == 1 for v in published.values()), published
        assert len(set().union(*published.values())) == 1, f"a mixed set of outputs: {published}"
        outcomes.append(codes)
    # the race was real at least once: one run found the other holding the lock
    assert [0, 2] in outcomes, outcomes
