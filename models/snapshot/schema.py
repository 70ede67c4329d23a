"""Snapshot tables' type inference: per-column parse rules from the values, and the target."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.base.errors import BadInputError
from models.settings import DataParams
from models.training.split import NON_FEATURE_COLUMNS

log = logging.getLogger(__name__)

NULL_TOKENS = frozenset(
    {"", "na", "n/a", "nan", "null", "none", "nil", "?", "-", "--", "#n/a", "missing", "<na>"}
)
TRUE_TOKENS = frozenset({"yes", "y", "true", "t", "1", "1.0"})
FALSE_TOKENS = frozenset({"no", "n", "false", "f", "0", "0.0"})
ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key)$|^[a-z]+I[dD]$|^(id|index|unnamed: ?0)$", re.I)
ROW_NUMBER_NAME = re.compile(r"^(row_?(number|num|no|id)?|index|unnamed: ?\d+)$", re.I)
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_CURRENCY = re.compile(r"^[+-]?[$€£¥]|[$€£¥%]$")
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{4}-\d{2}")


class SnapshotDataError(BadInputError, ValueError):
    """The table cannot be used as given (the message names the column, values and the fix)."""


@dataclass
class ColumnPlan:
    """What inference decided for one source column."""

    column: str
    kind: str  # numeric | boolean | categorical | date | dropped
    feature: str | None = None  # model feature name (safe for LightGBM), None when dropped
    reason: str = ""
    true_tokens: list[str] = field(default_factory=list)  # boolean: values read as 1
    reference: str | None = None  # date: the latest date in the table (ISO)
    unparsed: int = 0  # non-missing values that could not be read (become missing)
    example_unparsed: str | None = None


@dataclass
class SnapshotSchema:
    """Per-column parse rules, decided from the whole table's values (never from the label)."""

    target: str
    positive: str
    id_column: str | None
    plans: list[ColumnPlan]

    @property
    def features(self) -> list[str]:
        return [p.feature for p in self.plans if p.feature is not None]

    @property
    def dropped(self) -> dict[str, str]:
        return {p.column: p.reason for p in self.plans if p.kind == "dropped"}

    @property
    def column_of(self) -> dict[str, str]:
        """The source column of each model feature."""
        return {p.feature: p.column for p in self.plans if p.feature}

    def describe(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "positive": self.positive,
            "id_column": self.id_column,
            "columns": [asdict(p) for p in self.plans],
        }

    def to_dict(self) -> dict[str, Any]:
        return self.describe()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotSchema:
        return cls(
            target=data["target"],
            positive=data["positive"],
            id_column=data.get("id_column"),
            plans=[ColumnPlan(**p) for p in data["columns"]],
        )

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Feature frame: numerics/booleans/date ages as float64, categoricals as text."""
        missing = [p.column for p in self.plans if p.feature and p.column not in frame.columns]
        if missing:
            raise SnapshotDataError(
                f"columns {missing} are missing from the table; score a table with the same "
                "columns as the one the model was fitted on."
            )
        out: dict[str, pd.Series] = {}
        for p in self.plans:
            if p.feature is None:
                continue
            s = frame[p.column]
            if p.kind == "numeric":
                out[p.feature] = parse_numbers(s)[0]
            elif p.kind == "boolean":
                out[p.feature] = parse_booleans(s, p.true_tokens)
            elif p.kind == "date":
                dates = parse_dates(s)[0]
                ref = pd.Timestamp(p.reference)
                out[p.feature] = ((ref - dates).dt.total_seconds() / 86400.0).astype("float64")
            else:
                out[p.feature] = normalise_text(s)
        return pd.DataFrame(out, index=frame.index)


# ------------------------------------------------------------------ parsing


def normalise_text(series: pd.Series) -> pd.Series:
    """Values as stripped text (object dtype, None when missing); blanks and null spellings
    ('NA', 'null', '?') become missing."""

    def one(v: Any) -> str | None:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return None
        text = _scalar_text(v).strip()
        return None if text.lower() in NULL_TOKENS else text

    return pd.Series([one(v) for v in series.tolist()], index=series.index, dtype="object")


def _scalar_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def parse_numbers(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Float values and a mask of non-missing text that was not a number."""
    if pd.api.types.is_bool_dtype(series.dtype):
        values = series.astype("float64")
        return values, pd.Series(False, index=series.index)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = pd.to_numeric(series, errors="coerce").astype("float64")
        return values, pd.Series(False, index=series.index)
    text = normalise_text(series)

    def clean(v: Any) -> str | None:
        if not isinstance(v, str):
            return None
        v = v.replace(" ", "")
        if _THOUSANDS.match(v):
            v = v.replace(",", "")
        return _CURRENCY.sub("", v)

    values = pd.to_numeric(text.map(clean), errors="coerce").astype("float64")
    return values, text.notna() & values.isna()


def parse_booleans(series: pd.Series, true_tokens: list[str] | None = None) -> pd.Series:
    """1.0 / 0.0 / NaN from any boolean spelling."""
    trues = set(true_tokens or TRUE_TOKENS)
    values = [
        (1.0 if v.lower() in trues else 0.0) if isinstance(v, str) else np.nan
        for v in normalise_text(series).tolist()
    ]
    return pd.Series(values, index=series.index, dtype="float64")


def parse_dates(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """UTC timestamps (naive inputs read as UTC) and a mask of unparseable non-missing text."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        dates = pd.to_datetime(series, utc=True)
        return dates, pd.Series(False, index=series.index)
    text = normalise_text(series)
    dates = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if dates.notna().sum() < text.notna().sum():
        mixed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        dates = dates.where(dates.notna(), mixed)
    return dates, text.notna() & dates.isna()


# ------------------------------------------------------------------ inference


def safe_feature_name(name: str, taken: set[str]) -> str:
    """A LightGBM- and report-safe column name (no JSON specials), unique among `taken`."""
    base = re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "column"
    if base in NON_FEATURE_COLUMNS:
        base = f"{base}_value"
    out, i = base, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def _boolean_tokens(values: pd.Series) -> list[str] | None:
    """The true spellings if every distinct value is a boolean spelling, else None."""
    distinct = {v.lower() for v in values.tolist() if isinstance(v, str)}
    if not distinct or not distinct <= (TRUE_TOKENS | FALSE_TOKENS):
        return None
    if not (distinct & TRUE_TOKENS and distinct & FALSE_TOKENS):
        return None  # one spelling only: "Yes" + blanks is a presence flag, kept as a category
    return sorted(distinct & TRUE_TOKENS)


def _is_row_number(values: pd.Series) -> bool:
    v = values.dropna().to_numpy(dtype=float)
    if len(v) < 3 or not np.all(np.mod(v, 1) == 0):
        return False
    diffs = np.diff(np.sort(v))
    return bool(np.all(diffs == 1))


def plan_column(
    name: str, series: pd.Series, settings: DataParams, is_id: bool = False
) -> ColumnPlan:
    """Decide one column's type from its values (the caller assigns the feature name)."""
    n = len(series)
    text = normalise_text(series)
    filled = int(text.notna().sum())
    if is_id:
        return ColumnPlan(name, "dropped", reason="id column (--id): identifies rows, not risk")
    if filled == 0:
        return ColumnPlan(name, "dropped", reason="empty: every value is missing")
    distinct = text.dropna().nunique()
    if distinct == 1 and filled == n:
        return ColumnPlan(name, "dropped", reason=f"constant: every row is {text.iloc[0]!r}")
    unique_per_row = distinct >= settings.id_unique_share * filled and filled >= 3
    numeric_dtype = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )
    if unique_per_row and ID_NAME.search(str(name)):
        return ColumnPlan(
            name, "dropped", reason=f"identifier: named like an id, {distinct} distinct values"
        )
    tokens = _boolean_tokens(text)
    if tokens is not None:
        spelled = "1/0" if set(tokens) <= {"1", "1.0"} else f"{'/'.join(tokens)} = 1"
        return ColumnPlan(name, "boolean", reason=f"yes/no flag ({spelled})", true_tokens=tokens)
    values, bad = parse_numbers(series)
    parsed = int(values.notna().sum())
    if numeric_dtype or (filled and parsed >= settings.numeric_min_share * filled):
        if unique_per_row and (ROW_NUMBER_NAME.search(str(name)) or _is_row_number(values)):
            return ColumnPlan(name, "dropped", reason="row number: consecutive integers")
        plan = ColumnPlan(name, "numeric", reason="number")
        if not numeric_dtype:
            plan.reason = "number stored as text"
            plan.unparsed = int(bad.sum())
            if plan.unparsed:
                plan.example_unparsed = str(text[bad].iloc[0])
                plan.reason += f" ({plan.unparsed} unreadable value(s) read as missing)"
        return plan
    looks_like_date = pd.api.types.is_datetime64_any_dtype(series.dtype) or (
        np.mean([bool(_DATE_LIKE.search(v)) for v in text.dropna().head(200)] or [0]) >= 0.9
    )
    if looks_like_date:
        dates, bad_dates = parse_dates(series)
        if dates.notna().sum() >= settings.date_min_share * filled:
            reference = dates.max()
            plan = ColumnPlan(
                name,
                "date",
                reason=f"date: days before the latest {name} ({reference.date().isoformat()})",
                reference=reference.isoformat(),
                unparsed=int(bad_dates.sum()),
            )
            if plan.unparsed:
                plan.example_unparsed = str(text[bad_dates].iloc[0])
            return plan
    if unique_per_row:
        return ColumnPlan(
            name, "dropped", reason=f"identifier-like: {distinct} distinct values in {filled} rows"
        )
    if (
        distinct > settings.free_text_min_levels
        and distinct > settings.free_text_unique_share * filled
    ):
        return ColumnPlan(
            name,
            "dropped",
            reason=f"free text or identifier-like: {distinct} distinct values in {filled} rows",
        )
    return ColumnPlan(name, "categorical", reason=f"category ({distinct} levels)")


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    positive: str,
    id_column: str | None = None,
    drop: tuple[str, ...] = (),
    settings: DataParams | None = None,
    source: str = "table",
) -> SnapshotSchema:
    """Parse rules for every column except the target, from the values only."""
    s = settings or DataParams()
    for name, what in ((target, "--target"), (id_column, "--id"), *((d, "--drop") for d in drop)):
        if name is not None and name not in frame.columns:
            raise SnapshotDataError(
                f"{source}: {what} column {name!r} not found; columns are {list(frame.columns)}"
            )
    plans: list[ColumnPlan] = []
    taken: set[str] = set()
    for name in frame.columns:
        if name == target:
            continue
        if name in drop:
            plan = ColumnPlan(name, "dropped", reason="dropped on request (--drop)")
        else:
            plan = plan_column(name, frame[name], s, is_id=name == id_column)
        if plan.kind != "dropped":
            plan.feature = safe_feature_name(name, taken)
        plans.append(plan)
    schema = SnapshotSchema(target, str(positive), id_column, plans)
    for p in plans:
        log.info("%s: column %r → %s (%s)", source, p.column, p.kind, p.reason)
    if not schema.features:
        raise SnapshotDataError(
            f"{source}: no usable feature column: {schema.dropped}. The table needs at least one "
            "column besides the target and identifiers."
        )
    return schema


def encode_target(
    frame: pd.DataFrame, target: str, positive: str, source: str = "table"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Label 1.0/0.0, NaN where the target is missing; errors for a bad target/positive value."""
    if target not in frame.columns:
        raise SnapshotDataError(
            f"{source}: target column {target!r} not found; columns are {list(frame.columns)}. "
            "Pass the churn column with --target."
        )
    text = pd.Series(
        [v.lower() if isinstance(v, str) else None for v in normalise_text(frame[target])],
        index=frame.index,
        dtype="object",
    )
    wanted = _scalar_text(positive).strip().lower()
    try:  # "1" matches 1.0 and "1.0"
        number = float(wanted)
        if number.is_integer():
            wanted = str(int(number))
    except ValueError:
        pass
    counts = normalise_text(frame[target]).value_counts()
    if wanted not in {v for v in text if isinstance(v, str)}:
        shown = ", ".join(f"{v!r} ({c})" for v, c in counts.head(10).items())
        raise SnapshotDataError(
            f"{source}: positive value {positive!r} not found in target column {target!r}; its "
            f"values are {shown}. Pass one of them with --positive (compared as text, any case)."
        )
    y = np.array([float(v == wanted) if isinstance(v, str) else np.nan for v in text], dtype=float)
    known = ~np.isnan(y)
    if np.nanmin(y) == np.nanmax(y):
        raise SnapshotDataError(
            f"{source}: every labelled row of {target!r} is {positive!r}: one class only, "
            "nothing to learn. Check --target and --positive."
        )
    info = {
        "rows": int(len(y)),
        "labelled_rows": int(known.sum()),
        "unusable_rows": {"target missing": int((~known).sum())},
        "positives": int(np.nansum(y)),
        "positive_rate": float(np.nanmean(y)),
        "target_values": {str(k): int(v) for k, v in counts.head(20).items()},
    }
    if (~known).any():
        log.warning(
            "%s: %d row(s) have no %r value: not used for training or evaluation, still scored",
            source,
            int((~known).sum()),
            target,
        )
    return y, info
