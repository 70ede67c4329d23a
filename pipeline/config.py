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

    # (fields: owned by the explain stage)


@dataclass(frozen=True)
class ScoreParams:
    """`churn score`: batch churn probabilities with reason codes (data/scores/)."""

    # (fields: owned by the score stage)


@dataclass(frozen=True)
class AlertParams:
    """`churn alert`: early-warning rules, routing and delivery (data/alerts/)."""

    # (fields: owned by the alert stage)


@dataclass(frozen=True)
class ValueParams:
    """Customer value (CLV, tiers, value at risk), retention priority and KPIs."""

    # (fields: owned by the value/KPI code)


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
