"""Settings of the pipeline layer: where every file lives, the simulator, the alert stage's
delivery (params.yaml sections `paths`, `simulate`, `alert`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from features.base.params import ParamsError, Section


@dataclass(frozen=True)
class PathsParams(Section):
    """Every file or directory that a stage reads or writes, each in one place.

    dvc.yaml reads the same keys (`${paths.features}`), so a path changed here changes the
    stages' dependencies and outputs too. Inputs that are configuration (the ingest sources,
    the lexicon, the rules file) stay in their own sections.
    """

    SECTION = "paths"

    raw: str = "data/raw"  # `simulate` writes the default sources here
    # the directory holding the files `ingest.tables` reads: the ingest stage's DVC dependency,
    # so changing a source reruns ingest (a source outside it is warned about)
    sources: str = "data/raw"
    truth: str = "data/raw/truth.parquet"  # the simulator's true probabilities (evaluate.truth)
    interim: str = "data/interim"  # validated contract tables (`ingest`)
    quarantine: str = "data/quarantine"  # rejected rows with their reason
    ingest_report: str = "reports/ingest.json"
    labels: str = "data/processed/labels.parquet"
    features: str = "data/processed/features.parquet"  # the model table
    catalog: str = "data/processed/feature_catalog.json"
    # which feature families were built or skipped, and why (`featurize`)
    feature_families: str = "data/processed/feature_families.json"
    model: str = "artifacts/model"  # the MLflow model directory `train` writes
    test_predictions: str = "data/processed/test_predictions.parquet"
    train_report: str = "reports/train.json"
    metrics: str = "reports/metrics.json"  # every test figure, ours and the baselines'
    model_metrics: str = "reports/metrics"  # the few that `dvc metrics show` compares
    segments_report: str = "reports/segments.json"
    plots: str = "reports/plots"
    truth_report: str = "reports/truth.json"
    promotion_report: str = "reports/promotion.json"
    profit_report: str = "reports/profit.json"
    kpis_report: str = "reports/kpis.json"
    kpis_dir: str = "reports/kpis"
    backtest_report: str = "reports/alerts_backtest.json"
    drivers: str = "reports/drivers"  # the SHAP driver report (index.html + CSV tables)
    score_features: str = "data/scores/features.parquet"  # the scoring table at the as-of date
    scores: str = "data/scores/scores.parquet"
    scores_csv: str = "data/scores/scores.csv"  # the same scores as CSV
    score_report: str = "reports/score.json"
    priority: str = "reports/priority.csv"
    alerts: str = "data/alerts"  # alerts.parquet, alerts.csv
    alerts_report: str = "reports/alerts.md"
    ledger: str = "data/alerts/delivery_ledger.json"  # what was delivered (persisted)
    tables: str = "reports/table"  # snapshot tables: one directory per table


@dataclass(frozen=True)
class SimulateParams(Section):
    """`churn simulate`: the default data, a subscription business with known churn drivers."""

    SECTION = "simulate"

    enabled: bool = True  # false on real data: the stage only writes a note into paths.raw
    # realistic: latent customer states behind noisy tables (pipeline/simulator/latent.py);
    # simple: 11 planted drivers read 1:1 off the tables (fast tests)
    world: Literal["realistic", "simple"] = "realistic"
    seed: int = 42
    customers: int = 20_000
    start_date: str = "2024-01-01"  # first day of a month
    end_date: str = "2025-12-31"
    existing_fraction: float = 0.5  # share of customers already subscribed at start_date
    chunk_size: int = 50_000  # customers per chunk (own seed each): bounds memory; part of the seed

    def validate(self) -> None:
        if self.customers <= 0 or self.chunk_size <= 0:
            raise ParamsError(
                "simulate.customers and simulate.chunk_size must be > 0, found "
                f"{self.customers} and {self.chunk_size}"
            )
        if not 0.0 <= self.existing_fraction <= 1.0:
            raise ParamsError(
                f"simulate.existing_fraction must be in [0, 1], found {self.existing_fraction}"
            )


@dataclass(frozen=True)
class DeliveryParams(Section):
    """Delivery of alerts to the owner teams' channels (pipeline/delivery.py)."""

    SECTION = "alert.delivery"

    enabled: bool = True  # send to the teams' enabled channels (none are enabled by default)
    max_attempts: int = 4  # per batch and run; then the alerts stay pending for the next run
    backoff_seconds: float = 1.0  # waits 1, 2, 4 ... seconds between attempts
    timeout_seconds: float = 10.0
    batch_size: int = 500  # alerts per webhook request / e-mail
    retention_days: int = 90  # delivered ledger entries older than this are forgotten

    def validate(self) -> None:
        if self.max_attempts < 1 or self.batch_size < 1 or self.backoff_seconds < 0:
            raise ParamsError(
                "alert.delivery: max_attempts and batch_size must be >= 1, backoff_seconds >= 0; "
                f"found {self.max_attempts}, {self.batch_size}, {self.backoff_seconds}"
            )


@dataclass(frozen=True)
class AlertParams(Section):
    """`churn alert` and `churn alert-backtest`: the rules file, delivery, DuckDB limits."""

    SECTION = "alert"

    rules: str = "alerts.yaml"  # the rules file: rules, levels, routing, team channels
    delivery: DeliveryParams = field(default_factory=DeliveryParams)
    duckdb_memory_limit: str = "2GB"
    duckdb_threads: int = 2
