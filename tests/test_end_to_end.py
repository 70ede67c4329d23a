"""`dvc repro` on a fresh copy of the project with a small simulated business: every stage runs
for real (DuckDB, DVC, MLflow), every declared output appears, and a second repro does nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _copy_project(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in listed:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def commit_and_repro(dest: Path) -> Path:
    """Make the copy a git repository (DVC needs one) and run `dvc repro` in it."""
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"]):
        subprocess.run(cmd, cwd=dest, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
        cwd=dest,
        check=True,
    )
    result = _run([str(BIN / "dvc"), "repro"], dest)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dest


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("project")
    _copy_project(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text(encoding="utf-8"))
    params["simulate"]["customers"] = 1500
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return commit_and_repro(dest)


def _declared_outputs(project: Path) -> list[Path]:
    """Every output of every stage, with dvc.yaml's ${paths.*} resolved (dvc.lock lists them)."""
    stages = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    return [project / out["path"] for stage in stages.values() for out in stage.get("outs", [])]


def test_every_stage_writes_its_declared_outputs(project: Path) -> None:
    declared = {str(p.relative_to(project)) for p in _declared_outputs(project)}
    assert {"reports/metrics", "data/scores/scores.parquet", "reports/drivers"} <= declared
    missing = [str(p.relative_to(project)) for p in _declared_outputs(project) if not p.exists()]
    assert missing == []


def test_ingest_accounts_for_every_row(project: Path) -> None:
    report = json.loads((project / "reports" / "ingest.json").read_text(encoding="utf-8"))
    tables = report["tables"]
    assert set(tables) >= {"customers", "churn_events", "events", "responses", "tickets"}
    for name, counts in tables.items():
        assert counts["read"] == counts["kept"] + counts["quarantined"], name
        assert counts["read"] > 0, name


def test_second_repro_does_nothing(project: Path) -> None:
    result = _run([str(BIN / "dvc"), "repro"], project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Data and pipelines are up to date" in result.stdout, result.stdout[-3000:]
