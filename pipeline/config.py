"""params.yaml → `Params`: the layers' settings sections, composed (and nothing else here).

Each layer owns its sections (features/settings.py, models/settings.py, pipeline/settings.py);
features/params.py is the machinery (unknown keys are errors, `Literal` choices checked once).
Keys that moved in an earlier release raise a ParamsError naming their new home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from features.base.params import ParamsError, from_dict
from features.settings import FeaturizeParams, IngestParams, LabelParams
from models.settings import (
    DataParams,
    EvaluateParams,
    ExplainParams,
    LeakageParams,
    MlflowParams,
    RegistryParams,
    ScoreParams,
    SplitParams,
    TrainParams,
    ValueParams,
)
from pipeline.settings import AlertParams, PathsParams, SimulateParams

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class Params:
    """Every section of params.yaml."""

    paths: PathsParams = field(default_factory=PathsParams)
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
}


_MISSING = object()


def _check_moved(data: dict[str, Any], where: str) -> None:
    """Raise ParamsError naming every moved key found and its new home."""
    found = []
    for old, new in MOVED_KEYS.items():
        node: Any = data
        for part in old.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING:
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


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read params.yaml into typed, frozen config."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found; run from the project root")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return params_from_dict(data, where=str(path))
