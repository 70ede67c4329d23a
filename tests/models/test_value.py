"""CLV, value tiers, value at risk, expected contact gain and the priority list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.base.params import ParamsError
from models.settings import ValueParams
from models.value import (
    ValueInputError,
    add_value_columns,
    assign_tiers,
    clv,
    contact_gain,
    customer_value,
    lifetime_months,
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


def test_lifetime_months_by_hand():
    p = ValueParams(discount_rate=0.0, horizon_months=2)
    # the book's survival S(t) = mean_i (1 - p_i)^t:
    # S(1) = (0.9 + 0.7) / 2, S(2) = (0.81 + 0.49) / 2
    assert lifetime_months([0.1, 0.3, np.nan], p) == pytest.approx(0.8 + 0.65)
    # longer than a constant churn at the mean probability (0.2: 0.8 + 0.64)
    assert lifetime_months([0.1, 0.3], p) > 0.8 + 0.64
    # a fixed base churn rate: S(t) = (1 - b)^t, whatever the probabilities
    fixed = ValueParams(discount_rate=0.0, horizon_months=2, base_churn_rate=0.2)
    assert lifetime_months([0.1, 0.3], fixed) == pytest.approx(0.8 + 0.64)
    assert lifetime_months([0.9], fixed) == pytest.approx(0.8 + 0.64)
    # discounted, infinite horizon: x / (1 - x), x = 0.9 / 1.01
    inf = ValueParams(horizon_months=None, base_churn_rate=0.1)
    assert lifetime_months([0.5], inf) == pytest.approx(0.9 / 0.11)
    assert np.isnan(lifetime_months([], p))


def test_value_columns_follow_the_formulas():
    p = ValueParams(save_rate=0.3, contact_cost=4.0)
    s = scores()
    out = add_value_columns(s, p)
    assert list(s.columns) == ["customer_id", "churn_probability", "monthly_fee"]  # no mutation
    x = (1 - s.churn_probability.to_numpy()[:, None]) / 1.01
    lifetime = (x ** np.arange(1, 37)).sum(axis=1).mean()  # sum_t S(t) / (1 + d)^t
    value = s.monthly_fee * p.margin_rate * lifetime
    np.testing.assert_allclose(out["clv"], value)
    np.testing.assert_allclose(out["value_at_risk"], s.churn_probability * value)
    np.testing.assert_allclose(out["expected_gain"], s.churn_probability * 0.3 * value - 4.0)
    np.testing.assert_allclose(
        out["expected_gain"],
        contact_gain(s.churn_probability, customer_value(s.monthly_fee, lifetime, p), p),
    )


def test_value_does_not_depend_on_the_customers_own_probability():
    s = scores()
    out = add_value_columns(s, ValueParams())
    # equal fees, equal CLV, whatever the churn probability
    assert out.groupby("monthly_fee")["clv"].nunique().eq(1).all()
    assert out.groupby("monthly_fee")["churn_probability"].nunique().gt(1).all()
    # with a fixed base churn rate not even the population mean moves: changing one customer's
    # probability leaves every CLV as it was, and only that customer's gain changes
    fixed = ValueParams(base_churn_rate=0.05)
    riskier = s.assign(churn_probability=s.churn_probability.where(s.index != 3, 0.95))
    a, b = add_value_columns(s, fixed), add_value_columns(riskier, fixed)
    pd.testing.assert_series_equal(a["clv"], b["clv"])
    changed = a["expected_gain"].ne(b["expected_gain"])
    assert changed.tolist() == [i == 3 for i in range(len(s))]
    assert b.loc[3, "expected_gain"] > a.loc[3, "expected_gain"]


@settings(max_examples=50, deadline=None)
@given(
    fee=st.floats(1.0, 500.0),
    permille=st.lists(st.integers(0, 1000), min_size=2, max_size=30, unique=True),
)
def test_gain_and_value_at_risk_rise_with_the_probability_at_a_fixed_fee(fee, permille):
    probabilities = [k / 1000 for k in permille]
    s = pd.DataFrame(
        {
            "customer_id": [f"c{i:02d}" for i in range(len(probabilities))],
            "churn_probability": probabilities,
            "monthly_fee": fee,
        }
    )
    out = add_value_columns(s, ValueParams()).sort_values("churn_probability")
    assert (out["expected_gain"].diff().dropna() > 0).all()
    assert (out["value_at_risk"].diff().dropna() > 0).all()
    assert out["priority_rank"].is_monotonic_decreasing  # the riskiest is contacted first


def test_value_tiers_are_bands_of_the_new_clv():
    s = scores(1000, seed=2)
    out = add_value_columns(s, ValueParams())
    # CLV is the fee times one lifetime: the tier follows the fee, never the probability
    by_fee = out.sort_values(["monthly_fee", "churn_probability"])
    codes = by_fee["value_tier"].cat.codes
    assert codes.is_monotonic_increasing
    assert out.groupby("monthly_fee")["value_tier"].nunique().eq(1).all()
    edges = tier_edges(out["clv"], ValueParams())
    expected = assign_tiers(out["clv"], edges, ValueParams().tier_names)
    assert list(out["value_tier"]) == list(expected)


def test_priority_rank_orders_by_gain_and_puts_losses_last():
    p = ValueParams(
        margin_rate=1.0, discount_rate=0.0, horizon_months=1, save_rate=1.0, base_churn_rate=0.5
    )
    # clv = fee x (1 - 0.5); gain = p x 0.5 x fee - 10
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
    # CLV is a band of the fee: distinct fees, so the tier shares are the quantiles' shares
    s = scores(1000, seed=1).assign(
        monthly_fee=np.random.default_rng(1).uniform(5.0, 300.0, 1000).round(2)
    )
    whole = add_value_columns(s, p)
    # scoring in chunks: lifetime and edges from the whole scored population, applied to each chunk
    edges = tier_edges(whole["clv"], p)
    lifetime = lifetime_months(s["churn_probability"], p)
    chunks = [
        add_value_columns(part, p, edges=edges, lifetime=lifetime)
        for part in (s.iloc[i : i + 150] for i in range(0, len(s), 150))
    ]
    pd.testing.assert_series_equal(
        pd.concat(chunks)["value_tier"].astype(str), whole["value_tier"].astype(str)
    )
    pd.testing.assert_series_equal(pd.concat(chunks)["clv"], whole["clv"])
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
    with pytest.raises(ParamsError, match="base_churn_rate"):
        ValueParams(base_churn_rate=1.0)
