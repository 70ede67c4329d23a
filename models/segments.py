"""Segment levels in reports: the largest levels of a segment column, the rest folded into one.

One rule for every report that breaks a figure down by a segment column (KPIs, test metrics,
SHAP drivers): a column with more than `max_levels` levels keeps its `max_levels` largest (by
customers or rows; ties by level name) and the others become the single level `OTHER_LEVEL`.
A column with at most `max_levels` levels is unchanged. The folded levels are listed, never
dropped in silence: `Folding.note` says which they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

OTHER_LEVEL = "(other)"  # in parentheses like "(missing)", so it cannot be taken for a real level
MAX_SEGMENT_LEVELS = 8  # levels kept per segment column in the KPIs and the test metrics


@dataclass(frozen=True)
class Folding:
    """The levels of one segment column kept as they are and those folded into OTHER_LEVEL."""

    column: str
    kept: tuple[str, ...]
    folded: tuple[str, ...] = ()

    def apply(self, levels: pd.Series) -> pd.Series:
        """`levels` (text) with every folded level replaced by OTHER_LEVEL; a new series."""
        if not self.folded:
            return levels.copy()
        return levels.where(levels.isin(self.kept), OTHER_LEVEL)

    def note(self) -> str:
        """Which levels were folded, in plain words ("" when none)."""
        if not self.folded:
            return ""
        n = len(self.kept) + len(self.folded)
        return (
            f"{self.column}: {n} levels; the {len(self.kept)} largest are shown and the other "
            f"{len(self.folded)} are grouped as {OTHER_LEVEL!r}: {', '.join(self.folded)}"
        )


def fold_levels(
    column: str, counts: Mapping[str, int] | pd.Series, max_levels: int = MAX_SEGMENT_LEVELS
) -> Folding:
    """Keep the `max_levels` largest levels of `counts` (level -> customers or rows; ties by
    level name) and fold the others, when there are more than `max_levels` levels."""
    if max_levels < 1:
        raise ValueError(f"max_levels: expected a positive number, found {max_levels}")
    ordered = sorted(((str(k), int(v)) for k, v in dict(counts).items()), key=lambda kv: kv[0])
    ordered.sort(key=lambda kv: kv[1], reverse=True)  # stable: equal counts stay by name
    names = [k for k, _ in ordered]
    if len(names) <= max_levels:
        return Folding(column, tuple(sorted(names)))
    return Folding(column, tuple(names[:max_levels]), tuple(sorted(names[max_levels:])))


def fold_series(
    column: str, levels: pd.Series, max_levels: int = MAX_SEGMENT_LEVELS
) -> tuple[pd.Series, Folding]:
    """`levels` (text, no nulls) with the levels beyond the `max_levels` largest by rows folded
    into OTHER_LEVEL, and the folding applied."""
    folding = fold_levels(column, levels.value_counts(), max_levels)
    return folding.apply(levels), folding
