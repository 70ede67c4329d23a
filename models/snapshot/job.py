"""The table job's logic: read the file, cross-validate and fit, score every row with its top
reasons, the driver analysis, and the summary (metrics, features, dropped columns, leakage
suspects, schema)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from models.explain import drivers as ex
from models.settings import DataParams, ExplainParams, LeakageParams, TrainParams
from models.snapshot.cv import PEERS, evaluate_folds
from models.snapshot.model import SnapshotModel, fit_snapshot_model
from models.snapshot.reading import read_table  # noqa: F401  (re-exported: callers import it here)
from models.snapshot.schema import (
    SnapshotSchema,
    encode_target,
    infer_schema,
    normalise_text,
)
from models.training.leakage import too_good_to_be_true
from models.training.split import LABEL

SEGMENT_MAX_LEVELS = 12  # categorical drivers with more levels are not segmented


@dataclass
class TableFit:
    """What one table yields: schema, final model, labelled rows, suspects, scores and summary."""

    schema: SnapshotSchema
    model: SnapshotModel  # fitted on every labelled row
    features: pd.DataFrame  # the labelled rows' features
    labels: np.ndarray  # their 0/1 labels
    suspects: list[dict[str, Any]]
    scores: pd.DataFrame  # every row, labelled or not
    summary: dict[str, Any]


def fit_table(
    frame: pd.DataFrame,
    target: str,
    positive: str,
    id_column: str | None,
    drop: tuple[str, ...],
    cv: int | None,
    settings: DataParams,
    train: TrainParams,
    leakage: LeakageParams,
    source: str,
) -> TableFit:
    """Infer the schema, cross-validate, fit on every labelled row and score every row."""
    schema = infer_schema(frame, target, positive, id_column, drop, settings, source)
    y, target_info = encode_target(frame, target, positive, source)
    features = schema.transform(frame)
    known = ~np.isnan(y)
    x, yk = features.loc[known], y[known].astype(int)
    evaluation = evaluate_folds(x, yk, settings, train, leakage, cv)
    final = fit_snapshot_model(x, yk, settings, train, leakage, "all labelled rows")
    oof = np.full(len(y), np.nan)
    oof[np.flatnonzero(known)] = evaluation["oof"]
    suspects = leakage_suspects(final, evaluation["folds"], schema)
    summary = summarise(source, cv, schema, target_info, evaluation["folds"], final, suspects)
    too_good = too_good_to_be_true(
        {f"{summary['evaluation']} (mean)": summary["roc_auc"]},
        [s["column"] for s in suspects if s["kept"]],
        leakage,
        source,
    )
    summary.update(too_good_to_be_true=bool(too_good), too_good_reasons=too_good)
    scores = score_rows(final, schema, frame, features, y, oof, settings.reasons)
    return TableFit(schema, final, x, yk, suspects, scores, summary)


# ------------------------------------------------------------------ scores and drivers


def _row_ids(frame: pd.DataFrame, schema: SnapshotSchema) -> pd.Series:
    if schema.id_column:
        return frame[schema.id_column].astype("string")
    return pd.Series(np.arange(len(frame)), index=frame.index, name="row").astype("string")


def _value_text(value: object) -> str:
    """A source value as the analyst reads it: missing values say so."""
    text = normalise_text(pd.Series([value], dtype="object")).iloc[0]
    return "(missing)" if text is None else str(text)


def score_rows(
    model: SnapshotModel,
    schema: SnapshotSchema,
    frame: pd.DataFrame,
    features: pd.DataFrame,
    y: np.ndarray,
    oof: np.ndarray,
    reasons: int,
) -> pd.DataFrame:
    """Every row: probability, out-of-fold probability, label and the top reasons raising risk."""
    contrib = model.contributions(features)[:, :-1]
    names = model.booster.feature_name()
    column_of = schema.column_of
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


@dataclass
class Drivers:
    """The driver analysis of the blend on a label-stratified sample of the labelled rows."""

    sample: pd.DataFrame
    result: ex.ShapResult  # log-odds contributions of the LightGBM + logistic blend
    importance: pd.DataFrame
    groups: pd.DataFrame
    churn_types: pd.DataFrame
    segments: pd.DataFrame
    segment_notes: list[str]
    touchpoints: pd.DataFrame


def driver_analysis(
    model: SnapshotModel,
    schema: SnapshotSchema,
    features: pd.DataFrame,
    labels: np.ndarray,
    sample_size: int,
    seed: int,
) -> Drivers:
    """Importance, groups and segments (the few-level categorical top drivers) on a sample."""
    rows = features.assign(**{LABEL: labels.astype(int)})
    sample = ex.stratified_sample(rows, LABEL, sample_size, seed)
    x = model.model_frame(sample)
    contrib = model.contributions(sample)
    result = ex.ShapResult(
        values=contrib[:, :-1],
        base_value=float(contrib[:, -1].mean()),
        features=list(x.columns),
        data=x,
    )
    catalog = driver_catalog(schema)
    importance = ex.global_importance(result, catalog)
    # Segments: the strongest categorical drivers with a few levels. No touchpoints: a snapshot
    # table has no survey history. Everything else as the temporal driver report's defaults.
    segment_columns = [
        f
        for f in importance["feature"]
        if f in model.spec.categorical and 2 <= len(model.spec.categorical[f]) <= SEGMENT_MAX_LEVELS
    ][:3]
    defaults = ExplainParams(segments=tuple(segment_columns))
    rows = x.assign(**{LABEL: sample[LABEL].to_numpy()})
    tables, notes = ex.driver_tables(result, rows, catalog, defaults, (), 0.0, LABEL)
    return Drivers(
        sample=sample,
        result=result,
        importance=tables["importance.csv"],
        groups=tables["groups.csv"],
        churn_types=tables["churn_types.csv"],
        segments=tables["segments.csv"],
        segment_notes=notes,
        touchpoints=tables["touchpoints.csv"],
    )


def driver_catalog(schema: SnapshotSchema) -> pd.DataFrame:
    """The feature catalog of the driver report: every feature is a profile column."""
    entries = [
        {"name": p.feature, "group": "profile", "description": f"{p.column} ({p.reason})"}
        for p in schema.plans
        if p.feature
    ]
    return ex.catalog_frame(entries, "snapshot schema")


# ------------------------------------------------------------------ summary


def leakage_suspects(
    final: SnapshotModel, folds: list[dict[str, Any]], schema: SnapshotSchema
) -> list[dict[str, Any]]:
    """Final-model suspects with the number of CV training folds that flagged them too."""
    column_of = schema.column_of
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


def _peer_mean(folds: list[dict[str, Any]], name: str) -> float:
    return float(np.mean([f["peer_roc_auc"][name] for f in folds]))


def peer_comparison(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours beside the peers on the same folds: per-fold and mean ROC AUC, the best peer (by
    mean) and ours minus it per fold, with a t interval over the folds (none for one holdout)."""
    ours = np.array([f["metrics"]["roc_auc"] for f in folds])
    per_fold = {name: [round(f["peer_roc_auc"][name], 6) for f in folds] for name in PEERS}
    mean = {name: _peer_mean(folds, name) for name in PEERS}
    best = max(PEERS, key=lambda n: mean[n])
    diff = ours - np.array([f["peer_roc_auc"][best] for f in folds])
    interval = None
    if len(diff) > 1:
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        interval = [round(float(diff.mean() - half), 6), round(float(diff.mean() + half), 6)]
    return {
        "fitted_on": "each fold's training rows; scored on the same test rows as ours",
        "roc_auc": {"ours": float(ours.mean()), **mean},
        "roc_auc_folds": {"ours": [round(float(a), 6) for a in ours], **per_fold},
        "best_peer": best,
        "ours_minus_best": float(diff.mean()),
        "ours_minus_best_folds": [round(float(d), 6) for d in diff],
        "ours_minus_best_95ci": interval,
    }


def summarise(
    source: str,
    cv: int | None,
    schema: SnapshotSchema,
    target_info: dict[str, Any],
    folds: list[dict[str, Any]],
    final: SnapshotModel,
    suspects: list[dict[str, Any]],
) -> dict[str, Any]:
    """The summary: CV metrics (mean and per fold, both parts alone), rows, features, dropped
    columns, leakage suspects, the final model's choices and the schema."""
    aucs = [f["metrics"]["roc_auc"] for f in folds]
    column_of = schema.column_of
    return {
        "data": source,
        "target": schema.target,
        "positive": schema.positive,
        "evaluation": f"{cv}-fold stratified CV" if cv else "stratified holdout",
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
            "lightgbm_defaults_roc_auc": _peer_mean(folds, "lightgbm_defaults"),
            "hgb_defaults_roc_auc": _peer_mean(folds, "hgb_defaults"),
        },
        "peers": peer_comparison(folds),
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
