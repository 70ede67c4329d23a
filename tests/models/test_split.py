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


def _monthly(cutoffs: list[str]) -> pd.DataFrame:
    rows = [(f"c{i}", c, i % 2) for c in cutoffs for i in range(6)]
    return pd.DataFrame(rows, columns=["customer_id", "cutoff", "churned"])


def test_label_windows_never_reach_into_the_next_part() -> None:
    """90-day labels at monthly cutoffs: the valid cutoff's window ends by the test cutoff and
    every training cutoff's by the valid cutoff; the cutoffs in between are left out."""
    months = [f"1997-{m:02d}-01" for m in range(4, 13)] + [f"1998-{m:02d}-01" for m in (1, 2, 3, 4)]
    split = split_by_cutoff(_monthly(months), label_days=90)
    test, valid = split.test_cutoffs[0], split.valid_cutoffs[0]
    assert str(test.date()) == "1998-04-01" and str(valid.date()) == "1998-01-01"
    assert all(c + pd.Timedelta(days=90) <= valid for c in split.train_cutoffs)
    assert str(split.train_cutoffs[-1].date()) == "1997-10-01"
    # without the windows (label_days 0) the parts are adjacent, as before
    adjacent = split_by_cutoff(_monthly(months))
    assert str(adjacent.valid_cutoffs[0].date()) == "1998-03-01"


def test_too_short_a_history_for_the_windows_is_an_error_naming_them() -> None:
    months = ["1998-01-01", "1998-02-01", "1998-03-01", "1998-04-01"]
    with pytest.raises(TrainingDataError, match="90-day label windows"):
        split_by_cutoff(_monthly(months), label_days=90)


def test_the_gap_cutoffs_join_the_refit_only_when_their_windows_end_by_the_test_cutoff() -> None:
    from models.training.train import refit_rows

    months = [f"1997-{m:02d}-01" for m in range(4, 13)] + [f"1998-{m:02d}-01" for m in (1, 2, 3, 4)]
    split = split_by_cutoff(_monthly(months), label_days=90)
    assert [str(c.date()) for c in split.gap_cutoffs] == ["1997-11-01", "1997-12-01"]
    refit = set(refit_rows(split)["cutoff"])
    # 1998-02-01 and 1998-03-01 would read their 90-day labels from the test period: never used
    assert pd.Timestamp("1998-02-01", tz="UTC") not in refit
    assert pd.Timestamp("1998-03-01", tz="UTC") not in refit
    assert all(c + pd.Timedelta(days=90) <= split.test_cutoffs[0] for c in refit)
    assert len(refit) == 10  # 1997-04 .. 1998-01
