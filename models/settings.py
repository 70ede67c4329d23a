"""Settings of the models layer: training, evaluation, explanation, scoring, value, snapshot
tables and the leakage guard (params.yaml sections; paths live in `paths`, see pipeline/config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from features.base.params import ParamsError, Section

CalibrationMethod = Literal["none", "sigmoid", "isotonic"]


@dataclass(frozen=True)
class SplitParams(Section):
    """Out-of-time split over the labelled cutoffs: train < valid < test (latest)."""

    SECTION = "split"

    valid_cutoffs: int = 1
    test_cutoffs: int = 1
    min_train_cutoffs: int = 1


@dataclass(frozen=True)
class CalibrationParams(Section):
    """Post-hoc calibration, chosen on the validation cutoff by cross-fitted log loss."""

    SECTION = "train.calibration"

    methods: tuple[CalibrationMethod, ...] = ("none", "sigmoid", "isotonic")
    folds: int = 5


@dataclass(frozen=True)
class TuningParams(Section):
    SECTION = "train.tuning"

    trials: int = 0  # 0 = off; Optuna TPE on the validation cutoff only
    timeout_s: int | None = None


@dataclass(frozen=True)
class BaselineParams(Section):
    SECTION = "train.baselines"

    logreg_c: float = 1.0
    logreg_max_levels: int = 20  # one-hot: keep at most this many frequent levels per column


# LightGBM keys of TrainParams a `train.candidates` entry may change
LGB_CANDIDATE_KEYS: frozenset[str] = frozenset(
    {
        "learning_rate",
        "num_leaves",
        "max_depth",
        "min_data_in_leaf",
        "feature_fraction",
        "bagging_fraction",
        "bagging_freq",
        "lambda_l2",
        "min_data_per_group",
        "cat_smooth",
        "cat_l2",
    }
)


@dataclass(frozen=True)
class TrainParams(Section):
    """LightGBM, calibration, tuning and the baselines of `churn train`."""

    SECTION = "train"

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
    min_positives: int = 30  # churners needed in the training cutoffs
    min_negatives: int = 30  # non-churners needed in the training cutoffs
    # churners and non-churners each needed in the validation and in the test cutoffs (the
    # validation cutoffs also need calibration.folds of each: the calibrator is cross-fitted)
    min_eval_rows_per_class: int = 5
    exclude_features: tuple[str, ...] = ()
    # after the choices on the validation cutoff, refit the model and the baselines on the
    # training + validation cutoffs (rounds: best_iteration x rows(train+valid) / rows(train))
    refit: bool = True
    # LightGBM settings tried besides the ones above ("base"): name -> the keys to change. Each
    # is early-stopped on the validation cutoff; the lowest validation log loss is kept (none:
    # train's own settings, as before; configs/cdnow.yaml sets two)
    candidates: dict[str, dict[str, int | float]] = field(default_factory=dict)
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    tuning: TuningParams = field(default_factory=TuningParams)
    baselines: BaselineParams = field(default_factory=BaselineParams)

    def validate(self) -> None:
        for name, overrides in self.candidates.items():
            if name in ("base", "tuned"):
                raise ParamsError(
                    f"train.candidates.{name}: the name is reserved (base: train's own settings,"
                    " tuned: Optuna's best); rename the candidate."
                )
            unknown = sorted(set(overrides) - LGB_CANDIDATE_KEYS)
            if unknown:
                raise ParamsError(
                    f"train.candidates.{name}: unknown key(s) {unknown}; allowed: "
                    f"{sorted(LGB_CANDIDATE_KEYS)}. Fix the spelling in params.yaml."
                )


@dataclass(frozen=True)
class TruthParams(Section):
    SECTION = "evaluate.truth"

    check: bool = True  # compare with the simulator's truth (paths.truth); false on real data
    # planted driver (simulation.json) -> feature columns carrying it; its rank = the best of them
    driver_features: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateParams(Section):
    """Test metrics, bootstrap intervals, segments and the truth check of `churn evaluate`."""

    SECTION = "evaluate"

    ece_bins: int = 15  # equal-frequency bins
    bootstrap: int = 200
    seed: int = 42
    segments: tuple[str, ...] = ("plan", "country")
    tenure_column: str = "tenure_days"
    tenure_bands_days: tuple[int, ...] = (90, 180, 365, 730)
    truth: TruthParams = field(default_factory=TruthParams)


@dataclass(frozen=True)
class RegistryParams(Section):
    SECTION = "registry"

    model_name: str = "churn-model"
    # compared on the same rows (models/promotion.py)
    metric: Literal["pr_auc", "roc_auc"] = "pr_auc"
    min_improvement: float = 0.0  # the challenger must reach the champion's figure plus this
    # auto: `dvc repro` / `churn evaluate` promote a challenger that wins (never inside
    # `dvc exp run`); manual: only `churn promote`
    promote: Literal["auto", "manual"] = "auto"


@dataclass(frozen=True)
class MlflowParams(Section):
    SECTION = "mlflow"

    experiment: str = "churn"
    tracking_uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI wins when set


@dataclass(frozen=True)
class ExplainParams(Section):
    """`churn explain`: the SHAP driver report."""

    SECTION = "explain"

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
    log_to_mlflow: bool = True  # log the report to the model's run under artifact path "drivers"

    def validate(self) -> None:
        for name in ("sample_size", "dependence_top_n", "segment_top_k", "beeswarm_features"):
            value = getattr(self, name)
            if value <= 0:
                raise ParamsError(f"explain.{name}: expected a positive number, found {value}")


@dataclass(frozen=True)
class ScoreParams(Section):
    """`churn score`: batch churn probabilities with reason codes."""

    SECTION = "score"

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
    # values never seen in training (categorical levels, event types, touchpoints): counted in
    # score.json; a column whose share is above this fails the job (exit 2)
    max_unseen_share: float = 0.2

    def validate(self) -> None:
        if not 0 <= self.max_unseen_share <= 1:
            raise ParamsError(
                "score.max_unseen_share: expected a share in [0, 1] (1 = never fail), found "
                f"{self.max_unseen_share}"
            )


@dataclass(frozen=True)
class ValueParams(Section):
    """Customer value (CLV, tiers, value at risk), retention priority and KPIs."""

    SECTION = "value"

    # CLV (models/value.py) = fee x margin_rate x L, L = the discounted lifetime of the book: the
    # same for every customer, never from the customer's own churn_probability
    fee_column: str = "current_monthly_fee"  # model-table column: the monthly fee at the cutoff
    # monthly churn rate of L for everyone; None = the survival of all customers valued,
    # mean_i (1 - churn_probability_i)^t
    base_churn_rate: float | None = None
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
            "bronze": "call_centre",
            "silver": "call_centre",
            "gold": "account_manager",
            "platinum": "account_manager",
        }
    )
    # KPIs (models/kpis.py, `churn kpis`)
    kpi_segments: tuple[str, ...] = ("plan", "country")  # customers columns
    kpi_first_month: str | None = None  # None: the month of the first recorded churn
    # CSAT score counted as satisfied (1-10 scale: top 3 boxes); also the driver report's
    csat_satisfied_min: float = 8.0
    purchase_event_type: str = "purchase"
    duckdb_memory_limit: str = "3GB"
    duckdb_threads: int = 2

    def validate(self) -> None:
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
        if self.base_churn_rate is not None and not 0 <= self.base_churn_rate < 1:
            raise ParamsError(
                "value.base_churn_rate: expected a monthly churn rate in [0, 1) or null (the "
                f"survival of the customers valued), found {self.base_churn_rate}"
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
        # HistGradientBoosting's defaults in LightGBM terms (no row or column sampling)
        "hgb_like": {
            "learning_rate": 0.1,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "lambda_l2": 0.0,
            "max_bin": 255,
            "feature_fraction": 1.0,
            "bagging_fraction": 1.0,
            "bagging_freq": 0,
            "min_data_per_group": 100,
            "cat_smooth": 10.0,
            "cat_l2": 10.0,
        },
    }


@dataclass(frozen=True)
class SnapshotTableParams(Section):
    """One snapshot table (one row per customer and a churn column): `table@<name>` stage."""

    SECTION = "data.tables.<name>"

    path: str = ""  # CSV or Parquet
    target: str = ""  # the churn column
    positive: Any = None  # its churned value, compared as text in any case ("Yes", 1, "true")
    id: str | None = None  # identifier column (dropped from the features, kept in the scores)
    drop: tuple[str, ...] = ()  # columns to leave out (e.g. known leaks, free text)
    cv: int | None = 5  # K-fold stratified CV; null = one stratified holdout

    def validate(self) -> None:
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
class DataParams(Section):
    """Data shape, and the snapshot tables' type inference and model (models/snapshot/)."""

    SECTION = "data"

    shape: Literal["temporal", "snapshot"] = "temporal"  # event tables | one row per customer
    tables: dict[str, SnapshotTableParams] = field(default_factory=dict)
    holdout_fraction: float = 0.2  # when cv is null
    # type inference (values only, never the label)
    numeric_min_share: float = 0.95  # parseable share of non-missing text to call it numeric
    date_min_share: float = 0.95
    id_unique_share: float = 0.99  # unique share of non-missing values to call a column an id
    free_text_min_levels: int = 100  # text with more levels than this and > half the rows
    free_text_unique_share: float = 0.5
    # model: (candidate, blend weight) pairs compared by inner-CV out-of-fold AUC in each fold
    candidates: dict[str, dict[str, int | float]] = field(default_factory=_default_candidates)
    inner_folds: int = 4
    num_boost_round: int = 5000
    early_stopping_rounds: int = 100
    refit_rounds_factor: float = 1.15
    blend_weights: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
    min_level_count: int = 25  # rarer categorical levels (in the training fold) are folded
    logreg_c: float = 1.0  # the logistic regression blended with LightGBM
    logreg_max_levels: int = 20
    calibration_methods: tuple[CalibrationMethod, ...] = ("none", "sigmoid", "isotonic")
    calibration_folds: int = 5
    # small tables: one thread per booster is faster than two fighting over a busy machine
    num_threads: int = 1
    seed: int = 42
    reasons: int = 3  # reason codes per scored row
    explain_sample: int = 2000  # rows of the driver report (stratified by label)
    experiment: str = "churn-snapshot"  # MLflow experiment
    model_name: str = "churn-snapshot-model"  # registered model

    def validate(self) -> None:
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
class LeakageParams(Section):
    """The leakage guard (models/training/leakage.py), in `train` and in `churn table`."""

    SECTION = "leakage"

    allow_leaky: bool = False  # true: suspects are reported but kept (`--allow-leaky`)
    auc_threshold: float = 0.98  # a feature's own AUC (max(auc, 1 - auc)) at or above: suspect
    rule_threshold: float = 0.98  # balanced accuracy of its best one-split rule
    missing_purity: float = 0.99  # share of one class among the rows where it is filled in
    min_filled_rows: int = 20  # a missing pattern needs at least this many filled rows
    # name and comparison evidence (leakage.py docstring): own AUC this high is "high"
    high_auc: float = 0.9
    dominance_margin: float = 0.1  # a high own AUC this far above every other feature's
    too_good_auc: float = 0.97  # a model ROC AUC above: the run summary says "too good to be true"
    folds: int = 5  # out-of-fold level rates of categorical features
    smoothing: float = 10.0  # level rate shrunk towards the base rate by this many rows
    max_rows: int = 100_000  # temporal model table: screen a seeded sample of this many rows
    seed: int = 42

    def validate(self) -> None:
        for name in ("auc_threshold", "rule_threshold", "missing_purity", "high_auc"):
            if not 0.5 < getattr(self, name) <= 1:
                raise ParamsError(f"leakage.{name}: expected (0.5, 1], found {getattr(self, name)}")
        if not 0.5 < self.too_good_auc <= 1 or not 0 <= self.dominance_margin < 0.5:
            raise ParamsError(
                "leakage.too_good_auc: expected (0.5, 1], leakage.dominance_margin [0, 0.5); "
                f"found {self.too_good_auc}, {self.dominance_margin}"
            )


@dataclass(frozen=True)
class MonitorParams(Section):
    """`churn monitor`: drift between the model's training rows and the scoring table, realised
    performance of past scores (models/monitoring/), and the score history `churn score` keeps.
    Paths, retention and the alert's team live in settings.yaml (pipeline/config.SETTINGS_KEYS)."""

    SECTION = "monitor"

    # drift (models/monitoring/drift.py): the measure the thresholds apply to
    measure: Literal["psi", "jensen_shannon"] = "psi"
    bins: int = 10  # reference quantile bins of a numeric feature
    warn_threshold: float = 0.1  # PSI: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large
    alert_threshold: float = 0.25
    missing_change: float = 0.1  # absolute change in a feature's missing share: alert
    new_level_share: float = 0.05  # share of scored rows with a level never seen in training
    # a feature's PSI must also exceed its sampling noise, chi2_{1-alpha}(bins - 1) x
    # (1/n_train + 1/n_scored): few rows (or a rarely filled feature) do not raise false flags
    noise_alpha: float = 0.001
    reference_max_rows: int = 200_000  # a seeded sample of the training rows beyond this
    seed: int = 42
    # realised performance (models/monitoring/performance.py)
    min_realised_roc_auc: float = 0.6  # below: alert
    segments: tuple[str, ...] = ("plan", "country")  # scoring-table columns
    ece_bins: int = 15
    page_features: int = 12  # distributions drawn on the page (largest drift first)
    log_to_mlflow: bool = True  # metrics per as-of date on the run of the model that scored
    # settings.yaml
    history_dir: str = "data/scores/history"  # one directory per as-of date (`churn score`)
    history_retention_days: int | None = 730  # kept back from the newest as-of; null = all
    report: str = "reports/monitor.json"
    page: str = "reports/monitor"  # index.html and the trend / drift CSVs (`dvc plots`)
    ledger: str = "data/monitor/delivery_ledger.json"  # delivered monitoring alerts
    alert_team: str | None = None  # a team of the rules file (alert.rules); null = log only

    def validate(self) -> None:
        if not 0 < self.warn_threshold <= self.alert_threshold:
            raise ParamsError(
                "monitor.warn_threshold and monitor.alert_threshold: expected 0 < warn <= alert, "
                f"found {self.warn_threshold} and {self.alert_threshold}"
            )
        if self.bins < 2 or self.reference_max_rows < 1 or self.page_features < 0:
            raise ParamsError(
                "monitor.bins >= 2, monitor.reference_max_rows >= 1, monitor.page_features >= 0; "
                f"found {self.bins}, {self.reference_max_rows}, {self.page_features}"
            )
        if self.history_retention_days is not None and self.history_retention_days < 1:
            raise ParamsError(
                "monitor.history_retention_days: expected days >= 1 or null (keep every run), "
                f"found {self.history_retention_days}"
            )
