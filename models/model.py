"""The trained churn model: which columns it reads (FeatureSpec, fixed on the training rows),
the booster and calibrator (ChurnModel), and how to load one from a model directory or the
MLflow registry (`load_model`, `load_model_uri`).

A model that is there but damaged (truncated booster, unreadable metadata or MLmodel file) raises
ModelLoadError (exit 2) naming the file and the fix: the booster is checked against the digest
written beside it at save time, and its text must end with LightGBM's closing sections, before
LightGBM reads it (LightGBM aborts the process on a damaged model text)."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.base.errors import BadInputError, InputNotFoundError
from models.training.calibration import Calibrator
from models.training.split import NON_FEATURE_COLUMNS, TrainingDataError

log = logging.getLogger(__name__)

OTHER = "__other__"
BOOSTER_FILE = "booster.txt"
META_FILE = "model_meta.json"
MLMODEL_FILE = "MLmodel"
# model_meta.json key: digest of booster.txt written at save time (models saved before it have none)
BOOSTER_DIGEST = "booster_sha256"
RETRAIN = (
    "Retrain with `churn train` (or `dvc repro`), or point score.model / --model at another "
    "model version (e.g. models:/churn-model/<version> or artifacts/model)."
)


@dataclass
class FeatureSpec:
    """Which columns the model uses, learned from the training rows only."""

    numeric: list[str] = field(default_factory=list)
    # column -> kept levels (plus OTHER when rare levels were folded) / the folded rare levels
    categorical: dict[str, list[str]] = field(default_factory=dict)
    rare_levels: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    # the latest training cutoff (ISO): the training features read only data before it. None for
    # models saved before it was recorded, or trained on rows without a cutoff.
    train_end: str | None = None

    @property
    def features(self) -> list[str]:
        """Model columns in a fixed order: numeric first, then categorical."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric,
            # a list, not a mapping: column order is part of the model (JSON keys get sorted)
            "categorical": [{"name": k, "levels": v} for k, v in self.categorical.items()],
            "rare_levels": self.rare_levels,
            "dropped": self.dropped,
            "train_end": self.train_end,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(
            numeric=list(data["numeric"]),
            categorical={c["name"]: list(c["levels"]) for c in data["categorical"]},
            rare_levels={k: list(v) for k, v in data.get("rare_levels", {}).items()},
            dropped=dict(data.get("dropped", {})),
            train_end=data.get("train_end"),
        )


def is_categorical(series: pd.Series) -> bool:
    """Text, categorical or object columns: levels (the spec's categoricals, the monitor's
    level-by-level drift); everything else is numeric."""
    return bool(
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or pd.api.types.is_object_dtype(series.dtype)
    )


def fit_feature_spec(
    train: pd.DataFrame,
    exclude: tuple[str, ...] = (),
    min_level_count: int = 50,
    source: str = "model table",
) -> FeatureSpec:
    """Decide the model's columns from TRAIN rows: drop constant/unusable ones (with a warning)."""
    spec = FeatureSpec()
    if "cutoff" in train.columns and train["cutoff"].notna().any():
        spec.train_end = pd.Timestamp(train["cutoff"].max()).isoformat()
    candidates = [c for c in train.columns if c not in NON_FEATURE_COLUMNS and c not in exclude]
    if not candidates:
        raise TrainingDataError(
            f"{source}: no feature columns besides {sorted(NON_FEATURE_COLUMNS)}; "
            "re-run `churn featurize` or check train.exclude_features."
        )
    for col in candidates:
        s = train[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            spec.dropped[col] = "timestamp column (not a feature)"
        elif s.nunique(dropna=False) <= 1:
            value = s.iloc[0] if len(s) else None
            shown = "always missing" if value is None or pd.isna(value) else f"value {value}"
            spec.dropped[col] = f"constant in training rows ({shown})"
        elif is_categorical(s):
            counts = s.dropna().astype(str).value_counts()
            if len(counts) > 0.5 * len(s) and len(counts) > 100:
                spec.dropped[col] = f"identifier-like ({len(counts)} distinct values)"
                continue
            kept = sorted(counts[counts >= min_level_count].index.tolist())
            rare = sorted(counts[counts < min_level_count].index.tolist())
            if not kept and len(rare) <= 1:
                spec.dropped[col] = "no level frequent enough"
                continue
            spec.categorical[col] = kept + ([OTHER] if rare else [])
            if rare:
                spec.rare_levels[col] = rare
        elif pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            spec.numeric.append(col)
        else:
            spec.dropped[col] = f"unsupported dtype {s.dtype}"
    for col, reason in spec.dropped.items():
        log.warning("%s: feature column %r dropped: %s", source, col, reason)
    if not spec.features:
        raise TrainingDataError(
            f"{source}: every feature column was dropped ({spec.dropped}); the model has nothing "
            "to learn from. Check the featurize stage output."
        )
    return spec


def to_model_frame(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Model input: numerics as float64, categoricals on TRAIN levels (rare→OTHER, unseen→NaN)."""
    missing = [c for c in spec.features if c not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"input is missing model feature column(s) {missing}; score with the same featurize "
            "code and params the model was trained with."
        )
    out: dict[str, Any] = {}
    for col in spec.numeric:
        out[col] = pd.to_numeric(frame[col].astype("float64"), errors="coerce")
    for col, levels in spec.categorical.items():
        values = frame[col].astype("object").where(frame[col].notna(), None)
        values = values.map(lambda v: None if v is None else str(v))
        rare = spec.rare_levels.get(col)
        if rare:
            values = values.where(~values.isin(rare), OTHER)
        values = values.where(values.isin(levels), None)  # unseen in TRAIN → missing
        out[col] = pd.Categorical(values, categories=levels)
    return pd.DataFrame(out, index=frame.index)


@dataclass
class ChurnModel:
    """A trained booster, the feature spec it expects and the calibrator on its raw output."""

    booster: lgb.Booster
    spec: FeatureSpec
    calibrator: Calibrator
    info: dict[str, Any] = field(default_factory=dict)

    def model_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The booster's input, columns in the booster's order (LightGBM reads by position)."""
        return to_model_frame(frame, self.spec)[self.booster.feature_name()]

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated LightGBM probability."""
        return self.booster.predict(self.model_frame(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability."""
        return self.calibrator.predict(self.predict_raw(frame))

    def save(self, directory: Path) -> dict[str, Path]:
        """Write booster text and JSON metadata (with the booster's digest) into `directory`;
        return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        booster_path = directory / BOOSTER_FILE
        meta_path = directory / META_FILE
        self.booster.save_model(str(booster_path), num_iteration=self.booster.best_iteration)
        meta = {
            "spec": self.spec.to_dict(),
            "calibrator": self.calibrator.to_dict(),
            "info": self.info,
            BOOSTER_DIGEST: _digest(booster_path),
        }
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), "utf-8")
        return {"booster": booster_path, "meta": meta_path}

    @classmethod
    def load(cls, booster_path: Path | str, meta_path: Path | str) -> ChurnModel:
        """Read a saved model; a damaged booster or metadata raises ModelLoadError (exit 2).

        The booster is verified before LightGBM parses it: a damaged model text makes LightGBM
        abort the whole process, which no `except` can catch.
        """
        meta = _read_meta(Path(meta_path))
        verify_booster(Path(booster_path), meta.get(BOOSTER_DIGEST))
        try:
            booster = lgb.Booster(model_file=str(booster_path))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(
                f"{booster_path}: LightGBM cannot read the booster ({exc}). {RETRAIN}"
            ) from exc
        try:
            spec = FeatureSpec.from_dict(meta["spec"])
            calibrator = Calibrator.from_dict(meta["calibrator"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(
                f"{meta_path}: damaged model metadata ({type(exc).__name__}: {exc}; expected "
                f"'spec' and 'calibrator' as written by `churn train`). {RETRAIN}"
            ) from exc
        unknown = [f for f in booster.feature_name() if f not in set(spec.features)]
        if unknown:
            raise ModelLoadError(
                f"{meta_path}: the feature spec lacks {len(unknown)} column(s) the booster "
                f"{booster_path} uses, e.g. {unknown[:5]}: the two files are not from the same "
                f"training run. {RETRAIN}"
            )
        return cls(booster=booster, spec=spec, calibrator=calibrator, info=meta.get("info", {}))


class ModelLoadError(BadInputError, ValueError):
    """A model directory is there but damaged (booster, model metadata or MLmodel file)."""


def _digest(path: Path) -> str:
    """sha256 of a file (first 16 hex digits), the one digest helper of the project."""
    from models.tracking import file_digest  # imported here: it loads MLflow

    return file_digest(path)


def _read_meta(path: Path) -> dict[str, Any]:
    """model_meta.json as a mapping, or ModelLoadError naming the file and the fault."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"{path}: damaged model metadata, not readable JSON ({exc}); the file was truncated "
            f"or overwritten. {RETRAIN}"
        ) from exc
    if not isinstance(meta, dict):
        raise ModelLoadError(
            f"{path}: damaged model metadata, a JSON {type(meta).__name__} instead of an object "
            f"with 'spec' and 'calibrator'. {RETRAIN}"
        )
    return meta


# The Python package's model text: a header, the trees, feature importances, parameters and the
# pandas category levels, each closed by its own marker (LightGBM's `save_model`).
_BOOSTER_MARKERS = ("\nend of trees\n", "\nend of parameters\n")
_PANDAS_LINE = "pandas_categorical:"


def booster_text_fault(text: str) -> str | None:
    """What is structurally wrong with a LightGBM model text, or None when it is complete."""
    if not text.startswith("tree\n"):
        return "it does not start with LightGBM's 'tree' header"
    end = 0
    for marker in _BOOSTER_MARKERS:
        found = text.find(marker, end)
        if found < 0:
            return f"{marker.strip()!r} is missing (the file is truncated)"
        end = found + len(marker)
    last = text[end:].strip()
    if not last.startswith(_PANDAS_LINE):
        return f"the final {_PANDAS_LINE!r} line is missing (the file is truncated)"
    try:
        json.loads(last.removeprefix(_PANDAS_LINE))
    except json.JSONDecodeError:
        return f"the final {_PANDAS_LINE!r} line is cut short (the file is truncated)"
    return None


def verify_booster(path: Path, expected_digest: str | None) -> None:
    """Raise ModelLoadError unless `path` is the booster written at training: its digest (when
    recorded) and the structure of the model text."""
    if expected_digest is not None:
        found = _digest(path)
        if found != expected_digest:
            raise ModelLoadError(
                f"{path}: damaged booster, its sha256 {found} is not the {expected_digest} "
                f"recorded in {META_FILE} when the model was saved (truncated or changed since). "
                f"{RETRAIN}"
            )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelLoadError(
            f"{path}: damaged booster, not a LightGBM model text ({exc}). {RETRAIN}"
        ) from exc
    fault = booster_text_fault(text)
    if fault is not None:
        raise ModelLoadError(f"{path}: damaged booster, {fault}. {RETRAIN}")


def verify_mlmodel(directory: Path) -> None:
    """Raise ModelLoadError when the directory's MLmodel file is there but unreadable or lacks the
    pyfunc flavor's booster and meta artifacts (a truncated or hand-edited file)."""
    import yaml

    path = directory / MLMODEL_FILE
    if not path.exists():
        return  # a bare model directory (booster and metadata only) loads without it
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"{path}: damaged MLmodel file, not readable YAML ({first}). {RETRAIN}"
        ) from exc
    artifacts = _nested(doc, "flavors", "python_function", "artifacts")
    missing = [
        f"flavors.python_function.artifacts.{k}" for k in ("booster", "meta") if k not in artifacts
    ]
    if "utc_time_created" not in _nested(doc):  # MLflow's last line: absent when truncated
        missing.append("utc_time_created")
    if missing:
        raise ModelLoadError(
            f"{path}: damaged MLmodel file, {', '.join(missing)} missing (truncated, or not "
            f"written by `churn train`). {RETRAIN}"
        )


def _nested(doc: Any, *keys: str) -> dict[str, Any]:
    """doc[k1][k2]... when each level is a mapping, else an empty mapping."""
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else {}


class ModelNotFoundError(InputNotFoundError):
    """The model URI or directory does not resolve to a trained churn model."""


@dataclass(frozen=True)
class LoadedModel:
    """A churn model and where it came from (recorded in every scores row)."""

    model: ChurnModel
    uri: str
    version: str
    run_id: str


def load_model(directory: Path | str, uri: str | None = None) -> ChurnModel:
    """The model inside an MLflow model directory written by `churn train` (artifacts/model)."""
    directory = Path(directory)
    uri = uri or str(directory)
    artifacts = directory / "artifacts"
    booster, meta = artifacts / BOOSTER_FILE, artifacts / META_FILE
    if not booster.exists() or not meta.exists():
        raise ModelNotFoundError(
            f"{uri}: not a churn model directory (expected {booster} and {meta}); pass an MLflow "
            "model written by `churn train` (artifacts/model) or a models:/ registry URI."
        )
    verify_mlmodel(directory)
    return ChurnModel.load(booster, meta)


def _mlmodel_run_id(directory: Path) -> str:
    """The run id recorded in an MLflow model directory's MLmodel file, if any."""
    mlmodel = directory / "MLmodel"
    if mlmodel.exists():
        match = re.search(r"^run_id:\s*(\S+)", mlmodel.read_text(encoding="utf-8"), re.M)
        if match:
            return match.group(1)
    return ""


def load_model_uri(uri: str) -> LoadedModel:
    """Load `models:/<name>@<alias>`, `models:/<name>/<version>` or an MLflow model directory.

    Registry URIs are resolved with the active MLflow tracking URI (set it first); the version
    and the run that trained it are recorded so every score can be traced back to its model.
    """
    if not uri.startswith("models:/"):
        directory = Path(uri)
        if not directory.is_dir():
            raise ModelNotFoundError(
                f"{uri}: model directory not found; run `churn train` first or pass --model "
                "models:/churn-model@champion"
            )
        model = load_model(directory, uri)
        return LoadedModel(model, uri, "unregistered", _mlmodel_run_id(directory))

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    ref = uri.removeprefix("models:/")
    client = MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = ref.partition("/")
            mv = client.get_model_version(name, number)
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"{uri}: not found in the MLflow registry at {mlflow.get_tracking_uri()} "
            f"({exc.message.splitlines()[0]}). Train and promote a model (`dvc repro`), or pass "
            "--model artifacts/model."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        if not (local / "artifacts").exists() and (local / "model").exists():
            local = local / "model"
        model = load_model(local, uri)  # read into memory: the download can go
    return LoadedModel(model, uri, str(mv.version), str(mv.run_id or ""))
