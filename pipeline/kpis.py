"""Stage `kpis`: monthly churn KPIs from data/interim into reports/kpis.json and reports/kpis/.

reports/kpis.json holds pooled and latest-month figures overall and per segment (readable in
`dvc metrics show`); reports/kpis/ holds the monthly detail as CSV (monthly_churn.csv,
cohort_retention.csv, experience.csv, repeat_purchase.csv) and PNG plots of the same. The
definitions are in models/kpis.py.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from features.tables import TableContractError, connect, load_tables
from models.kpis import (
    ALL,
    KpiInputError,
    KpiSpec,
    cohort_retention,
    experience,
    kpi_months,
    monthly_churn,
    repeat_purchase,
    summary,
)
from pipeline.config import Params, ParamsError, load_params
from pipeline.io import AtomicDirectory, write_json

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2


def spec_of(params: Params) -> KpiSpec:
    """The KPI spec from params: value.* plus the label definition and survey metric names."""
    v = params.value
    return KpiSpec(
        segments=v.kpi_segments,
        definition=params.label.definition,
        lookback_days=params.label.inactivity_lookback_days,
        csat_satisfied_min=v.csat_satisfied_min,
        purchase_event_type=v.purchase_event_type,
        featurize=params.featurize,
    )


def compute(params: Params) -> dict[str, Any]:
    """Every KPI table (pandas, one row per segment and month) and the month boundaries."""
    v = params.value
    spec = spec_of(params)
    with tempfile.TemporaryDirectory(prefix="kpis-") as tmp:
        con = connect(v.duckdb_memory_limit, v.duckdb_threads, tmp)
        try:
            tables = load_tables(con, v.interim_dir)
            bounds = kpi_months(tables, v.kpi_first_month)
            out = {
                "bounds": bounds,
                "churn": monthly_churn(con, tables, bounds, spec),
                "cohorts": cohort_retention(con, tables, bounds, spec),
                "experience": experience(con, tables, bounds, spec),
                "purchases": repeat_purchase(con, tables, bounds, spec),
            }
        finally:
            con.disconnect()
    out["summary"] = summary(
        out["churn"], out["cohorts"], out["experience"], out["purchases"], bounds, spec
    )
    return out


def _overall(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame["segment_column"] == ALL]


def plot_churn(churn: pd.DataFrame):
    """Churn rate, MRR churn rate and NRR by month, for the whole population."""
    import matplotlib.pyplot as plt

    data = _overall(churn)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, col, title in zip(
        axes,
        ("churn_rate", "mrr_churn_rate", "nrr"),
        ("Customer churn rate", "MRR churn rate", "Net revenue retention"),
        strict=True,
    ):
        ax.plot(data["month"], data[col], marker="o")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_segment_churn(churn: pd.DataFrame, column: str):
    """Monthly churn rate per value of one segment column."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for value, frame in churn.loc[churn["segment_column"] == column].groupby("segment"):
        ax.plot(frame["month"], frame["churn_rate"], marker=".", label=str(value))
    ax.set_title(f"Customer churn rate by {column}")
    ax.legend(fontsize="small", ncol=2)
    ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_cohorts(cohorts: pd.DataFrame):
    """Retention by age for every signup-month cohort (darker = later cohort)."""
    import matplotlib.pyplot as plt

    data = _overall(cohorts)
    fig, ax = plt.subplots(figsize=(9, 5))
    groups = list(data.groupby("cohort"))
    cmap = plt.get_cmap("viridis")
    for i, (cohort, frame) in enumerate(groups):
        ax.plot(
            frame["age_months"],
            frame["retention"],
            color=cmap(i / max(len(groups) - 1, 1)),
            label=pd.Timestamp(cohort).strftime("%Y-%m") if i % 3 == 0 else None,
        )
    ax.set_xlabel("months since signup")
    ax.set_ylabel("share of the cohort active")
    ax.set_title("Cohort retention by signup month")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_experience(exp: pd.DataFrame):
    """NPS and CSAT (% satisfied) per touchpoint by month."""
    import matplotlib.pyplot as plt

    data = _overall(exp)
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    for ax, kpi, title in zip(
        axes, ("nps", "csat_pct"), ("NPS (points)", "CSAT (% satisfied)"), strict=True
    ):
        for tp, frame in data.loc[data["kpi"] == kpi].groupby("touchpoint"):
            ax.plot(frame["month"], frame["value"], marker="o", label=str(tp))
        ax.set_title(title)
        ax.legend(fontsize="small")
        ax.tick_params(axis="x", rotation=45)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_repeat(purchases: pd.DataFrame):
    """Monthly repeat-purchase rate for the whole population."""
    import matplotlib.pyplot as plt

    data = _overall(purchases)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(data["month"], data["repeat_purchase_rate"], marker="o")
    ax.set_title("Repeat-purchase rate (>= 2 purchases among buyers)")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_outputs(result: dict[str, Any], params: Params) -> None:
    """CSV and PNG files into value.kpis_dir (swapped in together), then value.kpis_report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = params.value
    tables = {
        "monthly_churn": result["churn"],
        "cohort_retention": result["cohorts"],
        "experience": result["experience"],
    }
    figures = {
        "churn": plot_churn(result["churn"]),
        "cohort_retention": plot_cohorts(result["cohorts"]),
    }
    for column in v.kpi_segments:
        figures[f"churn_by_{column}"] = plot_segment_churn(result["churn"], column)
    if not result["experience"].empty:
        figures["experience"] = plot_experience(result["experience"])
    if result["purchases"] is not None:
        tables["repeat_purchase"] = result["purchases"]
        figures["repeat_purchase"] = plot_repeat(result["purchases"])
    out = AtomicDirectory(v.kpis_dir)
    try:
        for name, frame in tables.items():
            frame.to_csv(out.path(f"{name}.csv"), index=False, float_format="%.6g")
        for name, fig in figures.items():
            fig.savefig(out.path(f"{name}.png"), dpi=100)
        out.commit()
    except BaseException:
        out.discard()
        raise
    finally:
        for fig in figures.values():
            plt.close(fig)
    write_json(v.kpis_report, result["summary"])


def run(params: Params) -> dict[str, Any]:
    """Compute and write every KPI; return the summary (reports/kpis.json)."""
    result = compute(params)
    write_outputs(result, params)
    overall = result["summary"]["churn"][ALL]
    log.info(
        "kpis: %d months (%s .. %s), churn rate %.4f, MRR churn %.4f, NRR %.4f -> %s, %s",
        result["summary"]["months"]["count"],
        result["summary"]["months"]["first"],
        result["summary"]["months"]["last"],
        overall["churn_rate"] or float("nan"),
        overall["mrr_churn_rate"] or float("nan"),
        overall["nrr"] or float("nan"),
        params.value.kpis_report,
        params.value.kpis_dir,
    )
    return result["summary"]


def main(params_path: Path | str = "params.yaml") -> int:
    """Entry point for `churn kpis`; exit code 2 on bad input."""
    try:
        run(load_params(params_path))
    except (KpiInputError, TableContractError, FileNotFoundError, ParamsError) as exc:
        log.error("kpis: %s", exc)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
