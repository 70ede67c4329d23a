"""`churn preset`: its keys replace those of params.yaml or settings.yaml (each key in its home),
comments stay, a bad preset changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]


def main(preset: Path, params: Path) -> int:
    """`churn preset PRESET --params PARAMS`; its exit code."""
    return CliRunner().invoke(app, ["preset", str(preset), "--params", str(params)]).exit_code


def test_preset_replaces_whole_keys_and_keeps_comments(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    settings = tmp_path / "settings.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    shutil.copy(ROOT / "settings.yaml", settings)
    before = yaml.safe_load(params.read_text(encoding="utf-8"))
    sources_before = yaml.safe_load(settings.read_text(encoding="utf-8"))["ingest"]["tables"]
    assert main(ROOT / "configs" / "ravenstack.yaml", params) == 0
    after = yaml.safe_load(params.read_text(encoding="utf-8"))
    after_settings = yaml.safe_load(settings.read_text(encoding="utf-8"))
    # ingest.tables (a settings key) replaced as a whole in settings.yaml: SQL sources only
    sources = after_settings["ingest"]["tables"]
    assert set(sources) == set(sources_before)
    assert all("sql" in t and "path" not in t for t in sources.values())
    assert "tables" not in after["ingest"]
    # paths: only the sources directory (the ingest stage's dependency) moves to the dataset
    paths_before = yaml.safe_load((ROOT / "settings.yaml").read_text())["paths"]
    assert after_settings["paths"]["sources"] == "../shared/datasets/ravenstack_saas_synthetic"
    assert {k: v for k, v in after_settings["paths"].items() if k != "sources"} == {
        k: v for k, v in paths_before.items() if k != "sources"
    }
    assert "# Where things live" in settings.read_text(encoding="utf-8")
    assert after["evaluate"]["truth"] == {"check": False, "driver_features": {}}
    assert after["featurize"]["touchpoints"] == ["support"]
    # keys the preset does not name are untouched
    assert after["train"]["learning_rate"] == before["train"]["learning_rate"]
    assert after["featurize"]["windows"] == before["featurize"]["windows"]
    assert "# What an experiment varies" in params.read_text(encoding="utf-8")


def test_a_preset_with_an_unknown_key_changes_nothing(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    shutil.copy(ROOT / "settings.yaml", tmp_path / "settings.yaml")
    original = params.read_bytes(), (tmp_path / "settings.yaml").read_bytes()
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  learning_rat: 0.1\n", encoding="utf-8")
    assert main(preset, params) == 2
    assert "learning_rat" in caplog.text
    assert (params.read_bytes(), (tmp_path / "settings.yaml").read_bytes()) == original
