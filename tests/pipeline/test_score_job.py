"""The scoring job as it runs each month: as-of dates inside the data, one run at a time, a run's
outputs published together (or into --out), through the CLI on a small trained project."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.base.io import exclusive_lock

from helpers import churn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_score_stage import in_project, project  # noqa: E402, F401  (the trained project)

OUTPUTS = (
    "data/scores/scores.parquet",
    "data/scores/scores.csv",
    "data/scores/features.parquet",
    "reports/priority.csv",
    "reports/score.json",
)


def _data_end(root: Path) -> pd.Timestamp:
    events = pd.read_parquet(root / "data/interim/events.parquet", columns=["ts"])
    return pd.to_datetime(events["ts"], utc=True).max()


def test_an_as_of_outside_the_data_exits_2_naming_the_range(
    in_project: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    end = _data_end(in_project)
    late = (end + pd.Timedelta(days=120)).date().isoformat()
    with caplog.at_level(logging.ERROR):
        assert churn("score", "--model", "artifacts/model", "--as-of", late) == 2
    assert "after the data's end" in caplog.text and str(end.date()) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert churn("score", "--model", "artifacts/model", "--as-of", "2001-01-01") == 2
    assert "before any record" in caplog.text


def test_out_writes_the_whole_set_elsewhere_and_leaves_the_configured_outputs(
    in_project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    before = {p: Path(p).read_bytes() for p in OUTPUTS if Path(p).exists()}
    target = tmp_path / "october"
    assert churn("score", "--model", "artifacts/model", "--out", target) == 0
    names = {p.name for p in target.iterdir() if not p.name.startswith(".")}  # not the lock
    assert names == {
        "features.parquet",
        "scores.parquet",
        "scores.csv",
        "priority.csv",
        "score.json",
    }
    summary = json.loads((target / "score.json").read_text(encoding="utf-8"))
    assert summary["customers"] == len(pd.read_parquet(target / "scores.parquet"))
    assert summary["customers"] == len(pd.read_csv(target / "scores.csv"))
    assert {p: Path(p).read_bytes() for p in before} == before  # nothing else was touched


def test_a_second_run_while_one_holds_the_lock_exits_2_and_changes_nothing(
    in_project: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert churn("score", "--model", "artifacts/model") == 0
    before = {p: Path(p).read_bytes() for p in OUTPUTS}
    with exclusive_lock("data/scores/.score.lock", "a first run"):
        with caplog.at_level(logging.ERROR):
            as_of = (_data_end(in_project) - pd.Timedelta(days=40)).date().isoformat()
            code = churn("score", "--model", "artifacts/model", "--as-of", as_of)
    assert code == 2 and "already running" in caplog.text
    assert {p: Path(p).read_bytes() for p in OUTPUTS} == before
