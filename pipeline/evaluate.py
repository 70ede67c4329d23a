"""Stage `evaluate`: out-of-time test metrics, DVC plot data, truth check, MLflow, promotion.

Reads the test predictions and summary written by `train`, the model directory (booster for
SHAP), the model table (segment columns and SHAP inputs for the test rows) and, on simulated
data, `evaluate.truth.path`. Writes `reports/metrics.json`, `reports/plots/`, `reports/truth.json`
and `reports/promotion.json`, and finishes the training's MLflow run (test metrics, plots,
champion/challenger decision).

Truth check: `data/raw/truth.parquet` is always written by the `simulate` stage, so dvc.yaml lists
it as a dependency. A run outside DVC on another source (or `evaluate.truth.path: null`) writes a
truth.json that says the check was skipped and why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.metrics import roc_auc_score

from models import tracking
from models.importance import driver_ranks, mean_abs_shap
from models.metrics import (
    binary_metrics,
    bootstrap_intervals,
    calibration_slope,
    segment_auc,
    tenure_band,
)
from models.plots import curves, summary_figure
from models.profit import profit_report
from models.split import LABEL, TrainingDataError
from models.train import BOOSTER_FILE, META_FILE, ChurnModel
from pipeline.config import EvaluateParams, Params, ParamsError, ValueParams, load_params
from pipeline.io import write_json, write_text

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
MODELS: dict[str, str] = {"model": "p_model", "logreg": "p_logreg", "rule": "p_rule"}


def load_model(model_dir: Path | str) -> ChurnModel:
    """The booster + spec + calibrator inside an MLflow model directory written by `train`."""
    artifacts = Path(model_dir) / "artifacts"
    return ChurnModel.load(artifacts / BOOSTER_FILE, artifacts / META_FILE)


def test_rows(features_path: Path, predictions: pd.DataFrame) -> pd.DataFrame:
    """Model-table rows of the test predictions (same order), for segments and SHAP."""
    cutoffs = sorted(pd.to_datetime(predictions["cutoff"], utc=True).unique())
    table = pd.read_parquet(features_path, filters=[("cutoff", "in", list(cutoffs))])
    table["cutoff"] = pd.to_datetime(table["cutoff"], utc=True)
    keys = predictions[["customer_id", "cutoff"]].assign(
        customer_id=lambda f: f["customer_id"].astype(str),
        cutoff=lambda f: pd.to_datetime(f["cutoff"], utc=True),
    )
    table = table.assign(customer_id=table["customer_id"].astype(str))
    merged = keys.merge(
        table.drop(columns=[LABEL], errors="ignore"),
        on=["customer_id", "cutoff"],
        how="left",
        validate="one_to_one",
    )
    return merged


def compute_metrics(
    predictions: pd.DataFrame, rows: pd.DataFrame, p: EvaluateParams
) -> dict[str, Any]:
    """Our test metrics with bootstrap intervals and segments; the baselines' under `baselines`."""
    y = predictions[LABEL].to_numpy()
    ours = binary_metrics(y, predictions["p_model"].to_numpy(), p.ece_bins)
    ours["ci95"] = bootstrap_intervals(y, predictions["p_model"].to_numpy(), p.bootstrap, p.seed)
    segments: dict[str, Any] = {}
    for col in p.segments:
        if col in rows.columns:
            segments[col] = segment_auc(y, predictions["p_model"].to_numpy(), rows[col])
    if p.tenure_column in rows.columns:
        bands = tenure_band(rows[p.tenure_column], p.tenure_bands_days)
        segments["tenure_band"] = segment_auc(y, predictions["p_model"].to_numpy(), bands)
    # metrics.json keeps one number per segment (readable in `dvc metrics show`); the counts
    # behind them go to the segments report.
    ours["segments_roc_auc"] = {
        col: {value: entry["roc_auc"] for value, entry in per_value.items()}
        for col, per_value in segments.items()
    }
    ours["baselines"] = {
        name: {
            k: v
            for k, v in binary_metrics(y, predictions[col].to_numpy(), p.ece_bins).items()
            if k not in ("base_rate", "n", "positives")
        }
        for name, col in MODELS.items()
        if name != "model"
    }
    ours["_segments_detail"] = segments
    ours["test_cutoffs"] = sorted({pd.Timestamp(c).isoformat() for c in predictions["cutoff"]})
    return ours


def write_plots(predictions: pd.DataFrame, plots_dir: Path, bins: int) -> dict[str, dict]:
    """One CSV per (plot, model): plots_dir/<plot>/<model>.csv; dvc.yaml overlays the models."""
    y = predictions[LABEL].to_numpy()
    per_model = {name: curves(y, predictions[col].to_numpy(), bins) for name, col in MODELS.items()}
    for name, data in per_model.items():
        for plot, frame in data.items():
            write_text(
                plots_dir / plot / f"{name}.csv", frame.to_csv(index=False, float_format="%.6g")
            )
    return per_model


def truth_check(
    predictions: pd.DataFrame,
    rows: pd.DataFrame,
    model: ChurnModel,
    p: EvaluateParams,
) -> dict[str, Any]:
    """Compare with the simulator's truth: oracle AUC, probability error, slope, driver ranks."""
    path = Path(p.truth.path) if p.truth.path else None
    if path is None or not path.exists():
        reason = "evaluate.truth.path is null" if path is None else f"{path} not found"
        log.info("truth check skipped: %s (only simulated data has a truth table)", reason)
        return {"skipped": True, "reason": f"{reason}; the truth check needs simulated data"}
    truth = pd.read_parquet(path)
    truth = truth.assign(
        customer_id=truth["customer_id"].astype(str),
        cutoff=pd.to_datetime(truth["month_start"], utc=True),
    ).drop(columns=["month_start"])
    keys = predictions.assign(
        customer_id=predictions["customer_id"].astype(str),
        cutoff=pd.to_datetime(predictions["cutoff"], utc=True),
    )
    joined = keys.merge(truth, on=["customer_id", "cutoff"], how="left", validate="one_to_one")
    matched = joined["true_probability"].notna()
    if not matched.any():
        raise TrainingDataError(
            f"{path}: no (customer_id, month_start) matches the test rows; the truth table is "
            "from another simulation. Re-run `dvc repro` from `simulate`."
        )
    j = joined.loc[matched]
    y = j[LABEL].to_numpy()
    true_p = j["true_probability"].to_numpy()
    out: dict[str, Any] = {
        "skipped": False,
        "rows": int(len(joined)),
        "rows_matched": int(matched.sum()),
        "oracle_roc_auc": float(roc_auc_score(y, true_p)),
        "model_roc_auc": float(roc_auc_score(y, j["p_model"])),
        "auc_gap_to_oracle": float(roc_auc_score(y, true_p) - roc_auc_score(y, j["p_model"])),
        "mean_abs_probability_error": float(np.mean(np.abs(j["p_model"] - true_p))),
        "calibration": calibration_slope(y, j["p_model"].to_numpy()),
        "oracle_calibration": calibration_slope(y, true_p),
        "mean_true_probability": float(true_p.mean()),
        "mean_predicted_probability": float(j["p_model"].mean()),
        "observed_rate": float(y.mean()),
        "baselines_mean_abs_probability_error": {
            name: float(np.mean(np.abs(j[col] - true_p)))
            for name, col in MODELS.items()
            if name != "model"
        },
    }
    importance = mean_abs_shap(model.booster, model.model_frame(rows))
    out["top_features"] = [
        {"feature": f, "mean_abs_shap": float(v)} for f, v in importance.head(15).items()
    ]
    # A driver's strength: mean |hazard contribution| on the test rows. contrib_baseline is the
    # constant base hazard, not a driver.
    strength = {
        c.removeprefix("contrib_"): float(np.mean(np.abs(j[c])))
        for c in j.columns
        if c.startswith("contrib_") and c != "contrib_baseline" and j[c].nunique() > 1
    }
    ranks = driver_ranks(importance, p.truth.driver_features)
    drivers = []
    for driver in sorted(set(strength) | set(ranks), key=lambda d: -strength.get(d, 0.0)):
        entry = {"driver": driver, "strength_mean_abs_contrib": strength.get(driver)}
        entry.update(ranks.get(driver, {"rank": None, "feature": None, "unmapped": True}))
        drivers.append(entry)
    out["drivers"] = drivers
    out["driver_rank"] = {d["driver"]: d.get("rank") for d in drivers}  # flat, for dvc metrics
    strongest = [d for d in drivers if d["strength_mean_abs_contrib"] is not None][:3]
    out["strongest_3_in_top_5"] = bool(strongest) and all(
        d.get("rank") is not None and d["rank"] <= 5 for d in strongest
    )
    return out


def profit_curves(
    predictions: pd.DataFrame, rows: pd.DataFrame, v: ValueParams, plots_dir: Path
) -> dict[str, Any]:
    """Profit of contacting the top k% by each ranking (models/profit.py); plots_dir/profit/."""
    if v.fee_column not in rows.columns:
        log.warning("profit curve skipped: no fee column %r in the model table", v.fee_column)
        return {
            "skipped": True,
            "reason": f"the model table has no column {v.fee_column!r} (value.fee_column); "
            "set value.fee_column to the monthly fee feature",
        }
    frame = predictions.assign(monthly_fee=pd.to_numeric(rows[v.fee_column]).to_numpy())
    report, per_model = profit_report(frame, MODELS, v)
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
) -> dict[str, Any]:
    """Log test figures into the training's MLflow run and decide the champion."""
    tracking.setup_tracking(params.mlflow.tracking_uri, params.mlflow.experiment)
    run_id = summary.get("run_id")
    try:
        MlflowClient().get_run(run_id)
    except (MlflowException, TypeError):
        log.warning(
            "MLflow run %s not found in %s; test metrics not logged, no promotion",
            run_id,
            tracking.tracking_uri(params.mlflow.tracking_uri),
        )
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
        decision = tracking.promote_if_better(
            summary["model_name"],
            summary["model_version"],
            params.registry.metric,
            float(metrics[params.registry.metric]),
            params.registry.tolerance,
            metrics["test_cutoffs"],
        )
        mlflow.set_tag("promoted_to_champion", str(decision.promoted).lower())
    return decision.to_dict()


def run(params: Params) -> dict[str, Any]:
    """Evaluate the trained model on the test cutoff and write every report."""
    import json

    p = params.evaluate
    t = params.train
    for path in (t.predictions, t.summary, t.model_dir, t.features):
        if not Path(path).exists():
            raise TrainingDataError(f"{path}: not found. Run `churn train` (or `dvc repro train`).")
    predictions = pd.read_parquet(t.predictions)
    summary = json.loads(Path(t.summary).read_text(encoding="utf-8"))
    model = load_model(t.model_dir)
    rows = test_rows(Path(t.features), predictions)

    metrics = compute_metrics(predictions, rows, p)
    segments_detail = metrics.pop("_segments_detail")
    per_model = write_plots(predictions, Path(p.plots_dir), p.ece_bins)
    truth = truth_check(predictions, rows, model, p)
    profit = profit_curves(predictions, rows, params.value, Path(p.plots_dir))
    write_json(params.value.profit_report, profit)
    write_json(p.metrics, metrics)
    write_json(p.segments_report, segments_detail)
    write_json(p.truth_report, truth)
    decision = _finish_run(
        params,
        summary,
        metrics,
        truth,
        per_model,
        [
            Path(p.metrics),
            Path(p.segments_report),
            Path(p.truth_report),
            Path(params.value.profit_report),
            Path(p.plots_dir),
        ],
    )
    write_json(p.promotion_report, decision)
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


def main(params_path: Path | str = "params.yaml") -> int:
    """Entry point for `churn evaluate`; exit code 2 on bad input."""
    try:
        run(load_params(params_path))
    except (TrainingDataError, ParamsError) as exc:
        log.error("evaluate: %s", exc)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
