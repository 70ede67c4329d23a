"""Batch scoring: which model, its calibrated probabilities, risk tiers and per-customer reasons.

Reason codes are the customer's exact TreeSHAP contributions (log-odds, `models.explain.treeshap`):
reason_1 is the feature that raises this customer's risk the most, reason_2 the next, and so on.
Each reason carries the feature's value, its contribution and one readable sentence built from the
feature catalog's description.

The columns of the scores file a downstream reader may rely on are declared in
`models.scores_contract` (SCORE_COLUMNS), which tests/models/test_scoring.py checks against what
`score_frame` and `population_columns` write.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ibis
import numpy as np
import pandas as pd

from features.base.errors import BadInputError
from features.catalog import GROUP_CHURN_TYPE, FeatureInfo
from models.explain.treeshap import as_matrix, contributions
from models.model import OTHER, ChurnModel, FeatureSpec, LoadedModel
from models.settings import ValueParams
from models.value import VALUE_COLUMNS, add_value_columns, without_value

log = logging.getLogger(__name__)

NO_CHURN_TYPE = "none"  # no feature group adds risk for this customer


def risk_tier(probability: np.ndarray, tiers: Mapping[str, float], default: str) -> np.ndarray:
    """The first tier (highest threshold first) whose threshold the probability reaches."""
    out = np.full(len(probability), default, dtype=object)
    for name, threshold in sorted(tiers.items(), key=lambda kv: kv[1]):
        out[probability >= threshold] = name
    return out


TOP_TIER_WARN_SHARE = 0.5  # more of the scored customers in the top risk tier: warn


def warn_tiers_not_selective(
    tiers: pd.Series, probability: np.ndarray, thresholds: Mapping[str, float]
) -> float:
    """Warn when the top risk tier holds more than half of the scored customers (the tiers are
    fixed probability thresholds; on a business whose base churn rate is above them, e.g. a
    retailer where most customers do not buy again within the horizon, every customer is
    "critical" and the tier routes nothing); the top tier's share."""
    if not thresholds or len(tiers) == 0:
        return 0.0
    top = max(thresholds, key=lambda k: thresholds[k])
    share = float((tiers == top).mean())
    if share > TOP_TIER_WARN_SHARE:
        q = np.quantile(probability, [0.5, 0.8, 0.95])
        log_tiers_not_selective(share, top, thresholds[top], float(np.mean(probability)), q)
    return share


def log_tiers_not_selective(
    share: float, top: str, threshold: float, mean: float, quantiles: Sequence[float]
) -> None:
    """The warning of `warn_tiers_not_selective` (also written by the Spark scoring job)."""
    log.warning(
        "risk tiers: %.0f%% of the scored customers are %r (churn probability >= %s; mean "
        "probability %.3f): the tiers do not single anyone out. Set score.risk_tiers for "
        "this business's base rate, e.g. the 50/80/95th percentiles of today's scores: "
        "%.3f / %.3f / %.3f",
        100 * share,
        top,
        threshold,
        mean,
        *quantiles,
    )


def risk_decile(probability: np.ndarray) -> np.ndarray:
    """1 = the 10% highest probabilities among all scored customers, 10 = the lowest 10%.

    Ties get the same decile (ranks are taken with the minimum method).
    """
    n = len(probability)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    ranks = pd.Series(-probability).rank(method="min").to_numpy()  # 1 = highest
    return np.minimum(10, np.ceil(ranks * 10 / n)).astype(np.int16)


def top_reasons(contrib: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest contributions per row, largest first (bias column excluded).

    Ties are broken by feature order, so the result is deterministic.
    """
    values = contrib[:, :-1] if contrib.shape[1] > 1 else contrib
    k = min(k, values.shape[1])
    if k == 0 or not np.isfinite(values).all():  # the masking below needs finite values
        # stable sort of the negated values: equal contributions keep feature order
        return np.argsort(-values, axis=1, kind="stable")[:, :k]
    # The same order as that stable sort, in k passes instead of sorting every feature: argmax
    # returns the first largest (so ties keep feature order), then that one is masked out.
    rest = values.copy()
    rows = np.arange(len(rest))
    out = np.empty((len(rest), k), dtype=np.intp)
    for i in range(k):
        out[:, i] = np.argmax(rest, axis=1)
        rest[rows, out[:, i]] = -np.inf
    return out


def churn_types(
    contrib: np.ndarray, features: Sequence[str], groups: Mapping[str, str]
) -> np.ndarray:
    """Per row, the churn type whose feature groups add the most risk (sum of contributions).

    A customer whose every churn type lowers risk gets NO_CHURN_TYPE.
    """
    types = sorted({GROUP_CHURN_TYPE.get(groups.get(f, ""), "other") for f in features})
    sums = np.zeros((contrib.shape[0], len(types)))
    for j, ctype in enumerate(types):
        cols = [
            i
            for i, f in enumerate(features)
            if GROUP_CHURN_TYPE.get(groups.get(f, ""), "other") == ctype
        ]
        sums[:, j] = contrib[:, cols].sum(axis=1)
    best = sums.argmax(axis=1)
    out = np.asarray(types, dtype=object)[best]
    out[sums.max(axis=1) <= 0] = NO_CHURN_TYPE
    return out


_REWRITE = (
    (re.compile(r"^customer attribute '([^']+)'.*$"), r"\1"),  # profile/contract columns
    (re.compile(r"\s*\([^)]*\)"), ""),  # parenthetical notes: "(1 = the day before)"
    (re.compile(r";.*$"), ""),  # "; null if never"
    (re.compile(r"\s+(before|to) the cutoff( day)?"), ""),
    (re.compile(r"\bin the (\d+) days\b"), r"in the last \1 days"),
    (re.compile(r"^days from the (last .*?)(?: event)?'s (?:opening )?day$"), r"days since the \1"),
    (re.compile(r"^days from the signup day$"), "days since signup"),
    (re.compile(r" and not closed before it$"), " and still open"),
)


def feature_label(info: FeatureInfo | None, name: str) -> str:
    """A short readable label for a feature: its catalog description without the fine print."""
    text = info.description if info is not None and info.description else name
    for pattern, repl in _REWRITE:
        text = pattern.sub(repl, text)
    text = text.strip().replace("_", "-" if " " in text else " ")
    return text[:1].upper() + text[1:]


def format_value(value: Any, unit: str = "") -> str:
    """A feature value as people read it: 3 not 3.0, 1,234 not 1.23e+03, 12.50 for money,
    '45 days', 'none recorded' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "none recorded"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if not isinstance(value, int | np.integer | float | np.floating):
        return str(value)
    v = float(value)
    if unit == "money":
        return f"{v:,.2f}"
    if v.is_integer() and abs(v) < 1e15:
        text = f"{int(v):,}"
    elif abs(v) >= 100:
        text = f"{v:,.0f}"
    else:
        text = f"{v:.3g}"
    if unit in ("days", "minutes"):
        one = unit[:-1] if text == "1" else unit
        return f"{text} {one}"
    return text


# Units from the feature's name (the catalog's naming conventions, features/families/).
_MONEY = re.compile(r"(fee|amount|spend|revenue|mrr|price|dollars?)(_|$)")
_DAYS = re.compile(r"(^days_|_days$|^tenure_days|_days_)")


def value_unit(name: str) -> str:
    """'money', 'days', 'minutes' or '' for a feature column name."""
    if "_pct" in name or "_rate" in name or name.endswith("_share"):
        return ""
    if "minutes" in name:
        return "minutes"
    if _DAYS.search(name):
        return "days"
    if _MONEY.search(name):
        return "money"
    return ""


# A reason must push the churn risk up by at least this much (log-odds: +0.05 is about 5 % more
# odds of churning); weaker pushes are noise to the reader. None qualifying: NO_STRONG_REASON.
REASON_MIN_CONTRIBUTION = 0.05
NO_STRONG_REASON = "No strong risk factor"


def reason_sentence(label: str, value: str, contribution: float) -> str:
    """One line an account manager can read: 'Lowest CSAT at after-sales was 3 (raises risk)'."""
    effect = "no effect"
    if contribution != 0:
        effect = "raises risk" if contribution > 0 else "lowers risk"
    if value == "none recorded":
        return f"{label}: none recorded ({effect})"
    return f"{label} was {value} ({effect})"


def _reason_texts(
    values: np.ndarray, contributions: np.ndarray, label: str, unit: str
) -> tuple[list[str], list[str]]:
    """Formatted values and reason sentences of one feature's rows: each distinct (value,
    effect) formatted once (a feature holds few distinct values: counts, days, levels)."""
    formatted: list[str] = []
    sentences: list[str] = []
    cache: dict[tuple[type, Any, float], tuple[str, str]] = {}
    for v, c in zip(values, contributions, strict=True):
        key = (type(v), v, float(np.sign(c)))  # the type keeps True, 1 and 1.0 apart
        found = cache.get(key)
        if found is None:  # NaN != NaN: missing values are formatted each time (cheap)
            text = format_value(v, unit)
            found = cache[key] = (text, reason_sentence(label, text, c))
        formatted.append(found[0])
        sentences.append(found[1])
    return formatted, sentences


def reason_columns(
    frame: pd.DataFrame,
    contrib: np.ndarray,
    features: Sequence[str],
    catalog: Mapping[str, FeatureInfo],
    k: int,
    min_contribution: float = REASON_MIN_CONTRIBUTION,
) -> dict[str, np.ndarray]:
    """reason_i, reason_i_value, reason_i_contribution, reason_i_text for i = 1..k.

    Only what raises the customer's risk by at least `min_contribution` is a reason (largest
    first); the slots left are empty, and a customer with none gets reason_1_text
    NO_STRONG_REASON. Values carry their unit (money with two decimals, days, minutes).
    """
    top = top_reasons(contrib, k)
    names = np.asarray(features, dtype=object)
    rows = np.arange(len(frame))
    out: dict[str, np.ndarray] = {}
    for i in range(top.shape[1]):
        idx = top[:, i]
        contribution = contrib[rows, idx]
        strong = contribution >= min_contribution
        feat = np.where(strong, names[idx], None).astype(object)
        values = np.full(len(frame), None, dtype=object)
        texts = np.full(len(frame), None, dtype=object)
        for j in np.unique(idx[strong]):
            where = np.flatnonzero(strong & (idx == j))
            name = names[j]
            values[where], texts[where] = _reason_texts(
                frame[name].iloc[where].to_numpy(dtype=object),
                contribution[where],
                feature_label(catalog.get(name), name),
                value_unit(name),
            )
        if i == 0:
            texts[~strong] = NO_STRONG_REASON
        out[f"reason_{i + 1}"] = feat
        out[f"reason_{i + 1}_value"] = values
        out[f"reason_{i + 1}_contribution"] = np.where(strong, contribution, np.nan)
        out[f"reason_{i + 1}_text"] = texts
    return out


def check_signature(columns: Sequence[str], model: ChurnModel, source: str) -> None:
    """The scoring table must carry every feature the model was trained on."""
    missing = [c for c in model.spec.features if c not in set(columns)]
    if missing:
        raise BadInputError(
            f"{source}: the scoring table lacks {len(missing)} feature column(s) the model was "
            f"trained on, e.g. {missing[:5]}. Score with the same featurize code and params as "
            "training (re-run `dvc repro`), or pass the model trained on these features (--model)."
        )


UNSEEN_EXAMPLES = 5  # example values per column in score.json and the messages


class UnseenValuesError(BadInputError, ValueError):
    """Too large a share of the scoring data carries values the model never saw in training."""


def seen_levels(spec: FeatureSpec, column: str) -> set[str]:
    """The levels of a categorical model column in the training rows (kept and folded rare)."""
    return (set(spec.categorical[column]) - {OTHER}) | set(spec.rare_levels.get(column, ()))


def unseen_level_counts(frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, pd.Series]:
    """Per categorical model column in `frame`: rows per level never seen in training.

    The model reads such a level as missing (`to_model_frame`); missing values are not counted.
    """
    out: dict[str, pd.Series] = {}
    for col in (c for c in spec.categorical if c in frame.columns):
        values = frame[col].dropna().astype(str)
        out[col] = values[~values.isin(seen_levels(spec, col))].value_counts()
    return out


def add_counts(total: dict[str, pd.Series], more: Mapping[str, pd.Series]) -> dict[str, pd.Series]:
    """Per-column value counts summed over chunks (a new mapping)."""
    out = dict(total)
    for col, counts in more.items():
        out[col] = counts if col not in out else out[col].add(counts, fill_value=0)
    return out


def unseen_window_counts(
    table: ibis.Table,
    column: str,
    ts: str,
    train_end: pd.Timestamp,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> tuple[pd.Series, int] | None:
    """Rows in [start, end) per `column` value that never occurs before `train_end` (the data the
    model was trained on), and all rows in the window; None when nothing precedes `train_end`
    (the history is not in the table, so "never seen" cannot be told)."""
    seen_rows = table.filter(table[ts] < train_end.to_pydatetime())
    seen = set(seen_rows.select(v=table[column].cast("string")).distinct().execute()["v"].dropna())
    if not seen:
        return None
    window = table.filter(
        (table[ts] >= start.to_pydatetime()) & (table[ts] < end.to_pydatetime())
    ).select(v=table[column].cast("string"))
    counts = window.group_by("v").aggregate(n=window.count()).execute()
    counts = counts.dropna(subset=["v"]).set_index("v")["n"].astype("int64")
    return counts[~counts.index.isin(seen)].sort_values(ascending=False), int(counts.sum())


def unseen_summary(
    counts: Mapping[str, pd.Series], totals: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """{column: {count, share, examples}} for the columns with values never seen in training:
    `share` of `totals[column]` rows, the most frequent values first as examples."""
    out: dict[str, dict[str, Any]] = {}
    for col, per_value in counts.items():
        n = int(per_value.sum())
        if n == 0:
            continue
        per_value = per_value.sort_values(ascending=False, kind="stable")
        out[col] = {
            "count": n,
            "rows": int(totals[col]),
            "share": n / totals[col] if totals[col] else 0.0,
            "examples": [str(v) for v in per_value.index[:UNSEEN_EXAMPLES]],
        }
    return out


def check_unseen(unseen: Mapping[str, Mapping[str, Any]], max_share: float, source: str) -> None:
    """Warn about every column with values never seen in training; raise UnseenValuesError naming
    the columns whose share is above `max_share`."""
    for col, u in unseen.items():
        log.warning(
            "%s: %s: %d of %d (%.1f%%) never seen in training, e.g. %s",
            source,
            col,
            u["count"],
            u["rows"],
            100 * u["share"],
            u["examples"],
        )
    over = {col: u for col, u in unseen.items() if u["share"] > max_share}
    if over:
        found = "; ".join(
            f"{col}: {u['share']:.1%} ({u['count']} of {u['rows']}), e.g. {u['examples']}"
            for col, u in over.items()
        )
        raise UnseenValuesError(
            f"{source}: values never seen in training above score.max_unseen_share "
            f"= {max_share:g}: {found}. The model reads a new level as missing and no feature "
            "counts a new event type or touchpoint. Retrain on data that includes them "
            "(`churn train` / `dvc repro`), fix the upstream data, or raise "
            "score.max_unseen_share; the previous scores are intact."
        )


def score_frame(
    frame: pd.DataFrame,
    loaded: LoadedModel,
    catalog: Mapping[str, FeatureInfo],
    reasons: int,
) -> pd.DataFrame:
    """Calibrated probability, reasons and churn type for every row of a scoring-table chunk."""
    model = loaded.model
    # the booster's numeric view of the rows, built once for TreeSHAP and the prediction
    x = as_matrix(model.booster, model.model_frame(frame))
    contrib = contributions(model.booster, x)
    # The probability is the booster's own prediction, bit for bit what evaluate and the monitor's
    # realised check see: the contributions add up to the same margin only to ~1e-15, and that
    # is enough to split a calibration tie (realised AUC off evaluate's by 6e-6 on the default
    # data). A second pass over the trees, cheap next to TreeSHAP; on the same float64 matrix
    # that LightGBM converts the model frame to, so the same prediction.
    probability = model.calibrator.predict(model.booster.predict(x))
    features = list(model.booster.feature_name())
    groups = {name: info.group for name, info in catalog.items()}
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "as_of": frame["cutoff"].to_numpy(),
            "churn_probability": probability,
        }
    )
    for name, values in reason_columns(frame, contrib, features, catalog, reasons).items():
        out[name] = values
    out["churn_type"] = churn_types(contrib[:, :-1], features, groups)
    out["model_version"] = loaded.version
    out["run_id"] = loaded.run_id
    return out


def population_columns(
    pop: pd.DataFrame, risk_tiers: Mapping[str, float], default_tier: str, value: ValueParams
) -> pd.DataFrame:
    """Columns that compare each customer with all others, from `pop` (customer_id,
    churn_probability, monthly_fee of the whole scored population): risk decile and tier, the
    customer's value (CLV, value tier, value at risk) and the retention priority (without any
    fee: empty value columns, priority by churn probability; `models.value.without_value`)."""
    p = pop["churn_probability"].to_numpy(dtype=float)
    out = pd.DataFrame(
        {
            "risk_decile": risk_decile(p),
            "risk_tier": risk_tier(p, risk_tiers, default_tier),
        }
    )
    warn_tiers_not_selective(out["risk_tier"], p, risk_tiers)
    if len(pop) and pop["monthly_fee"].notna().any():
        valued = add_value_columns(pop, value)
    else:
        if len(pop):
            log.warning("%s", no_fee_note(value.fee_column))
        valued = without_value(pop)
    for col in ("monthly_fee", *VALUE_COLUMNS):
        values = valued[col]
        out[col] = values.astype("string") if col == "value_tier" else values.to_numpy()
    return out


def no_fee_note(fee_column: str) -> str:
    """What the scores and the priority list hold when no scored customer has a monthly fee."""
    return (
        f"no monthly fee column `{fee_column}` (value.fee_column) with values in the scoring "
        "table: value columns (clv, value_tier, value_at_risk, expected_gain) empty; "
        "priority_rank and the priority list rank every customer by churn probability"
    )
