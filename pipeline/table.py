"""`churn table fit` and stage `table@<name>`: one row per customer with a churn column.

Reads a CSV or Parquet file; infers column types (models/snapshot.py); evaluates with K-fold
stratified CV (or one stratified holdout), every learned step fitted inside each training fold;
fits the final model on every labelled row; scores every row (rows without a label too) with the
top reasons; writes the SHAP driver report; tracks it all in one MLflow run with the model
registered. Outputs go to one directory, swapped into place at once:

    summary.json   metrics (mean and per fold, baselines), dropped columns, leakage suspects
    scores.parquet id, churn_probability, cv_probability, label, reason_k (+ value, contribution)
    model/         MLflow pyfunc model (raw table in, probability out)
    drivers/       index.html + CSV tables (the same report as `churn explain`)
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from features.base.io import atomic_directory
from features.base.params import ParamsError
from models import snapshot as sn
from models import tracking
from models.explain import drivers as ex
from models.training.split import LABEL
from pipeline.config import Params
from pipeline.reporting import html as report
from pipeline.reporting import shap_figures as figures

log = logging.getLogger(__name__)

SEGMENT_MAX_LEVELS = 12


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


def read_table(path: Path) -> pd.DataFrame:
    """CSV or Parquet by suffix; a clear error when missing, unreadable or empty."""
    if not path.exists():
        raise sn.SnapshotDataError(f"{path}: file not found; pass a CSV or Parquet file.")
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            sep = "\t" if ".tsv" in suffix else None
            frame = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c")
        else:
            raise sn.SnapshotDataError(
                f"{path}: unsupported file type {path.suffix!r}; use .csv, .tsv or .parquet"
            )
    except (ValueError, OSError) as exc:
        if isinstance(exc, sn.SnapshotDataError):
            raise
        raise sn.SnapshotDataError(f"{path}: cannot be read as a table ({exc})") from exc
    if frame.empty:
        raise sn.SnapshotDataError(f"{path}: the table has no rows")
    return frame


# ------------------------------------------------------------------ scoring and report


def _row_ids(frame: pd.DataFrame, schema: sn.SnapshotSchema) -> pd.Series:
    if schema.id_column:
        return frame[schema.id_column].astype("string")
    return pd.Series(np.arange(len(frame)), index=frame.index, name="row").astype("string")


def _value_text(value: object) -> str:
    """A source value as the analyst reads it: missing values say so."""
    text = sn.normalise_text(pd.Series([value], dtype="object")).iloc[0]
    return "(missing)" if text is None else str(text)


def score_rows(
    model: sn.SnapshotModel,
    schema: sn.SnapshotSchema,
    frame: pd.DataFrame,
    features: pd.DataFrame,
    y: np.ndarray,
    oof: np.ndarray,
    reasons: int,
) -> pd.DataFrame:
    """Every row: probability, out-of-fold probability, label and the top reasons raising risk."""
    contrib = model.contributions(features)[:, :-1]
    names = model.booster.feature_name()
    column_of = {p.feature: p.column for p in schema.plans if p.feature}
    out = pd.DataFrame(
        {
            "id": _row_ids(frame, schema).to_numpy(),
            "churn_probability": model.predict(features),
            "cv_probability": oof,
            "label": pd.array(np.where(np.isnan(y), None, y), dtype="Int8"),
        }
    )
    order = np.argsort(-contrib, axis=1, kind="mergesort")[:, :reasons]
    for k in range(reasons):
        idx = order[:, k] if k < contrib.shape[1] else np.zeros(len(frame), dtype=int)
        value = contrib[np.arange(len(frame)), idx]
        raises = value > 0
        cols = [column_of[names[j]] for j in idx]
        raw = [frame[c].iloc[i] for i, c in enumerate(cols)]
        out[f"reason_{k + 1}"] = np.where(raises, cols, None)
        out[f"reason_{k + 1}_value"] = [
            _value_text(v) if r else None for v, r in zip(raw, raises, strict=True)
        ]
        out[f"reason_{k + 1}_contribution"] = np.where(raises, value, np.nan)
    return out


def _catalog(schema: sn.SnapshotSchema) -> pd.DataFrame:
    entries = [
        {"name": p.feature, "group": "profile", "description": f"{p.column} ({p.reason})"}
        for p in schema.plans
        if p.feature
    ]
    return ex.catalog_frame(entries, "snapshot schema")


def driver_report(
    model: sn.SnapshotModel,
    schema: sn.SnapshotSchema,
    features: pd.DataFrame,
    y: np.ndarray,
    header: dict[str, Any],
    suspects: list[dict[str, Any]],
    sample_size: int,
    seed: int,
) -> dict[str, Any]:
    """The SHAP driver report (models/explain.py + models/report.py) on labelled rows."""
    rows = features.assign(**{LABEL: y.astype(int)})
    sample = ex.stratified_sample(rows, LABEL, sample_size, seed)
    x = model.model_frame(sample)
    contrib = model.contributions(sample)
    result = ex.ShapResult(
        values=contrib[:, :-1],
        base_value=float(contrib[:, -1].mean()),
        features=list(x.columns),
        data=x,
    )
    catalog = _catalog(schema)
    importance = ex.global_importance(result, catalog)
    segment_columns = [
        f
        for f in importance["feature"]
        if f in model.spec.categorical and 2 <= len(model.spec.categorical[f]) <= SEGMENT_MAX_LEVELS
    ][:3]
    segments, notes = ex.segment_drivers(
        result, x.assign(**{LABEL: sample[LABEL].to_numpy()}), segment_columns, catalog, LABEL
    )
    touchpoints = ex.touchpoint_analysis(importance, sample, ())
    groups = ex.group_importance(importance)
    churn_types = ex.churn_type_importance(importance)
    images, dependence = figures.draw_figures(result, importance, groups, churn_types, touchpoints)
    churners = int(sample[LABEL].sum())
    head = {
        **header,
        "sample": f"{len(sample):,} of {len(rows):,} labelled rows, stratified ({churners:,} "
        "churned); contributions of the LightGBM + logistic blend in log-odds",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    content = report.ReportContent(
        header=head,
        importance=importance,
        groups=groups,
        churn_types=churn_types,
        segments=segments,
        segment_notes=notes,
        touchpoints=touchpoints,
        images=images,
        dependence=dependence,
        alerts_note="Snapshot table: no early-warning rules are evaluated.",
        kpis_note="Snapshot table (one row per customer): no monthly churn KPIs.",
        extra_sections=[
            ("leakage", "Leakage guard", report.leakage_section(suspects, schema.dropped))
        ],
    )
    return {
        "html": report.render_html(content),
        "tables": {"importance.csv": importance, "segments.csv": segments},
    }


# ------------------------------------------------------------------ the run


def _suspects(
    final: sn.SnapshotModel, folds: list[dict[str, Any]], schema: sn.SnapshotSchema
) -> list[dict[str, Any]]:
    """Final-model suspects with the number of CV training folds that flagged them too."""
    column_of = {p.feature: p.column for p in schema.plans if p.feature}
    out = []
    for s in final.leakage.get("suspects", []):
        flagged = sum(
            s["feature"] in f["leakage_excluded"]
            or any(e["feature"] == s["feature"] for e in f["leakage_suspects"])
            for f in folds
        )
        out.append(
            {
                **s,
                "column": column_of.get(s["feature"], s["feature"]),
                "kept": s["feature"] not in final.leakage.get("excluded", []),
                "flagged_in_folds": f"{flagged}/{len(folds)}",
            }
        )
    return out


def _mean(folds: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([f["metrics"][key] for f in folds]))


def _summary(
    job: TableJob,
    schema: sn.SnapshotSchema,
    target_info: dict[str, Any],
    evaluation: dict[str, Any],
    final: sn.SnapshotModel,
    suspects: list[dict[str, Any]],
) -> dict[str, Any]:
    folds = evaluation["folds"]
    aucs = [f["metrics"]["roc_auc"] for f in folds]
    column_of = {p.feature: p.column for p in schema.plans if p.feature}
    return {
        "data": str(job.path),
        "target": job.target,
        "positive": job.positive,
        "evaluation": f"{job.cv}-fold stratified CV" if job.cv else "stratified holdout",
        "roc_auc": float(np.mean(aucs)),
        "roc_auc_folds": [round(a, 6) for a in aucs],
        "roc_auc_std": float(np.std(aucs)),
        "pr_auc": _mean(folds, "pr_auc"),
        "pr_auc_folds": [round(f["metrics"]["pr_auc"], 6) for f in folds],
        "log_loss": _mean(folds, "log_loss"),
        "brier": _mean(folds, "brier"),
        "ece": _mean(folds, "ece"),
        "lift_at_10": _mean(folds, "lift_at_10"),
        "baselines": {
            "logreg_roc_auc": float(np.mean([f["part_roc_auc"]["logreg"] for f in folds])),
            "lightgbm_roc_auc": float(np.mean([f["part_roc_auc"]["lightgbm"] for f in folds])),
        },
        "n_rows": target_info["rows"],
        "n_labelled_rows": target_info["labelled_rows"],
        "unusable_rows": target_info["unusable_rows"],
        "positives": target_info["positives"],
        "positive_rate": target_info["positive_rate"],
        "n_features": len(final.spec.features),
        "features": [column_of.get(f, f) for f in final.spec.features],
        "dropped_columns": {
            **schema.dropped,
            **{column_of.get(f, f): r for f, r in final.spec.dropped.items()},
        },
        "leakage_suspects": suspects,
        "leakage_excluded": [column_of.get(f, f) for f in final.leakage.get("excluded", [])],
        "model": {
            "candidate": final.info["candidate"],
            "lightgbm_weight": final.weight,
            "num_boost_round": final.info["num_boost_round"],
            "calibration": final.calibrator.method,
            "inner_oof_auc": final.info["inner_oof_auc"],
        },
        "folds": [{k: v for k, v in f.items() if k not in ("leakage_suspects",)} for f in folds],
        "schema": schema.describe()["columns"],
    }


def _log_mlflow(
    params: Params,
    job: TableJob,
    summary: dict[str, Any],
    staging: Path,
    final: sn.SnapshotModel,
) -> dict[str, Any]:
    """One MLflow run: params, per-fold metrics, summary and report; model logged + registered."""
    d = params.data
    experiment_id = tracking.setup_tracking(params.mlflow.tracking_uri, d.experiment)
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
            step = f["fold"]
            mlflow.log_metrics(
                {
                    "fold_roc_auc": f["metrics"]["roc_auc"],
                    "fold_pr_auc": f["metrics"]["pr_auc"],
                    "fold_logreg_roc_auc": f["part_roc_auc"]["logreg"],
                    "fold_lightgbm_roc_auc": f["part_roc_auc"]["lightgbm"],
                },
                step=step,
            )
        mlflow.log_metrics(
            {
                "roc_auc": summary["roc_auc"],
                "roc_auc_std": summary["roc_auc_std"],
                "pr_auc": summary["pr_auc"],
                "log_loss": summary["log_loss"],
                "brier": summary["brier"],
                "ece": summary["ece"],
                "logreg_roc_auc": summary["baselines"]["logreg_roc_auc"],
                "lightgbm_roc_auc": summary["baselines"]["lightgbm_roc_auc"],
                "leakage_suspects": len(summary["leakage_suspects"]),
            }
        )
        mlflow.set_tags({"stage": "table", "data_shape": "snapshot", "table": job.name})
        mlflow.log_dict(summary, "summary.json")
        mlflow.log_dict({"suspects": summary["leakage_suspects"]}, "leakage.json")
        mlflow.log_artifacts(str(staging / "drivers"), artifact_path="drivers")
        version = tracking.log_and_register(staging / "model", d.model_name, run.info.run_id)
        return {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "model_name": d.model_name,
            "model_version": version,
        }


def _signature(frame: pd.DataFrame, schema: sn.SnapshotSchema, p: np.ndarray) -> Any:
    """Input signature of the raw table (every column but the target), or None if MLflow fails."""
    from mlflow.models import infer_signature

    inputs = frame.drop(columns=[schema.target])
    try:
        return infer_signature(inputs, pd.Series(p, name="churn_probability"))
    except Exception as exc:  # noqa: BLE001 - a signature is documentation, not a requirement
        log.warning("MLflow model signature not inferred (%s); the model is saved without", exc)
        return None


def _save_model(
    target: Path,
    final: sn.SnapshotModel,
    schema: sn.SnapshotSchema,
    frame: pd.DataFrame,
    probabilities: np.ndarray,
) -> None:
    """The MLflow pyfunc model directory: raw table in, calibrated probability out."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = final.save(Path(tmp))
        schema_path = Path(tmp) / "schema.json"
        schema_path.write_text(json.dumps(schema.to_dict(), indent=2, default=str), "utf-8")
        mlflow.pyfunc.save_model(
            path=str(target),
            python_model=sn.SnapshotPyfunc(),
            artifacts={
                "booster": str(parts["booster"]),
                "meta": str(parts["meta"]),
                "schema": str(schema_path),
            },
            pip_requirements=tracking._pip_requirements(),
            signature=_signature(frame, schema, probabilities),
        )


def fit(job: TableJob, params: Params) -> dict[str, Any]:
    """Evaluate, fit, score, explain and track one snapshot table; return the summary."""
    started = time.perf_counter()
    d = params.data
    source = str(job.path)
    frame = read_table(Path(job.path))
    schema = sn.infer_schema(frame, job.target, job.positive, job.id_column, job.drop, d, source)
    y, target_info = sn.encode_target(frame, job.target, job.positive, source)
    features = schema.transform(frame)
    known = ~np.isnan(y)
    guard = replace(params.leakage, allow_leaky=job.allow_leaky or params.leakage.allow_leaky)
    x, yk = features.loc[known], y[known].astype(int)
    evaluation = sn.evaluate_folds(x, yk, d, params.train, guard, job.cv)
    final = sn.fit_snapshot_model(x, yk, d, params.train, guard, "all labelled rows")
    oof = np.full(len(y), np.nan)
    oof[np.flatnonzero(known)] = evaluation["oof"]
    suspects = _suspects(final, evaluation["folds"], schema)
    summary = _summary(job, schema, target_info, evaluation, final, suspects)
    scores = score_rows(final, schema, frame, features, y, oof, d.reasons)

    with atomic_directory(job.out_dir) as staging:
        _save_model(staging / "model", final, schema, frame, scores["churn_probability"].to_numpy())
        header = {
            "model_name": d.model_name,
            "model_version": "(registering)",
            "run_id": None,
            "as_of": f"{Path(job.path).name} (snapshot)",
        }
        built = driver_report(final, schema, x, yk, header, suspects, d.explain_sample, d.seed)
        drivers = staging / "drivers"
        drivers.mkdir()
        for name, table in built["tables"].items():
            table.to_csv(drivers / name, index=False, float_format="%.6g")
        (drivers / "index.html").write_text(built["html"], encoding="utf-8")
        scores.to_parquet(staging / "scores.parquet", index=False)
        tracked = _log_mlflow(params, job, summary, staging, final)
        summary["mlflow"] = tracked
        html = (
            built["html"]
            .replace(
                f"{d.model_name} version (registering)",
                f"{d.model_name} version {tracked['model_version']}",
                1,
            )
            .replace(
                "<dt>MLflow run</dt><dd></dd>",
                f"<dt>MLflow run</dt><dd>{tracked['run_id']}</dd>",
                1,
            )
        )
        (drivers / "index.html").write_text(html, encoding="utf-8")
        summary["outputs"] = {
            "summary": str(Path(job.out_dir) / "summary.json"),
            "scores": str(Path(job.out_dir) / "scores.parquet"),
            "model": str(Path(job.out_dir) / "model"),
            "report": str(Path(job.out_dir) / "drivers" / "index.html"),
        }
        summary["seconds"] = round(time.perf_counter() - started, 1)
        (staging / "summary.json").write_text(
            json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n", "utf-8"
        )
    log.info(
        "table %s: roc_auc %.4f (folds %s; logistic regression %.4f, LightGBM alone %.4f), "
        "pr_auc %.4f; %d features, %d dropped, %d leakage suspect(s); %s in %.0fs",
        job.name,
        summary["roc_auc"],
        summary["roc_auc_folds"],
        summary["baselines"]["logreg_roc_auc"],
        summary["baselines"]["lightgbm_roc_auc"],
        summary["pr_auc"],
        summary["n_features"],
        len(summary["dropped_columns"]),
        len(suspects),
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
