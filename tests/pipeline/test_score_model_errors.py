"""`churn score` with a model that cannot be loaded exits 2 with a message naming the file, what is
wrong and the fix, instead of a traceback (exit 1) or a LightGBM abort (exit 134).

The CLI runs in a subprocess: before the booster is verified, LightGBM aborts the whole process
on a truncated model text, which would take pytest down with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import tracking
from models.model import BOOSTER_DIGEST, ChurnModel, load_model
from models.settings import TrainParams
from models.training.split import split_by_cutoff
from models.training.train import train_model

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RETRAIN = "churn train"


def _model_table(customers: int = 400, cutoffs: int = 4, seed: int = 0) -> pd.DataFrame:
    """A small model table with a planted driver (days since login) and two categoricals."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2024-07-01", periods=cutoffs, freq="MS", tz="UTC")
    plan = rng.choice(["basic", "pro"], customers)
    rows = []
    for cutoff in months:
        days = rng.exponential(8, customers)
        y = rng.random(customers) < 1 / (1 + np.exp(-(-2.5 + 0.1 * days)))
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": [f"c{i:04d}" for i in range(customers)],
                    "cutoff": cutoff,
                    "churned": y,
                    "churn_type": np.where(y, "disengagement", None),
                    "days_since_last_login": days,
                    "tenure_days": rng.integers(30, 900, customers),
                    "plan": plan,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow model directory written as `churn train` writes it (booster digest included)."""
    root = tmp_path_factory.mktemp("model")
    split = split_by_cutoff(_model_table())
    model = train_model(split, TrainParams(learning_rate=0.1, early_stopping_rounds=20))
    parts = model.save(root / "parts")
    inputs = tracking.signature_frame(split.train, model.spec.features)
    tracking.save_pyfunc(root / "model", parts, inputs, model.predict(split.train))
    return root / "model"


@pytest.fixture()
def damaged(model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the model directory, to damage; params and settings in tmp_path (cwd)."""
    for name in ("params.yaml", "settings.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


def _score(model: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [str(BIN / "churn"), "score", "--model", str(model)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_the_saved_model_records_its_booster_digest_and_loads(model_dir: Path) -> None:
    meta = json.loads((model_dir / "artifacts" / "model_meta.json").read_text(encoding="utf-8"))
    assert meta[BOOSTER_DIGEST] == tracking.file_digest(model_dir / "artifacts" / "booster.txt")
    assert isinstance(load_model(model_dir), ChurnModel)


def test_a_truncated_booster_exits_2_with_the_fix(damaged: Path) -> None:
    booster = damaged / "artifacts" / "booster.txt"
    _truncate(booster)
    result = _score(damaged, damaged.parent)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{booster}: damaged booster" in result.stderr
    assert "sha256" in result.stderr and RETRAIN in result.stderr
    assert "terminate called" not in result.stderr and "Traceback" not in result.stderr


def test_a_truncated_booster_without_a_digest_is_caught_by_its_structure(damaged: Path) -> None:
    """Models saved before the digest existed: the model text must end with its last section."""
    meta_path = damaged / "artifacts" / "model_meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta[BOOSTER_DIGEST]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    booster = damaged / "artifacts" / "booster.txt"
    _truncate(booster, 0.6)
    result = _score(damaged, damaged.parent)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{booster}: damaged booster, 'end of trees' is missing" in result.stderr
    assert RETRAIN in result.stderr and "score.model" in result.stderr


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("drop spec", "damaged model metadata (KeyError: 'spec'"),
        ("truncate meta", "damaged model metadata, not readable JSON"),
        ("truncate MLmodel", "damaged MLmodel file"),
    ],
)
def test_damaged_model_metadata_exits_2_with_the_fix(
    damaged: Path, damage: str, message: str
) -> None:
    meta_path = damaged / "artifacts" / "model_meta.json"
    if damage == "drop spec":
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        del meta["spec"]
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
        named = meta_path
    elif damage == "truncate meta":
        _truncate(meta_path)
        named = meta_path
    else:
        named = damaged / "MLmodel"
        _truncate(named, 0.1)
    result = _score(damaged, damaged.parent)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{named}: {message}" in result.stderr
    assert RETRAIN in result.stderr and "Traceback" not in result.stderr
