"""Stage `evaluate`: out-of-time test metrics, DVC plot data, truth check, MLflow, promotion.

Reads the test predictions and summary written by `train`, the model directory, the model
table (segment columns and SHAP inputs of the test rows) and, on simulated data, `paths.truth`.
Writes the metrics (`paths.metrics`, and per ranking the few figures `dvc metrics show` compares
under `paths.model_metrics`), the plot data (`paths.plots`), the truth check, the profit curve
and the champion decision, and finishes the training's MLflow run.

On another source (`evaluate.truth.check: false`) the truth report says the check was skipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from features.base.errors import require_inputs
from features.base.io import write_json, write_text
from models import promotion, tracking
from models.evaluation.curves import curves
from models.evaluation.metrics import (
    PREDICTIONS,
    cutoffs_seen_in,
    headline,
    metrics_at_test_cutoff,
)
from models.evaluation.profit import profit_report
from models.evaluation.truth import truth_check
from models.model import load_model
from models.settings import ValueParams
from models.training.split import LABEL, rows_of_predictions
from pipeline.config import Params
from pipeline.reporting.figures import summary_figure

log = logging.getLogger(__name__)


def write_plots(predictions: pd.DataFrame, plots_dir: Path, bins: int) -> dict[str, dict]:
    """One CSV per (plot, ranking): plots_dir/<plot>/<ranking>.csv; dvc.yaml overlays them."""
    y = predictions[LABEL].to_numpy()
    per_model = {n: curves(y, predictions[col].to_numpy(), bins) for n, col in PREDICTIONS.items()}
    for name, data in per_model.items():
        for plot, frame in data.items():
            write_text(
                plots_dir / plot / f"{name}.csv", frame.to_csv(index=False, float_format="%.6g")
            )
    return per_model


def profit_curves(
    predictions: pd.DataFrame, rows: pd.DataFrame, v: ValueParams, plots_dir: Path
) -> dict[str, Any]:
    """Profit of contacting the top k% by each ranking (models/evaluation/profit.py), with its
    plot data in plots_dir/profit/."""
    if v.fee_column not in rows.columns:
        log.warning("profit curve skipped: no fee column %r in the model table", v.fee_column)
        return {
            "skipped": True,
            "reason": f"the model table has no column {v.fee_column!r} (value.fee_column); "
            "set value.fee_column to the monthly fee feature",
        }
    frame = predictions.assign(monthly_fee=pd.to_numeric(rows[v.fee_column]).to_numpy())
    report, per_model = profit_report(frame, PREDICTIONS, v)
    for name, curve in per_model.items():
        write_text(
            plots_dir / "profit" / f"{name}.csv", curve.to_csv(index=False, float_format="%.6g")
        )
    return {"skipped": False, **report}


def _scalars(prefix: str, obj: dict[str, Any]) -> dict[str, float]:
    return {
        f"{prefix}{k}": float(v)
        for k, v in obj.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v is not None
    }


def _finish_run(
    params: Params,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    truth: dict[str, Any],
    per_model: dict[str, dict],
    paths: list[Path],
    predictions: pd.DataFrame,
    rows: pd.DataFrame,
) -> dict[str, Any]:
    """Log test figures into the training's MLflow run and decide the champion (on the same
    test rows, models/promotion.py)."""
    tracking.setup_tracking(params.mlflow.tracking_uri, params.mlflow.experiment)
    run_id = summary.get("run_id")
    if not tracking.find_run(run_id, "test metrics"):
        return {"promoted": False, "reason": f"MLflow run {run_id} not found; re-run `churn train`"}
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(_scalars("test_", metrics))
        for name, figures in metrics["baselines"].items():
            mlflow.log_metrics(_scalars(f"test_{name}_", figures))
        for key in ("roc_auc", "pr_auc"):
            lo, hi = metrics["ci95"][key]
            mlflow.log_metrics({f"test_{key}_ci95_low": lo, f"test_{key}_ci95_high": hi})
        if not truth.get("skipped"):
            mlflow.log_metrics(_scalars("truth_", truth))
            mlflow.log_metric("truth_calibration_slope", truth["calibration"]["slope"])
        for path in paths:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=f"reports/{path.name}")
            elif path.exists():
                mlflow.log_artifact(str(path), artifact_path="reports")
        mlflow.log_figure(summary_figure(per_model), "reports/test_curves.png")
        mode = promotion.promotion_mode(params.registry.promote)
        decision = promotion.decide_on_test_predictions(
            summary, predictions, rows, params.registry, mode
        )
        mlflow.set_tag("promoted_to_champion", str(decision.promoted).lower())
    return decision.to_dict()


def run(params: Params) -> dict[str, Any]:
    """Evaluate the trained model on the test cutoff and write every report."""
    paths = params.paths
    require_inputs(
        paths.test_predictions, paths.train_report, paths.model, paths.features,
        produced_by="churn train",
    )  # fmt: skip
    predictions = pd.read_parquet(paths.test_predictions)
    summary = json.loads(Path(paths.train_report).read_text(encoding="utf-8"))
    model = load_model(paths.model)
    rows = rows_of_predictions(paths.features, predictions)

    metrics, segments = metrics_at_test_cutoff(
        predictions, rows, params.evaluate, cutoffs_seen=cutoffs_seen_in(summary)
    )
    plots_dir = Path(paths.plots)
    per_model = write_plots(predictions, plots_dir, params.evaluate.ece_bins)
    t = params.evaluate.truth
    truth = truth_check(
        predictions,
        rows,
        model,
        paths.truth if t.check else None,
        t.driver_features,
        params.evaluate.bootstrap,
        params.evaluate.seed,
    )
    profit = profit_curves(predictions, rows, params.value, plots_dir)
    write_json(paths.profit_report, profit)
    write_json(paths.metrics, metrics)
    for name, figures in headline(metrics, truth).items():
        write_json(Path(paths.model_metrics) / f"{name}.json", figures)
    write_json(paths.segments_report, segments)
    write_json(paths.truth_report, truth)
    reports = [
        paths.metrics, paths.segments_report, paths.truth_report, paths.profit_report, paths.plots
    ]  # fmt: skip
    decision = _finish_run(
        params, summary, metrics, truth, per_model, [Path(p) for p in reports], predictions, rows
    )
    write_json(paths.promotion_report, decision)
    log.info(
        "evaluate: roc_auc %.4f (logreg %.4f, rule %.4f), pr_auc %.4f, ece %.4f; %s",
        metrics["roc_auc"],
        metrics["baselines"]["logreg"]["roc_auc"],
        metrics["baselines"]["rule"]["roc_auc"],
        metrics["pr_auc"],
        metrics["ece"],
        "promoted to champion" if decision.get("promoted") else "not promoted",
    )
    if not profit["skipped"]:
        best = profit["models"]["model"]
        log.info(
            "profit: best contact list = top %d%% by expected gain, profit %.0f (logreg %.0f, "
            "rule %.0f, random %.0f at the same k)",
            best["best_percent"],
            best["best_profit"],
            *(profit["at_our_best_percent"]["profit"][m] for m in ("logreg", "rule", "random")),
        )
    return {"metrics": metrics, "truth": truth, "promotion": decision, "profit": profit}
