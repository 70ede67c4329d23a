"""params.yaml → frozen dataclasses; unknown keys are an error, not silently ignored."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

PARAMS_FILE = Path("params.yaml")

T = TypeVar("T")


class ParamsError(ValueError):
    """params.yaml does not match the typed config."""


@dataclass(frozen=True)
class SimulateParams:
    seed: int = 42
    customers: int = 20_000
    start_date: str = "2024-01-01"  # first day of a month
    end_date: str = "2025-12-31"
    out_dir: str = "data/raw"
    existing_fraction: float = 0.5  # share of customers already subscribed at start_date
    chunk_size: int = 50_000  # customers per chunk (own seed each): bounds memory; part of the seed


@dataclass(frozen=True)
class TableSource:
    """One contract table: a file (CSV, Parquet, JSON lines) or a DuckDB SQL query over files."""

    path: str | None = None
    format: str = "auto"  # auto | csv | parquet | json (JSON lines); auto = from the suffix
    sql: str | None = None  # instead of `path`: a DuckDB query returning the contract's columns
    required: bool = True  # False: a missing file is skipped (reported), not an error
    timestamp_formats: tuple[
        str, ...
    ] = ()  # strptime formats tried after ISO 8601, e.g. "%d/%m/%Y"


@dataclass(frozen=True)
class IngestParams:
    tables: dict[str, TableSource] = field(default_factory=dict)
    out_dir: str = "data/interim"
    quarantine_dir: str = "data/quarantine"
    report: str = "reports/ingest.json"
    max_quarantine_fraction: float = 0.01
    now: str | None = None  # timestamps after this are "future"; default: the wall clock
    min_parse_fraction: float = 0.5  # below this share of parseable values a column is fatal
    quarantine_before_signup: bool = True  # rows timed before the customer's signup_date
    memory_limit: str = "2GB"  # DuckDB memory_limit
    threads: int | None = None  # DuckDB threads; default: all cores
    temp_dir: str | None = None  # DuckDB work files (spill, staging db); default: system temp


@dataclass(frozen=True)
class LabelParams:
    definition: str = "contractual"  # contractual | inactivity
    first_cutoff: str = "2024-07-01"
    lead_days: int = 0
    horizon_days: int = 30
    # inactivity definition only: active = any event in this many days before the cutoff
    inactivity_lookback_days: int = 30
    interim_dir: str = "data/interim"
    out: str = "data/processed/labels.parquet"

    def __post_init__(self) -> None:
        if self.definition not in ("contractual", "inactivity"):
            raise ParamsError(
                "label.definition: expected 'contractual' or 'inactivity', "
                f"found {self.definition!r}"
            )
        if self.lead_days < 0 or self.horizon_days <= 0 or self.inactivity_lookback_days <= 0:
            raise ParamsError(
                "label: lead_days must be >= 0, horizon_days and inactivity_lookback_days > 0; "
                f"found {self.lead_days}, {self.horizon_days}, {self.inactivity_lookback_days}"
            )


@dataclass(frozen=True)
class FeaturizeParams:
    windows: tuple[int, ...] = (7, 30, 90, 180)  # days before the cutoff, for counts and sums
    summary_windows: tuple[int, ...] = (90, 180)  # survey scores, ticket categories/resolution
    csat_low_threshold: int = 5
    lexicon: str = "features/lexicon.yaml"
    # behavioural event types: counts, value sums, active days, trend, days since last
    event_types: tuple[str, ...] = ("login", "feature_use")
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
    interim_dir: str = "data/interim"
    labels: str = "data/processed/labels.parquet"
    out: str = "data/processed/features.parquet"
    catalog_out: str = "data/processed/feature_catalog.json"
    duckdb_memory_limit: str = "3GB"
    duckdb_threads: int = 2

    def __post_init__(self) -> None:
        for name in ("windows", "summary_windows"):
            days = getattr(self, name)
            if not days or any(d <= 0 for d in days):
                raise ParamsError(f"featurize.{name}: expected positive day counts, found {days}")


@dataclass(frozen=True)
class SplitParams:
    """Out-of-time split over the labelled cutoffs: train < valid < test (latest)."""

    valid_cutoffs: int = 1
    test_cutoffs: int = 1
    min_train_cutoffs: int = 1


@dataclass(frozen=True)
class CalibrationParams:
    methods: tuple[str, ...] = ("none", "sigmoid", "isotonic")  # chosen on valid by CV log loss
    folds: int = 5


@dataclass(frozen=True)
class TuningParams:
    trials: int = 0  # 0 = off; Optuna TPE on the validation cutoff only
    timeout_s: int | None = None


@dataclass(frozen=True)
class BaselineParams:
    logreg_c: float = 1.0
    logreg_max_levels: int = 20  # one-hot: keep at most this many frequent levels per column


@dataclass(frozen=True)
class TrainParams:
    seed: int = 42
    num_threads: int = 2
    learning_rate: float = 0.03
    num_boost_round: int = 3000
    early_stopping_rounds: int = 100
    num_leaves: int = 31
    max_depth: int = -1
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    min_data_per_group: int = 100
    cat_smooth: float = 10.0
    cat_l2: float = 10.0
    min_level_count: int = 50  # categorical levels rarer than this in TRAIN become "__other__"
    scale_pos_weight: float = 1.0  # != 1 distorts raw scores; calibration repairs them
    min_positives: int = 30
    exclude_features: tuple[str, ...] = ()
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    tuning: TuningParams = field(default_factory=TuningParams)
    baselines: BaselineParams = field(default_factory=BaselineParams)
    features: str = "data/processed/features.parquet"
    catalog: str = "data/processed/feature_catalog.json"
    model_dir: str = "artifacts/model"
    predictions: str = "data/processed/test_predictions.parquet"
    summary: str = "reports/train.json"


@dataclass(frozen=True)
class TruthParams:
    path: str | None = "data/raw/truth.parquet"  # simulated data only; null = skip the check
    driver_features: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateParams:
    ece_bins: int = 15  # equal-frequency bins
    bootstrap: int = 200
    seed: int = 42
    segments: tuple[str, ...] = ("plan", "country")
    tenure_column: str = "tenure_days"
    tenure_bands_days: tuple[int, ...] = (90, 180, 365, 730)
    truth: TruthParams = field(default_factory=TruthParams)
    metrics: str = "reports/metrics.json"
    segments_report: str = "reports/segments.json"
    plots_dir: str = "reports/plots"
    truth_report: str = "reports/truth.json"
    promotion_report: str = "reports/promotion.json"


@dataclass(frozen=True)
class RegistryParams:
    model_name: str = "churn-model"
    metric: str = "pr_auc"  # test metric compared for promotion
    tolerance: float = 0.005


@dataclass(frozen=True)
class MlflowParams:
    experiment: str = "churn"
    tracking_uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI wins when set


@dataclass(frozen=True)
class ExplainParams:
    """`churn explain`: the SHAP driver report (reports/drivers/)."""

    sample_size: int = 5000  # test-cutoff rows, stratified by label (proportional)
    seed: int = 42
    top_table: int = 30  # features listed in the HTML importance table (the CSV has all)
    beeswarm_features: int = 20
    dependence_top_n: int = 6  # dependence plots of the strongest drivers
    direction_min_abs_corr: float = 0.1  # |rank corr(value, SHAP)| below this = "mixed"
    # model-table columns; a column not present (e.g. value_tier before scoring) is skipped
    segments: tuple[str, ...] = ("plan", "country", "value_tier")
    segment_top_k: int = 3
    segment_max_levels: int = 12  # largest levels shown per segment column
    segment_min_rows: int = 30  # sampled customers a level needs to be shown
    touchpoint_performance: str = "mean_90d"  # performance = mean of csat_<tp>_<this>
    csat_satisfied_min: float = 8.0  # latest CSAT >= this = satisfied (as value.csat_satisfied_min)
    # written by `churn alert-backtest`; absent = the section says so
    alerts_backtest: str = "reports/alerts_backtest.json"
    # written by `churn kpis` (value.kpis_report, value.kpis_dir); absent = the section says so
    kpis_report: str = "reports/kpis.json"
    kpis_dir: str = "reports/kpis"
    log_to_mlflow: bool = True  # log out_dir to the model's run under artifact path "drivers"
    out_dir: str = "reports/drivers"

    def __post_init__(self) -> None:
        for name in ("sample_size", "dependence_top_n", "segment_top_k", "beeswarm_features"):
            value = getattr(self, name)
            if value <= 0:
                raise ParamsError(f"explain.{name}: expected a positive number, found {value}")


@dataclass(frozen=True)
class ScoreParams:
    """`churn score`: batch churn probabilities with reason codes (data/scores/)."""

    model: str = "models:/churn-model@champion"  # or an MLflow model directory: artifacts/model
    as_of: str | None = None  # default: the day after the latest timestamp in the data
    reasons: int = 3  # reason codes per customer
    chunk_rows: int = 100_000  # customers per chunk (features and scoring): bounds memory
    duckdb_memory_limit: str = "1GB"  # the scoring table's DuckDB work (spills beyond this)
    # probability thresholds, a customer gets the highest tier it reaches; below all: default_tier
    risk_tiers: dict[str, float] = field(
        default_factory=lambda: {"critical": 0.3, "high": 0.15, "medium": 0.08}
    )
    default_tier: str = "low"
    interim_dir: str = "data/interim"
    features_out: str = "data/scores/features.parquet"
    out: str = "data/scores/scores.parquet"
    csv: str | None = None  # also export CSV here (e.g. data/scores/scores.csv)
    summary: str = "reports/score.json"


@dataclass(frozen=True)
class AlertParams:
    """`churn alert`: early-warning rules, routing and delivery (data/alerts/)."""

    rules: str = "alerts.yaml"  # the rules file: rules, levels, routing, team channels
    lexicon: str = "features/lexicon.yaml"  # the same lexicon as the text features
    interim_dir: str = "data/interim"
    scores: str = "data/scores/scores.parquet"  # optional: churn_probability, value_tier ...
    score_features: str = "data/scores/features.parquet"  # features at the as-of date
    out_dir: str = "data/alerts"  # alerts.parquet, alerts.csv
    report: str = "reports/alerts.md"
    deliver: bool = True  # send to the teams' enabled channels (none are enabled by default)
    ledger: str = "data/alerts/delivery_ledger.json"  # persisted DVC output: what was delivered
    ledger_retention_days: int = 90
    max_attempts: int = 4  # per batch and run
    backoff_seconds: float = 1.0  # waits 1, 2, 4 ... seconds between attempts
    timeout_seconds: float = 10.0
    batch_size: int = 500  # alerts per webhook request / e-mail
    # backtest (`churn alert-backtest`)
    labels: str = "data/processed/labels.parquet"
    features: str = "data/processed/features.parquet"
    test_predictions: str = "data/processed/test_predictions.parquet"
    backtest_report: str = "reports/alerts_backtest.json"
    duckdb_memory_limit: str = "2GB"
    duckdb_threads: int = 2

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.batch_size < 1 or self.backoff_seconds < 0:
            raise ParamsError(
                "alert: max_attempts and batch_size must be >= 1, backoff_seconds >= 0; "
                f"found {self.max_attempts}, {self.batch_size}, {self.backoff_seconds}"
            )


@dataclass(frozen=True)
class ValueParams:
    """Customer value (CLV, tiers, value at risk), retention priority and KPIs."""

    # CLV (models/value.py): monthly margin = fee x margin_rate, retention r = 1 - churn_probability
    fee_column: str = "current_monthly_fee"  # model-table column: the monthly fee at the cutoff
    margin_rate: float = 0.7
    discount_rate: float = 0.01  # per month
    horizon_months: int | None = 36  # None = infinite horizon
    tier_names: tuple[str, ...] = ("bronze", "silver", "gold", "platinum")  # lowest first
    tier_quantiles: tuple[float, ...] = (0.5, 0.8, 0.95)  # CLV quantiles between the tiers
    tier_clv_edges: tuple[float, ...] | None = None  # fixed CLV edges instead of quantiles
    # retention contact: expected gain = p x save_rate x CLV - contact_cost
    save_rate: float = 0.25
    contact_cost: float = 10.0
    tier_owners: dict[str, str] = field(
        default_factory=lambda: {
            "bronze": "customer_success",
            "silver": "customer_success",
            "gold": "account_management",
            "platinum": "account_management",
        }
    )
    priority_report: str = "reports/priority.csv"
    profit_report: str = "reports/profit.json"
    # KPIs (models/kpis.py, `churn kpis`)
    interim_dir: str = "data/interim"
    kpi_segments: tuple[str, ...] = ("plan", "country")  # customers columns
    kpi_first_month: str | None = None  # None: the month of the first recorded churn
    csat_satisfied_min: float = 8.0  # CSAT score counted as satisfied (1-10 scale: top 3 boxes)
    purchase_event_type: str = "purchase"
    kpis_report: str = "reports/kpis.json"
    kpis_dir: str = "reports/kpis"
    duckdb_memory_limit: str = "3GB"
    duckdb_threads: int = 2

    def __post_init__(self) -> None:
        if len(self.tier_names) < 1:
            raise ParamsError("value.tier_names: expected at least one tier name")
        edges = self.tier_clv_edges if self.tier_clv_edges is not None else self.tier_quantiles
        which = "tier_clv_edges" if self.tier_clv_edges is not None else "tier_quantiles"
        if len(edges) != len(self.tier_names) - 1 or list(edges) != sorted(set(edges)):
            raise ParamsError(
                f"value.{which}: expected {len(self.tier_names) - 1} increasing values (one "
                f"between each pair of tier_names {list(self.tier_names)}), found {list(edges)}"
            )
        if self.tier_clv_edges is None and any(not 0 < q < 1 for q in self.tier_quantiles):
            raise ParamsError(
                f"value.tier_quantiles: expected values in (0, 1), found {self.tier_quantiles}"
            )
        for name in ("margin_rate", "save_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParamsError(f"value.{name}: expected 0..1, found {getattr(self, name)}")
        if self.discount_rate < 0 or self.contact_cost < 0:
            raise ParamsError(
                "value.discount_rate and value.contact_cost must be >= 0; found "
                f"{self.discount_rate}, {self.contact_cost}"
            )
        if self.horizon_months is not None and self.horizon_months <= 0:
            raise ParamsError(
                "value.horizon_months: expected > 0 or null (infinite), "
                f"found {self.horizon_months}"
            )
        if self.horizon_months is None and self.discount_rate == 0:
            raise ParamsError(
                "value: an infinite horizon with discount_rate 0 gives an infinite CLV for a "
                "customer with churn probability 0; set value.discount_rate > 0 or a finite "
                "value.horizon_months"
            )


def _default_candidates() -> dict[str, dict[str, int | float]]:
    """LightGBM candidates for snapshot tables, small to large trees; chosen per training fold."""
    return {
        "small": {
            "learning_rate": 0.03,
            "num_leaves": 8,
            "min_data_in_leaf": 30,
            "feature_fraction": 0.7,
            "lambda_l2": 5.0,
            "min_data_per_group": 50,
            "cat_smooth": 20.0,
            "cat_l2": 10.0,
        },
        "medium": {
            "learning_rate": 0.03,
            "num_leaves": 31,
            "min_data_in_leaf": 10,
            "feature_fraction": 0.7,
            "lambda_l2": 1.0,
            "min_data_per_group": 20,
            "cat_smooth": 10.0,
            "cat_l2": 10.0,
        },
        "large": {
            "learning_rate": 0.05,
            "num_leaves": 63,
            "min_data_in_leaf": 5,
            "feature_fraction": 0.7,
            "lambda_l2": 0.1,
            "min_data_per_group": 10,
            "cat_smooth": 5.0,
            "cat_l2": 1.0,
        },
    }


@dataclass(frozen=True)
class SnapshotTableParams:
    """One snapshot table (one row per customer and a churn column): `table@<name>` stage."""

    path: str = ""  # CSV or Parquet
    target: str = ""  # the churn column
    positive: Any = None  # its churned value, compared as text in any case ("Yes", 1, "true")
    id: str | None = None  # identifier column (dropped from the features, kept in the scores)
    drop: tuple[str, ...] = ()  # columns to leave out (e.g. known leaks, free text)
    cv: int | None = 5  # K-fold stratified CV; null = one stratified holdout

    def __post_init__(self) -> None:
        if not self.path or not self.target:
            raise ParamsError("data.tables.<name>: `path` and `target` are required")
        if isinstance(self.positive, bool) or self.positive is None:
            raise ParamsError(
                f"data.tables.<name>.positive: found {self.positive!r}; YAML reads unquoted "
                'Yes/No/True/False as booleans: quote the churned value, e.g. positive: "Yes"'
            )
        if not isinstance(self.positive, str | int | float):
            raise ParamsError(
                f"data.tables.<name>.positive: expected text, found {self.positive!r}"
            )
        object.__setattr__(self, "positive", str(self.positive))
        if self.cv is not None and self.cv < 2:
            raise ParamsError(f"data.tables.<name>.cv: expected >= 2 or null, found {self.cv}")


@dataclass(frozen=True)
class DataParams:
    """Data shape and the snapshot-table settings (`churn table fit/run`, models/snapshot.py)."""

    shape: str = "temporal"  # temporal (event tables) | snapshot (one row per customer)
    tables: dict[str, SnapshotTableParams] = field(default_factory=dict)
    holdout_fraction: float = 0.2  # when cv is null
    # type inference (values only, never the label)
    numeric_min_share: float = 0.95
    date_min_share: float = 0.95
    id_unique_share: float = 0.99
    # model: candidates compared by inner-CV out-of-fold AUC inside each training fold
    candidates: dict[str, dict[str, int | float]] = field(default_factory=_default_candidates)
    inner_folds: int = 4
    num_boost_round: int = 5000
    early_stopping_rounds: int = 100
    refit_rounds_factor: float = 1.15
    blend_weights: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
    min_level_count: int = 25  # rarer categorical levels (in the training fold) are folded
    num_threads: int = 1
    seed: int = 42
    reasons: int = 3  # reason codes per scored row
    explain_sample: int = 2000  # rows of the driver report (stratified by label)
    experiment: str = "churn-snapshot"  # MLflow experiment
    model_name: str = "churn-snapshot-model"  # registered model

    def __post_init__(self) -> None:
        if self.shape not in ("temporal", "snapshot"):
            raise ParamsError(
                f"data.shape: expected 'temporal' or 'snapshot', found {self.shape!r}"
            )
        if self.shape == "snapshot" and not self.tables:
            raise ParamsError(
                "data.shape is 'snapshot' but data.tables is empty: name at least one table "
                "(path, target, positive), e.g. configs/telco.yaml"
            )
        if self.shape == "temporal" and self.tables:
            raise ParamsError(
                f"data.tables {sorted(self.tables)} is set but data.shape is 'temporal'; set "
                "data.shape: snapshot (or remove data.tables)"
            )
        if not self.candidates or self.inner_folds < 2 or not 0 < self.holdout_fraction < 1:
            raise ParamsError(
                "data: candidates must not be empty, inner_folds >= 2, 0 < holdout_fraction < 1; "
                f"found {len(self.candidates)}, {self.inner_folds}, {self.holdout_fraction}"
            )
        if not self.blend_weights or any(not 0 <= w <= 1 for w in self.blend_weights):
            raise ParamsError(
                f"data.blend_weights: expected values in [0, 1], found {self.blend_weights}"
            )


@dataclass(frozen=True)
class LeakageParams:
    """The leakage guard (models/leakage.py), in `train` and in `churn table`."""

    allow_leaky: bool = False  # true: suspects are reported but kept (`--allow-leaky`)
    auc_threshold: float = 0.98  # a feature's own AUC (max(auc, 1 - auc)) at or above: suspect
    rule_threshold: float = 0.98  # balanced accuracy of its best one-split rule
    missing_purity: float = 0.99  # share of one class among the rows where it is filled in
    min_filled_rows: int = 20
    folds: int = 5  # out-of-fold level rates of categorical features
    smoothing: float = 10.0
    max_rows: int = 100_000  # temporal model table: screen a seeded sample of this many rows
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("auc_threshold", "rule_threshold", "missing_purity"):
            if not 0.5 < getattr(self, name) <= 1:
                raise ParamsError(f"leakage.{name}: expected (0.5, 1], found {getattr(self, name)}")


@dataclass(frozen=True)
class Params:
    simulate: SimulateParams = field(default_factory=SimulateParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    label: LabelParams = field(default_factory=LabelParams)
    featurize: FeaturizeParams = field(default_factory=FeaturizeParams)
    split: SplitParams = field(default_factory=SplitParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    registry: RegistryParams = field(default_factory=RegistryParams)
    mlflow: MlflowParams = field(default_factory=MlflowParams)
    explain: ExplainParams = field(default_factory=ExplainParams)
    score: ScoreParams = field(default_factory=ScoreParams)
    alert: AlertParams = field(default_factory=AlertParams)
    value: ValueParams = field(default_factory=ValueParams)
    data: DataParams = field(default_factory=DataParams)
    leakage: LeakageParams = field(default_factory=LeakageParams)


def _build(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type `tp`, recursively; raise ParamsError if not."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, found {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _build(arg, value, where)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError("; ".join(errors))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, found {value!r}")
        key_t, val_t = args
        return {_build(key_t, k, where): _build(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{where}: expected a list, found {value!r}")
        item_t = args[0]
        items = [_build(item_t, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and not isinstance(value, str):
        # YAML turns 2024-01-01 into a date; dates are carried as ISO strings.
        if hasattr(value, "isoformat"):
            return value.isoformat()
        raise ParamsError(f"{where}: expected text, found {value!r}")
    if tp in (int, float, bool):
        if isinstance(value, bool) != (tp is bool) or not isinstance(value, tp):
            raise ParamsError(f"{where}: expected {tp.__name__}, found {value!r}")
        return value
    if tp is Any:
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "params") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise ParamsError naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ParamsError(
            f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}. "
            "Fix the spelling in params.yaml or remove the key."
        )
    kwargs = {k: _build(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read params.yaml into typed, frozen config."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found; run from the project root")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return from_dict(Params, data, where=str(path))
