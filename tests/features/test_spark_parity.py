"""Engine parity (issue 17): on a small simulated world, Spark (`local[2]`, Ibis' PySpark backend)
and DuckDB build the same labels and feature tables (every column: floats to 1e-9, the rest exact,
the same Parquet types), and `churn score` gives the same probabilities and the same three reason
codes for every customer.

Needs pyspark (the `spark` extra) and Java 17: `make test` installs both when missing (`make
spark`); without them the module is skipped, saying which one is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import yaml

from helpers import churn, inside

pytest.importorskip(
    "pyspark", reason="pyspark is not installed: `make spark` (pip install -e '.[spark]')"
)
if shutil.which("java") is None:
    pytest.skip(
        "no Java runtime for Spark: `make spark` (apt-get install openjdk-17-jre-headless)",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = (
    "simulate", "ingest", "label", "featurize", "split", "train", "mlflow", "score", "value",
)  # fmt: skip
KEYS = ["customer_id", "cutoff"]
REASONS = ["reason_1", "reason_2", "reason_3"]


def _sections(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k in SECTIONS}


def _set_engine(root: Path, name: str) -> None:
    settings = yaml.safe_load((root / "settings.yaml").read_text(encoding="utf-8"))
    settings["engine"] = {"name": name, "spark": {"master": "local[2]", "driver_memory": "1g"}}
    (root / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), "utf-8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """One simulated world (simple, 300 customers), labelled, featurized and scored on DuckDB and
    on Spark with the same model (trained on DuckDB's table); the outputs of each engine."""
    root = tmp_path_factory.mktemp("spark-parity")
    params, settings = (_sections(ROOT / name) for name in ("params.yaml", "settings.yaml"))
    params["simulate"].update(customers=300, start_date="2024-06-01", world="simple")
    params["label"]["first_cutoff"] = "2025-05-01"
    params["train"].update(min_positives=10, num_boost_round=100)
    settings["featurize"]["lexicon"] = str(ROOT / settings["featurize"]["lexicon"])
    for name, data in (("params.yaml", params), ("settings.yaml", settings)):
        (root / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out: dict[str, dict[str, Path]] = {}
    with inside(root):
        for stage in ("simulate", "ingest"):
            assert churn(stage) == 0, stage
        for engine in ("duckdb", "spark"):
            _set_engine(root, engine)
            for stage in ("label", "featurize"):
                assert churn(stage) == 0, f"{stage} on {engine}"
            if engine == "duckdb":
                assert churn("train") == 0
            kept = root / engine
            kept.mkdir()
            for name in ("labels.parquet", "features.parquet"):
                shutil.move(root / "data/processed" / name, kept / name)
            assert churn("score", "--model", "artifacts/model", "--out", kept / "score") == 0
            out[engine] = {
                "labels": kept / "labels.parquet",
                "features": kept / "features.parquet",
                "scores": kept / "score" / "scores.parquet",
                "score_features": kept / "score" / "features.parquet",
            }
    yield out
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def _read(path: Path) -> pd.DataFrame:
    """A table written by either engine (one file or a directory of part files), in key order."""
    frame = pd.read_parquet(path)
    keys = [k for k in KEYS if k in frame.columns] or ["customer_id"]
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("table", ["labels", "features"])
def test_rows_are_in_the_same_order(runs: dict, table: str) -> None:
    """Training reads the rows in file order (LightGBM's bins depend on it): same order, same
    model, whichever engine wrote the table."""
    duck, spark = (pd.read_parquet(runs[e][table], columns=KEYS) for e in ("duckdb", "spark"))
    assert spark.equals(duck)


def _mismatches(duck: pd.DataFrame, spark: pd.DataFrame) -> dict[str, str]:
    """Column -> what differs (floats to 1e-9 with nulls in the same rows, the rest exact)."""
    found: dict[str, str] = {}
    for c in duck.columns:
        a, b = duck[c], spark[c]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            x, y = a.to_numpy(float), b.to_numpy(float)
            same = np.isclose(x, y, rtol=0, atol=1e-9) | (np.isnan(x) & np.isnan(y))
        else:
            same = (a == b).fillna(False).to_numpy() | (a.isna() & b.isna()).to_numpy()
        if not same.all():
            i = int(np.argmin(same))
            found[c] = f"{int((~same).sum())} rows, e.g. {a.iloc[i]!r} vs {b.iloc[i]!r}"
    return found


@pytest.mark.parametrize("table", ["labels", "features", "score_features"])
def test_tables_are_equal_on_every_column(runs: dict, table: str) -> None:
    duck, spark = _read(runs["duckdb"][table]), _read(runs["spark"][table])
    assert list(spark.columns) == list(duck.columns)
    assert len(duck) > 0 and len(spark) == len(duck)
    assert spark[KEYS].equals(duck[KEYS])
    assert _mismatches(duck, spark) == {}


@pytest.mark.parametrize("table", ["labels", "features"])
def test_written_types_are_engine_independent(runs: dict, table: str) -> None:
    duck = ds.dataset(runs["duckdb"][table], format="parquet").schema
    spark = ds.dataset(runs["spark"][table], format="parquet").schema
    assert {f.name: str(f.type) for f in spark} == {f.name: str(f.type) for f in duck}
    assert str(duck.field("cutoff").type) == "timestamp[us, tz=UTC]"
    if table == "features":
        assert str(duck.field("logins_30d").type) == "int64"  # a count
        assert str(duck.field("csat_support_mean_90d").type) == "double"  # a mean


def test_scores_and_reason_codes_are_equal_for_every_customer(runs: dict) -> None:
    duck, spark = _read(runs["duckdb"]["scores"]), _read(runs["spark"]["scores"])
    assert len(duck) > 0 and spark.customer_id.tolist() == duck.customer_id.tolist()
    np.testing.assert_allclose(spark.churn_probability, duck.churn_probability, rtol=0, atol=1e-9)
    same = (spark[REASONS] == duck[REASONS]) | (spark[REASONS].isna() & duck[REASONS].isna())
    assert same.all(axis=None), spark[REASONS][~same.all(axis=1)].head()
