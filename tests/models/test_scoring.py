"""Reason codes, risk deciles and tiers, churn types and the readable sentences of `churn score`."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from features.catalog import FeatureInfo
from models.model import OTHER, FeatureSpec, LoadedModel
from models.scores_contract import SCORE_COLUMNS
from models.scoring import (
    NO_CHURN_TYPE,
    UnseenValuesError,
    add_counts,
    check_unseen,
    churn_types,
    feature_label,
    format_value,
    population_columns,
    reason_columns,
    risk_decile,
    risk_tier,
    score_frame,
    top_reasons,
    unseen_level_counts,
    unseen_summary,
    value_unit,
    warn_tiers_not_selective,
)
from models.settings import TrainParams, ValueParams
from models.training.split import split_by_cutoff
from models.training.train import train_model
from models.warning.rules import field_types_of_schema


def test_risk_decile_splits_the_population_into_tenths_highest_first() -> None:
    p = np.linspace(0.0, 1.0, 100)
    deciles = risk_decile(p)
    assert deciles[-1] == 1 and deciles[0] == 10
    assert np.bincount(deciles)[1:].tolist() == [10] * 10
    assert risk_decile(np.array([])).size == 0


def test_risk_decile_gives_ties_the_same_decile() -> None:
    deciles = risk_decile(np.array([0.5] * 20 + [0.1] * 5))
    assert set(deciles[:20]) == {1} and set(deciles[20:]) == {9}


def test_risk_tier_takes_the_highest_threshold_reached() -> None:
    tiers = {"critical": 0.3, "high": 0.15, "medium": 0.08}
    got = risk_tier(np.array([0.01, 0.08, 0.149, 0.15, 0.9]), tiers, "low")
    assert got.tolist() == ["low", "medium", "medium", "high", "critical"]


def test_a_top_tier_holding_most_customers_is_warned_with_percentile_thresholds(caplog) -> None:
    tiers = {"critical": 0.3, "high": 0.15, "medium": 0.08}
    retailer = np.linspace(0.6, 0.99, 200)  # base churn far above every threshold
    with caplog.at_level(logging.WARNING, logger="models.scoring"):
        share = warn_tiers_not_selective(
            pd.Series(risk_tier(retailer, tiers, "low")), retailer, tiers
        )
    assert share == 1.0
    assert "100% of the scored customers are 'critical'" in caplog.text
    assert "score.risk_tiers" in caplog.text and "0.795 / 0.912 / " in caplog.text
    caplog.clear()
    subscription = np.linspace(0.0, 0.4, 200)  # a quarter above 0.3: no warning
    with caplog.at_level(logging.WARNING, logger="models.scoring"):
        tier = pd.Series(risk_tier(subscription, tiers, "low"))
        assert warn_tiers_not_selective(tier, subscription, tiers) == pytest.approx(0.25)
    assert caplog.text == ""


def test_top_reasons_are_largest_first_and_ignore_the_bias() -> None:
    contrib = np.array([[0.1, 0.5, -0.2, 0.3, 9.0], [-1.0, -0.5, -0.7, -0.1, -9.0]])
    assert top_reasons(contrib, 3).tolist() == [[1, 3, 0], [3, 1, 2]]
    # ties keep feature order: deterministic
    assert top_reasons(np.array([[0.2, 0.2, 0.2, 0.0]]), 2).tolist() == [[0, 1]]
    assert top_reasons(np.array([[0.2, 0.1, 0.0]]), 5).shape == (1, 2)


@given(
    arrays(
        np.float64,
        st.tuples(st.integers(0, 20), st.integers(1, 8)),
        elements=st.sampled_from([-0.5, -0.1, 0.0, 0.1, 0.5, 2.0, -np.inf]),
    ),
    st.integers(0, 9),
)
@settings(max_examples=300, deadline=None)
def test_top_reasons_equal_the_stable_sort_of_every_feature(contrib, k) -> None:
    """Whatever the ties: the k largest in the order of a stable descending sort (the reasons
    of every scored customer depend on it)."""
    values = contrib[:, :-1] if contrib.shape[1] > 1 else contrib
    expected = np.argsort(-values, axis=1, kind="stable")[:, : min(k, values.shape[1])]
    np.testing.assert_array_equal(top_reasons(contrib, k), expected)


def test_churn_type_is_the_type_whose_groups_add_most_risk() -> None:
    features = ["csat_low", "tickets", "fee_change", "logins"]
    groups = {
        "csat_low": "experience", "tickets": "service", "fee_change": "economic",
        "logins": "engagement",
    }  # fmt: skip
    contrib = np.array(
        [
            [0.2, 0.2, 0.3, 0.0],  # dissatisfaction 0.4 beats economic 0.3 (two groups add up)
            [0.0, 0.0, 0.3, 0.5],  # disengagement
            [-0.1, -0.2, -0.1, -0.3],  # nothing adds risk
        ]
    )
    assert churn_types(contrib, features, groups).tolist() == [
        "dissatisfaction", "disengagement", NO_CHURN_TYPE,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3"), (3, "3"), (0.123456, "0.123"), (float("nan"), "none recorded"),
        (None, "none recorded"), (True, "yes"), ("gold", "gold"), (np.int64(7), "7"),
    ],
)  # fmt: skip
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_feature_labels_read_like_plain_language() -> None:
    def label(description: str) -> str:
        return feature_label(FeatureInfo("f", "experience", description), "f")

    assert label("lowest CSAT at after_sales in the 90 days before the cutoff") == (
        "Lowest CSAT at after-sales in the last 90 days"
    )
    assert (
        label(
            "days from the last payment_failure event's day to the cutoff day "
            "(1 = the day before); null if never"
        )
        == "Days since the last payment-failure"
    )
    assert label("customer attribute 'plan' (category), as recorded at ingest") == "Plan"
    assert feature_label(None, "monthly_fee") == "Monthly fee"


def test_reason_columns_carry_value_contribution_and_sentence() -> None:
    frame = pd.DataFrame(
        {"csat": [3.0, math.nan, 9.0], "plan": ["basic", "pro", "pro"], "fee": [1234.5, 9.9, 20.0]}
    )
    catalog = {
        "csat": FeatureInfo("csat", "experience", "lowest CSAT at after_sales before the cutoff"),
        "plan": FeatureInfo("plan", "contract", "customer attribute 'plan' (category)"),
        "fee": FeatureInfo("fee", "economic", "current monthly fee"),
    }
    contrib = np.array([[0.8, -0.1, 0.3, -2.0], [0.05, 0.2, 0.01, -2.0], [0.02, -0.3, 0.04, -2.0]])
    out = reason_columns(frame, contrib, ["csat", "plan", "fee"], catalog, 2)
    assert out["reason_1"].tolist() == ["csat", "plan", None]
    assert out["reason_1_value"].tolist() == ["3", "pro", None]
    assert out["reason_1_text"].tolist() == [
        "Lowest CSAT at after-sales was 3 (raises risk)",
        "Plan was pro (raises risk)",
        "No strong risk factor",  # every push below REASON_MIN_CONTRIBUTION
    ]
    # only what raises the risk enough is a reason: money with two decimals and a separator
    assert out["reason_2_text"].tolist() == [
        "Current monthly fee was 1,234.50 (raises risk)",
        "Lowest CSAT at after-sales: none recorded (raises risk)",
        None,
    ]
    assert out["reason_2_contribution"][0] == 0.3 and np.isnan(out["reason_2_contribution"][2])


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("current_monthly_fee", 9.9, "9.90"), ("days_since_last_login", 45.0, "45 days"),
        ("tenure_days", 1.0, "1 day"), ("logins_30d", 1234.0, "1,234"),
        ("purchase_amount_sum_90d", 1234.567, "1,234.57"), ("ratio", 1234.56, "1,235"),
        ("monthly_fee_change_pct_90d", 0.25, "0.25"),
    ],
)  # fmt: skip
def test_values_carry_their_unit(name: str, value: float, text: str) -> None:
    assert format_value(value, value_unit(name)) == text


def test_the_scores_carry_every_contract_column_with_its_kind(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    model = train_model(split, TrainParams(learning_rate=0.1, early_stopping_rounds=20))
    loaded = LoadedModel(model, "models:/churn-model/1", "1", "run")
    scored = score_frame(split.test.head(300), loaded, {}, reasons=3)
    pop = scored[["customer_id", "churn_probability"]].assign(
        monthly_fee=np.linspace(10.0, 200.0, len(scored))
    )
    extra = population_columns(pop, {"high": 0.3, "medium": 0.1}, "low", ValueParams())
    scores = pd.concat([scored, extra], axis=1)
    # the kinds as a reader of the Parquet file sees them (`churn score` writes it from Arrow)
    kinds = field_types_of_schema(pa.Table.from_pandas(scores, preserve_index=False).schema)
    assert {c: kinds.get(c) for c in SCORE_COLUMNS} == SCORE_COLUMNS


def test_unseen_levels_count_new_values_but_not_rare_or_missing_ones() -> None:
    spec = FeatureSpec(
        categorical={"plan": ["basic", "pro", OTHER], "country": ["DE", "FR"]},
        rare_levels={"plan": ["legacy"]},
    )
    frame = pd.DataFrame(
        {
            "plan": ["basic", "legacy", "gold", None, "gold", "ultra"],
            "country": ["DE", "FR", "FR", "XX", None, "DE"],
        }
    )
    counts = unseen_level_counts(frame, spec)
    assert counts["plan"].to_dict() == {"gold": 2, "ultra": 1}
    assert counts["country"].to_dict() == {"XX": 1}
    # two chunks add up; the summary lists the most frequent value first
    both = add_counts(counts, unseen_level_counts(frame.iloc[:3], spec))
    unseen = unseen_summary(both, {"plan": 9, "country": 9})
    assert unseen["plan"] == {
        "count": 4, "rows": 9, "share": pytest.approx(4 / 9), "examples": ["gold", "ultra"],
    }  # fmt: skip
    assert unseen["country"]["count"] == 1
    assert unseen_summary(unseen_level_counts(frame.iloc[:2], spec), {"plan": 2}) == {}


def test_check_unseen_fails_above_the_share_naming_column_share_and_example() -> None:
    unseen = {
        "plan": {"count": 3, "rows": 10, "share": 0.3, "examples": ["gold"]},
        "events.event_type": {"count": 1, "rows": 100, "share": 0.01, "examples": ["teleport"]},
    }
    check_unseen(unseen, 0.3, "scoring data")  # at the limit: warnings only
    with pytest.raises(UnseenValuesError) as err:
        check_unseen(unseen, 0.2, "scoring data")
    message = str(err.value)
    assert "plan: 30.0% (3 of 10)" in message and "gold" in message
    assert "teleport" not in message  # below the limit
    assert "score.max_unseen_share" in message and "churn train" in message
