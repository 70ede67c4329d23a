"""The KPI churn-by-segment plot: small multiples (one panel per level, shared axes)."""

from __future__ import annotations

import pandas as pd

from models.kpis import ALL
from pipeline.reporting.kpi_figures import plot_segment_churn


def _churn(levels: list[str]) -> pd.DataFrame:
    months = pd.date_range("2025-01-01", periods=4, freq="MS")
    frames = [
        pd.DataFrame({"segment_column": ALL, "segment": ALL, "month": months,
                      "active_start": 1000, "churn_rate": 0.05})
    ]  # fmt: skip
    for i, level in enumerate(levels):
        frames.append(
            pd.DataFrame({"segment_column": "country", "segment": level, "month": months,
                          "active_start": 100 - i, "churn_rate": 0.02 + 0.01 * i})
        )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_one_panel_per_level_largest_first_with_shared_axes() -> None:
    levels = ["US", "CN", "KR", "RU", "GB", "SG", "AU", "KZ", "(other)"]
    fig = plot_segment_churn(_churn(levels), "country")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == levels  # by size: active_start falls with i
    assert len({ax.get_ylim() for ax in shown}) == 1  # one y scale: panels compare at a glance
    assert all(len(ax.get_lines()) == 2 for ax in shown)  # the level and all customers
    assert len(fig.axes) - len(shown) == 3  # 9 panels on a 3 x 4 grid: 3 hidden
