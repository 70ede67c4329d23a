"""`churn monthly`: the scoring job on new data (ingest, score, monitor, alert) with no
simulator and no retraining, through the CLI on a small trained project."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import churn, inside

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_score_stage import ROOT, project  # noqa: E402, F401  (the trained project fixture)


def test_monthly_job_ingests_scores_and_alerts_without_retraining(
    project: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(ROOT / "alerts.yaml", project / "alerts.yaml")
    model_before = (project / "artifacts/model/artifacts/booster.txt").read_bytes()
    with inside(project):
        assert churn("monthly") == 0
    scores = pd.read_parquet(project / "data/scores/scores.parquet")
    alerts = pd.read_parquet(project / "data/alerts/alerts.parquet")
    summary = json.loads((project / "reports/score.json").read_text(encoding="utf-8"))
    assert len(scores) == summary["customers"] > 0
    assert (project / "reports/priority.csv").exists()
    # the monitor looked at this run's scores before anyone acts on them
    monitored = json.loads((project / "reports/monitor.json").read_text(encoding="utf-8"))
    assert monitored["current"]["as_of"] == pd.Timestamp(summary["as_of"]).date().isoformat()
    # the alerts read the scores of the same run, and the model was not retrained
    assert set(alerts["as_of"]) <= {scores["as_of"].iloc[0]}
    assert (project / "artifacts/model/artifacts/booster.txt").read_bytes() == model_before
