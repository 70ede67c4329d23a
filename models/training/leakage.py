"""Leakage guard: features that give the label away on their own are reported and excluded.

The commonest mistake in churn modelling is a column written *because* the customer churned
(a cancellation date, a churn reason, a "status" copied from the label). Such a column makes the
model look perfect in validation and useless in production. Each feature is screened alone, on
training rows only (the caller passes the training fold; no test row is ever seen):

- own AUC: numeric features by rank (missing values put at either end, the better end kept),
  categorical features by out-of-fold level churn rates (a level's rate never scores its own
  rows, so a high-cardinality id-like column cannot look predictive by memorising);
  max(auc, 1 - auc) >= `auc_threshold` flags it;
- best one-split rule: the threshold (or level set) with the highest balanced accuracy
  (= (1 + max(TPR - FPR)) / 2); >= `rule_threshold` flags it, and the rule is the evidence;
- missing pattern: a feature that is (almost) only filled in for the minority class (usually
  churners), e.g. a churn reason present for churners and empty for everyone else: the share of
  that class among the filled rows >= `missing_purity` flags it, even when it covers only part
  of that class.

A strong but honest feature (contract type, tenure: AUC 0.7-0.9) is far from these thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold

from models.settings import LeakageParams

log = logging.getLogger(__name__)

MISSING_LEVEL = "(missing)"


@dataclass
class FeatureEvidence:
    """What the guard measured for one feature, and whether (and why) it is a suspect."""

    feature: str
    kind: str  # numeric | categorical
    auc: float
    rule: str
    rule_balanced_accuracy: float
    filled_share: float  # share of rows where the feature is not missing
    filled_positive_share: float | None  # share of churners among the filled rows
    reasons: list[str] = field(default_factory=list)

    @property
    def suspect(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("auc", "rule_balanced_accuracy", "filled_share", "filled_positive_share"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 4)
        return out


def _is_numeric(series: pd.Series) -> bool:
    return bool(
        (pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype))
        and not isinstance(series.dtype, pd.CategoricalDtype)
    )


def _oriented_auc(y: np.ndarray, score: np.ndarray) -> float:
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _best_split(y: np.ndarray, score: np.ndarray) -> tuple[float, float, int]:
    """Best one-threshold rule on `score`: (balanced accuracy, threshold, direction)."""
    fpr, tpr, thresholds = roc_curve(y, score)
    gain = tpr - fpr
    best = int(np.argmax(np.abs(gain)))
    direction = 1 if gain[best] >= 0 else -1  # +1: score >= threshold means churn
    return (1.0 + abs(float(gain[best]))) / 2.0, float(thresholds[best]), direction


def _describe_numeric_rule(
    name: str, values: np.ndarray, missing: np.ndarray, chosen: np.ndarray, direction: int
) -> str:
    """The churn side of a one-threshold rule in words."""
    if missing.any() and np.array_equal(chosen, missing):
        return f"{name} is missing → churn"
    if missing.any() and np.array_equal(chosen, ~missing):
        return f"{name} is not missing → churn"
    inside = values[chosen & ~missing]
    if len(inside) == 0:
        return f"{name} is missing → churn"
    cond = f">= {inside.min():.6g}" if direction > 0 else f"<= {inside.max():.6g}"
    if missing.any():
        cond += " or missing" if chosen[missing].all() else " (missing: not churn)"
    return f"{name} {cond} → churn"


def _numeric_evidence(name: str, x: pd.Series, y: np.ndarray) -> tuple[float, str, float]:
    """AUC and best rule of a numeric feature, missing values placed at the better end."""
    values = pd.to_numeric(x.astype("float64"), errors="coerce").to_numpy(dtype=float)
    missing = np.isnan(values)
    if missing.all():
        return 0.5, f"{name} is always missing", 0.5
    lo, hi = np.nanmin(values), np.nanmax(values)
    span = (hi - lo) or 1.0
    best: tuple[float, str, float] = (-1.0, "", 0.5)
    for fill in (lo - span, hi + span):
        score = np.where(missing, fill, values)
        auc = _oriented_auc(y, score)
        acc, threshold, direction = _best_split(y, score)
        if auc > best[0] or (auc == best[0] and acc > best[2]):
            chosen = score >= threshold if direction > 0 else score < threshold
            if direction < 0:  # roc_curve's threshold is inclusive for the positive side
                chosen = ~(score >= threshold)
            rule = _describe_numeric_rule(name, values, missing, chosen, direction)
            best = (auc, rule, acc)
        if not missing.any():
            break
    return best


def _oof_level_rates(
    values: np.ndarray, y: np.ndarray, folds: int, smoothing: float, seed: int
) -> np.ndarray:
    """Out-of-fold smoothed churn rate of each row's level (never from the row's own fold)."""
    k = max(2, min(folds, int(y.sum()), int(len(y) - y.sum())))
    out = np.empty(len(y), dtype=float)
    for fit_idx, hold_idx in StratifiedKFold(k, shuffle=True, random_state=seed).split(values, y):
        prior = float(y[fit_idx].mean())
        stats = pd.DataFrame({"v": values[fit_idx], "y": y[fit_idx]}).groupby("v")["y"]
        rate = (stats.sum() + smoothing * prior) / (stats.count() + smoothing)
        out[hold_idx] = pd.Series(values[hold_idx]).map(rate).fillna(prior).to_numpy()
    return out


def _categorical_evidence(
    name: str, x: pd.Series, y: np.ndarray, s: LeakageParams
) -> tuple[float, str, float]:
    """AUC of out-of-fold level rates and the best rule 'level in {...}'."""
    values = x.astype("object").where(x.notna(), MISSING_LEVEL).astype(str).to_numpy()
    score = _oof_level_rates(values, y, s.folds, s.smoothing, s.seed)
    auc = _oriented_auc(y, score)
    acc, threshold, direction = _best_split(y, score)
    chosen = score >= threshold if direction > 0 else score < threshold
    levels = sorted(pd.unique(values[chosen]).tolist())
    shown = ", ".join(repr(v) for v in levels[:5]) + (" ..." if len(levels) > 5 else "")
    return auc, f"{name} in {{{shown}}} → churn", acc


def _missing_pattern(
    x: pd.Series, y: np.ndarray, s: LeakageParams
) -> tuple[float, float | None, str | None]:
    """Filled share, churners' share among filled rows, and a reason if only one class has it."""
    filled = x.notna().to_numpy()
    n_filled = int(filled.sum())
    share = n_filled / len(y) if len(y) else 0.0
    if n_filled == 0:
        return share, None, None
    positive_share = float(y[filled].mean())
    if n_filled == len(y) or n_filled < s.min_filled_rows:
        return share, positive_share, None
    for cls, purity, who in ((1, positive_share, "churned"), (0, 1 - positive_share, "retained")):
        base = float((y == cls).mean())
        # only the minority class: 99 % retained among filled rows is normal at a 5 % churn rate
        if purity >= s.missing_purity and base < 0.5:
            return (
                share,
                positive_share,
                (
                    f"filled in almost only for {who} rows: {purity:.1%} of its {n_filled} "
                    f"non-missing rows are {who} (base rate {base:.1%})"
                ),
            )
    return share, positive_share, None


def screen_feature(name: str, x: pd.Series, y: np.ndarray, s: LeakageParams) -> FeatureEvidence:
    """Measure one feature against the label (training rows only)."""
    y = np.asarray(y, dtype=int)
    numeric = _is_numeric(x)
    if numeric:
        auc, rule, acc = _numeric_evidence(name, x, y)
    else:
        auc, rule, acc = _categorical_evidence(name, x, y, s)
    filled_share, positive_share, missing_reason = _missing_pattern(x, y, s)
    reasons = []
    if auc >= s.auc_threshold:
        reasons.append(f"separates the label on its own: AUC {auc:.4f} >= {s.auc_threshold}")
    if acc >= s.rule_threshold:
        reasons.append(
            f"one-split rule '{rule}' has balanced accuracy {acc:.4f} >= {s.rule_threshold}"
        )
    if missing_reason:
        reasons.append(missing_reason)
    return FeatureEvidence(
        feature=name,
        kind="numeric" if numeric else "categorical",
        auc=auc,
        rule=rule,
        rule_balanced_accuracy=acc,
        filled_share=filled_share,
        filled_positive_share=positive_share,
        reasons=reasons,
    )


@dataclass
class LeakageReport:
    """Evidence for every screened feature; `suspects` are the flagged ones."""

    evidence: list[FeatureEvidence]
    settings: LeakageParams
    excluded: list[str] = field(default_factory=list)

    @property
    def suspects(self) -> list[FeatureEvidence]:
        return [e for e in self.evidence if e.suspect]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "suspects": [e.to_dict() for e in self.suspects],
            "excluded": list(self.excluded),
            "strongest": [e.to_dict() for e in sorted(self.evidence, key=lambda e: -e.auc)[:10]],
        }


def screen(
    frame: pd.DataFrame,
    y: np.ndarray,
    features: Iterable[str],
    settings: LeakageParams | None = None,
    source: str = "training rows",
) -> LeakageReport:
    """Screen `features` of the TRAINING rows `frame` against labels `y`; flag and exclude suspects.

    With `settings.allow_leaky` the suspects are still reported but not excluded.
    """
    s = settings or LeakageParams()
    allow_leaky = s.allow_leaky
    y = np.asarray(y, dtype=int)
    if len(y) != len(frame):
        raise ValueError(f"{source}: {len(frame)} rows but {len(y)} labels")
    if y.min(initial=1) == y.max(initial=0):
        log.warning("%s: one label class only; leakage guard skipped", source)
        return LeakageReport([], s)
    evidence = [screen_feature(c, frame[c], y, s) for c in features]
    report = LeakageReport(evidence, s)
    for e in report.suspects:
        log.warning(
            "%s: leakage suspect %r %s: %s",
            source,
            e.feature,
            "(kept: allow_leaky)" if allow_leaky else "(excluded)",
            "; ".join(e.reasons),
        )
    if not allow_leaky:
        report.excluded = [e.feature for e in report.suspects]
    return report


def screen_model_table(
    train: pd.DataFrame,
    label: str,
    skip: Iterable[str],
    settings: LeakageParams,
    source: str = "model table (training cutoffs)",
) -> LeakageReport:
    """The guard on the temporal model table's TRAINING rows (a seeded sample of
    `settings.max_rows`).

    Timestamps and the `skip` columns (keys, label, excluded features) are not screened.
    """
    skip = set(skip) | {label}
    features = [
        c
        for c in train.columns
        if c not in skip and not pd.api.types.is_datetime64_any_dtype(train[c].dtype)
    ]
    rows = train
    if len(train) > settings.max_rows:
        rows = train.sample(n=settings.max_rows, random_state=settings.seed)
    y = rows[label].astype(int).to_numpy()
    return screen(rows, y, features, settings, source)
