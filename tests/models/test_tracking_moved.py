"""A copied or moved project: MLflow's absolute artifact paths are named, not written into."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from models.tracking import setup_tracking


def test_a_moved_store_warns_about_its_artifact_location(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    original, moved = tmp_path / "original", tmp_path / "moved"
    original.mkdir()
    setup_tracking(f"sqlite:///{original / 'mlflow.db'}", "churn")
    with caplog.at_level(logging.WARNING, logger="models.tracking"):
        setup_tracking(f"sqlite:///{original / 'mlflow.db'}", "churn")
    assert "outside the store's directory" not in caplog.text  # in place: nothing to say
    shutil.copytree(original, moved)
    monkeypatch.delenv(
        "MLFLOW_TRACKING_URI", raising=False
    )  # mlflow sets it; a new process would not
    with caplog.at_level(logging.WARNING, logger="models.tracking"):
        setup_tracking(f"sqlite:///{moved / 'mlflow.db'}", "churn")
    assert "outside the store's directory" in caplog.text and str(original) in caplog.text
