"""Scoring as a Spark job (`engine.name: spark`): what `churn score` computes on DuckDB, computed by
the executors.

* Per customer: `models.scoring.score_frame` itself (calibrated probability, exact TreeSHAP reason
  codes, churn type) inside `mapInPandas`, over the model broadcast once to the executors. Each
  Arrow batch of the scoring table is a pandas frame as on the driver, so probabilities and reasons
  are the DuckDB path's, bit for bit.
* Over the whole population: the risk decile, risk tier, value (CLV, value tier, value at risk,
  expected gain) and priority rank with Spark window functions, by the definitions of
  `models.scoring.population_columns` and `models.value`: deciles from the rank with ties at their
  minimum rank, tiers by threshold, CLV tier edges as NumPy's linear quantiles (the two order
  statistics around each quantile from a window, interpolated as NumPy does), priority by expected
  gain then customer_id.
* Out: a Spark-native Parquet dataset (part files), rows by customer_id, columns in the order and
  types of the DuckDB path's scores file.

The window functions that order the whole population (decile, quantile positions, priority) run on
a narrow frame (customer_id, probability, fee, gain) in one Spark task each: a sort of 50 M such
rows is a few GB in one executor, not a cluster-wide shuffle of the scores.

pyspark is imported inside the functions: this module is only used when Spark is the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.catalog import FeatureInfo
from models.model import LoadedModel
from models.scoring import (
    TOP_TIER_WARN_SHARE,
    check_signature,
    log_tiers_not_selective,
    no_fee_note,
    score_frame,
)
from models.settings import ValueParams
from models.value import VALUE_COLUMNS, check_scores, clv, lifetime_months

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

# the scores file's leading columns (pipeline/score.py `write_scores` writes the same order)
LEADING: tuple[str, ...] = (
    "customer_id",
    "as_of",
    "churn_probability",
    "risk_decile",
    "risk_tier",
    "monthly_fee",
    *VALUE_COLUMNS,
)


@dataclass(frozen=True)
class SparkScores:
    """What the scoring job found: customers scored, their mean probability, customers per risk
    tier (by tier name), and whether any customer has a monthly fee (value columns filled)."""

    customers: int
    mean_churn_probability: float | None
    risk_tiers: dict[str, int]
    has_value: bool


def _scored_type(name: str) -> Any:
    """The Spark type of a `score_frame` column (plus monthly_fee): by its name."""
    from pyspark.sql import types as T

    if name == "as_of":
        return T.TimestampType()
    if name in ("churn_probability", "monthly_fee") or name.endswith("_contribution"):
        return T.DoubleType()
    return T.StringType()


def scored_customers(
    table: DataFrame,
    loaded: LoadedModel,
    catalog: Mapping[str, FeatureInfo],
    reasons: int,
    fee_column: str,
) -> DataFrame:
    """`score_frame` over every row of the (non-empty) scoring table, as a Spark job: mapInPandas
    with the model broadcast; the rows' monthly fee (`fee_column`, numeric or null) alongside."""
    from pyspark.sql import types as T

    session = table.sparkSession
    catalog = dict(catalog)
    # the output columns: what score_frame returns for one row (its layout, not restated here)
    probe = score_frame(table.limit(1).toPandas(), loaded, catalog, reasons)
    names = [*probe.columns, "monthly_fee"]
    schema = T.StructType([T.StructField(n, _scored_type(n)) for n in names])
    model = session.sparkContext.broadcast(loaded)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            if frame.empty:
                continue
            scored = score_frame(frame, model.value, catalog, reasons)
            scored["monthly_fee"] = (
                pd.to_numeric(frame[fee_column], errors="coerce").to_numpy(dtype=float)
                if fee_column in frame.columns
                else np.nan
            )
            yield scored[names]

    return table.mapInPandas(score, schema)


def _risk_tier(p: Column, tiers: Mapping[str, float], default: str) -> Column:
    """`models.scoring.risk_tier`: the highest threshold the probability reaches."""
    from pyspark.sql import functions as F

    tier = F.lit(default)
    for name, threshold in sorted(tiers.items(), key=lambda kv: kv[1]):
        tier = F.when(p >= F.lit(float(threshold)), F.lit(name)).otherwise(tier)
    return tier


def _quantile_edges(values: DataFrame, column: str, quantiles: tuple[float, ...]) -> np.ndarray:
    """`np.quantile(values, quantiles)` (linear) of a Spark column of finite values: the two
    order statistics around each quantile from a row_number window, interpolated by NumPy."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    n = values.count()
    if n == 0:
        return np.full(len(quantiles), np.nan)
    virtual = (n - 1) * np.asarray(quantiles, dtype=float)  # NumPy's index for "linear"
    previous = np.floor(virtual)
    gamma = virtual - previous
    rows = {int(i) for i in previous} | {int(min(i + 1, n - 1)) for i in previous}
    position = F.row_number().over(Window.orderBy(F.col(column).asc())) - 1
    picked = (
        values.select(F.col(column).alias("v"), position.alias("i"))
        .filter(F.col("i").isin(sorted(rows)))
        .collect()
    )
    at = {int(r["i"]): float(r["v"]) for r in picked}
    edges = []
    for v, i, g in zip(virtual, previous.astype(int), gamma, strict=True):
        if v >= n - 1:
            edges.append(at[n - 1])
        else:  # the same interpolation as NumPy's over the whole column: lerp(v[i], v[i+1], g)
            edges.append(float(np.quantile(np.array([at[i], at[i + 1]]), g)))
    return np.asarray(edges, dtype=float)


def _value_tier(value: Column, edges: np.ndarray, names: tuple[str, ...]) -> Column:
    """`models.value.assign_tiers`: names[number of edges <= value] (capped), null without value."""
    from pyspark.sql import functions as F

    index = F.lit(0)
    for edge in edges:
        index = index + F.when(value >= F.lit(float(edge)), 1).otherwise(0)
    tier = F.element_at(
        F.array(*[F.lit(n) for n in names]), F.least(index, F.lit(len(names) - 1)) + 1
    )
    return F.when(value.isNotNull() & ~F.isnan(value), tier)


def _lifetime(pop: DataFrame, value: ValueParams) -> float:
    """`models.value.lifetime_months` over the population: each customer's discounted lifetime by
    NumPy (the same `clv` call), averaged by Spark."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    if value.base_churn_rate is not None:
        return lifetime_months(np.empty(0), value)
    d, h = value.discount_rate, value.horizon_months

    @pandas_udf("double")  # type: ignore[call-overload]
    def months(p: pd.Series) -> pd.Series:
        return pd.Series(clv(np.ones(len(p)), p.to_numpy(dtype=float), 1.0, d, h))

    p = F.col("churn_probability")
    finite = pop.filter(p.isNotNull() & ~F.isnan(p))
    mean = finite.select(F.avg(months(p)).alias("l")).first()
    return float("nan") if mean is None or mean["l"] is None else float(mean["l"])


def population_columns_on_spark(
    pop: DataFrame,
    customers: int,
    risk_tiers: Mapping[str, float],
    default_tier: str,
    value: ValueParams,
) -> tuple[DataFrame, bool]:
    """`models.scoring.population_columns` as Spark window functions: per customer_id of `pop`
    (customer_id, churn_probability, monthly_fee; `customers` rows) the risk decile and tier,
    monthly fee, the value columns and the priority rank; and whether any customer has a fee."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    p, given = F.col("churn_probability"), F.col("monthly_fee")
    known_fee = given.isNotNull() & ~F.isnan(given)
    fee = F.when(known_fee, given)  # NaN as missing, as pandas has it
    has_value = customers > 0 and pop.filter(known_fee).limit(1).count() > 0
    rank = F.rank().over(Window.orderBy(p.desc()))  # ties: their minimum rank, as pandas "min"
    decile = F.least(F.lit(10), F.ceil(rank * 10 / F.lit(customers))).cast("short")
    scored = p.isNotNull()  # always; it keeps both columns nullable in Parquet, as DuckDB's are
    columns = [
        F.col("customer_id"),
        F.when(scored, decile).alias("risk_decile"),
        F.when(scored, _risk_tier(p, risk_tiers, default_tier)).alias("risk_tier"),
    ]
    nothing = F.lit(None).cast("double")
    if has_value:
        bad = p.isNull() | F.isnan(p) | (p < 0) | (p > 1) | (known_fee & (given < 0))
        check_scores(pop.filter(bad).toPandas())  # raises, naming an example, if any
        lifetime = _lifetime(pop, value)
        # the same operations in the same order as models.value (bit-equal given the lifetime)
        value_of = fee * F.lit(value.margin_rate) * F.lit(lifetime)
        if value.tier_clv_edges is not None:
            edges = np.asarray(value.tier_clv_edges, dtype=float)
        else:
            finite = pop.select(value_of.alias("clv")).filter(F.col("clv").isNotNull())
            edges = _quantile_edges(finite, "clv", value.tier_quantiles)
        gain = F.when(known_fee, p * F.lit(value.save_rate) * value_of - F.lit(value.contact_cost))
        columns += [
            fee.alias("monthly_fee"),
            value_of.alias("clv"),
            _value_tier(value_of, edges, value.tier_names).alias("value_tier"),
            (p * value_of).alias("value_at_risk"),
            gain.alias("expected_gain"),
        ]
        order, ranked = [gain.desc_nulls_last(), F.col("customer_id").asc()], gain.isNotNull()
        missing = customers - pop.filter(known_fee).count()
        if missing:
            log.warning(
                "%d of %d customers have no monthly_fee: no CLV, tier or priority rank for them",
                missing,
                customers,
            )
        log.info(
            "value: %d customers, discounted lifetime %.2f months, CLV tier edges %s",
            customers,
            lifetime,
            np.round(edges, 2).tolist(),
        )
    else:
        if customers:
            log.warning("%s", no_fee_note(value.fee_column))
        columns += [
            nothing.alias("monthly_fee"),
            nothing.alias("clv"),
            F.lit(None).cast("string").alias("value_tier"),
            nothing.alias("value_at_risk"),
            nothing.alias("expected_gain"),
        ]
        order, ranked = [p.desc(), F.col("customer_id").asc()], F.lit(True)
    position = F.row_number().over(Window.orderBy(*order)).cast("long")
    columns.append(F.when(ranked, position).alias("priority_rank"))
    return pop.select(*columns), has_value


def _warn_tiers_not_selective(
    pop: DataFrame, counts: Mapping[str, int], thresholds: Mapping[str, float], customers: int
) -> None:
    """`models.scoring.warn_tiers_not_selective` from the tier counts (quantiles by Spark)."""
    from pyspark.sql import functions as F

    if not thresholds or customers == 0:
        return
    top = max(thresholds, key=lambda k: thresholds[k])
    share = counts.get(top, 0) / customers
    if share > TOP_TIER_WARN_SHARE:
        p = F.col("churn_probability")
        row = pop.select(F.percentile(p, [0.5, 0.8, 0.95]).alias("q"), F.avg(p).alias("m")).first()
        assert row is not None
        log_tiers_not_selective(share, top, thresholds[top], row["m"], row["q"])


def score_on_spark(
    session: SparkSession,
    features: Path,
    loaded: LoadedModel,
    catalog: Mapping[str, FeatureInfo],
    *,
    reasons: int,
    fee_column: str,
    risk_tiers: Mapping[str, float],
    default_tier: str,
    value: ValueParams,
    work: Path,
) -> tuple[Path, SparkScores]:
    """Score the scoring table `features` as Spark jobs into a Parquet dataset under `work` (the
    scores file's columns and types, rows by customer_id); the dataset's directory and a summary.

    The per-customer scores are written once (`work/scored`) and read back, so TreeSHAP runs once
    whatever the population columns read."""
    from pyspark.sql import functions as F

    scored_dir, out = work / "scored", work / "scores-dataset"
    table = session.read.parquet(str(features))
    check_signature(table.columns, loaded.model, str(features))
    if table.isEmpty():  # nobody to score: the file holds customer_id only, as on DuckDB
        empty = session.createDataFrame([], "customer_id string")
        empty.coalesce(1).write.mode("overwrite").parquet(str(out))
        return out, SparkScores(0, None, {}, False)
    scored = scored_customers(table, loaded, catalog, reasons, fee_column)
    scored.write.mode("overwrite").parquet(str(scored_dir))
    scored = session.read.parquet(str(scored_dir))
    pop = scored.select("customer_id", "churn_probability", "monthly_fee")
    stats = pop.agg(F.count("*").alias("n"), F.avg("churn_probability").alias("mean")).first()
    assert stats is not None
    customers = int(stats["n"])
    extra, has_value = population_columns_on_spark(pop, customers, risk_tiers, default_tier, value)
    joined = scored.drop("monthly_fee").join(extra, "customer_id")
    rest = [c for c in scored.columns if c not in LEADING]
    joined = joined.select(*LEADING, *rest).orderBy("customer_id")
    joined.write.mode("overwrite").parquet(str(out))
    written = session.read.parquet(str(out))
    tiers = written.groupBy("risk_tier").agg(F.count("*").alias("n")).collect()
    counts = {str(r["risk_tier"]): int(r["n"]) for r in tiers}
    _warn_tiers_not_selective(pop, counts, risk_tiers, customers)
    summary = SparkScores(customers, float(stats["mean"]), dict(sorted(counts.items())), has_value)
    log.info("scored %d customers on Spark (mapInPandas) -> %s", customers, out)
    return out, summary
