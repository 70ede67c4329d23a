"""Stage `kpis`: monthly churn KPIs from the interim tables (definitions in models/kpis.py).

`paths.kpis_report` holds pooled and latest-month figures overall and per segment;
`paths.kpis_dir` holds the monthly detail as CSV (monthly_churn.csv, cohort_retention.csv,
experience.csv, repeat_purchase.csv) and PNG plots of the same. Without revenue (no fees) there
are no MRR or NRR panels; a segment column with many levels shows its largest levels and
"(other)" (`value.kpi_segments`; models/kpis.py). The report's "notes" say both.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from features.base.io import atomic_directory, write_json
from features.tables import connect, load_tables
from models.kpis import (
    ALL,
    KpiSpec,
    cohort_retention,
    experience,
    kpi_months,
    monthly_churn,
    repeat_purchase,
    segment_foldings,
    summary,
)
from pipeline.config import Params
from pipeline.reporting.figures import save_png
from pipeline.reporting.kpi_figures import kpi_figures

log = logging.getLogger(__name__)


def compute(params: Params) -> dict[str, Any]:
    """Every KPI table (pandas, one row per segment and month) and the month boundaries."""
    v = params.value
    spec = KpiSpec(
        segments=v.kpi_segments,
        label=params.label,
        csat_satisfied_min=v.csat_satisfied_min,
        purchase_event_type=v.purchase_event_type,
        featurize=params.featurize,
    )
    with tempfile.TemporaryDirectory(prefix="kpis-") as tmp:
        con = connect(v.duckdb_memory_limit, v.duckdb_threads, tmp)
        try:
            tables = load_tables(con, params.paths.interim)
            bounds = kpi_months(tables, v.kpi_first_month)
            out = {
                "bounds": bounds,
                "churn": monthly_churn(con, tables, bounds, spec),
                "cohorts": cohort_retention(con, tables, bounds, spec),
                "experience": experience(con, tables, bounds, spec),
                "purchases": repeat_purchase(con, tables, bounds, spec),
                "foldings": segment_foldings(tables, spec.segments, spec.max_segment_levels),
            }
        finally:
            con.disconnect()
    out["summary"] = summary(
        out["churn"],
        out["cohorts"],
        out["experience"],
        out["purchases"],
        bounds,
        spec,
        out["foldings"],
    )
    for note in out["summary"].get("notes", []):
        log.warning("kpis: %s", note)
    return out


def write_outputs(result: dict[str, Any], segments: tuple[str, ...], out_dir: Path) -> None:
    """CSV tables and PNG plots into `out_dir`, swapped in together."""
    tables = {
        "monthly_churn": result["churn"],
        "cohort_retention": result["cohorts"],
        "experience": result["experience"],
    }
    if result["purchases"] is not None:
        tables["repeat_purchase"] = result["purchases"]
    with atomic_directory(out_dir) as staging:
        for name, frame in tables.items():
            frame.to_csv(staging / f"{name}.csv", index=False, float_format="%.6g")
        for name, fig in kpi_figures(result, segments).items():
            save_png(fig, staging / f"{name}.png")


def run(params: Params) -> dict[str, Any]:
    """Compute and write every KPI; return the summary."""
    paths = params.paths
    result = compute(params)
    write_outputs(result, params.value.kpi_segments, Path(paths.kpis_dir))
    write_json(paths.kpis_report, result["summary"])
    overall = result["summary"]["churn"].get(ALL) or {}  # empty: no month's churn known yet
    log.info(
        "kpis: %d months (%s .. %s), churn rate %.4f, MRR churn %.4f, NRR %.4f -> %s, %s",
        result["summary"]["months"]["count"],
        result["summary"]["months"]["first"],
        result["summary"]["months"]["last"],
        overall.get("churn_rate") or float("nan"),
        overall.get("mrr_churn_rate") or float("nan"),
        overall.get("nrr") or float("nan"),
        paths.kpis_report,
        paths.kpis_dir,
    )
    return result["summary"]
