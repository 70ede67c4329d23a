"""`churn preset`: its keys replace params.yaml's, comments stay, a bad preset changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from pipeline.preset import main

ROOT = Path(__file__).resolve().parents[2]


def test_preset_replaces_whole_keys_and_keeps_comments(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    before = yaml.safe_load(params.read_text(encoding="utf-8"))
    assert main(ROOT / "configs" / "ravenstack.yaml", params) == 0
    after = yaml.safe_load(params.read_text(encoding="utf-8"))
    # ingest.tables replaced as a whole: SQL sources only, no simulated file left over
    assert set(after["ingest"]["tables"]) == set(before["ingest"]["tables"])
    assert all("sql" in t and "path" not in t for t in after["ingest"]["tables"].values())
    assert after["evaluate"]["truth"] == {"path": None, "driver_features": {}}
    assert after["featurize"]["touchpoints"] == ["support"]
    # keys the preset does not name are untouched
    assert after["train"]["learning_rate"] == before["train"]["learning_rate"]
    assert after["featurize"]["windows"] == before["featurize"]["windows"]
    assert "# Every stage reads only its own section" in params.read_text(encoding="utf-8")


def test_a_preset_with_an_unknown_key_changes_nothing(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    original = params.read_bytes()
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  learning_rat: 0.1\n", encoding="utf-8")
    assert main(preset, params) == 2
    assert "learning_rat" in caplog.text
    assert params.read_bytes() == original
