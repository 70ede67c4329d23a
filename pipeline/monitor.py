"""Stage `monitor`: drift between the model's training rows and the scoring table, and the realised
performance of every past scores file whose label window has passed.

`churn monitor`

1. The model that made the current scores (reports/score.json: its registry version, or its
   directory) gives the features to compare and its training cutoffs (`spec.train_end`); the
   reference is the model table's rows at those cutoffs (`paths.features`, a seeded sample of
   `monitor.reference_max_rows`).
2. Drift (models/monitoring/drift.py) of every model feature between the reference and the
   current scoring table (`paths.score_features`), largest first, and prediction drift: the
   model's probabilities on the reference rows vs the current scores. Every entry of the score
   history (`monitor.history_dir`, kept by `churn score`) gets the same summary against the same
   reference, so that the page shows when a shift started.
3. Realised performance (models/monitoring/performance.py): every history entry whose label
   window (lead + horizon) ends by the label's data end is joined with the labels of its as-of
   date (features/labels.py, point in time) and scored like the test cutoff in `evaluate`.
4. Outputs: `monitor.report` (JSON), `monitor.page` (index.html, realised.csv for `dvc plots`,
   drift.csv), written in a staging directory and swapped in whole, the JSON last; metrics per
   as-of date on the MLflow run of the model that made the scores (a metric step already logged is
   not logged again); an alert per crossed threshold to `monitor.alert_team`'s delivery channels
   in the rules file (`alert.rules`), remembered in `monitor.ledger` so it is sent once.

The stage reads the score history and never writes it: a killed run leaves the previous outputs
and the history as they were. Exit 2 on bad input (no scores yet, a feature column missing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.base.errors import BadInputError, require_inputs
from features.base.io import (
    atomic_directory,
    exclusive_lock,
    parquet_schema,
    write_json,
    write_text,
)
from features.labels import label_end
from features.tables import connect, load_tables
from models import tracking
from models.model import LoadedModel, load_model_uri
from models.monitoring import history
from models.monitoring.drift import (
    DriftThresholds,
    column_drift,
    distribution,
    feature_drift,
    summarise,
)
from models.monitoring.performance import (
    is_matured,
    join_labels,
    labels_at,
    matured_on,
    realised_metrics,
)
from models.settings import MonitorParams
from pipeline.config import Params
from pipeline.reporting.monitor_page import render_monitor_page

log = logging.getLogger(__name__)

PREDICTION = "churn_probability"
TREND_COLUMNS = (
    "roc_auc", "pr_auc", "ece", "brier", "lift_at_10", "observed_rate", "mean_predicted", "n"
)  # fmt: skip


def thresholds_of(m: MonitorParams) -> DriftThresholds:
    """The drift thresholds of the monitor params."""
    return DriftThresholds(
        m.measure,
        m.warn_threshold,
        m.alert_threshold,
        m.missing_change,
        m.new_level_share,
        m.noise_alpha,
    )


def model_of_scores(summary: dict[str, Any]) -> LoadedModel:
    """The model that made the scores: its registry version when registered (the alias may have
    moved since), else the directory it was loaded from."""
    uri, version = str(summary.get("model_uri", "")), str(summary.get("model_version", ""))
    if uri.startswith("models:/") and version and version != "unregistered":
        name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
        uri = f"models:/{name}/{version}"
    return load_model_uri(uri)


def reference_rows(
    features_path: Path, columns: list[str], train_end: str | None, m: MonitorParams
) -> pd.DataFrame:
    """The model table's rows at the model's training cutoffs (up to `train_end`), a seeded
    sample of at most `m.reference_max_rows`."""
    names = parquet_schema(features_path).names
    missing = [c for c in columns if c not in names]
    if missing:
        raise BadInputError(
            f"{features_path}: the model table lacks the model's feature column(s) {missing[:5]}; "
            "it was rebuilt for another model. Re-run `churn featurize` and `churn train`, or "
            "score with the current champion."
        )
    filters = None
    if train_end is not None and "cutoff" in names:
        filters = [("cutoff", "<=", pd.Timestamp(train_end).to_pydatetime())]
    frame = pq.read_table(features_path, columns=columns, filters=filters).to_pandas()
    if len(frame) == 0:
        raise BadInputError(
            f"{features_path}: no row at or before the model's last training cutoff {train_end}; "
            "the model table does not hold the rows this model was trained on."
        )
    if len(frame) > m.reference_max_rows:
        frame = frame.sample(n=m.reference_max_rows, random_state=m.seed)
    return frame.reset_index(drop=True)


def drift_of_table(
    reference: pd.DataFrame,
    reference_p: np.ndarray,
    features: pd.DataFrame,
    probability: pd.Series,
    names: list[str],
    m: MonitorParams,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-feature drift (largest first) and the prediction drift of one scoring table."""
    t = thresholds_of(m)
    table = feature_drift(reference, features, names, m.bins, t)
    prediction = column_drift(PREDICTION, pd.Series(reference_p), probability, m.bins, t)
    return table, prediction


def _probabilities(entry: history.HistoryEntry | None, scores: Path) -> pd.Series:
    path = entry.scores if entry is not None else scores
    return pq.read_table(path, columns=[PREDICTION]).column(PREDICTION).to_pandas()


def _read_features(path: Path, names: list[str]) -> pd.DataFrame:
    present = set(pq.read_schema(path).names)
    return pq.read_table(path, columns=[c for c in names if c in present]).to_pandas()


def entry_drift(
    entry: history.HistoryEntry,
    reference: pd.DataFrame,
    reference_p: np.ndarray,
    names: list[str],
    m: MonitorParams,
) -> dict[str, Any]:
    """The drift summary of one history entry against the current model's training rows, over
    the features the entry has (an entry scored by an older model may lack some: listed)."""
    out: dict[str, Any] = {"as_of": entry.as_of.date().isoformat()}
    if not entry.features.exists():
        return {**out, "skipped": f"{entry.features} not found"}
    features = _read_features(entry.features, names)
    common = [n for n in names if n in features.columns]
    table, prediction = drift_of_table(
        reference, reference_p, features, _probabilities(entry, entry.scores), common, m
    )
    return {
        **out,
        **summarise(table),
        "features_missing": [n for n in names if n not in features.columns],
        "prediction_drift": prediction["drift"],
        "prediction_status": prediction["status"],
        "drift": dict(zip(table["feature"], table["drift"], strict=True)),
    }


def realised_by_as_of(params: Params, entries: list[history.HistoryEntry]) -> list[dict[str, Any]]:
    """Per history entry: its realised figures once matured, else when it matures."""
    m, label = params.monitor, params.label
    out: list[dict[str, Any]] = []
    if not entries:
        return out
    with tempfile.TemporaryDirectory(prefix="monitor-") as tmp:
        con = connect(params.featurize.duckdb_memory_limit, params.featurize.duckdb_threads, tmp)
        try:
            tables = load_tables(con, params.paths.interim)
            end = label_end(tables, label.data_end)
            for entry in entries:
                as_of = entry.as_of.to_pydatetime()
                record: dict[str, Any] = {"as_of": entry.as_of.date().isoformat()}
                record.update(_entry_model(entry))
                if not is_matured(as_of, label.lead_days, label.horizon_days, end):
                    ready = matured_on(as_of, label.lead_days, label.horizon_days)
                    record.update(status="pending", matures_on=ready.date().isoformat())
                    out.append(record)
                    continue
                scores = pq.read_table(entry.scores, columns=["customer_id", PREDICTION])
                frame = scores.to_pandas()
                segs = _read_features(entry.features, ["customer_id", *m.segments])
                frame = frame.merge(segs, on="customer_id", how="left")
                joined, unlabelled = join_labels(frame, labels_at(tables, as_of, label))
                record.update(status="matured", unlabelled=unlabelled)
                record.update(realised_metrics(joined, m.segments, m.ece_bins))
                out.append(record)
        finally:
            con.disconnect()
    return out


def _entry_model(entry: history.HistoryEntry) -> dict[str, Any]:
    """The model version and MLflow run recorded with a history entry."""
    if not entry.summary.exists():
        return {"model_version": None, "run_id": None}
    summary = json.loads(entry.summary.read_text(encoding="utf-8"))
    return {"model_version": summary.get("model_version"), "run_id": summary.get("run_id")}


def build_alerts(
    current: dict[str, Any], realised: list[dict[str, Any]], m: MonitorParams
) -> list[dict[str, Any]]:
    """One alert per crossed threshold: drift of the current scoring table (features at `alert`,
    or the predictions), and realised ROC AUC below `monitor.min_realised_roc_auc`."""
    alerts = []
    as_of, version = current["as_of"], current.get("model_version")
    summary, prediction = current["summary"], current["prediction"]
    if summary["alert"] or prediction["status"] == "alert":
        names = [r["feature"] for r in current["features"] if r["status"] == "alert"]
        if prediction["status"] == "alert":
            names.insert(0, PREDICTION)
        alerts.append(
            _alert(
                "monitor_drift",
                as_of,
                version,
                f"{len(names)} drift alert(s) at {as_of} vs the training rows: "
                f"{', '.join(names[:10])}",
            )
        )
    for record in realised:
        auc = record.get("roc_auc")
        if record.get("status") == "matured" and auc is not None and auc < m.min_realised_roc_auc:
            alerts.append(
                _alert(
                    "monitor_realised_performance",
                    record["as_of"],
                    record.get("model_version"),
                    f"realised ROC AUC {auc:.3f} of the scores made at {record['as_of']} is below "
                    f"monitor.min_realised_roc_auc {m.min_realised_roc_auc}",
                )
            )
    return alerts


def _alert(rule: str, as_of: str, version: Any, evidence: str) -> dict[str, Any]:
    key = f"{rule}|{as_of}|{version}"
    return {
        "alert_id": hashlib.sha256(key.encode()).hexdigest()[:24],
        "rule": rule,
        "level": "high",
        "as_of": as_of,
        "model_version": None if version is None else str(version),
        "evidence": evidence,
    }


def deliver_alerts(params: Params, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send the alerts to `monitor.alert_team`'s channels of the rules file (pipeline/delivery.py);
    without a team or with delivery off they are logged only."""
    m = params.monitor
    for a in alerts:
        log.warning("monitor alert %s: %s", a["rule"], a["evidence"])
    if not alerts or m.alert_team is None or not params.alert.delivery.enabled:
        return []
    from models.warning.rules import load_rules
    from pipeline.delivery import channels_of, deliver

    channels = channels_of(load_rules(params.alert.rules))
    if m.alert_team not in channels:
        raise BadInputError(
            f"monitor.alert_team {m.alert_team!r} is not a team of {params.alert.rules} "
            f"(teams: {sorted(channels)}); declare it under `teams` or change the setting."
        )
    now = pd.Timestamp.now(tz="UTC").floor("s")
    frame = pd.DataFrame(
        [{**a, "owner_team": m.alert_team, "triggered_at": now.isoformat()} for a in alerts]
    )
    reports = deliver(
        frame, {m.alert_team: channels[m.alert_team]}, m.ledger, params.alert.delivery
    )
    return [r.__dict__ for r in reports]


def _step(as_of: str) -> tuple[int, int]:
    """MLflow step (days since 1970-01-01) and timestamp (ms) of an as-of date."""
    day = pd.Timestamp(as_of, tz="UTC")
    return int((day - pd.Timestamp("1970-01-01", tz="UTC")).days), int(day.timestamp() * 1000)


def log_to_mlflow(
    params: Params, current: dict[str, Any], realised: list[dict[str, Any]]
) -> dict[str, int]:
    """Log drift (current scores) and realised figures (each matured entry) to the MLflow run of
    the model that made those scores, one step per as-of date; steps already logged are skipped.
    Returns the metrics logged per run."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking.setup_tracking(params.mlflow.tracking_uri, params.mlflow.experiment)
    client = MlflowClient()
    batches: dict[str, list[tuple[str, float, str]]] = {}
    if current.get("run_id"):
        s = current["summary"]
        batches.setdefault(current["run_id"], []).extend(
            [
                ("monitor_drift_flagged_share", s["flagged_share"], current["as_of"]),
                ("monitor_drift_alerts", s["alert"], current["as_of"]),
                ("monitor_drift_max", s["max_drift"], current["as_of"]),
                ("monitor_prediction_drift", current["prediction"]["drift"], current["as_of"]),
            ]
        )
    for record in realised:
        if record.get("status") == "matured" and record.get("run_id") and "roc_auc" in record:
            batches.setdefault(record["run_id"], []).extend(
                (f"realised_{k}", record[k], record["as_of"])
                for k in ("roc_auc", "pr_auc", "ece", "brier", "lift_at_10")
            )
    logged: dict[str, int] = {}
    for run_id, items in batches.items():
        try:
            seen = {
                key: {h.step for h in client.get_metric_history(run_id, key)}
                for key in {k for k, _, _ in items}
            }
            metrics = []
            for key, value, as_of in items:
                step, stamp = _step(as_of)
                if step not in seen[key] and value is not None and np.isfinite(value):
                    metrics.append(Metric(key, float(value), stamp, step))
            if metrics:
                client.log_batch(run_id, metrics=metrics)
            logged[run_id] = len(metrics)
        except MlflowException as exc:
            log.warning("MLflow run %s: monitoring metrics not logged (%s)", run_id, exc.message)
    return logged


def _year(as_of: str) -> float:
    day = pd.Timestamp(as_of)
    start, end = pd.Timestamp(day.year, 1, 1), pd.Timestamp(day.year + 1, 1, 1)
    return round(day.year + (day - start) / (end - start), 4)


def trend_frame(realised: list[dict[str, Any]]) -> pd.DataFrame:
    """The realised figures by as-of date (matured entries), for `dvc plots` and the page."""
    rows = [
        {
            "as_of": r["as_of"],
            "as_of_year": _year(r["as_of"]),
            **{k: r.get(k) for k in TREND_COLUMNS},
        }
        for r in realised
        if r.get("status") == "matured" and "roc_auc" in r
    ]
    return pd.DataFrame(rows, columns=["as_of", "as_of_year", *TREND_COLUMNS])


def run(params: Params) -> dict[str, Any]:
    """Monitor the current scores and the score history; write the report, the page and the
    plot data; log to MLflow; deliver alerts. Returns the report."""
    m, paths = params.monitor, params.paths
    require_inputs(paths.score_report, paths.score_features, paths.scores, paths.features,
                   produced_by="churn score")  # fmt: skip
    page = Path(m.page)
    with exclusive_lock(page.parent / f".{page.name}.lock", "`churn monitor`"):
        return _run_locked(params)


def _run_locked(params: Params) -> dict[str, Any]:
    m, paths = params.monitor, params.paths
    started = time.perf_counter()
    score_summary = json.loads(Path(paths.score_report).read_text(encoding="utf-8"))
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri(params.mlflow.tracking_uri))
    loaded = model_of_scores(score_summary)
    spec = loaded.model.spec
    names = spec.features
    reference = reference_rows(Path(paths.features), names, spec.train_end, m)
    reference_p = np.asarray(loaded.model.predict(reference), dtype=float)
    log.info("reference: %d training rows up to %s, %d features", len(reference),
             spec.train_end, len(names))  # fmt: skip

    features = _read_features(Path(paths.score_features), names)
    table, prediction = drift_of_table(
        reference, reference_p, features, _probabilities(None, Path(paths.scores)), names, m
    )
    as_of = pd.Timestamp(score_summary["as_of"]).date().isoformat()
    current = {
        "as_of": as_of,
        "model_uri": loaded.uri,
        "model_version": score_summary.get("model_version"),
        "run_id": score_summary.get("run_id"),
        "reference_rows": int(len(reference)),
        "reference_train_end": spec.train_end,
        "current_rows": int(len(features)),
        "measure": m.measure,
        "thresholds": thresholds_of(m).__dict__,
        "summary": summarise(table),
        "prediction": prediction,
        "features": table.to_dict("records"),
    }
    entries = history.entries(m.history_dir)
    by_as_of = [entry_drift(entry, reference, reference_p, names, m) for entry in entries]
    realised = realised_by_as_of(params, entries)
    alerts = build_alerts(current, realised, m)
    deliveries = deliver_alerts(params, alerts)
    logged = log_to_mlflow(params, current, realised) if m.log_to_mlflow else {}

    top = table.head(m.page_features)["feature"].tolist()
    distributions = {f: distribution(reference[f], features[f], m.bins) for f in top}
    distributions[PREDICTION] = distribution(
        pd.Series(reference_p), _probabilities(None, Path(paths.scores)), m.bins
    )
    trend = trend_frame(realised)
    report = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "current": current,
        "drift_by_as_of": by_as_of,
        "realised": realised,
        "alerts": alerts,
        "deliveries": deliveries,
        "mlflow_metrics_logged": logged,
        "history": [e.directory.name for e in entries],
        "seconds": round(time.perf_counter() - started, 1),
    }
    html = render_monitor_page(report, distributions, trend)
    with atomic_directory(m.page) as staging:
        write_text(staging / "index.html", html)
        write_text(staging / "realised.csv", trend.to_csv(index=False, float_format="%.6g"))
        drift_csv = table.drop(columns=["new_levels", "vanished_levels", "reasons"])
        write_text(staging / "drift.csv", drift_csv.to_csv(index=False, float_format="%.6g"))
    write_json(m.report, report)
    if not Path(m.ledger).exists():  # a declared (persisted) DVC output: always present
        write_json(m.ledger, {"version": 1, "alerts": {}})
    log.info(
        "monitor at %s: %d of %d features flagged (%d alert), prediction drift %.3f (%s); "
        "%d of %d past scores matured; %d alert(s) -> %s",
        as_of,
        len(current["summary"]["flagged"]),
        current["summary"]["features"],
        current["summary"]["alert"],
        prediction["drift"],
        prediction["status"],
        sum(r.get("status") == "matured" for r in realised),
        len(realised),
        len(alerts),
        m.report,
    )
    return report
