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
The three rules above are strong evidence: the feature is excluded (unless `allow_leaky`).

The guard also reads names and compares features with each other (IBM's Telco v11 `Churn Score`,
a vendor model's score built knowing the outcome: own AUC about 0.94, kept by the rules above, it
lifted the model's ROC AUC from about 0.85 to 0.984). A name is split into words (camelCase,
snake_case, spaces, punctuation; case-insensitive): target words are churn, attrition, exit,
cancel (and their forms: churned, exited, cancellation, ...), model-output words are score,
probability, prediction, propensity, likelihood, risk (and prob, proba, pred, predicted):

- a target word together with a model-output word (`Churn Score`, `churn_probability`): a suspect
  by its name alone (another model's output for this very target);
- a target word alone (`Churn Reason`, `tickets_cancellation_90d`): a suspect only when its own
  AUC >= `high_auc` (honest windowed counts such as `text_cancel_intent_mentions_30d` are far
  below it; `Churn Reason` is caught by its missing pattern anyway);
- a model-output word alone (`satisfaction_score`, `credit_score`): a suspect only when its own
  AUC >= `high_auc`;
- no name evidence: a feature whose own AUC >= `high_auc` AND exceeds every other feature's by at
  least `dominance_margin` is a suspect (one column far ahead of all the others is how a leak
  looks when the honest signal is spread over many columns).

Name evidence together with a high own AUC (a target word in the name and AUC >= `high_auc`) is
strong evidence: excluded. The other name and dominance suspects are warned loudly and KEPT (an
honest `satisfaction_score` may well be the best feature): the run summary then says the result
may be too good to be true (`too_good_to_be_true`), as it does when the model's ROC AUC exceeds
`too_good_auc` (about 0.97; honest churn models rarely pass 0.9).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from models.settings import LeakageParams

log = logging.getLogger(__name__)

MISSING_LEVEL = "(missing)"
TARGET_STEMS: tuple[str, ...] = ("churn", "attrit", "exit", "cancel")  # a name word starting so
OUTPUT_WORDS: frozenset[str] = frozenset(
    {
        "score",
        "scores",
        "scoring",
        "probability",
        "probabilities",
        "prob",
        "proba",
        "prediction",
        "predictions",
        "predicted",
        "pred",
        "propensity",
        "likelihood",
        "risk",
    }
)


def name_words(name: str) -> list[str]:
    """The lower-case words of a column name (camelCase, snake_case, spaces, punctuation split)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(name))
    return [w.lower() for w in re.split(r"[^0-9A-Za-z]+", spaced) if w]


def name_evidence(name: str) -> tuple[list[str], list[str]]:
    """The target words (churn, attrition, exit, cancel...) and model-output words (score,
    probability, prediction, propensity...) in a column name."""
    words = name_words(name)
    target = [w for w in words if w.startswith(TARGET_STEMS)]
    output = [w for w in words if w in OUTPUT_WORDS]
    return target, output


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
    name_words: list[str] = field(default_factory=list)  # target / model-output words in its name
    exclude: bool = False  # strong evidence: excluded unless allow_leaky; else warned and kept

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


def _roc(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """ROC AUC and sklearn's `roc_curve(y, score)` (fpr, tpr, thresholds), from one sort.

    The same steps as scikit-learn's (stable descending sort, one point per distinct score,
    collinear points dropped, a first point at +inf), without its per-call input checks: the
    guard measures every feature of the model table this way, twice when it has missing values.
    """
    order = np.argsort(score, kind="mergesort")[::-1]
    s, yy = score[order], y[order].astype(float)
    last = np.r_[np.flatnonzero(np.diff(s)), yy.size - 1]  # last row of each distinct score
    tps = np.cumsum(yy)[last]
    fps = 1 + last - tps
    thresholds = s[last]
    if len(fps) > 2:  # as scikit-learn: only then are there intermediate points to drop
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    thresholds = np.r_[np.inf, thresholds]
    return float(np.trapezoid(tpr, fpr)), fpr, tpr, thresholds


def _separation(y: np.ndarray, score: np.ndarray) -> tuple[float, float, float, int]:
    """How well `score` alone separates the label: its AUC oriented to >= 0.5, and the best
    one-threshold rule on it (balanced accuracy, threshold, direction)."""
    auc, fpr, tpr, thresholds = _roc(y, score)
    gain = tpr - fpr
    best = int(np.argmax(np.abs(gain)))
    direction = 1 if gain[best] >= 0 else -1  # +1: score >= threshold means churn
    accuracy = (1.0 + abs(float(gain[best]))) / 2.0
    return max(auc, 1.0 - auc), accuracy, float(thresholds[best]), direction


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
        auc, acc, threshold, direction = _separation(y, score)
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
    auc, acc, threshold, direction = _separation(y, score)
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
    exclude = bool(reasons)
    target, output = name_evidence(name)
    high = auc >= s.high_auc
    if target and output:
        reasons.append(
            f"named like a model's output for the target ({'+'.join(target + output)}): "
            "another model's churn score or probability, usually built knowing the outcome"
            + (f"; own AUC {auc:.4f} >= {s.high_auc}" if high else "")
        )
    elif target and high:
        reasons.append(
            f"named like the target ({'+'.join(target)}) and own AUC {auc:.4f} >= {s.high_auc}"
        )
    elif output and high:
        reasons.append(
            f"named like a model output ({'+'.join(output)}) and own AUC {auc:.4f} >= "
            f"{s.high_auc}: check it is known before the outcome"
        )
    exclude = exclude or bool(target and high)
    return FeatureEvidence(
        feature=name,
        kind="numeric" if numeric else "categorical",
        auc=auc,
        rule=rule,
        rule_balanced_accuracy=acc,
        filled_share=filled_share,
        filled_positive_share=positive_share,
        reasons=reasons,
        name_words=target + output,
        exclude=exclude,
    )


def _flag_dominant(evidence: list[FeatureEvidence], s: LeakageParams) -> None:
    """A feature with a high own AUC far above every other feature's is a (warned) suspect."""
    if len(evidence) < 2:
        return
    best, second = sorted(evidence, key=lambda e: -e.auc)[:2]
    if best.auc >= s.high_auc and best.auc - second.auc >= s.dominance_margin:
        best.reasons.append(
            f"own AUC {best.auc:.4f} is far above every other feature's (next best "
            f"{second.feature!r} {second.auc:.4f}; margin >= {s.dominance_margin})"
        )


@dataclass
class LeakageReport:
    """Evidence for every screened feature; `suspects` are the flagged ones."""

    evidence: list[FeatureEvidence]
    settings: LeakageParams
    excluded: list[str] = field(default_factory=list)
    too_good: list[str] = field(default_factory=list)  # why the result looks too good to be true

    @property
    def suspects(self) -> list[FeatureEvidence]:
        return [e for e in self.evidence if e.suspect]

    @property
    def kept_suspects(self) -> list[str]:
        return [e.feature for e in self.suspects if e.feature not in self.excluded]

    def check_result(self, roc_auc: dict[str, float], source: str = "model") -> list[str]:
        """Record (and warn) why the model's result looks too good to be true, from its ROC AUC
        per part (e.g. {"test cutoffs": 0.99}) and the suspects it kept."""
        self.too_good = too_good_to_be_true(roc_auc, self.kept_suspects, self.settings, source)
        return self.too_good

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "suspects": [e.to_dict() for e in self.suspects],
            "excluded": list(self.excluded),
            "kept_suspects": self.kept_suspects,
            "too_good_to_be_true": bool(self.too_good),
            "too_good_reasons": list(self.too_good),
            "strongest": [e.to_dict() for e in sorted(self.evidence, key=lambda e: -e.auc)[:10]],
        }


def too_good_to_be_true(
    roc_auc: dict[str, float],
    kept_suspects: Iterable[str],
    settings: LeakageParams,
    source: str = "model",
) -> list[str]:
    """Why a result looks too good to be true (empty: it does not): a ROC AUC above
    `settings.too_good_auc`, or leakage suspects kept in the model. Each reason is warned."""
    reasons = [
        f"ROC AUC {auc:.4f} on the {part} > {settings.too_good_auc}: honest churn models rarely "
        "get there; look for a column written because the customer churned"
        for part, auc in roc_auc.items()
        if auc > settings.too_good_auc
    ]
    kept = list(kept_suspects)
    if kept:
        reasons.append(
            f"leakage suspect(s) kept in the model: {kept}; if one is known only after the "
            "outcome, leave it out (train.exclude_features / --drop) and compare"
        )
    for reason in reasons:
        log.warning("%s: result may be too good to be true: %s", source, reason)
    return reasons


def screen(
    frame: pd.DataFrame,
    y: np.ndarray,
    features: Iterable[str],
    settings: LeakageParams | None = None,
    source: str = "training rows",
) -> LeakageReport:
    """Screen `features` of the TRAINING rows `frame` against labels `y`; flag suspects and
    exclude those with strong evidence (the others are warned and kept).

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
    _flag_dominant(evidence, s)
    report = LeakageReport(evidence, s)
    for e in report.suspects:
        if not e.exclude:
            action = "(kept: name or comparison evidence only; check it)"
        else:
            action = "(kept: allow_leaky)" if allow_leaky else "(excluded)"
        log.warning(
            "%s: leakage suspect %r %s: %s", source, e.feature, action, "; ".join(e.reasons)
        )
    if not allow_leaky:
        report.excluded = [e.feature for e in report.suspects if e.exclude]
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
