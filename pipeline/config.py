"""params.yaml + settings.yaml → `Params`: the layers' settings sections, composed.

params.yaml holds what experiments vary; settings.yaml, next to it, holds where things live and
what the machine allows (`SETTINGS_KEYS`: paths, data sources, MLflow names, resource limits, alert
delivery), so that `dvc exp show` lists tunables only. Both files have the same shape and are
merged into one `Params`; a key set in both is an error, and a settings key found in params.yaml
(an older project) still works with a warning saying where it belongs.

Each layer owns its sections (features/settings.py, models/settings.py, pipeline/settings.py);
features/base/params.py is the machinery (unknown keys are errors, `Literal` choices checked once).
Keys that moved in an earlier release raise a ParamsError naming their new home.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from features.base.params import ParamsError, from_dict
from features.settings import EngineParams, FeaturizeParams, IngestParams, LabelParams
from models.settings import (
    DataParams,
    EvaluateParams,
    ExplainParams,
    LeakageParams,
    MlflowParams,
    MonitorParams,
    RegistryParams,
    ScoreParams,
    SplitParams,
    TrainParams,
    ValueParams,
)
from pipeline.settings import AlertParams, PathsParams, SimulateParams

PARAMS_FILE = Path("params.yaml")
SETTINGS_FILE_NAME = "settings.yaml"  # beside the params file

log = logging.getLogger(__name__)

# The keys (or whole sections) whose home is settings.yaml: none of them changes what is learnt.
SETTINGS_KEYS: tuple[str, ...] = (
    "paths",
    "engine",
    "ingest.tables",
    "ingest.memory_limit",
    "ingest.threads",
    "ingest.temp_dir",
    "featurize.lexicon",
    "featurize.duckdb_memory_limit",
    "featurize.duckdb_threads",
    "mlflow",
    "registry.model_name",
    "registry.promote",
    "score.model",
    "score.chunk_rows",
    "score.duckdb_memory_limit",
    "value.duckdb_memory_limit",
    "value.duckdb_threads",
    "alert.rules",
    "alert.delivery",
    "alert.duckdb_memory_limit",
    "alert.duckdb_threads",
    "data.experiment",
    "data.model_name",
    "monitor.history_dir",
    "monitor.history_retention_days",
    "monitor.report",
    "monitor.page",
    "monitor.ledger",
    "monitor.alert_team",
)


@dataclass(frozen=True)
class Params:
    """Every section of params.yaml."""

    paths: PathsParams = field(default_factory=PathsParams)
    engine: EngineParams = field(default_factory=EngineParams)
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
    monitor: MonitorParams = field(default_factory=MonitorParams)


# Old key -> its one home now. Every path lives in `paths`; a setting read by several stages
# lives in one section (no key shadows another).
MOVED_KEYS: dict[str, str] = {
    "simulate.out_dir": "paths.raw",
    "ingest.out_dir": "paths.interim",
    "ingest.quarantine_dir": "paths.quarantine",
    "ingest.report": "paths.ingest_report",
    "label.interim_dir": "paths.interim",
    "label.out": "paths.labels",
    "featurize.interim_dir": "paths.interim",
    "featurize.labels": "paths.labels",
    "featurize.out": "paths.features",
    "featurize.catalog_out": "paths.catalog",
    "train.features": "paths.features",
    "train.catalog": "paths.catalog",
    "train.model_dir": "paths.model",
    "train.predictions": "paths.test_predictions",
    "train.summary": "paths.train_report",
    "evaluate.truth.path": "paths.truth (`evaluate.truth.check: false` skips the check)",
    "evaluate.metrics": "paths.metrics",
    "evaluate.segments_report": "paths.segments_report",
    "evaluate.plots_dir": "paths.plots",
    "evaluate.truth_report": "paths.truth_report",
    "evaluate.promotion_report": "paths.promotion_report",
    "explain.alerts_backtest": "paths.backtest_report",
    "explain.kpis_report": "paths.kpis_report",
    "explain.kpis_dir": "paths.kpis_dir",
    "explain.out_dir": "paths.drivers",
    "explain.csat_satisfied_min": "value.csat_satisfied_min",
    "score.interim_dir": "paths.interim",
    "score.features_out": "paths.score_features",
    "score.out": "paths.scores",
    "score.csv": "paths.scores_csv",
    "score.summary": "paths.score_report",
    "value.priority_report": "paths.priority",
    "value.profit_report": "paths.profit_report",
    "value.interim_dir": "paths.interim",
    "value.kpis_report": "paths.kpis_report",
    "value.kpis_dir": "paths.kpis_dir",
    "alert.lexicon": "featurize.lexicon",
    "alert.interim_dir": "paths.interim",
    "alert.scores": "paths.scores",
    "alert.score_features": "paths.score_features",
    "alert.out_dir": "paths.alerts",
    "alert.report": "paths.alerts_report",
    "alert.ledger": "paths.ledger",
    "alert.labels": "paths.labels",
    "alert.features": "paths.features",
    "alert.test_predictions": "paths.test_predictions",
    "alert.backtest_report": "paths.backtest_report",
    "alert.deliver": "alert.delivery.enabled",
    "alert.max_attempts": "alert.delivery.max_attempts",
    "alert.backoff_seconds": "alert.delivery.backoff_seconds",
    "alert.timeout_seconds": "alert.delivery.timeout_seconds",
    "alert.batch_size": "alert.delivery.batch_size",
    "alert.ledger_retention_days": "alert.delivery.retention_days",
    "registry.tolerance": "registry.min_improvement (the challenger must reach the champion's "
    "figure on the same rows plus this; a worse model is never promoted)",
}


_MISSING = object()


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
    return node


def _check_moved(data: dict[str, Any], where: str) -> None:
    """Raise ParamsError naming every moved key found and its new home."""
    found = []
    for old, new in MOVED_KEYS.items():
        if _get(data, old) is not _MISSING:
            found.append(f"`{old}` is now `{new}`")
    if found:
        raise ParamsError(
            f"{where}: {'; '.join(found)}. Move the value(s) to the new key(s) "
            "(every path lives in `paths`, each setting in one section)."
        )


def params_from_dict(data: dict[str, Any], where: str = "params") -> Params:
    """`Params` from a mapping shaped like params.yaml (moved and unknown keys are errors)."""
    _check_moved(data, where)
    return from_dict(Params, data, where)


def _leaves(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every leaf (a mapping value counts as a leaf only when empty)."""
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            keys.extend(_leaves(value, f"{dotted}."))
        else:
            keys.append(dotted)
    return keys


def is_setting(dotted: str) -> bool:
    """Whether a dotted key's home is settings.yaml."""
    return any(dotted == k or dotted.startswith(f"{k}.") for k in SETTINGS_KEYS)


def _merge(params: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {**params}
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_settings(
    params: dict[str, Any], settings: dict[str, Any], params_where: str, settings_where: str
) -> dict[str, Any]:
    """One mapping from both files: a key in both is an error; a tunable in settings.yaml too."""
    in_params = set(_leaves(params))
    both = sorted(k for k in _leaves(settings) if k in in_params)
    if both:
        raise ParamsError(
            f"{params_where} and {settings_where} both set {', '.join(f'`{k}`' for k in both)}; "
            f"keep {'it' if len(both) == 1 else 'them'} in one file ({settings_where} for "
            "paths, sources, MLflow names and resource limits; params.yaml for tunables)."
        )
    tunables = sorted(k for k in _leaves(settings) if not is_setting(k))
    if tunables:
        raise ParamsError(
            f"{settings_where}: {', '.join(f'`{k}`' for k in tunables)} "
            f"{'is a tunable' if len(tunables) == 1 else 'are tunables'}; move "
            f"{'it' if len(tunables) == 1 else 'them'} to {params_where} (settings.yaml holds "
            f"only {', '.join(SETTINGS_KEYS)})."
        )
    return _merge(params, settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read params.yaml and the settings.yaml beside it (if any) into typed, frozen config."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found; run from the project root")
    data = _read_yaml(path)
    settings_path = path.with_name(SETTINGS_FILE_NAME)
    misplaced = sorted(k for k in _leaves(data) if is_setting(k))
    if misplaced:
        log.warning(
            "%s sets %s, which belong(s) in %s (not tunables); it still works, but moving them "
            "keeps `dvc exp show` to what experiments vary",
            path,
            ", ".join(misplaced[:5]) + (" ..." if len(misplaced) > 5 else ""),
            settings_path,
        )
    if settings_path.exists():
        data = merge_settings(data, _read_yaml(settings_path), str(path), str(settings_path))
    return params_from_dict(data, where=str(path))
