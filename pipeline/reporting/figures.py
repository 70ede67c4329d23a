"""Shared plotting plumbing (matplotlib on the Agg backend) and the test-curve figure of
`evaluate`. The driver report's figures are in shap_figures.py, the KPI plots in kpi_figures.py."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pandas as pd


def pyplot():  # noqa: ANN202
    """pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_data_uri(fig: Any, dpi: int = 100) -> str:
    """PNG bytes of a matplotlib figure as a data URI; the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def save_png(fig: Any, path: Path, dpi: int = 100) -> None:
    """Write a figure as PNG and close it."""
    plt = pyplot()
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def summary_figure(per_model: dict[str, dict[str, pd.DataFrame]]):  # noqa: ANN201
    """A 2x2 matplotlib figure (ROC, PR, reliability, gains) overlaying every model."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 9))
    specs = [
        ("roc", "fpr", "tpr", "ROC"),
        ("precision_recall", "recall", "precision", "Precision-recall"),
        ("reliability", "mean_predicted", "observed_rate", "Reliability"),
        ("gains", "population_share", "churners_captured", "Cumulative gains"),
    ]
    for ax, (name, x, y, title) in zip(axes.ravel(), specs, strict=True):
        for model, data in per_model.items():
            frame = data[name]
            ax.plot(
                frame[x],
                frame[y],
                marker="o" if name == "reliability" else None,
                markersize=3,
                label=model,
            )
        if name in ("roc", "gains"):
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        if name == "reliability":
            top = max(
                float(d["reliability"][["mean_predicted", "observed_rate"]].max().max())
                for d in per_model.values()
            )
            ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1)
        ax.set_title(title)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
