"""`churn table fit` and stage `table@<name>`: one row per customer with a churn column.

Reads a CSV/TSV (plain, .gz, or a .zip with one CSV inside), Parquet or Excel file, detecting the
text encoding, delimiter and decimal comma (models/snapshot/reading.py); infers column types,
evaluates with K-fold stratified CV (or one stratified holdout, every learned step fitted inside
each training fold), fits the final model on every labelled row and scores every row
(models/snapshot/); writes the SHAP driver report; tracks it all in one MLflow run with the model
registered. Outputs go to one directory, swapped into place at once:

    summary.json   metrics (mean and per fold), the peers on the same folds (logistic regression,
                   LightGBM and HistGradientBoosting defaults), dropped columns, leakage suspects
    scores.parquet id, churn_probability, cv_probability, label, reason_k (+ value, contribution)
    model/         MLflow pyfunc model (raw table in, probability out)
    drivers/       index.html + CSV tables (the same report as `churn explain`)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow

from features.base.io import atomic_directory, write_json
from features.base.params import ParamsError
from models import tracking
from models.snapshot.job import TableFit, driver_analysis, fit_table
from models.snapshot.model import SnapshotModel, save_pyfunc
from models.snapshot.reading import ReadOptions, read_table
from models.training.split import LABEL
from pipeline.config import Params
from pipeline.reporting import html as report
from pipeline.reporting import shap_figures as figures

log = logging.getLogger(__name__)

RUN_METRICS = ("roc_auc", "roc_auc_std", "pr_auc", "log_loss", "brier", "ece")


@dataclass(frozen=True)
class TableJob:
    """What to fit: the file, its churn column and value, and where the outputs go."""

    path: str
    target: str
    positive: str
    id_column: str | None = None
    drop: tuple[str, ...] = ()
    cv: int | None = None
    allow_leaky: bool = False
    out_dir: str = "reports/table"
    name: str = "table"
    reading: ReadOptions = ReadOptions()  # encoding, decimal mark, Excel sheet (None: detect)


def driver_report(
    fitted: TableFit, header: dict[str, Any], sample_size: int, seed: int
) -> dict[str, Any]:
    """The SHAP driver report on a sample of the labelled rows: its HTML and CSV tables."""
    found = driver_analysis(
        fitted.model, fitted.schema, fitted.features, fitted.labels, sample_size, seed
    )
    images, dependence = figures.draw_figures(
        found.result, found.importance, found.groups, found.churn_types, found.touchpoints
    )
    sample = found.sample
    churners = int(sample[LABEL].sum())
    head = {
        **header,
        "sample": f"{len(sample):,} of {len(fitted.features):,} labelled rows, stratified "
        f"({churners:,} churned); contributions of the LightGBM + logistic blend in log-odds",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    leakage = report.leakage_section(fitted.suspects, fitted.schema.dropped)
    content = report.ReportContent(
        header=head,
        importance=found.importance,
        groups=found.groups,
        churn_types=found.churn_types,
        segments=found.segments,
        segment_notes=found.segment_notes,
        touchpoints=found.touchpoints,
        images=images,
        dependence=dependence,
        alerts_note="Snapshot table: no early-warning rules are evaluated.",
        kpis_note="Snapshot table (one row per customer): no monthly churn KPIs.",
        extra_sections=[("leakage", "Leakage guard", leakage)],
    )
    return {
        "html": report.render_html(content),
        "tables": {"importance.csv": found.importance, "segments.csv": found.segments},
    }


def _log_mlflow(
    job: TableJob,
    summary: dict[str, Any],
    final: SnapshotModel,
    staging: Path,
    tracking_uri: str,
    experiment: str,
    model_name: str,
) -> dict[str, Any]:
    """One MLflow run: params, per-fold metrics, summary and report; model logged + registered."""
    experiment_id = tracking.setup_tracking(tracking_uri, experiment)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(
            {
                "data": job.path,
                "data_sha256": tracking.file_digest(job.path),
                "target": job.target,
                "positive": job.positive,
                "evaluation": summary["evaluation"],
                "n_rows": summary["n_rows"],
                "n_features": summary["n_features"],
                "dropped_columns": ",".join(summary["dropped_columns"]) or "-",
                "leakage_excluded": ",".join(summary["leakage_excluded"]) or "-",
                "allow_leaky": job.allow_leaky,
                "candidate": final.info["candidate"],
                "lightgbm_weight": final.weight,
                "calibration": final.calibrator.method,
                **{f"lgb.{k}": v for k, v in final.info["lgb_params"].items()},
            }
        )
        for f in summary["folds"]:
            mlflow.log_metrics(
                {
                    "fold_roc_auc": f["metrics"]["roc_auc"],
                    "fold_pr_auc": f["metrics"]["pr_auc"],
                    "fold_logreg_roc_auc": f["part_roc_auc"]["logreg"],
                    "fold_lightgbm_roc_auc": f["part_roc_auc"]["lightgbm"],
                    "fold_lightgbm_defaults_roc_auc": f["peer_roc_auc"]["lightgbm_defaults"],
                    "fold_hgb_defaults_roc_auc": f["peer_roc_auc"]["hgb_defaults"],
                },
                step=f["fold"],
            )
        mlflow.log_metrics(
            {
                **{k: summary[k] for k in RUN_METRICS},
                **summary["baselines"],
                "ours_minus_best_peer_roc_auc": summary["peers"]["ours_minus_best"],
                "leakage_suspects": len(summary["leakage_suspects"]),
            }
        )
        mlflow.set_tags({"stage": "table", "data_shape": "snapshot", "table": job.name})
        mlflow.log_dict(summary, "summary.json")
        mlflow.log_dict({"suspects": summary["leakage_suspects"]}, "leakage.json")
        mlflow.log_artifacts(str(staging / "drivers"), artifact_path="drivers")
        version = tracking.log_and_register(staging / "model", model_name, run.info.run_id)
        return {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "model_name": model_name,
            "model_version": version,
        }


def fit(job: TableJob, params: Params) -> dict[str, Any]:
    """Evaluate, fit, score, explain and track one snapshot table; return the summary."""
    started = time.perf_counter()
    d = params.data
    guard = replace(params.leakage, allow_leaky=job.allow_leaky or params.leakage.allow_leaky)
    frame = read_table(Path(job.path), job.reading)
    fitted = fit_table(
        frame, job.target, job.positive, job.id_column, job.drop, job.cv, d, params.train, guard,
        str(job.path),
    )  # fmt: skip
    summary = fitted.summary
    out_dir = Path(job.out_dir)
    with atomic_directory(out_dir) as staging:
        probabilities = fitted.scores["churn_probability"].to_numpy()
        save_pyfunc(staging / "model", fitted.model, fitted.schema, frame, probabilities)
        header = {
            "model_name": d.model_name,
            "model_version": "(registering)",
            "run_id": None,
            "as_of": f"{Path(job.path).name} (snapshot)",
        }
        built = driver_report(fitted, header, d.explain_sample, d.seed)
        drivers = staging / "drivers"
        drivers.mkdir()
        for name, table in built["tables"].items():
            table.to_csv(drivers / name, index=False, float_format="%.6g")
        (drivers / "index.html").write_text(built["html"], encoding="utf-8")
        fitted.scores.to_parquet(staging / "scores.parquet", index=False)
        tracked = _log_mlflow(
            job, summary, fitted.model, staging, params.mlflow.tracking_uri, d.experiment,
            d.model_name,
        )  # fmt: skip
        summary["mlflow"] = tracked
        # The run id and version exist only now; the report logged to the run says "registering".
        registered = f"{d.model_name} version {tracked['model_version']}"
        run_row = f"<dt>MLflow run</dt><dd>{tracked['run_id']}</dd>"
        html = (
            built["html"]
            .replace(f"{d.model_name} version (registering)", registered, 1)
            .replace("<dt>MLflow run</dt><dd></dd>", run_row, 1)
        )
        (drivers / "index.html").write_text(html, encoding="utf-8")
        summary["outputs"] = {
            "summary": str(out_dir / "summary.json"),
            "scores": str(out_dir / "scores.parquet"),
            "model": str(out_dir / "model"),
            "report": str(out_dir / "drivers" / "index.html"),
        }
        summary["seconds"] = round(time.perf_counter() - started, 1)
        write_json(staging / "summary.json", summary)
    log.info(
        "table %s: roc_auc %.4f (folds %s; same folds: logistic regression %.4f, LightGBM "
        "defaults %.4f, HistGradientBoosting defaults %.4f; LightGBM part %.4f), "
        "pr_auc %.4f; %d features, %d dropped, %d leakage suspect(s); %s in %.0fs",
        job.name,
        summary["roc_auc"],
        summary["roc_auc_folds"],
        summary["baselines"]["logreg_roc_auc"],
        summary["baselines"]["lightgbm_defaults_roc_auc"],
        summary["baselines"]["hgb_defaults_roc_auc"],
        summary["baselines"]["lightgbm_roc_auc"],
        summary["pr_auc"],
        summary["n_features"],
        len(summary["dropped_columns"]),
        len(fitted.suspects),
        job.out_dir,
        summary["seconds"],
    )
    return summary


def fit_file(
    params: Params,
    data: Path | str,
    target: str,
    positive: str,
    id_column: str | None = None,
    drop: tuple[str, ...] = (),
    cv: int | None = None,
    allow_leaky: bool = False,
    out_dir: Path | str | None = None,
    reading: ReadOptions | None = None,
) -> dict[str, Any]:
    """`churn table fit FILE`: fit one table given on the command line; return the summary."""
    name = Path(data).stem
    job = TableJob(
        path=str(data),
        target=target,
        positive=str(positive),
        id_column=id_column,
        drop=tuple(drop),
        cv=cv,
        allow_leaky=allow_leaky,
        out_dir=str(out_dir or Path(params.paths.tables) / name),
        name=name,
        reading=reading or ReadOptions(),
    )
    return fit(job, params)


def run(params: Params, name: str | None = None) -> None:
    """Stage `table@<name>`: fit `data.tables.<name>` (every table when no name is given)."""
    d = params.data
    if d.shape != "snapshot":
        raise ParamsError(
            f"data.shape is {d.shape!r}; `churn table run` needs data.shape: snapshot and "
            "data.tables (see configs/telco.yaml)"
        )
    names = [name] if name else sorted(d.tables)
    unknown = [n for n in names if n not in d.tables]
    if unknown:
        raise ParamsError(f"data.tables: no table named {unknown}; found {sorted(d.tables)}")
    for n in names:
        t = d.tables[n]
        job = TableJob(
            path=t.path,
            target=t.target,
            positive=t.positive,
            id_column=t.id,
            drop=t.drop,
            cv=t.cv,
            allow_leaky=params.leakage.allow_leaky,
            out_dir=str(Path(params.paths.tables) / n),
            name=n,
        )
        fit(job, params)
