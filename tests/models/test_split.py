"""Out-of-time split: ordering, test-cutoff isolation, clear errors for untrainable tables."""

from __future__ import annotations

import pandas as pd
import pytest

from models.training.split import TrainingDataError, check_trainable, split_by_cutoff


def test_latest_cutoff_is_test_and_the_one_before_valid(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table, valid_cutoffs=1, test_cutoffs=1)
    cutoffs = sorted(model_table["cutoff"].unique())
    assert split.test_cutoffs == (cutoffs[-1],)
    assert split.valid_cutoffs == (cutoffs[-2],)
    assert split.train_cutoffs == tuple(cutoffs[:-2])
    assert len(split.train) + len(split.valid) + len(split.test) == len(model_table)


def test_no_test_period_row_outside_test(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table, valid_cutoffs=2, test_cutoffs=1)
    test_keys = set(zip(split.test["customer_id"], split.test["cutoff"], strict=True))
    for part in (split.train, split.valid):
        keys = set(zip(part["customer_id"], part["cutoff"], strict=True))
        assert not keys & test_keys
        assert part["cutoff"].max() < split.test["cutoff"].min()


def test_unlabelled_rows_are_left_out(model_table: pd.DataFrame) -> None:
    table = model_table.copy()
    latest = table["cutoff"].max()
    table["churned"] = table["churned"].astype("object").where(table["cutoff"] < latest, None)
    split = split_by_cutoff(table)
    assert split.test["cutoff"].max() < latest  # the unlabelled latest cutoff is not the test set


def test_too_few_cutoffs_is_a_clear_error(model_table: pd.DataFrame) -> None:
    with pytest.raises(TrainingDataError, match="labelled cutoff"):
        split_by_cutoff(model_table, valid_cutoffs=3, test_cutoffs=3)


def test_single_class_names_the_column_and_the_fix(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table.assign(churned=False))
    with pytest.raises(TrainingDataError, match="`churned` has a single class") as exc:
        check_trainable(split, min_positives=10)
    assert "label" in str(exc.value)


def test_too_few_positives(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    with pytest.raises(TrainingDataError, match="train.min_positives"):
        check_trainable(split, min_positives=10**6)


def test_missing_label_column_is_named(model_table: pd.DataFrame) -> None:
    with pytest.raises(TrainingDataError, match="churned"):
        split_by_cutoff(model_table.drop(columns="churned"))


def test_too_few_non_churners_names_the_part_counts_and_param(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table.assign(churned=True))
    with pytest.raises(TrainingDataError) as exc:
        check_trainable(split, min_positives=10, min_negatives=30)
    message = str(exc.value)
    for part in ("train part", "valid part", "test part"):
        assert part in message  # every part's shortfall in one message
    assert "0 non-churners" in message and "train.min_negatives" in message


def test_validation_needs_each_class_for_every_calibration_fold(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    churners = int(split.valid["churned"].sum())
    check_trainable(split, min_positives=10, calibration_folds=churners)
    with pytest.raises(TrainingDataError, match="train.calibration.folds") as exc:
        check_trainable(split, min_positives=10, calibration_folds=churners + 1)
    assert f"{churners} churners" in str(exc.value) and "valid part" in str(exc.value)
