"""Stage `train`: out-of-time split, LightGBM + calibration, baselines, MLflow run and version.

Reads `train.features` (+ the feature catalog); writes the MLflow model directory `train.model_dir`,
the test-set predictions of the model and both baselines `train.predictions` (for `evaluate`) and a
summary `train.summary` (MLflow run id, registered version, validation figures). The MLflow run is
created here and finished by `evaluate` (test metrics, plots, promotion).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa

from models import tracking
from models.baselines import fit_logreg, fit_single_feature_rule, predict_logreg
from models.leakage import LeakageReport, LeakageSettings, screen_model_table
from models.metrics import binary_metrics
from models.split import (
    LABEL,
    NON_FEATURE_COLUMNS,
    TrainingDataError,
    check_trainable,
    split_by_cutoff,
)
from models.train import ChurnModel, train_model
from pipeline.config import Params, ParamsError, load_params
from pipeline.io import AtomicDirectory, write_json, write_parquet

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2


def read_model_table(path: Path) -> pd.DataFrame:
    """The featurize output; a clear TrainingDataError when it is missing or empty."""
    if not path.exists():
        raise TrainingDataError(
            f"{path}: model table not found. Run `churn featurize` (or `dvc repro featurize`)."
        )
    table = pd.read_parquet(path)
    if table.empty:
        raise TrainingDataError(
            f"{path}: model table has no rows; check the label/featurize stages."
        )
    return table


def _flatten(prefix: str, obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    if isinstance(obj, list | tuple):
        return {prefix: ",".join(map(str, obj))}
    return {prefix: obj}


def fit_all(table: pd.DataFrame, params: Params, source: str) -> dict[str, Any]:
    """Split, train the model and both baselines; return them with the split and predictions."""
    sp = params.split
    split = split_by_cutoff(table, sp.valid_cutoffs, sp.test_cutoffs, sp.min_train_cutoffs, source)
    check_trainable(split, params.train.min_positives, source)
    leakage = _leakage_guard(split.train, params)
    train_params = replace(
        params.train,
        exclude_features=(*params.train.exclude_features, *leakage.excluded),
    )
    model = train_model(split, train_params, source)
    logreg = fit_logreg(
        split, model.spec, params.train.baselines.logreg_c, params.train.baselines.logreg_max_levels
    )
    rule = fit_single_feature_rule(split, model.spec)
    predictions = {}
    for part in ("valid", "test"):
        frame = getattr(split, part)
        predictions[part] = pd.DataFrame(
            {
                "customer_id": frame["customer_id"].astype(str).to_numpy(),
                "cutoff": frame["cutoff"].to_numpy(),
                LABEL: frame[LABEL].astype("int8").to_numpy(),
                "p_model": model.predict(frame),
                "p_model_raw": model.predict_raw(frame),
                "p_logreg": predict_logreg(logreg, frame, model.spec),
                "p_rule": rule.predict(frame),
            }
        )
    return {
        "split": split,
        "model": model,
        "logreg": logreg,
        "rule": rule,
        "predictions": predictions,
        "leakage": leakage,
    }


def _leakage_guard(train: pd.DataFrame, params: Params) -> LeakageReport:
    """Screen the TRAINING cutoffs' features for label leaks (models/leakage.py)."""
    g = params.leakage
    settings = LeakageSettings.from_params(g)
    skip = {*NON_FEATURE_COLUMNS, *params.train.exclude_features}
    return screen_model_table(train, LABEL, skip, settings, g.allow_leaky, g.max_rows)


def _log_run(
    params: Params, fitted: dict[str, Any], features_path: Path, model_dir: Path
) -> dict[str, Any]:
    """One MLflow run: params, validation metrics, datasets, catalog, model; register it."""
    split = fitted["split"]
    model: ChurnModel = fitted["model"]
    experiment_id = tracking.setup_tracking(params.mlflow.tracking_uri, params.mlflow.experiment)
    valid = fitted["predictions"]["valid"]
    with mlflow.start_run(experiment_id=experiment_id) as run:
        run_params = {
            **_flatten("train", asdict(params.train)),
            **_flatten("split", asdict(params.split)),
            **{f"lgb.{k}": v for k, v in model.info["lgb_params"].items()},
            "best_iteration": model.info["best_iteration"],
            "calibration_method": model.calibrator.method,
            "n_features": len(model.spec.features),
            "rule_feature": fitted["rule"].feature,
            "test_cutoffs": ",".join(c.isoformat() for c in split.test_cutoffs),
            "features_sha256": tracking.file_digest(features_path),
            "leakage_excluded": ",".join(fitted["leakage"].excluded) or "-",
        }
        mlflow.log_params({k: v for k, v in run_params.items() if v is not None})
        for name, col in (("", "p_model"), ("logreg_", "p_logreg"), ("rule_", "p_rule")):
            m = binary_metrics(valid[LABEL].to_numpy(), valid[col].to_numpy())
            mlflow.log_metrics({f"valid_{name}{k}": float(v) for k, v in m.items()})
        with warnings.catch_warnings():
            # MLflow hints about integer columns and ambiguous local sources: noise here.
            warnings.simplefilter("ignore", UserWarning)
            for part in ("train", "valid", "test"):
                frame = getattr(split, part)
                dataset = mlflow.data.from_pandas(
                    frame, source=str(features_path), targets=LABEL, name=f"features-{part}"
                )
                mlflow.log_input(dataset, context=part)
        catalog = Path(params.train.catalog)
        if catalog.exists():
            mlflow.log_artifact(str(catalog))
        mlflow.log_dict(model.spec.to_dict(), "feature_spec.json")
        mlflow.log_dict(model.info, "train_info.json")
        mlflow.log_dict(fitted["leakage"].to_dict(), "leakage.json")
        mlflow.log_metric("leakage_suspects", len(fitted["leakage"].suspects))
        mlflow.set_tags({"stage": "train", "features_file": str(features_path)})
        version = tracking.log_and_register(model_dir, params.registry.model_name, run.info.run_id)
        return {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "model_name": params.registry.model_name,
            "model_version": version,
        }


def run(params: Params) -> dict[str, Any]:
    """Train, save the model directory and predictions, track in MLflow; return the summary."""
    p = params.train
    features_path = Path(p.features)
    table = read_model_table(features_path)
    fitted = fit_all(table, params, str(features_path))
    model: ChurnModel = fitted["model"]
    split = fitted["split"]

    target = AtomicDirectory(p.model_dir)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            parts = model.save(Path(tmp))
            shutil.rmtree(target.staging)  # save_model wants to create the directory itself
            inputs = tracking.signature_frame(split.train, model.spec.features)
            tracking.save_pyfunc(target.staging, parts, inputs, model.predict(split.train))
        registered = _log_run(params, fitted, features_path, target.staging)
    except BaseException:
        target.discard()
        raise

    summary = {
        **registered,
        "features": model.spec.features,
        "dropped_features": model.spec.dropped,
        "best_iteration": model.info["best_iteration"],
        "calibration": {
            "method": model.calibrator.method,
            "cv_log_loss": model.info["calibration_cv_log_loss"],
        },
        "tuning": model.info["tuning"],
        "rule": fitted["rule"].describe(),
        "split": split.describe(),
        "leakage": fitted["leakage"].to_dict(),
    }
    write_parquet(
        p.predictions, pa.Table.from_pandas(fitted["predictions"]["test"], preserve_index=False)
    )
    write_json(p.summary, summary)
    target.commit()
    log.info(
        "train: %d features, best iteration %d, calibration %s; MLflow run %s, %s v%s",
        len(model.spec.features),
        model.info["best_iteration"],
        model.calibrator.method,
        registered["run_id"],
        registered["model_name"],
        registered["model_version"],
    )
    return summary


def main(params_path: Path | str = "params.yaml") -> int:
    """Entry point for `churn train`; exit code 2 on bad input, with a message on how to fix it."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        run(load_params(params_path))
    except (TrainingDataError, ParamsError) as exc:
        log.error("train: %s", exc)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
