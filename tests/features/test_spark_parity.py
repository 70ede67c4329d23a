"""Engine parity (issue 17): on a small simulated world, Spark (`local[2]`, Ibis' PySpark backend)
and DuckDB build the same labels and feature tables (every column: floats to 1e-9, the rest exact,
the same Parquet types), and `churn score` (on Spark: the scoring job of `models.spark_scoring`,
mapInPandas over the broadcast model and window functions) gives the same probabilities, the same
three reason codes for every customer, and the same scores file, CSV and priority list: risk
deciles, tiers, value tiers and priority ranks included, ties and missing fees too.

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
ENGINES = ("duckdb", "spark")


def _sections(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k in SECTIONS}


def _set_engine(root: Path, name: str) -> None:
    settings = yaml.safe_load((root / "settings.yaml").read_text(encoding="utf-8"))
    # a 300-customer world: 2 shuffle partitions, not the 64 a default-size run needs (each
    # partition is a task; the results do not depend on how many there are)
    spark = {"master": "local[2]", "driver_memory": "1g", "shuffle_partitions": 2}
    settings["engine"] = {"name": name, "spark": spark}
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
                "scores_csv": kept / "score" / "scores.csv",
                "priority": kept / "score" / "priority.csv",
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


def test_scores_file_is_equal_on_every_column(runs: dict) -> None:
    """The whole scores file: the population columns (decile, tiers, value, priority rank) from
    Spark's window functions as from pandas, in the same column order and Parquet types."""
    duck, spark = _read(runs["duckdb"]["scores"]), _read(runs["spark"]["scores"])
    assert list(spark.columns) == list(duck.columns)
    assert _mismatches(duck, spark) == {}
    # text is text: pandas 3 hands pyarrow large_string, Spark string (the same Parquet column)
    types = [
        [(f.name, str(f.type).replace("large_string", "string"), f.nullable) for f in schema]
        for schema in (ds.dataset(runs[e]["scores"], format="parquet").schema for e in ENGINES)
    ]
    assert types[1] == types[0]
    assert duck.risk_decile.nunique() > 1 and duck.value_tier.notna().any()


@pytest.mark.parametrize("output", ["scores_csv", "priority"])
def test_csv_outputs_are_equal(runs: dict, output: str) -> None:
    duck, spark = (pd.read_csv(runs[e][output]) for e in ENGINES)
    keys = ["customer_id"]
    duck, spark = (f.sort_values(keys).reset_index(drop=True) for f in (duck, spark))
    assert list(spark.columns) == list(duck.columns) and len(duck) > 0
    assert _mismatches(duck, spark) == {}


def _population() -> pd.DataFrame:
    """Hand-made scores: tied probabilities across deciles, equal fees on a CLV tier edge, a
    customer without a fee; ids out of order."""
    p = [0.5, 0.5, 0.5, 0.2, 0.2, 0.1, 0.05, 0.05, 0.3, 0.01, 0.2, 0.5]
    fee = [20.0, 20.0, 50.0, 20.0, np.nan, 10.0, 20.0, 99.0, 50.0, 20.0, 20.0, 0.0]
    ids = [f"c{i:02d}" for i in (7, 3, 11, 0, 5, 9, 1, 10, 2, 4, 8, 6)]
    return pd.DataFrame({"customer_id": ids, "churn_probability": p, "monthly_fee": fee})


@pytest.mark.parametrize("fees", ["some", "none"])
def test_population_columns_on_spark_equal_pandas(runs: dict, fees: str) -> None:
    """Deciles with ties at their minimum rank, tiers, CLV quantile edges and the priority order
    (ties by customer_id) from Spark's window functions equal `models.scoring.population_columns`,
    with fees and without any (priority by probability). Reuses the session of `runs`."""
    from pyspark.sql import SparkSession

    from models.scoring import population_columns
    from models.settings import ScoreParams, ValueParams
    from models.spark_scoring import population_columns_on_spark

    pop = _population()
    if fees == "none":
        pop["monthly_fee"] = np.nan
    score, value = ScoreParams(), ValueParams()
    expected = population_columns(pop, score.risk_tiers, score.default_tier, value)
    expected.insert(0, "customer_id", pop["customer_id"])
    session = SparkSession.getActiveSession()
    assert session is not None
    frame = session.createDataFrame(pop, "customer_id string, churn_probability double, "
                                         "monthly_fee double")  # fmt: skip
    got, has_value = population_columns_on_spark(
        frame, len(pop), score.risk_tiers, score.default_tier, value
    )
    got = got.toPandas().set_index("customer_id").loc[pop["customer_id"]].reset_index()
    assert has_value == (fees == "some")
    assert sorted(got.columns) == sorted(expected.columns)
    assert _mismatches(_plain(expected), _plain(got[expected.columns])) == {}


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64 (NaN for missing), everything else as objects (None for missing)."""
    out = {}
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            out[c] = col.astype(float)
        else:
            out[c] = col.astype(object).where(col.notna(), None)
    return pd.DataFrame(out)
