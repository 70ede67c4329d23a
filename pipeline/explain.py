"""Stage `explain`: SHAP driver report of the trained model on a sample of the test cutoff.

Reads the test predictions, their model-table rows, the model and the feature catalog (and, when
present, the KPIs and the rules backtest; the rating bands also pool the realised churn of every
labelled cutoff of the model table, a description of the past that feeds nothing); writes
`paths.drivers` (index.html + CSV tables) atomically and logs it to the model's MLflow run.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from features.base.errors import require_inputs
from features.base.io import atomic_directory, parquet_schema
from models import tracking
from models.explain import drivers as ex
from models.explain.money import value_at_risk
from models.model import load_model
from models.settings import MlflowParams
from models.training.split import LABEL, TrainingDataError, rows_of_predictions
from models.value import with_value_tier
from pipeline.config import Params
from pipeline.reporting import html as report
from pipeline.reporting import shap_figures as figures

log = logging.getLogger(__name__)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{path}: not valid JSON ({exc}); {what}") from exc


def _alerts(path: Path) -> tuple[pd.DataFrame | None, dict[str, Any], str]:
    """The rules backtest when `churn alert-backtest` has written it, else a note saying so."""
    if not path.exists():
        note = (
            f"No backtest of the early-warning rules yet ({path} not found); "
            "it appears here once `churn alert-backtest` has run."
        )
        log.info("explain: %s", note)
        return None, {}, note
    data = _read_json(path, "re-run `churn alert-backtest` to rewrite it")
    table, header = ex.alerts_backtest_table(data, str(path))
    return table, header, ""


def _kpis(report_path: Path, plots_dir: Path) -> tuple[dict[str, Any] | None, list, str]:
    """The churn KPIs of `churn kpis` and its plots (embedded as data URIs), or a note."""
    if not report_path.exists():
        return None, [], f"{report_path} not found: the KPIs appear here once `churn kpis` has run."
    kpis = _read_json(report_path, "re-run `churn kpis` to rewrite it")
    images = [
        (png.stem.replace("_", " ").capitalize(),
         "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii"))
        for png in sorted(plots_dir.glob("*.png"))
    ]  # fmt: skip
    return kpis, images, ""


def _leakage(summary: dict[str, Any]) -> str:
    """The leakage guard's findings on the training cutoffs (reports/train.json, `train`)."""
    found = summary.get("leakage")
    if not found:
        return "<p class='note'>The training summary has no leakage-guard result.</p>"
    excluded = set(found.get("excluded", []))
    suspects = [
        {**s, "column": s["feature"], "kept": s["feature"] not in excluded}
        for s in found.get("suspects", [])
    ]
    return report.leakage_section(suspects, summary.get("dropped_features") or {})


def _header(summary: dict[str, Any], sample: pd.DataFrame, total_rows: int) -> dict[str, Any]:
    cutoffs = sorted({pd.Timestamp(c).date().isoformat() for c in sample["cutoff"]})
    churners = int(sample[LABEL].sum())
    return {
        "model_name": summary.get("model_name"),
        "model_version": summary.get("model_version"),
        "run_id": summary.get("run_id"),
        "as_of": ", ".join(cutoffs) + " (test cutoff)",
        "test_cutoffs": cutoffs,
        "sample_rows": int(len(sample)),
        "sample_churners": churners,
        "test_rows": int(total_rows),
        "sample": (
            f"{len(sample):,} of {total_rows:,} test customers, stratified by label "
            f"({churners:,} churned)"
        ),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _inputs(params: Params) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame, Any]:
    """Test predictions, the train summary, the feature catalog and the model; checked."""
    paths = params.paths
    require_inputs(
        paths.test_predictions, paths.train_report, paths.model, paths.features, paths.catalog,
        produced_by="churn train",
    )  # fmt: skip
    predictions = pd.read_parquet(paths.test_predictions)
    for column in ("customer_id", "cutoff", LABEL):
        if column not in predictions.columns:
            raise TrainingDataError(
                f"{paths.test_predictions}: column {column!r} missing (found "
                f"{list(predictions.columns)}); re-run `churn train`."
            )
    summary = _read_json(Path(paths.train_report), "re-run `churn train`")
    catalog = ex.catalog_frame(
        _read_json(Path(paths.catalog), "re-run `churn featurize`"), paths.catalog
    )
    return predictions, summary, catalog, load_model(paths.model)


def _population(
    params: Params, predictions: pd.DataFrame, model: Any
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every test row (model-table columns, the label) with its churn probability, CLV, value at
    risk and value tier; and the money summary (models/explain/money.value_at_risk)."""
    rows = rows_of_predictions(params.paths.features, predictions).assign(
        **{LABEL: predictions[LABEL].to_numpy()}
    )
    if "p_model" in predictions.columns:
        probability = predictions["p_model"].to_numpy(dtype=float)
    else:
        probability = model.predict(rows)
    rows = with_value_tier(rows, probability, params.value)
    rows, money = value_at_risk(rows, probability, params.value)
    return rows.set_axis(predictions.index), money


def _rating_history(features_path: Path, column: str = "csat_mean_90d") -> pd.DataFrame | None:
    """Every labelled row of the model table (all cutoffs): customer, cutoff, label and the recent
    mean rating, for the rating bands pooled over the past (None without that rating column)."""
    names = parquet_schema(features_path).names
    if column not in names:
        return None
    history = pd.read_parquet(features_path, columns=["customer_id", "cutoff", LABEL, column])
    return history[history[LABEL].notna()]


def _to_probability(model: Any) -> Any:
    """The model's map from raw score (log-odds) to calibrated churn probability."""
    return lambda raw: model.calibrator.predict(ex.sigmoid(raw))


def _data_source(params: Params) -> str:
    """Which data the report describes: the simulator's world (simulate.world) or the user's."""
    if params.simulate.enabled:
        return (
            f"simulated business, {params.simulate.world} world (simulate.world, seed "
            f"{params.simulate.seed})"
        )
    return "your data (simulate.enabled is false)"


def _churn_definition(params: Params, cutoffs: list[str]) -> str:
    lead = params.label.lead_days
    window = (
        f"within {params.label.horizon_days} days"
        if not lead
        else f"between day {lead} and day {lead + params.label.horizon_days}"
    )
    return (
        f"churn rate = share of the customers active at the test cutoff ({', '.join(cutoffs)}) "
        f"who churned {window} after it ({params.label.definition} definition): the label the "
        "model predicts, counted over every test customer (of the segment), not the SHAP sample. "
        "The Churn KPIs section shows a different figure on purpose: the average monthly churn "
        "over the whole history"
    )


def build(params: Params) -> dict[str, Any]:
    """Compute every table and figure of the report; return them with the page's HTML."""
    e = params.explain
    predictions, summary, catalog, model = _inputs(params)
    predictions = predictions.reset_index(drop=True)
    population, money = _population(params, predictions, model)
    sample = ex.stratified_sample(predictions, LABEL, e.sample_size, e.seed)
    rows = population.loc[sample.index]
    started = time.perf_counter()
    raw = ex.shap_values(model.booster, model.model_frame(rows))
    result = dataclasses.replace(
        raw, effects=ex.probability_effects(raw.values, raw.base_value, _to_probability(model))
    )
    shap_seconds = time.perf_counter() - started

    survey_features = catalog.index[catalog["group"] == "experience"]
    bands = ex.rating_bands(
        population,
        LABEL,
        population["churn_probability"].to_numpy(dtype=float),
        history=_rating_history(Path(params.paths.features)),
        rating_effect=pd.Series(ex.summed_effect(result, survey_features), index=rows.index),
    )
    tables, notes = ex.driver_tables(
        result,
        rows,
        catalog,
        e,
        params.featurize.touchpoints,
        params.value.csat_satisfied_min,
        LABEL,
        population,
    )
    alerts, alerts_header, alerts_note = _alerts(Path(params.paths.backtest_report))
    kpis, kpi_images, kpis_note = _kpis(Path(params.paths.kpis_report), Path(params.paths.kpis_dir))
    header = _header(summary, sample, len(predictions))
    header["churn_definition"] = _churn_definition(params, header["test_cutoffs"])
    header["test_churn_rate"] = float(population[LABEL].mean()) if len(population) else None
    header["money"] = money
    header["data_source"] = _data_source(params)
    header["rating_bands"] = dict(bands.attrs)  # neutral minus high raters' churn, its interval
    images, dependence = figures.draw_figures(
        result,
        tables["importance.csv"],
        tables["groups.csv"],
        tables["churn_types.csv"],
        tables["touchpoints.csv"],
        e.beeswarm_features,
        e.dependence_top_n,
    )
    content = report.ReportContent(
        header=header,
        importance=tables["importance.csv"],
        groups=tables["groups.csv"],
        churn_types=tables["churn_types.csv"],
        segments=tables["segments.csv"],
        segment_notes=notes,
        touchpoints=tables["touchpoints.csv"],
        rating_bands=bands,
        rating_bands_note=ex.rating_bands_sentence(bands),
        images=images,
        dependence=dependence,
        alerts=alerts,
        alerts_header=alerts_header,
        alerts_note=alerts_note,
        top_table=e.top_table,
        kpis=kpis,
        kpi_images=kpi_images,
        kpis_note=kpis_note,
        money=money,
        top_reasons=tables["top_reasons.csv"],
        extra_sections=[("leakage", "Leakage guard", _leakage(summary))],
    )
    if alerts is not None:
        tables["alerts_backtest.csv"] = alerts
    if not bands.empty:
        tables["rating_bands.csv"] = bands
    return {
        "html": report.render_html(content),
        "tables": tables,
        "header": {**header, "shap_seconds": round(shap_seconds, 3), "segment_notes": notes},
    }


def write(out_dir: Path, built: dict[str, Any]) -> None:
    """Swap the whole report directory into place at once (a crash leaves the old one)."""
    with atomic_directory(out_dir) as staging:
        (staging / "index.html").write_text(built["html"], encoding="utf-8")
        for name, frame in built["tables"].items():
            frame.to_csv(staging / name, index=False, float_format="%.6g")
        (staging / "report.json").write_text(
            json.dumps(built["header"], indent=2, sort_keys=True, default=str) + "\n", "utf-8"
        )


def log_to_mlflow(settings: MlflowParams, out_dir: Path, run_id: str | None) -> bool:
    """Log the report directory to the model's MLflow run under "drivers"; False if not found."""
    tracking.setup_tracking(settings.tracking_uri, settings.experiment)
    if not tracking.find_run(run_id, "driver report"):
        return False
    MlflowClient().log_artifacts(run_id, str(out_dir), artifact_path="drivers")
    log.info("logged %s to MLflow run %s under drivers/", out_dir, run_id)
    return True


def run(params: Params) -> dict[str, Any]:
    """Build the driver report, write reports/drivers/ and log it to MLflow."""
    started = time.perf_counter()
    built = build(params)
    out_dir = Path(params.paths.drivers)
    write(out_dir, built)
    header = built["header"]
    logged = params.explain.log_to_mlflow and log_to_mlflow(
        params.mlflow, out_dir, header["run_id"]
    )
    importance = built["tables"]["importance.csv"]
    log.info(
        "explain: %d sampled rows, SHAP %.2fs, total %.1fs; top drivers %s; report %s%s",
        header["sample_rows"],
        header["shap_seconds"],
        time.perf_counter() - started,
        list(importance["feature"].head(3)),
        out_dir / "index.html",
        " (logged to MLflow)" if logged else "",
    )
    return {**built, "logged_to_mlflow": bool(logged), "out_dir": out_dir}
