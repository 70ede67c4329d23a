"""The monthly KPI plots of `churn kpis` (churn, MRR churn, NRR, cohorts, NPS/CSAT, repeat
purchases), for the whole population and per segment. Without revenue (no fees) the churn plot
has the customer churn panel only, never empty MRR or NRR panels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from models.kpis import ALL, has_revenue
from pipeline.reporting.figures import pyplot


def _overall(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame["segment_column"] == ALL]


CHURN_PANELS = (("churn_rate", "Customer churn rate"),)
REVENUE_PANELS = (("mrr_churn_rate", "MRR churn rate"), ("nrr", "Net revenue retention"))


def plot_churn(churn: pd.DataFrame):
    """Churn rate, MRR churn rate and NRR by month, for the whole population (the customer churn
    rate alone when there is no revenue)."""
    plt = pyplot()
    data = _overall(churn)
    panels = CHURN_PANELS + (REVENUE_PANELS if has_revenue(churn) else ())
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (col, title) in zip(axes[0], panels, strict=True):
        ax.plot(data["month"], data[col], marker="o")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_segment_churn(churn: pd.DataFrame, column: str, columns: int = 4):
    """Monthly churn rate per value of one segment column as small multiples: one panel per
    level (at most the largest levels and "(other)": models/kpis.py folds the rest), largest
    first, shared axes, the whole population's rate in grey behind each for reference."""
    plt = pyplot()
    data = churn.loc[churn["segment_column"] == column]
    sizes = (
        data.groupby("segment")["active_start"].sum()
        if "active_start" in data.columns
        else data.groupby("segment").size()
    )
    levels = sorted(sizes.index, key=lambda level: (-sizes[level], str(level)))
    overall = _overall(churn)
    n = max(len(levels), 1)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.4 * rows + 0.6), sharex=True, sharey=True,
        squeeze=False,
    )  # fmt: skip
    for ax, level in zip(axes.ravel(), levels, strict=False):
        ax.plot(overall["month"], overall["churn_rate"], color="#bbbbbb", lw=1.2, label="all")
        frame = data.loc[data["segment"] == level]
        ax.plot(frame["month"], frame["churn_rate"], color="#1f3a5f", marker=".", lw=1.4)
        ax.set_title(str(level), fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(levels) :]:
        ax.set_visible(False)
    fig.suptitle(f"Monthly customer churn rate by {column} (grey: all customers)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_cohorts(cohorts: pd.DataFrame):
    """Retention by age for every signup-month cohort (darker = later cohort)."""
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
    data = _overall(purchases)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(data["month"], data["repeat_purchase_rate"], marker="o")
    ax.set_title("Repeat-purchase rate (>= 2 purchases among buyers)")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def kpi_figures(result: dict[str, Any], segments: Sequence[str]) -> dict[str, Any]:
    """Every KPI plot of `churn kpis`, by file stem: churn, cohorts, churn per segment column,
    NPS/CSAT per touchpoint and repeat purchases (when the data has them)."""
    figures = {
        "churn": plot_churn(result["churn"]),
        "cohort_retention": plot_cohorts(result["cohorts"]),
    }
    for column in segments:
        figures[f"churn_by_{column}"] = plot_segment_churn(result["churn"], column)
    if not result["experience"].empty:
        figures["experience"] = plot_experience(result["experience"])
    if result["purchases"] is not None:
        figures["repeat_purchase"] = plot_repeat(result["purchases"])
    return figures
