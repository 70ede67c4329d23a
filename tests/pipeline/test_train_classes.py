"""`churn train` through the CLI: too few churners or non-churners in any part of the split
(train, valid, test, the calibration folds) exits 2 naming the part, its counts and the params to
change, never with a library traceback (issue 13, point 6)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from model_tables import make_model_table

from helpers import churn, inside

PARAMS = {
    "train": {
        "learning_rate": 0.1,
        "num_boost_round": 100,
        "early_stopping_rounds": 10,
        "min_positives": 20,
    },
}


def _project(root: Path, table: pd.DataFrame) -> Path:
    """The two files `churn train` reads: the model table and its catalog, and params.yaml."""
    (root / "data" / "processed").mkdir(parents=True)
    table.to_parquet(root / "data/processed/features.parquet", index=False)
    catalog = [{"name": c, "group": "engagement", "description": c} for c in table.columns[4:]]
    (root / "data/processed/feature_catalog.json").write_text(json.dumps(catalog))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return root


def _at(table: pd.DataFrame, position: int) -> pd.Series:
    """Rows of the cutoff at `position` in time order (make_model_table(cutoffs=4): 0 and 1 are
    train, 2 is valid, 3 is test)."""
    return table["cutoff"] == sorted(table["cutoff"].unique())[position]


def _no_churners_in_valid(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(churned=t["churned"] & ~_at(t, 2))


def _two_churners_in_valid(t: pd.DataFrame) -> pd.DataFrame:
    """Valid keeps two churners: too few for a 5-fold cross-fitted calibrator."""
    keep = ~_at(t, 2) | (t["churned"] & _at(t, 2)).cumsum().le(2)
    return t.assign(churned=t["churned"] & keep)


def _few_non_churners_in_train(t: pd.DataFrame) -> pd.DataFrame:
    """Nearly everybody churns in the training cutoffs: 10 non-churners left."""
    train = _at(t, 0) | _at(t, 1)
    stays = train & (t.index.to_series() % 40 == 0)
    return t.assign(churned=(t["churned"] & ~train) | (train & ~stays))


def _all_churned_in_test(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(churned=t["churned"] | _at(t, 3))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _no_churners_in_valid,
            ["valid part", "0 churners and 200 non-churners", "single class", "train.calibration"],
        ),
        (
            _two_churners_in_valid,
            ["valid part", "2 churners", "at least 5 churners", "train.calibration.folds"],
        ),
        (
            _few_non_churners_in_train,
            [
                "train part",
                "390 churners and 10 non-churners",
                "30 non-churners",
                "train.min_negatives",
            ],
        ),
        (
            _all_churned_in_test,
            ["test part", "200 churners and 0 non-churners", "train.min_eval_rows_per_class"],
        ),
    ],
    ids=["valid-one-class", "valid-two-churners", "train-few-non-churners", "test-one-class"],
)
def test_too_few_of_a_class_in_a_part_exits_2_naming_it(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    expected: list[str],
) -> None:
    table, _ = make_model_table(customers=200, cutoffs=4, seed=5)
    _project(tmp_path, change(table))
    with inside(tmp_path), caplog.at_level(logging.ERROR):
        code = churn("train")  # a library traceback would be re-raised here
    assert code == 2, caplog.text
    for text in (*expected, "features.parquet", "params.yaml"):
        assert text in caplog.text, (text, caplog.text)
    assert "Traceback" not in caplog.text
    assert not (tmp_path / "artifacts").exists()


def test_the_minimums_are_params(tmp_path: Path) -> None:
    """Lowering the named params lets the same (noisy) table train."""
    table, _ = make_model_table(customers=200, cutoffs=4, seed=5)
    _project(tmp_path, _two_churners_in_valid(table))
    params = {**PARAMS, "train": {**PARAMS["train"], "min_eval_rows_per_class": 2}}
    params["train"]["calibration"] = {"folds": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with inside(tmp_path):
        assert churn("train") == 0
    split = json.loads((tmp_path / "reports/train.json").read_text())["split"]
    assert split["valid"]["positives"] == 2


def test_table_fit_fold_with_too_few_of_a_class_exits_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`churn table fit`: 12 churners in 2 folds leave 6 per training part, fewer than the 9 a
    9-fold cross-fitted calibrator needs: exit 2 naming the fold, its counts and the param."""
    rng = np.random.default_rng(4)
    n = 300
    churned = np.arange(n) < 12
    pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n) - 20 * churned,
            "charges": rng.uniform(20, 110, n),
            "Churn": np.where(churned, "Yes", "No"),
        }
    ).to_csv(tmp_path / "small.csv", index=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"calibration_folds": 9}}))
    with inside(tmp_path), caplog.at_level(logging.ERROR):
        code = churn(
            "table", "fit", "small.csv", "--target", "Churn", "--positive", "Yes", "--cv", 2
        )
    assert code == 2, caplog.text
    for text in ("fold 1 training rows", "6 churners", "at least 9 churners", "calibration_folds"):
        assert text in caplog.text, (text, caplog.text)
