"""MLflow helpers: tracking URI, pyfunc wrapper, registration (promotion: models/promotion.py)."""

from __future__ import annotations

import hashlib
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.exceptions import MlflowException
from mlflow.types import Schema
from mlflow.types.utils import _infer_schema

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"


def tracking_uri(default: str) -> str:
    """MLFLOW_TRACKING_URI when set, else the params default (sqlite:///mlflow.db).

    A relative SQLite path is made absolute (from the current directory): MLflow keeps one store
    per URI string in a process, so `sqlite:///mlflow.db` would otherwise stay bound to the
    directory where it was first used.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


def _warn_if_moved(uri: str, artifact_location: str, experiment: str) -> None:
    """MLflow stores absolute artifact locations: a copied or moved project's sqlite store still
    points at the old directory. Say so (and how to fix it) instead of writing there silently."""
    if not uri.startswith("sqlite:///") or not artifact_location.startswith("file://"):
        return
    db_dir = Path(uri.removeprefix("sqlite:///")).resolve().parent
    artifacts = Path(artifact_location.removeprefix("file://")).resolve()
    if not artifacts.is_relative_to(db_dir):
        log.warning(
            "MLflow experiment %r keeps its artifacts in %s, outside the store's directory %s "
            "(the project was copied or moved?): new runs and models would be written there. "
            "Move the project back, or start a fresh store here (move mlflow.db and mlruns/ "
            "away, then `dvc repro`), or set MLFLOW_TRACKING_URI to the original store.",
            experiment,
            artifacts,
            db_dir,
        )


def setup_tracking(default_uri: str, experiment: str) -> str:
    """Point MLflow at the tracking store and experiment; return the experiment id.

    With a local sqlite store, new experiments keep their artifacts in `mlruns/` beside the
    database file (not in whatever directory the command happens to run from).
    """
    uri = tracking_uri(default_uri)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        _warn_if_moved(uri, found.artifact_location, experiment)
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        artifact_location = (db.parent / "mlruns").as_uri()
    try:
        experiment_id = mlflow.create_experiment(experiment, artifact_location=artifact_location)
    except MlflowException:  # created concurrently
        experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def find_run(run_id: str | None, what: str) -> bool:
    """Whether `run_id` is a run in the active tracking store (set it first); if not, warn that
    `what` (e.g. "the driver report") is not logged."""
    try:
        MlflowClient().get_run(run_id)
    except (MlflowException, TypeError):
        log.warning(
            "MLflow run %s not found in %s; %s not logged (re-run `churn train`)",
            run_id,
            mlflow.get_tracking_uri(),
            what,
        )
        return False
    return True


def flatten(prefix: str, obj: Any) -> dict[str, Any]:
    """A nested mapping as flat MLflow params: {"train.calibration.folds": 5, ...}; lists joined."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    if isinstance(obj, list | tuple):
        return {prefix: ",".join(map(str, obj))}
    return {prefix: obj}


def file_digest(path: Path | str) -> str:
    """sha256 of a file's bytes (first 16 hex digits), for dataset lineage; of a dataset directory
    (a Spark output), its visible files' names and bytes in name order."""
    path = Path(path)
    files = (
        [path]
        if not path.is_dir()
        else sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    )
    h = hashlib.sha256()
    for file in files:
        if file != path:
            h.update(file.name.encode())
        with open(file, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: raw feature frame in, calibrated churn probability out.

    The booster (LightGBM text), feature spec (columns, category levels) and calibrator (JSON)
    are model artifacts, read in `load_context`; nothing learned is pickled.
    """

    def load_context(self, context: Any) -> None:
        from models.model import ChurnModel

        self.model = ChurnModel.load(context.artifacts["booster"], context.artifacts["meta"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ANN201
        return pd.Series(
            self.model.predict(model_input), index=model_input.index, name="churn_probability"
        )


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    names = ["mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "pyarrow"]
    return [f"{n}=={version(n)}" for n in names]


def schema_rows(frame: pd.DataFrame, head: int = 100) -> pd.DataFrame:
    """Rows of `frame` from which MLflow infers the same schema as from all of it.

    MLflow reads a column's type from its dtype (text columns: from the values) and marks it
    optional when any value is missing, which it finds by walking every value in Python:
    minutes on a model table. These rows are the first `head` and, for every column with a
    missing value, the first row where it is missing, so the inferred schema is the same.
    """
    missing = frame.isna()
    first_missing = missing.to_numpy().argmax(axis=0)[missing.any().to_numpy()]
    rows = np.union1d(np.arange(min(head, len(frame))), first_missing)
    return frame.iloc[rows]


class TrackedTable(PandasDataset):
    """An MLflow dataset of a pandas frame whose schema is inferred from `schema_rows`."""

    @cached_property
    def schema(self) -> Schema | None:
        return _infer_schema(schema_rows(self.df))


def tracked_table(frame: pd.DataFrame, source: str, targets: str, name: str) -> TrackedTable:
    """`mlflow.data.from_pandas` of `frame`, the schema read from a few rows (`schema_rows`)."""
    return TrackedTable(frame, resolve_dataset_source(source), targets=targets, name=name)


def signature_frame(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The model's raw input columns with the featurize dtypes (pandas categories as text).

    The signature describes all training rows, so that a column with any missing value is
    declared optional; integer columns stay `long`, as featurize writes them.
    """
    out = frame[features].copy()
    for c in features:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("object").where(out[c].notna(), None).astype("str")
    return out


def save_pyfunc(
    model_dir: Path,
    artifacts: dict[str, Path],
    train_inputs: pd.DataFrame,
    train_predictions: np.ndarray,
) -> dict[str, Any]:
    """Save the MLflow pyfunc model directory (model_dir must not exist); return the kwargs used.

    The signature is that of all training inputs and predictions (inferred from `schema_rows`);
    the input example is their first five rows.
    """
    import warnings

    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ii]nteger column", category=UserWarning)
        rows = schema_rows(train_inputs)
        outputs = pd.Series(train_predictions, name="churn_probability").iloc[: len(rows)]
        signature = infer_signature(rows, outputs)
    kwargs: dict[str, Any] = {
        "python_model": ChurnPyfunc(),
        "artifacts": {k: str(v) for k, v in artifacts.items()},
        "signature": signature,
        "input_example": train_inputs.head(5),
        "pip_requirements": pip_requirements(),
    }
    mlflow.pyfunc.save_model(path=str(model_dir), **kwargs)
    return kwargs


def log_and_register(model_dir: Path, model_name: str, run_id: str) -> str:
    """Log the model directory to the active run, register it and alias it `challenger`.

    Returns the new registry version.
    """
    mlflow.log_artifacts(str(model_dir), artifact_path="model")
    client = MlflowClient()
    try:
        client.create_registered_model(model_name)
    except MlflowException:
        pass  # already registered
    source = f"{mlflow.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(model_name, source=source, run_id=run_id)
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    log.info("registered %s version %s as %s", model_name, version.version, CHALLENGER)
    return str(version.version)
