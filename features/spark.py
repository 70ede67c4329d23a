"""Apache Spark as the engine (`engine.name: spark`): the session, and Spark-native Parquet writes.

pyspark is an optional dependency (the `spark` extra, `make spark`); it is imported here and in
`models.spark_scoring` (the scoring job), only when Spark is the engine. The feature code itself is
backend-neutral Ibis: on Spark it runs through Ibis' PySpark backend unchanged.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt

from features.base.errors import BadInputError
from features.base.io import atomic_directory
from features.settings import SparkParams

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# What every session of the pipeline runs with, whatever `engine.spark.conf` says: day arithmetic
# relies on UTC, pandas interchange on Arrow, and Parquet readers (pyarrow, DuckDB) on microsecond
# timestamps rather than Spark's legacy INT96.
PIPELINE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.showConsoleProgress": "false",
}


class SparkUnavailableError(BadInputError):
    """`engine.name: spark` but pyspark or Java is not installed (exit 2 with the fix)."""


def spark_session(cfg: SparkParams) -> SparkSession:
    """A Spark session (an existing one is reused) with the pipeline's settings applied."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailableError(
            "engine.name is spark but pyspark is not installed; install the `spark` extra "
            "(pip install -e '.[spark]', or `make spark`, which also installs Java 17)"
        ) from exc
    if shutil.which("java") is None and not _java_home():
        raise SparkUnavailableError(
            "engine.name is spark but no Java runtime was found (no `java` on PATH, no "
            "JAVA_HOME); install Java 17 (Debian: apt-get install openjdk-17-jre-headless, or "
            "`make spark`)"
        )
    if cfg.master.startswith("local"):
        # local Python workers (the lexicon UDF, the scoring job) run this interpreter, not
        # whichever `python3` is first on PATH (PySpark's default); a cluster sets its own
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(cfg.master).appName(cfg.app_name)
    conf: dict[str, Any] = {
        "spark.driver.memory": cfg.driver_memory,
        "spark.sql.shuffle.partitions": cfg.shuffle_partitions,
        **cfg.conf,
        **PIPELINE_CONF,
    }
    for key, value in conf.items():
        builder = builder.config(key, str(value).lower() if isinstance(value, bool) else str(value))
    session = builder.getOrCreate()
    for key in ("spark.sql.session.timeZone", "spark.sql.parquet.outputTimestampType"):
        session.conf.set(key, PIPELINE_CONF[key])  # a reused session keeps its own otherwise
    session.sparkContext.setLogLevel("WARN")
    log.info("Spark session %s on %s (Spark %s)", cfg.app_name, cfg.master, session.version)
    return session


def _java_home() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(home) and (Path(str(home)) / "bin" / "java").exists()


def connect_spark(cfg: SparkParams) -> ibis.BaseBackend:
    """An Ibis PySpark connection over the pipeline's Spark session."""
    _float_literals_as_double()
    return ibis.pyspark.connect(spark_session(cfg))


def _float_literals_as_double() -> None:
    """Make Ibis write a float64 literal as a DOUBLE in Spark SQL.

    Ibis 12 writes `ibis.literal(3.5, "float64")` as a bare `3.5`, which Spark SQL types
    DECIMAL(2,1): arithmetic with it is then decimal, rounded to 6 places (a weekly slope of
    0.238095238 became 0.238095). Wrapping the literal in CAST(... AS DOUBLE) computes in
    doubles as DuckDB does, for every feature expression, without Spark-only code in them.
    """
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    visit = PySparkCompiler.visit_NonNullLiteral
    if getattr(visit, "float_literals_as_double", False):
        return

    def visit_as_double(self: Any, op: Any, *, value: Any, dtype: dt.DataType) -> Any:
        result = visit(self, op, value=value, dtype=dtype)
        if dtype.is_floating() and result is not None:
            return self.cast(result, dt.float64)
        return result

    visit_as_double.float_literals_as_double = True  # type: ignore[attr-defined]
    PySparkCompiler.visit_NonNullLiteral = visit_as_double  # type: ignore[method-assign]


def is_spark(con: ibis.BaseBackend) -> bool:
    """Whether `con` is Ibis' PySpark backend."""
    return getattr(con, "name", "") == "pyspark"


def spark_type(dtype: dt.DataType) -> Any:
    """The Spark SQL type written for an Ibis output type (timestamps as UTC instants)."""
    from ibis.backends.pyspark.datatypes import PySparkType
    from pyspark.sql import types as T

    if dtype.is_timestamp():
        return T.TimestampType()  # Parquet isAdjustedToUTC=true, like DuckDB's TIMESTAMPTZ
    return PySparkType.from_ibis(dtype)


def cached(con: ibis.BaseBackend, expr: ibis.Table) -> ibis.Table:
    """`expr` evaluated once and kept by Spark (memory, spilling to disk) for the queries that
    read it; the in-memory tables it reads (e.g. the cutoffs) are registered first."""
    con._run_pre_execute_hooks(expr)
    return expr.cache()


def typed_frame(con: ibis.BaseBackend, expr: ibis.Table, schema: ibis.Schema) -> DataFrame:
    """`expr` as a Spark DataFrame, every column cast to `schema`'s type (explicit output types:
    Spark's own result types, e.g. DECIMAL from a literal, never reach a file)."""
    from pyspark.sql import functions as F

    con._run_pre_execute_hooks(expr)  # registers the Python UDFs `expr` calls (Ibis' own step)
    frame = con._session.sql(con.compile(expr))
    return frame.select(*[F.col(f"`{n}`").cast(spark_type(t)).alias(n) for n, t in schema.items()])


def write_dataset(
    con: ibis.BaseBackend,
    expr: ibis.Table,
    out: Path | str,
    schema: ibis.Schema,
    order_by: Sequence[str] = (),
) -> None:
    """Write `expr` as a Spark-native Parquet dataset directory (part files), atomically.

    The directory is written beside `out` and swapped in whole: a failed job leaves the previous
    output (a file or a directory) or none. Readers take it as one table (pyarrow, pandas,
    DuckDB through `features.tables.read_dataset`, Spark), rows in `order_by` order: training
    reads rows in file order, and LightGBM's bins depend on it.
    """
    out = Path(out)
    frame = typed_frame(con, expr, schema)
    if order_by:  # a global sort: the part files, read in name order, hold DuckDB's row order
        frame = frame.orderBy(*order_by)
    if out.is_file():  # a single-file output of the DuckDB engine: replaced by the dataset
        out.unlink()
    with atomic_directory(out) as staging:
        target = staging / "data"
        frame.write.mode("overwrite").parquet(str(target))
        for part in target.iterdir():
            if not part.name.startswith((".", "_")):
                part.rename(staging / part.name)
        shutil.rmtree(target)
    log.info("%s written by Spark (%d part files)", out, len(list(out.glob("*.parquet"))))
