"""The score history: one directory per as-of date (`<history>/<YYYY-MM-DD>/`) holding that
run's scores, scoring table and summary, written whole by `churn score` and read by
`churn monitor`. Retention is counted back from the newest as-of date in the history (not the
wall clock), so a rerun on the same data keeps the same entries."""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

ENTRY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SCORES, FEATURES, SUMMARY = "scores.parquet", "features.parquet", "score.json"


@dataclass(frozen=True)
class HistoryEntry:
    """One kept scoring run."""

    as_of: pd.Timestamp
    directory: Path

    @property
    def scores(self) -> Path:
        return self.directory / SCORES

    @property
    def features(self) -> Path:
        return self.directory / FEATURES

    @property
    def summary(self) -> Path:
        return self.directory / SUMMARY


def entry_name(as_of: dt.datetime) -> str:
    """The directory name of an as-of date."""
    return pd.Timestamp(as_of).strftime("%Y-%m-%d")


def entries(history: Path | str) -> list[HistoryEntry]:
    """The complete entries (scores file present), oldest first; staging leftovers are skipped."""
    history = Path(history)
    if not history.is_dir():
        return []
    found = []
    for path in sorted(history.iterdir()):
        if path.is_dir() and ENTRY.match(path.name) and (path / SCORES).exists():
            found.append(HistoryEntry(pd.Timestamp(path.name, tz="UTC"), path))
    return found


def expired(as_ofs: list[pd.Timestamp], retention_days: int | None) -> list[pd.Timestamp]:
    """The as-of dates older than `retention_days` before the newest one (None: keep all)."""
    if retention_days is None or not as_ofs:
        return []
    limit = max(as_ofs) - pd.Timedelta(days=retention_days)
    return sorted(a for a in as_ofs if a < limit)


def prune(history: Path | str, retention_days: int | None) -> list[str]:
    """Delete the entries beyond retention; return their names."""
    kept = entries(history)
    gone = set(expired([e.as_of for e in kept], retention_days))
    removed = []
    for entry in kept:
        if entry.as_of in gone:
            shutil.rmtree(entry.directory, ignore_errors=True)
            removed.append(entry.directory.name)
    if removed:
        log.info("score history: removed %s (older than %s days)", removed, retention_days)
    return removed
