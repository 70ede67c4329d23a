"""Simulated time: int64 microsecond units (UTC), the month calendar and the truth's horizon."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

US = 1_000_000  # timestamps are int64 microseconds since the epoch, UTC
SECOND = US
HOUR = 3_600 * US
DAY = 86_400 * US

WARMUP_MONTHS = 3  # months of behaviour without churn: every 90-day window at start_date is full


@dataclass(frozen=True)
class Calendar:
    """Month boundaries (int64 µs, UTC) of the simulated period, warm-up months first."""

    bounds: np.ndarray  # len = months + 1; the last entry is the exclusive data end
    calendar_days: np.ndarray  # days in each month's calendar month (for renewal days)
    month_of_year: np.ndarray  # 1..12 per month
    first_scored: int  # index of the month at start_date; earlier months are warm-up
    start: int
    end: int  # exclusive: end_date + 1 day
    horizon_lengths: np.ndarray  # days of month k, k+1, ... continuing past the data end

    @property
    def months(self) -> int:
        return len(self.bounds) - 1


def build_calendar(start_date: str, end_date: str, warmup_months: int = WARMUP_MONTHS) -> Calendar:
    """Monthly boundaries from `warmup_months` before start_date to end_date (inclusive)."""
    start = np.datetime64(start_date, "D")
    end = np.datetime64(end_date, "D") + 1
    if start >= end:
        raise ValueError(
            f"simulate.start_date {start_date} must be before simulate.end_date {end_date}"
        )
    first_month = start.astype("datetime64[M]")
    if first_month.astype("datetime64[D]") != start:
        raise ValueError(
            f"simulate.start_date must be the first day of a month, found {start_date}; "
            f"use e.g. {first_month.astype('datetime64[D]')}"
        )
    month_starts = np.arange(first_month - warmup_months, (end - 1).astype("datetime64[M]") + 1)
    bounds_d = np.append(month_starts.astype("datetime64[D]"), end)
    next_starts = (month_starts + 1).astype("datetime64[D]")
    calendar_days = (next_starts - month_starts.astype("datetime64[D]")).astype(np.int64)
    # Month lengths for frozen-state horizons: the data months, then calendar months after.
    after = np.arange(end.astype("datetime64[M]") + 1, end.astype("datetime64[M]") + 14)
    ext = np.concatenate([bounds_d, after.astype("datetime64[D]")])
    ext = ext[np.concatenate([[True], np.diff(ext).astype(np.int64) > 0])]
    return Calendar(
        bounds=bounds_d.astype("datetime64[us]").astype(np.int64),
        calendar_days=calendar_days,
        month_of_year=(month_starts.astype(np.int64) % 12) + 1,
        first_scored=warmup_months,
        start=int(start.astype("datetime64[us]").astype(np.int64)),
        end=int(end.astype("datetime64[us]").astype(np.int64)),
        horizon_lengths=np.diff(ext).astype(np.int64),
    )


def horizon_probability(
    p_month: np.ndarray, k: int, cal: Calendar, horizon_days: int
) -> np.ndarray:
    """P(churn in (m_k, m_k + horizon_days]) when every month from m_k on has probability p."""
    total = np.zeros_like(p_month)
    survive = np.ones_like(p_month)
    remaining = float(horizon_days)
    j = k
    while remaining > 0:
        if j >= len(cal.horizon_lengths):
            raise ValueError(
                f"label.horizon_days {horizon_days} runs more than a year past end_date"
            )
        length = float(cal.horizon_lengths[j])
        total += survive * p_month * min(remaining, length) / length
        survive *= 1.0 - p_month
        remaining -= length
        j += 1
    return total
