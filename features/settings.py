"""Settings of the features layer: ingest (validation), labels and features (params.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from features.base.params import ParamsError, Section


@dataclass(frozen=True)
class TableSource(Section):
    """One contract table: a file (CSV, Parquet, JSON lines) or a DuckDB SQL query over files."""

    SECTION = "ingest.tables.<table>"

    path: str | None = None
    format: Literal["auto", "csv", "parquet", "json"] = "auto"  # auto: from the file's suffix
    sql: str | None = None  # instead of `path`: a DuckDB query returning the contract's columns
    required: bool = True  # False: a missing file is skipped (reported), not an error
    # strptime formats tried after ISO 8601, e.g. "%d/%m/%Y"
    timestamp_formats: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestParams(Section):
    """`churn ingest`: the sources and the validation thresholds."""

    SECTION = "ingest"

    tables: dict[str, TableSource] = field(default_factory=dict)
    max_quarantine_fraction: float = 0.01
    now: str | None = None  # timestamps after this are "future"; default: the wall clock
    min_parse_fraction: float = 0.5  # below this share of parseable values a column is fatal
    quarantine_before_signup: bool = True  # rows timed before the customer's signup_date
    memory_limit: str = "2GB"  # DuckDB memory_limit
    threads: int | None = None  # DuckDB threads; default: all cores
    temp_dir: str | None = None  # DuckDB work files (spill, staging db); default: system temp


@dataclass(frozen=True)
class LabelParams(Section):
    """`churn label`: who is active at a cutoff, and what counts as churn after it."""

    SECTION = "label"

    definition: Literal["contractual", "inactivity"] = "contractual"
    first_cutoff: str = "2024-07-01"
    lead_days: int = 0
    horizon_days: int = 30
    # inactivity definition only: active = any activity event in this many days before the cutoff
    inactivity_lookback_days: int = 30
    # the event types that count as activity (e.g. [purchase]: a delivery or a review is not),
    # for "active at the cutoff" and "returned in the label window" (inactivity definition) and
    # for min_prior_purchases. Null or []: every event type counts (the behaviour before).
    activity_event_types: tuple[str, ...] | None = None
    # population (both definitions): only customers with at least this many prior purchases =
    # distinct timestamps of activity events (activity_event_types; all types when empty)
    # strictly before the cutoff, over all their history. 0: off. 2 = repeat buyers.
    min_prior_purchases: int = 0
    # the last day whose data is complete (inclusive), e.g. "2024-12-30": activity events after it
    # are ignored by the label, and a cutoff is labelled only if its window ends by the end of that
    # day. Null: the day before the latest timestamp in any table (a late load then looks like
    # churn; see tail_warning_ratio).
    data_end: str | None = None
    # inactivity definition: warn when activity events per day over the last 14 days before the
    # data end fall below this share of the median daily rate of the 6 previous 30-day windows
    # (an incomplete tail, which would look like churn). 0: off.
    tail_warning_ratio: float = 0.5

    def validate(self) -> None:
        if self.lead_days < 0 or self.horizon_days <= 0 or self.inactivity_lookback_days <= 0:
            raise ParamsError(
                "label: lead_days must be >= 0, horizon_days and inactivity_lookback_days > 0; "
                f"found {self.lead_days}, {self.horizon_days}, {self.inactivity_lookback_days}"
            )
        if self.min_prior_purchases < 0:
            raise ParamsError(
                f"label.min_prior_purchases: expected 0 (off) or more, found "
                f"{self.min_prior_purchases}"
            )
        if not 0 <= self.tail_warning_ratio <= 1:
            raise ParamsError(
                f"label.tail_warning_ratio: expected a share between 0 (off) and 1, found "
                f"{self.tail_warning_ratio}"
            )
        types = list(self.activity_event_types or ())
        if any(not str(t).strip() for t in types):
            raise ParamsError(f"label.activity_event_types: a blank event type in {types}")


@dataclass(frozen=True)
class FeaturizeParams(Section):
    """`churn featurize` (and the scoring table): windows, event types, touchpoints, limits."""

    SECTION = "featurize"

    windows: tuple[int, ...] = (7, 30, 90, 180)  # days before the cutoff, for counts and sums
    summary_windows: tuple[int, ...] = (90, 180)  # survey scores, ticket categories/resolution
    csat_low_threshold: int = 5
    # behavioural event types: counts, value sums, active days, trend, days since last
    event_types: tuple[str, ...] = ("login", "feature_use")
    # purchase-like event types: the customer's own rhythm over all history (orders per year,
    # mean gap, recency over gap, recency share, value per order): features/families/purchases.py
    rhythm_event_types: tuple[str, ...] = ()
    # money-related event types: counts (and value sums) per window, days since last
    economic_event_types: tuple[str, ...] = (
        "purchase",
        "payment",
        "payment_failure",
        "discount_request",
    )
    # events whose value is the customer's new monthly fee
    fee_event_types: tuple[str, ...] = ("plan_change", "price_change")
    plan_change_event_type: str = "plan_change"
    survey_event_type: str = "survey_sent"
    # event type -> what its `value` means; value sums only for these (login_minutes_30d)
    event_value_names: dict[str, str] = field(
        default_factory=lambda: {"login": "minutes", "purchase": "amount", "payment": "amount"}
    )
    csat_metric: str = "csat"
    nps_metric: str = "nps"
    ces_metric: str = "ces"
    touchpoints: tuple[str, ...] = ("onboarding", "support", "after_sales", "billing", "renewal")
    ticket_categories: tuple[str, ...] = (
        "billing",
        "technical",
        "account",
        "cancellation",
        "other",
    )
    # customers columns that describe the contract (group `contract`); other extras are `profile`
    contract_columns: tuple[str, ...] = ("plan", "monthly_fee", "contract_type", "payment_method")
    profile_exclude: tuple[str, ...] = ()
    max_categories: int = 50  # string columns with more distinct values are not features
    lexicon: str = "features/lexicon.yaml"  # the warning-word lexicon (text features, alerts)
    duckdb_memory_limit: str = "3GB"
    duckdb_threads: int = 2

    def validate(self) -> None:
        for name in ("windows", "summary_windows"):
            days = getattr(self, name)
            if not days or any(d <= 0 for d in days):
                raise ParamsError(f"featurize.{name}: expected positive day counts, found {days}")


@dataclass(frozen=True)
class SparkParams(Section):
    """`engine.spark`: the Spark session that label, featurize and score run on."""

    SECTION = "engine.spark"

    master: str = "local[2]"  # local[N], spark://host:7077, yarn, k8s://...
    app_name: str = "churn-pipeline"
    driver_memory: str = "6g"  # spark.driver.memory (local mode: the whole job's heap)
    shuffle_partitions: int = 64  # spark.sql.shuffle.partitions: Spark's 200 suits a cluster
    # any other Spark setting, e.g. {spark.executor.memory: 8g}; the pipeline's own settings
    # (UTC session, Arrow, microsecond Parquet timestamps) cannot be overridden here
    conf: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if self.shuffle_partitions <= 0:
            raise ParamsError(
                f"engine.spark.shuffle_partitions: expected a positive count, found "
                f"{self.shuffle_partitions}"
            )


@dataclass(frozen=True)
class EngineParams(Section):
    """`engine`: where label, featurize and score run: embedded DuckDB or an Apache Spark cluster.

    Both build the same tables from the same Ibis expressions (tests/features/
    test_spark_parity.py); training and explanation read the labelled table on one machine.
    """

    SECTION = "engine"

    name: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkParams = field(default_factory=SparkParams)
