"""Out-of-time split: train on earlier cutoffs, validate on the next, test on the latest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.base.errors import BadInputError

log = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = ("customer_id", "cutoff")
LABEL = "churned"
NON_FEATURE_COLUMNS: frozenset[str] = frozenset({"customer_id", "cutoff", "churned", "churn_type"})


class TrainingDataError(BadInputError, ValueError):
    """The model table cannot be trained on as it is (the message says why and how to fix it)."""


@dataclass(frozen=True)
class Split:
    """Three disjoint frames; every test-period (customer, cutoff) row is only in `test`."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_cutoffs: tuple[pd.Timestamp, ...]
    valid_cutoffs: tuple[pd.Timestamp, ...]
    test_cutoffs: tuple[pd.Timestamp, ...]
    # cutoffs between train and valid whose label windows reach into valid but end by the
    # first test cutoff: not for selection, but the refit on train + valid may learn from them
    gap: pd.DataFrame = field(default_factory=pd.DataFrame)
    gap_cutoffs: tuple[pd.Timestamp, ...] = ()

    def describe(self) -> dict[str, object]:
        """Row counts, positive counts and cutoffs of each part, for reports and MLflow."""
        out: dict[str, object] = {}
        for name in ("train", "valid", "test"):
            frame: pd.DataFrame = getattr(self, name)
            cutoffs = getattr(self, f"{name}_cutoffs")
            out[name] = {
                "rows": int(len(frame)),
                "positives": int(frame[LABEL].sum()),
                "cutoffs": [c.isoformat() for c in cutoffs],
            }
        return out


def labelled_rows(table: pd.DataFrame, source: str = "model table") -> pd.DataFrame:
    """Rows with a known label, `churned` as int 0/1; unlabelled rows are counted and left out."""
    missing = [c for c in (*KEY_COLUMNS, LABEL) if c not in table.columns]
    if missing:
        raise TrainingDataError(
            f"{source}: required column(s) {missing} missing; found {list(table.columns)[:12]}... "
            "Re-run `churn featurize` (the model table needs customer_id, cutoff and churned)."
        )
    known = table[LABEL].notna()
    if not known.all():
        log.info(
            "%s: %d rows without a known label (recent cutoffs) left out", source, (~known).sum()
        )
    out = table.loc[known].copy()
    out[LABEL] = out[LABEL].astype(bool).astype("int8")
    out["cutoff"] = pd.to_datetime(out["cutoff"], utc=True)
    return out


def split_by_cutoff(
    table: pd.DataFrame,
    valid_cutoffs: int = 1,
    test_cutoffs: int = 1,
    min_train_cutoffs: int = 1,
    source: str = "model table",
    label_days: int = 0,
) -> Split:
    """Split labelled rows by cutoff: the latest `test_cutoffs` are test, the ones before valid.

    `label_days` (the label's lead + horizon) keeps the parts apart in time: a validation cutoff's
    label window must end by the first test cutoff, and a training cutoff's by the first
    validation cutoff. Otherwise a 90-day label at the cutoff just before the test one would be
    read from the test period's own purchases. Cutoffs in such a gap are left out (logged).
    """
    if valid_cutoffs < 1 or test_cutoffs < 1 or min_train_cutoffs < 1:
        raise TrainingDataError(
            "split: valid_cutoffs, test_cutoffs and min_train_cutoffs must be >= 1; found "
            f"{valid_cutoffs}, {test_cutoffs}, {min_train_cutoffs}. Fix params.yaml `split`."
        )
    rows = labelled_rows(table, source)
    cutoffs = sorted(rows["cutoff"].unique())
    needed = min_train_cutoffs + valid_cutoffs + test_cutoffs
    if len(cutoffs) < needed:
        raise TrainingDataError(
            f"{source}: {len(cutoffs)} labelled cutoff(s) found, the split needs at least {needed} "
            f"({min_train_cutoffs} train + {valid_cutoffs} valid + {test_cutoffs} test). "
            "Simulate/ingest a longer history or lower split.valid_cutoffs / split.test_cutoffs."
        )
    window = pd.Timedelta(days=label_days)
    stamps = [pd.Timestamp(c) for c in cutoffs]
    test_c = tuple(stamps[-test_cutoffs:])
    before_test = [c for c in stamps[:-test_cutoffs] if c + window <= test_c[0]]
    valid_c = tuple(before_test[-valid_cutoffs:])
    train_c = tuple(
        c for c in before_test if valid_c and c < valid_c[0] and c + window <= valid_c[0]
    )
    gap = [c for c in stamps if c not in (*train_c, *valid_c, *test_c)]
    refit_gap = tuple(c for c in before_test if c not in (*train_c, *valid_c))
    if len(valid_c) < valid_cutoffs or len(train_c) < min_train_cutoffs:
        raise TrainingDataError(
            f"{source}: with {label_days}-day label windows (label.lead_days + horizon_days) "
            f"that must end before the next part begins, {len(stamps)} labelled cutoffs leave "
            f"{len(train_c)} train and {len(valid_c)} valid cutoff(s); the split needs "
            f"{min_train_cutoffs} and {valid_cutoffs}. Use a longer history or a shorter horizon."
        )
    if gap:
        log.info(
            "%s: cutoff(s) %s kept out of training and selection: their %d-day label windows "
            "would reach into the next part (those ending by the test cutoff join the refit)",
            source,
            ", ".join(str(c.date()) for c in gap),
            label_days,
        )
    part = rows["cutoff"]
    split = Split(
        train=rows.loc[part.isin(train_c)].reset_index(drop=True),
        valid=rows.loc[part.isin(valid_c)].reset_index(drop=True),
        test=rows.loc[part.isin(test_c)].reset_index(drop=True),
        train_cutoffs=train_c,
        valid_cutoffs=valid_c,
        test_cutoffs=test_c,
        gap=rows.loc[part.isin(refit_gap)].reset_index(drop=True),
        gap_cutoffs=refit_gap,
    )
    assert split.train["cutoff"].max() < split.valid["cutoff"].min() <= split.valid["cutoff"].max()
    assert split.valid["cutoff"].max() < split.test["cutoff"].min()
    return split


def class_shortfall(
    part: str, y: pd.Series | np.ndarray, min_churners: int, min_non_churners: int, params: str
) -> str | None:
    """What `part` lacks in churners or non-churners, in words (None when it has enough).

    `params` names the settings that set the two minimums, so the message says what to change.
    """
    labels = np.asarray(y, dtype=int)
    churners = int(labels.sum())
    non_churners = int(len(labels) - churners)
    if churners >= min_churners and non_churners >= min_non_churners:
        return None
    single = ", a single class" if churners == 0 or non_churners == 0 else ""
    return (
        f"{part}: {churners} churners and {non_churners} non-churners in {len(labels)} rows"
        f"{single}; needs at least {min_churners} churners and {min_non_churners} non-churners "
        f"({params})"
    )


def check_trainable(
    split: Split,
    min_positives: int,
    source: str = "model table",
    min_negatives: int | None = None,
    min_eval_rows_per_class: int = 1,
    calibration_folds: int = 0,
) -> None:
    """Raise TrainingDataError when any part has too few churners or non-churners.

    train: at least `min_positives` churners and `min_negatives` non-churners (default: the same
    number); valid: `min_eval_rows_per_class` of each, and `calibration_folds` of each (the
    calibrator is cross-fitted on the validation rows: every fold needs both classes); test:
    `min_eval_rows_per_class` of each (ROC AUC and the bootstrap need both classes). Every
    shortfall is listed in one message, with the counts and the params that set the minimum.
    """
    min_negatives = min_positives if min_negatives is None else min_negatives
    valid_need = max(min_eval_rows_per_class, calibration_folds, 1)
    test_need = max(min_eval_rows_per_class, 1)
    needs = {
        "train": (min_positives, min_negatives, "train.min_positives / train.min_negatives"),
        "valid": (
            valid_need,
            valid_need,
            "train.min_eval_rows_per_class / train.calibration.folds",
        ),
        "test": (test_need, test_need, "train.min_eval_rows_per_class"),
    }
    problems = []
    for name, (need_pos, need_neg, params) in needs.items():
        frame: pd.DataFrame = getattr(split, name)
        cutoffs = [c.date().isoformat() for c in getattr(split, f"{name}_cutoffs")]
        problem = class_shortfall(
            f"{name} part (cutoffs {cutoffs})", frame[LABEL], need_pos, need_neg, params
        )
        if problem:
            problems.append(problem)
    if problems:
        single = (
            "column `churned` has a single class in a part; "
            if any("single class" in p for p in problems)
            else ""
        )
        raise TrainingDataError(
            f"{source}: {single}too few churners or non-churners to train, calibrate and test: "
            + "; ".join(problems)
            + ". A classifier needs both classes in every part. Check the label stage "
            "(label.horizon_days, churn_events), move the split (split.valid_cutoffs / "
            "split.test_cutoffs), add customers or cutoffs, or lower the params named above "
            "in params.yaml if you accept a noisy model."
        )


def rows_of_predictions(features_path: Path | str, predictions: pd.DataFrame) -> pd.DataFrame:
    """The model-table rows of the test predictions, in their order (segments, SHAP inputs)."""
    cutoffs = sorted(pd.to_datetime(predictions["cutoff"], utc=True).unique())
    table = pd.read_parquet(features_path, filters=[("cutoff", "in", list(cutoffs))])
    table["cutoff"] = pd.to_datetime(table["cutoff"], utc=True)
    keys = predictions[["customer_id", "cutoff"]].assign(
        customer_id=lambda f: f["customer_id"].astype(str),
        cutoff=lambda f: pd.to_datetime(f["cutoff"], utc=True),
    )
    table = table.assign(customer_id=table["customer_id"].astype(str))
    return keys.merge(
        table.drop(columns=[LABEL], errors="ignore"),
        on=["customer_id", "cutoff"],
        how="left",
        validate="one_to_one",
    )
