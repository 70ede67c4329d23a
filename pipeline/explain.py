"""Stage `explain`: SHAP driver report of the trained model on a sample of the test cutoff.

Reads the test predictions, their model-table rows, the model and the feature catalog; writes
reports/drivers/ (index.html + CSV tables) atomically and logs it to the model's MLflow run.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models import explain as ex
from models import report, tracking
from models.split import LABEL, TrainingDataError
from models.value import add_value_columns
from pipeline.config import Params, ParamsError, load_params
from pipeline.evaluate import load_model, test_rows
from pipeline.io import AtomicDirectory

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2


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
    t = params.train
    for path in (t.predictions, t.summary, t.model_dir, t.features, t.catalog):
        if not Path(path).exists():
            raise TrainingDataError(f"{path}: not found. Run `churn train` (or `dvc repro train`).")
    predictions = pd.read_parquet(t.predictions)
    for column in ("customer_id", "cutoff", LABEL):
        if column not in predictions.columns:
            raise TrainingDataError(
                f"{t.predictions}: column {column!r} missing (found {list(predictions.columns)}); "
                "re-run `churn train`."
            )
    summary = _read_json(Path(t.summary), "re-run `churn train`")
    catalog = ex.catalog_frame(_read_json(Path(t.catalog), "re-run `churn featurize`"), t.catalog)
    return predictions, summary, catalog, load_model(t.model_dir)


def _tables(
    params: Params, result: ex.ShapResult, rows: pd.DataFrame, catalog: pd.DataFrame
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Every analysis table (named by its CSV file) and the notes about skipped segments."""
    e = params.explain
    importance = ex.global_importance(result, catalog, e.direction_min_abs_corr)
    segments, notes = ex.segment_drivers(
        result,
        rows,
        e.segments,
        catalog,
        LABEL,
        e.segment_top_k,
        e.segment_max_levels,
        e.segment_min_rows,
    )
    touchpoints = ex.touchpoint_analysis(
        importance,
        rows,
        params.featurize.touchpoints,
        e.touchpoint_performance,
        e.csat_satisfied_min,
    )
    tables = {
        "importance.csv": importance,
        "groups.csv": ex.group_importance(importance),
        "churn_types.csv": ex.churn_type_importance(importance),
        "segments.csv": segments,
        "touchpoints.csv": touchpoints,
    }
    return tables, notes


def _with_value_tier(rows: pd.DataFrame, sample: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Add the customers' value tier (models/value.py: CLV from the model's probability and the
    fee at the cutoff, tiers over the sampled test customers) so segments can use it."""
    fee = params.value.fee_column
    if "value_tier" in rows.columns or fee not in rows.columns or "p_model" not in sample.columns:
        return rows
    valued = add_value_columns(
        pd.DataFrame(
            {
                "customer_id": rows["customer_id"].astype(str).to_numpy(),
                "churn_probability": sample["p_model"].to_numpy(dtype=float),
                "monthly_fee": pd.to_numeric(rows[fee], errors="coerce").to_numpy(),
            }
        ),
        params.value,
    )
    return rows.assign(value_tier=valued["value_tier"].astype("string").to_numpy())


def build(params: Params) -> dict[str, Any]:
    """Compute every table and figure of the report; return them with the page's HTML."""
    e = params.explain
    predictions, summary, catalog, model = _inputs(params)
    sample = ex.stratified_sample(predictions, LABEL, e.sample_size, e.seed)
    rows = test_rows(Path(params.train.features), sample).assign(
        **{LABEL: sample[LABEL].to_numpy()}
    )
    rows = _with_value_tier(rows, sample, params)
    started = time.perf_counter()
    result = ex.shap_values(model.booster, model.model_frame(rows))
    shap_seconds = time.perf_counter() - started

    tables, notes = _tables(params, result, rows, catalog)
    alerts, alerts_header, alerts_note = _alerts(Path(e.alerts_backtest))
    kpis, kpi_images, kpis_note = _kpis(Path(e.kpis_report), Path(e.kpis_dir))
    header = _header(summary, sample, len(predictions))
    images, dependence = report.draw_figures(
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
        images=images,
        dependence=dependence,
        alerts=alerts,
        alerts_header=alerts_header,
        alerts_note=alerts_note,
        top_table=e.top_table,
        kpis=kpis,
        kpi_images=kpi_images,
        kpis_note=kpis_note,
        extra_sections=[("leakage", "Leakage guard", _leakage(summary))],
    )
    if alerts is not None:
        tables["alerts_backtest.csv"] = alerts
    return {
        "html": report.render_html(content),
        "tables": tables,
        "header": {**header, "shap_seconds": round(shap_seconds, 3), "segment_notes": notes},
    }


def write(out_dir: Path, built: dict[str, Any]) -> None:
    """Swap the whole report directory into place at once (a crash leaves the old one)."""
    staged = AtomicDirectory(out_dir)
    try:
        staged.path("index.html").write_text(built["html"], encoding="utf-8")
        for name, frame in built["tables"].items():
            frame.to_csv(staged.path(name), index=False, float_format="%.6g")
        staged.path("report.json").write_text(
            json.dumps(built["header"], indent=2, sort_keys=True, default=str) + "\n", "utf-8"
        )
    except BaseException:
        staged.discard()
        raise
    staged.commit()


def log_to_mlflow(params: Params, out_dir: Path, run_id: str | None) -> bool:
    """Log the report directory to the model's MLflow run under "drivers"; False if not found."""
    tracking.setup_tracking(params.mlflow.tracking_uri, params.mlflow.experiment)
    client = MlflowClient()
    try:
        client.get_run(run_id)
    except (MlflowException, TypeError):
        log.warning(
            "MLflow run %s not found in %s; driver report not logged (re-run `churn train`)",
            run_id,
            tracking.tracking_uri(params.mlflow.tracking_uri),
        )
        return False
    client.log_artifacts(run_id, str(out_dir), artifact_path="drivers")
    log.info("logged %s to MLflow run %s under drivers/", out_dir, run_id)
    return True


def run(params: Params) -> dict[str, Any]:
    """Build the driver report, write reports/drivers/ and log it to MLflow."""
    started = time.perf_counter()
    built = build(params)
    out_dir = Path(params.explain.out_dir)
    write(out_dir, built)
    header = built["header"]
    logged = params.explain.log_to_mlflow and log_to_mlflow(params, out_dir, header["run_id"])
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


def main(params_path: Path | str = "params.yaml") -> int:
    """Entry point for `churn explain`; exit code 2 on bad input."""
    try:
        run(load_params(params_path))
    except (TrainingDataError, ParamsError) as exc:
        log.error("explain: %s", exc)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
