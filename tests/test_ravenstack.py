"""`dvc repro` on the RavenStack preset (configs/ravenstack.yaml): a foreign relational schema
mapped to the contract with DuckDB SQL only runs end to end, with every source row accounted for."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_end_to_end import _copy_project, _run, commit_and_repro  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED = ROOT.parent / "shared"
DATA = SHARED / "datasets" / "ravenstack_saas_synthetic"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not DATA.is_dir(), reason=f"{DATA} not found (shared datasets are not part of a clone)"
    ),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ravenstack")
    dest = root / "project"
    dest.mkdir()
    _copy_project(dest)
    os.symlink(SHARED, root / "shared")  # the preset reads ../shared/datasets/...
    result = _run([str(BIN / "churn"), "preset", "configs/ravenstack.yaml"], dest)
    assert result.returncode == 0, result.stderr[-2000:]
    return commit_and_repro(dest)


def _source_rows(name: str) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_csv('{DATA / name}')").fetchall()[0][0]


def test_ingest_accounts_for_every_source_row(project: Path) -> None:
    report = json.loads((project / "reports/ingest.json").read_text(encoding="utf-8"))
    assert report["status"] == "ok"
    tables = report["tables"]
    for name, counts in tables.items():
        assert counts["read"] == counts["kept"] + counts["quarantined"], name
    assert tables["customers"]["read"] == _source_rows("ravenstack_accounts.csv")
    assert tables["churn_events"]["read"] == _source_rows("ravenstack_churn_events.csv")
    usage = _source_rows("ravenstack_feature_usage.csv")
    assert tables["events"]["read"] > usage  # usage + errors + MRR changes
    tickets = _source_rows("ravenstack_support_tickets.csv")
    assert tables["tickets"]["read"] >= tickets


def test_scores_and_driver_report(project: Path) -> None:
    scores = pd.read_parquet(project / "data/scores/scores.parquet")
    customers = pd.read_parquet(project / "data/interim/customers.parquet")
    assert 0 < len(scores) <= len(customers)
    assert scores["customer_id"].isin(customers["customer_id"]).all()
    assert scores["churn_probability"].between(0, 1).all()
    assert scores["reason_1_text"].str.len().gt(0).all()
    html = (project / "reports/drivers/index.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    metrics = json.loads((project / "reports/metrics.json").read_text(encoding="utf-8"))
    assert metrics["roc_auc"] > 0.5
