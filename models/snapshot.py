"""Snapshot tables (one row per customer and a churn column): type inference and the model.

Inference (`infer_schema`) looks at the values only, never at the label: numbers stored as text
(blanks, currency signs, thousands separators), booleans in any spelling (Yes/No, True/False,
Y/N, 1/0, with blanks), dates (turned into "days before the latest date of that column"),
identifiers (unique per row: an explicit `--id`, a name like `customerID`, a row number, free
text) and constant or empty columns (dropped, each with its reason). Categorical levels are
fixed later, inside each training fold, by `models.model.fit_feature_spec` (rare levels folded
into one, so hundreds of levels cannot be memorised) and LightGBM's `min_data_per_group` /
`cat_smooth` guards.

The model (`fit_snapshot_model`), fitted on training rows only: the leakage guard; LightGBM
candidates (small to large trees) compared by inner K-fold out-of-fold AUC with early stopping
on each inner validation fold; the chosen one refitted on all training rows for the inner folds'
mean best iteration (x `refit_rounds_factor`, as it sees more rows); a logit-space blend with the
logistic-regression baseline whose weight is chosen on the same out-of-fold predictions
(weight 1 = LightGBM alone); the calibrator chosen and fitted on the out-of-fold blend. No
setting depends on the dataset: small noisy tables pick small trees and some logistic weight,
tables with sharp interactions pick larger trees.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from features.base.errors import BadInputError
from models.evaluation.metrics import binary_metrics
from models.model import FeatureSpec, fit_feature_spec, to_model_frame
from models.settings import DataParams, LeakageParams
from models.training.baselines import fit_logreg, predict_logreg
from models.training.calibration import Calibrator, choose_calibrator, logit
from models.training.leakage import screen
from models.training.split import LABEL, NON_FEATURE_COLUMNS, Split
from models.training.train import fit_booster, lgb_params

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


MIN_CLASS_ROWS = 10  # rows of the smaller class needed to cross-validate at all


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


# ------------------------------------------------------------------ logistic scorecard


@dataclass
class Scorecard:
    """The logistic-regression baseline as plain numbers: logit = bias + sum of contributions.

    Extracted from `models.training.baselines.fit_logreg`'s pipeline so that it is stored as JSON
    and gives exact per-feature contributions (centred on the training mean, like SHAP values).
    """

    numeric: dict[str, dict[str, float]]  # median, mean, scale, coef (+ indicator's)
    categorical: dict[str, dict[str, Any]]  # level -> coef, infrequent, default
    bias: float

    @classmethod
    def from_pipeline(cls, model: Pipeline, spec: FeatureSpec, train: pd.DataFrame) -> Scorecard:
        pre = model.named_steps["pre"]
        coef = model.named_steps["lr"].coef_[0]
        intercept = float(model.named_steps["lr"].intercept_[0])
        names = list(pre.get_feature_names_out())
        weights = dict(zip(names, coef, strict=True))
        numeric: dict[str, dict[str, float]] = {}
        if spec.numeric:
            imputer, scaler = (
                pre.named_transformers_["num"].steps[0][1],
                pre.named_transformers_["num"].steps[1][1],
            )
            ind_cols = (
                [spec.numeric[i] for i in imputer.indicator_.features_]
                if imputer.indicator_ is not None
                else []
            )
            scaled_names = list(spec.numeric) + [f"missingindicator_{c}" for c in ind_cols]
            for j, c in enumerate(spec.numeric):
                numeric[c] = {
                    "median": float(imputer.statistics_[j]),
                    "mean": float(scaler.mean_[j]),
                    "scale": float(scaler.scale_[j]),
                    "coef": float(weights[f"num__{c}"]),
                }
            for c in ind_cols:
                j = scaled_names.index(f"missingindicator_{c}")
                numeric[c].update(
                    {
                        "ind_mean": float(scaler.mean_[j]),
                        "ind_scale": float(scaler.scale_[j]),
                        "ind_coef": float(weights[f"num__missingindicator_{c}"]),
                    }
                )
        categorical: dict[str, dict[str, Any]] = {}
        if spec.categorical:
            enc = pre.named_transformers_["cat"]
            infrequent = getattr(enc, "infrequent_categories_", [None] * len(spec.categorical))
            for j, c in enumerate(spec.categorical):
                levels = {}
                rare = set(infrequent[j]) if infrequent[j] is not None else set()
                for level in enc.categories_[j]:
                    if level not in rare:
                        levels[str(level)] = float(weights[f"cat__{c}_{level}"])
                rare_coef = float(weights.get(f"cat__{c}_infrequent_sklearn", 0.0))
                categorical[c] = {
                    "levels": levels,
                    "rare": sorted(map(str, rare)),
                    "rare_coef": rare_coef,
                }
        card = cls(numeric, categorical, 0.0)
        raw = card._raw_terms(train)
        card.bias = intercept + float(raw.mean(axis=0).sum())
        for j, c in enumerate([*card.numeric, *card.categorical]):
            card._center(c, float(raw[:, j].mean()))
        return card

    def _center(self, column: str, mean: float) -> None:
        part = self.numeric.get(column) or self.categorical[column]
        part["center"] = mean

    def _raw_terms(self, frame: pd.DataFrame) -> np.ndarray:
        cols = []
        for c, p in self.numeric.items():
            x = pd.to_numeric(frame[c].astype("float64"), errors="coerce").to_numpy()
            term = p["coef"] * (np.where(np.isnan(x), p["median"], x) - p["mean"]) / p["scale"]
            if "ind_coef" in p:
                term = term + p["ind_coef"] * (np.isnan(x) - p["ind_mean"]) / p["ind_scale"]
            cols.append(term)
        for c, p in self.categorical.items():
            s = frame[c]
            values = s.astype("object").where(s.notna(), "(missing)").astype(str)
            default = p["rare_coef"] if p["rare"] else 0.0  # unseen → infrequent, else 0
            cols.append(values.map(p["levels"]).fillna(default).to_numpy(dtype=float))
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))

    def contributions(self, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
        """(n, len(features) + 1): centred contribution per feature, bias last."""
        raw = self._raw_terms(frame)
        order = [*self.numeric, *self.categorical]
        out = np.zeros((len(frame), len(features) + 1))
        for j, c in enumerate(order):
            part = self.numeric.get(c) or self.categorical[c]
            out[:, features.index(c)] = raw[:, j] - part.get("center", 0.0)
        out[:, -1] = self.bias
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "bias": self.bias}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scorecard:
        return cls(data["numeric"], data["categorical"], float(data["bias"]))


# ------------------------------------------------------------------ model


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class SnapshotModel:
    """Booster + logistic scorecard blended in logit space, then calibrated."""

    spec: FeatureSpec
    booster: lgb.Booster
    scorecard: Scorecard
    weight: float  # of LightGBM in the logit blend
    calibrator: Calibrator
    leakage: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    def model_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        return to_model_frame(features, self.spec)[self.booster.feature_name()]

    def logit(self, features: pd.DataFrame) -> np.ndarray:
        x = self.model_frame(features)
        z = self.weight * self.booster.predict(x, raw_score=True) if self.weight > 0 else 0.0
        if self.weight < 1:
            z = z + (1 - self.weight) * self.linear_logit(features)
        return np.asarray(z, dtype=float) + np.zeros(len(x))

    def linear_logit(self, features: pd.DataFrame) -> np.ndarray:
        """The logistic-regression part's log-odds."""
        return self.scorecard.contributions(features, self.booster.feature_name()).sum(1)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability."""
        return self.calibrator.predict(_sigmoid(self.logit(features)))

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """(n, k+1) log-odds contributions of the blend (exact TreeSHAP and linear), bias last."""
        from models.explain import treeshap

        x = self.model_frame(features)
        out = np.zeros((len(x), x.shape[1] + 1))
        if self.weight > 0:
            out += self.weight * treeshap.contributions(self.booster, x)
        if self.weight < 1:
            out += (1 - self.weight) * self.scorecard.contributions(features, list(x.columns))
        return out

    def save(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        booster = directory / "booster.txt"
        meta = directory / "snapshot_model.json"
        self.booster.save_model(str(booster))
        meta.write_text(
            json.dumps(
                {
                    "spec": self.spec.to_dict(),
                    "scorecard": self.scorecard.to_dict(),
                    "weight": self.weight,
                    "calibrator": self.calibrator.to_dict(),
                    "leakage": self.leakage,
                    "info": self.info,
                },
                indent=2,
                sort_keys=True,
                default=str,
            ),
            "utf-8",
        )
        return {"booster": booster, "meta": meta}

    @classmethod
    def load(cls, booster: Path | str, meta: Path | str) -> SnapshotModel:
        data = json.loads(Path(meta).read_text(encoding="utf-8"))
        return cls(
            spec=FeatureSpec.from_dict(data["spec"]),
            booster=lgb.Booster(model_file=str(booster)),
            scorecard=Scorecard.from_dict(data["scorecard"]),
            weight=float(data["weight"]),
            calibrator=Calibrator.from_dict(data["calibrator"]),
            leakage=data.get("leakage", {}),
            info=data.get("info", {}),
        )


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def _inner_oof(
    x: pd.DataFrame,
    frame: pd.DataFrame,
    y: np.ndarray,
    spec: FeatureSpec,
    s: DataParams,
    train_params: Any,
) -> tuple[dict[str, np.ndarray], dict[str, int], np.ndarray]:
    """Out-of-fold raw scores of every LightGBM candidate and the logistic model."""
    k = max(2, min(s.inner_folds, int(y.sum()), int(len(y) - y.sum())))
    folds = list(StratifiedKFold(k, shuffle=True, random_state=s.seed + 1).split(x, y))
    oof = {name: np.zeros(len(y)) for name in s.candidates}
    rounds: dict[str, int] = {}
    for name, overrides in s.candidates.items():
        params = lgb_params(train_params, {**overrides, "num_threads": s.num_threads})
        best = []
        for a, b in folds:
            booster = fit_booster(
                x.iloc[a],
                y[a],
                x.iloc[b],
                y[b],
                params,
                s.num_boost_round,
                s.early_stopping_rounds,
            )
            oof[name][b] = booster.predict(
                x.iloc[b], num_iteration=booster.best_iteration, raw_score=True
            )
            best.append(max(1, booster.best_iteration))
        rounds[name] = max(1, math.ceil(float(np.mean(best)) * s.refit_rounds_factor))
    lr_oof = np.zeros(len(y))
    for a, b in folds:
        part = Split(frame.iloc[a], frame.iloc[:0], frame.iloc[:0], (), (), ())
        model = fit_logreg(part, spec, s.logreg_c, s.logreg_max_levels)
        lr_oof[b] = logit(predict_logreg(model, frame.iloc[b], spec))
    return oof, rounds, lr_oof


def fit_snapshot_model(
    features: pd.DataFrame,
    y: np.ndarray,
    settings: DataParams,
    train_params: Any,
    leakage: LeakageParams,
    source: str = "training rows",
) -> SnapshotModel:
    """Fit everything on these training rows only (guard, levels, model choice, calibration)."""
    y = np.asarray(y, dtype=int)
    guard = screen(features, y, list(features.columns), leakage, source)
    kept = [c for c in features.columns if c not in guard.excluded]
    if not kept:
        raise SnapshotDataError(
            f"{source}: every feature was flagged by the leakage guard "
            f"({[e.feature for e in guard.suspects]}); check the target or use --allow-leaky."
        )
    frame = features[kept].assign(**{LABEL: y})
    spec = fit_feature_spec(frame, (), settings.min_level_count, source)
    x = to_model_frame(frame, spec)
    oof, rounds, lr_oof = _inner_oof(x, frame, y, spec, settings, train_params)
    aucs = {name: _auc(y, p) for name, p in oof.items()}
    chosen = max(settings.candidates, key=lambda n: aucs[n])
    blend = {w: _auc(y, w * oof[chosen] + (1 - w) * lr_oof) for w in settings.blend_weights}
    weight = max(settings.blend_weights, key=lambda w: blend[w])
    oof_p = _sigmoid(weight * oof[chosen] + (1 - weight) * lr_oof)
    calibrator, losses = choose_calibrator(
        oof_p, y, settings.calibration_methods, settings.calibration_folds, settings.seed
    )
    params = lgb_params(
        train_params, {**settings.candidates[chosen], "num_threads": settings.num_threads}
    )
    booster = lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=rounds[chosen])
    logreg = fit_logreg(
        Split(frame, frame.iloc[:0], frame.iloc[:0], (), (), ()),
        spec,
        settings.logreg_c,
        settings.logreg_max_levels,
    )
    scorecard = Scorecard.from_pipeline(logreg, spec, frame)
    info = {
        "candidate": chosen,
        "inner_oof_auc": {
            **{f"lgb_{k}": round(v, 5) for k, v in aucs.items()},
            "logreg": round(_auc(y, lr_oof), 5),
        },
        "blend_weight_lgb": weight,
        "blend_oof_auc": round(blend[weight], 5),
        "num_boost_round": rounds[chosen],
        "lgb_params": params,
        "calibration_method": calibrator.method,
        "calibration_cv_log_loss": losses,
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }
    log.info(
        "%s: LightGBM %r (%d rounds), LightGBM weight %.1f in the blend with logistic regression"
        " (inner out-of-fold AUC %.4f), calibration %s",
        source,
        chosen,
        rounds[chosen],
        weight,
        blend[weight],
        calibrator.method,
    )
    return SnapshotModel(spec, booster, scorecard, weight, calibrator, guard.to_dict(), info)


def evaluate_folds(
    features: pd.DataFrame,
    y: np.ndarray,
    settings: DataParams,
    train_params: Any,
    leakage: LeakageParams,
    cv: int | None,
) -> dict[str, Any]:
    """K-fold stratified CV (or one stratified holdout): fit on each training part, score the rest.

    Returns per-fold metrics of the model and of its two parts alone (LightGBM, logistic
    regression), out-of-fold probabilities, and each fold's leakage suspects.
    """
    y = np.asarray(y, dtype=int)
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < MIN_CLASS_ROWS:
        raise SnapshotDataError(
            f"{len(y)} labelled rows with {int(y.sum())} churned and {int(len(y) - y.sum())} not:"
            f" at least {MIN_CLASS_ROWS} rows of each class are needed to train and evaluate."
        )
    if cv is not None:
        if cv < 2 or cv > minority:
            raise SnapshotDataError(
                f"--cv {cv}: needs 2 <= K <= {minority} (rows of the smaller class); "
                "choose a smaller K."
            )
        splits = list(
            StratifiedKFold(cv, shuffle=True, random_state=settings.seed).split(features, y)
        )
    else:
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(y))
        tr, te = train_test_split(
            idx, test_size=settings.holdout_fraction, stratify=y, random_state=settings.seed
        )
        splits = [(np.sort(tr), np.sort(te))]
    oof = np.full(len(y), np.nan)
    folds = []
    for i, (tr, te) in enumerate(splits, 1):
        source = f"fold {i}/{len(splits)} training rows"
        model = fit_snapshot_model(
            features.iloc[tr], y[tr], settings, train_params, leakage, source
        )
        test = features.iloc[te]
        p = model.predict(test)
        oof[te] = p
        x = model.model_frame(test)
        parts = {
            "lightgbm": _auc(y[te], model.booster.predict(x, raw_score=True)),
            "logreg": _auc(y[te], model.linear_logit(test)),
        }
        metrics = binary_metrics(y[te], p)
        folds.append(
            {
                "fold": i,
                "train_rows": int(len(tr)),
                "test_rows": int(len(te)),
                "metrics": metrics,
                "part_roc_auc": parts,
                "candidate": model.info["candidate"],
                "blend_weight_lgb": model.weight,
                "calibration_method": model.calibrator.method,
                "leakage_excluded": model.leakage.get("excluded", []),
                "leakage_suspects": model.leakage.get("suspects", []),
            }
        )
        log.info(
            "fold %d/%d: roc_auc %.4f (LightGBM alone %.4f, logistic regression %.4f), pr_auc %.4f",
            i,
            len(splits),
            metrics["roc_auc"],
            parts["lightgbm"],
            parts["logreg"],
            metrics["pr_auc"],
        )
    return {"folds": folds, "oof": oof, "splits": splits}


class SnapshotPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: the raw table (source columns) in, calibrated churn probability out.

    Schema, booster, scorecard and calibrator are JSON/text artifacts; nothing learned is
    pickled (the wrapper itself holds no state until `load_context`).
    """

    def load_context(self, context: Any) -> None:
        data = json.loads(Path(context.artifacts["schema"]).read_text(encoding="utf-8"))
        self.schema = SnapshotSchema.from_dict(data)
        self.model = SnapshotModel.load(context.artifacts["booster"], context.artifacts["meta"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ANN201
        features = self.schema.transform(model_input)
        return pd.Series(
            self.model.predict(features), index=model_input.index, name="churn_probability"
        )
