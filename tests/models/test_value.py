"""CLV, value tiers, value at risk, expected contact gain and the priority list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.base.params import ParamsError
from models.settings import ValueParams
from models.value import (
    ValueInputError,
    add_value_columns,
    assign_tiers,
    clv,
    priority_list,
    tier_edges,
)


def test_clv_by_hand():
    # m = 100 x 0.5 = 50, r = 0.9: two months undiscounted = 50 x 0.9 + 50 x 0.81
    assert clv([100.0], [0.1], 0.5, 0.0, 2)[0] == pytest.approx(85.5)
    # one month discounted by 10%: 50 x 0.9 / 1.1
    assert clv([100.0], [0.1], 0.5, 0.1, 1)[0] == pytest.approx(45 / 1.1)
    # infinite horizon: m r / (1 + d - r)
    assert clv([100.0], [0.1], 0.5, 0.01, None)[0] == pytest.approx(50 * 0.9 / 0.11)
    # no churn, no discount: m x H (the closed form would divide by zero)
    assert clv([100.0], [0.0], 0.5, 0.0, 12)[0] == pytest.approx(600.0)


def test_clv_properties():
    fee = np.array([20.0, 20.0, 40.0])
    p = np.array([0.05, 0.30, 0.05])
    value = clv(fee, p, 0.7, 0.01, 36)
    assert value[0] > value[1]  # riskier customer, less value
    assert value[2] == pytest.approx(2 * value[0])  # linear in the fee
    long = clv(fee, p, 0.7, 0.01, 5000)
    assert long == pytest.approx(clv(fee, p, 0.7, 0.01, None))  # finite -> infinite horizon
    assert np.isnan(clv([np.nan], [0.1], 0.7, 0.01, 36)[0])


def scores(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "churn_probability": rng.uniform(0.01, 0.6, n),
            "monthly_fee": rng.choice([9.99, 19.99, 39.99, 199.0], n),
        }
    )


def test_value_columns_follow_the_formulas():
    p = ValueParams(save_rate=0.3, contact_cost=4.0)
    s = scores()
    out = add_value_columns(s, p)
    assert list(s.columns) == ["customer_id", "churn_probability", "monthly_fee"]  # no mutation
    value = clv(s.monthly_fee, s.churn_probability, p.margin_rate, p.discount_rate, 36)
    np.testing.assert_allclose(out["clv"], value)
    np.testing.assert_allclose(out["value_at_risk"], s.churn_probability * value)
    np.testing.assert_allclose(out["expected_gain"], s.churn_probability * 0.3 * value - 4.0)


def test_priority_rank_orders_by_gain_and_puts_losses_last():
    p = ValueParams(margin_rate=1.0, discount_rate=0.0, horizon_months=1, save_rate=1.0)
    # clv = fee x (1 - p); gain = p x (1 - p) x fee - 10
    s = pd.DataFrame(
        {
            "customer_id": ["lose", "big", "tie_b", "tie_a", "no_fee"],
            "churn_probability": [0.5, 0.5, 0.5, 0.5, 0.9],
            "monthly_fee": [20.0, 400.0, 100.0, 100.0, np.nan],
        }
    )
    out = add_value_columns(s, p).set_index("customer_id")
    assert out.loc["lose", "expected_gain"] == pytest.approx(-5.0)
    assert out.loc["big", "expected_gain"] == pytest.approx(90.0)
    ranks = out["priority_rank"]
    assert ranks["big"] == 1
    assert (ranks["tie_a"], ranks["tie_b"]) == (2, 3)  # equal gain: by customer_id
    assert ranks["lose"] == 4  # negative gain: after every positive one
    assert pd.isna(ranks["no_fee"]) and pd.isna(out.loc["no_fee", "value_tier"])
    listed = priority_list(out.reset_index(), p)
    assert list(listed["customer_id"]) == ["big", "tie_a", "tie_b"]  # no loss-making contact
    assert list(listed["priority_rank"]) == [1, 2, 3]


def test_tiers_are_chunk_independent():
    p = ValueParams()
    s = scores(1000, seed=1)
    whole = add_value_columns(s, p)
    # scoring in chunks: edges from the whole scored population, applied to each chunk
    edges = tier_edges(whole["clv"], p)
    chunks = [
        add_value_columns(part, p, edges=edges)
        for part in (s.iloc[i : i + 150] for i in range(0, len(s), 150))
    ]
    pd.testing.assert_series_equal(
        pd.concat(chunks)["value_tier"].astype(str), whole["value_tier"].astype(str)
    )
    shares = whole["value_tier"].value_counts(normalize=True)
    assert shares["bronze"] == pytest.approx(0.5, abs=0.01)
    assert shares["platinum"] == pytest.approx(0.05, abs=0.01)
    # the highest CLV is platinum, the lowest bronze
    assert whole.loc[whole["clv"].idxmax(), "value_tier"] == "platinum"
    assert whole.loc[whole["clv"].idxmin(), "value_tier"] == "bronze"


def test_fixed_tier_edges_from_params():
    p = ValueParams(tier_names=("low", "high"), tier_clv_edges=(100.0,), tier_quantiles=(0.5,))
    tiers = assign_tiers(np.array([10.0, 100.0, 150.0, np.nan]), tier_edges([], p), p.tier_names)
    assert list(tiers[:3]) == ["low", "high", "high"]  # an edge value belongs to the upper tier
    assert pd.isna(tiers[3])


def test_priority_list_carries_reasons_and_owner():
    p = ValueParams(contact_cost=0.0)
    s = scores(50).assign(
        reason_2="csat_min_90d",
        reason_1="tickets_open_at_cutoff",
        reason_1_text="Open tickets: 2 (raises risk)",
        reason_1_contribution=0.4,
        churn_type="dissatisfaction",
    )
    out = add_value_columns(s, p)
    listed = priority_list(out, p)
    assert len(listed) == 50  # every gain is positive without a contact cost
    assert {"churn_type", "owner", "clv", "value_tier"} <= set(listed.columns)
    reasons = [c for c in listed.columns if c.startswith("reason_")]
    assert reasons == ["reason_1", "reason_1_text", "reason_2"]  # readable, in rank order
    expected_owner = listed["value_tier"].astype(str).map(p.tier_owners)
    assert (listed["owner"] == expected_owner).all()
    routed = priority_list(out.assign(owner_team="retention_desk"), p)
    assert set(routed["owner"]) == {"retention_desk"}


def test_bad_scores_are_named():
    p = ValueParams()
    with pytest.raises(ValueInputError, match=r"missing column\(s\) \['monthly_fee'\]"):
        add_value_columns(scores().drop(columns="monthly_fee"), p)
    bad = scores()
    bad.loc[3, "churn_probability"] = 1.5
    with pytest.raises(ValueInputError, match=r"c0003.*1\.5"):
        add_value_columns(bad, p)
    bad = scores()
    bad.loc[7, "monthly_fee"] = -1.0
    with pytest.raises(ValueInputError, match=r"c0007"):
        add_value_columns(bad, p)
    with pytest.raises(ValueInputError, match="add_value_columns"):
        priority_list(scores(), p)


def test_value_params_are_checked():
    with pytest.raises(ParamsError, match="tier_quantiles"):
        ValueParams(tier_quantiles=(0.5, 0.8))  # 4 tiers need 3 edges
    with pytest.raises(ParamsError, match="tier_clv_edges"):
        ValueParams(tier_names=("a", "b", "c"), tier_clv_edges=(5.0, 1.0))
    with pytest.raises(ParamsError, match="save_rate"):
        ValueParams(save_rate=1.5)
    with pytest.raises(ParamsError, match="discount_rate"):
        ValueParams(horizon_months=None, discount_rate=0.0)
