"""Stage `train`: out-of-time split, LightGBM + calibration, baselines, MLflow run and version.

Reads the model table (`paths.features`) and its catalog; writes the MLflow model directory
(`paths.model`), the test predictions of the model and both baselines (`paths.test_predictions`,
for `evaluate`) and a summary (`paths.train_report`: MLflow run id, registered version,
validation figures, which cutoffs each model was trained and selected on). With `train.refit`
the registered model and the baselines are the ones refit on the training + validation cutoffs
(models/training/fit.py). The MLflow run is created here and finished by `evaluate`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa

from features.base.errors import require_inputs
from features.base.io import atomic_directory, write_json, write_parquet
from models import tracking
from models.evaluation.metrics import binary_metrics
from models.training.fit import Fitted, fit_all
from models.training.split import LABEL, TrainingDataError
from pipeline.config import Params

log = logging.getLogger(__name__)


def read_model_table(path: Path) -> pd.DataFrame:
    """The featurize output; a clear error when it is missing or empty."""
    require_inputs(path, produced_by="churn featurize")
    table = pd.read_parquet(path)
    if table.empty:
        raise TrainingDataError(
            f"{path}: model table has no rows; check the label/featurize stages."
        )
    return table


def _log_run(
    params: Params, fitted: Fitted, features_path: Path, model_dir: Path
) -> dict[str, Any]:
    """One MLflow run: params, validation metrics, datasets, catalog, model; register it."""
    split, model = fitted.split, fitted.model
    experiment_id = tracking.setup_tracking(params.mlflow.tracking_uri, params.mlflow.experiment)
    valid = fitted.predictions["valid"]
    with mlflow.start_run(experiment_id=experiment_id) as run:
        run_params = {
            **tracking.flatten("train", asdict(params.train)),
            **tracking.flatten("split", asdict(params.split)),
            **{f"lgb.{k}": v for k, v in model.info["lgb_params"].items()},
            "best_iteration": model.info["best_iteration"],
            "calibration_method": model.calibrator.method,
            "n_features": len(model.spec.features),
            "rule_feature": fitted.rule.feature,
            "test_cutoffs": ",".join(c.isoformat() for c in split.test_cutoffs),
            "trained_on_cutoffs": ",".join(model.info["trained_on_cutoffs"]),
            "refit_rounds": (model.info.get("refit") or {}).get("rounds"),
            "features_sha256": tracking.file_digest(features_path),
            "leakage_excluded": ",".join(fitted.leakage.excluded) or "-",
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
                dataset = tracking.tracked_table(
                    frame, str(features_path), LABEL, f"features-{part}"
                )
                mlflow.log_input(dataset, context=part)
        catalog = Path(params.paths.catalog)
        if catalog.exists():
            mlflow.log_artifact(str(catalog))
        mlflow.log_dict(model.spec.to_dict(), "feature_spec.json")
        mlflow.log_dict(model.info, "train_info.json")
        mlflow.log_dict(fitted.leakage.to_dict(), "leakage.json")
        mlflow.log_metric("leakage_suspects", len(fitted.leakage.suspects))
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
    paths = params.paths
    features_path = Path(paths.features)
    table = read_model_table(features_path)
    label_days = params.label.lead_days + params.label.horizon_days
    fitted = fit_all(
        table, params.split, params.train, params.leakage, str(features_path), label_days
    )
    model, split = fitted.model, fitted.split

    with atomic_directory(paths.model) as staging:
        with tempfile.TemporaryDirectory() as tmp:
            parts = model.save(Path(tmp))
            shutil.rmtree(staging)  # save_model wants to create the directory itself
            inputs = tracking.signature_frame(split.train, model.spec.features)
            tracking.save_pyfunc(staging, parts, inputs, model.predict(split.train))
        registered = _log_run(params, fitted, features_path, staging)
        summary = {
            **registered,
            "features": model.spec.features,
            "dropped_features": model.spec.dropped,
            "best_iteration": model.info["best_iteration"],
            "refit": model.info.get("refit"),
            "cutoffs_seen": fitted.cutoffs_seen,
            "trained_on_cutoffs": model.info["trained_on_cutoffs"],
            "selected_on_cutoffs": model.info["selected_on_cutoffs"],
            "calibration": {
                "method": model.calibrator.method,
                "cv_log_loss": model.info["calibration_cv_log_loss"],
                "fitted_on_cutoffs": model.info["calibrated_on_cutoffs"],
            },
            "tuning": model.info["tuning"],
            "rule": fitted.rule.describe(),
            "split": split.describe(),
            "leakage": fitted.leakage.to_dict(),
        }
        write_parquet(
            paths.test_predictions,
            pa.Table.from_pandas(fitted.predictions["test"], preserve_index=False),
        )
        write_json(paths.train_report, summary)
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
