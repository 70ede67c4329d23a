"""Profit curve: realised profit of contacting the top k% by each ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.profit import (
    contacts_at,
    per_customer_gains,
    profit_curve,
    profit_report,
    realised_profit_per_customer,
)
from models.settings import ValueParams
from models.value import add_value_columns, priority_list

# value = fee x L, L = mean(1 - p) of our model (one month, margin 100%, no discount);
# a saved churner is worth half of it
P = ValueParams(
    margin_rate=1.0, discount_rate=0.0, horizon_months=1, save_rate=0.5, contact_cost=1.0
)


def hand_frame() -> pd.DataFrame:
    # our model's mean probability 0.5 -> L = 0.5 -> value = fee x 0.5 = 5, 5, 2, 50;
    # realised profit = churned x 0.5 x value - 1 = 1.5, -1, 0, -1
    return pd.DataFrame(
        {
            "customer_id": ["w", "x", "y", "z"],
            "churned": [True, False, True, False],
            "monthly_fee": [10.0, 10.0, 4.0, 100.0],
            # gains p x 0.5 x value - 1: w 1.25, x -0.75, y -0.2, z 4
            "p_model": [0.9, 0.1, 0.8, 0.2],
            # by probability alone: w, y first
            "p_rule": [0.9, 0.1, 0.9, 0.0],
        }
    )


def test_contacts_at():
    assert [contacts_at(k, 4) for k in (1, 25, 26, 50, 100)] == [1, 1, 2, 2, 4]
    assert contacts_at(100, 0) == 0


def test_realised_profit_per_customer_by_hand():
    f = hand_frame()
    got = realised_profit_per_customer(f.churned.to_numpy(), f.monthly_fee.to_numpy() * 0.5, P)
    np.testing.assert_allclose(got, [1.5, -1.0, 0.0, -1.0])
    gains, lifetime = per_customer_gains(f, {"model": "p_model", "rule": "p_rule"}, P)
    assert lifetime == pytest.approx(0.5)
    np.testing.assert_allclose(gains["value"], [5.0, 5.0, 2.0, 50.0])
    np.testing.assert_allclose(gains["realised"], got)
    np.testing.assert_allclose(gains["model"], [1.25, -0.75, -0.2, 4.0])


def test_profit_curve_by_hand():
    report, curves = profit_report(hand_frame(), {"model": "p_model", "rule": "p_rule"}, P)
    model = curves["model"].set_index("percent_contacted")["profit"]
    # order z, w, y, x: -1, +1.5, 0, -1
    assert [model[k] for k in (25, 50, 75, 100)] == pytest.approx([-1.0, 0.5, 0.5, -0.5])
    rule = curves["rule"].set_index("percent_contacted")["profit"]
    # rule gains: w 0.9 x 0.5 x 5 - 1 = 1.25, y 0.9 x 0.5 x 2 - 1 = -0.1, x -0.75, z -1
    # order w, y, x, z: 1.5, 0, -1, -1
    assert [rule[k] for k in (25, 50, 75, 100)] == pytest.approx([1.5, 1.5, 0.5, -0.5])
    rand = curves["random"].set_index("percent_contacted")["profit"]
    assert [rand[k] for k in (25, 50, 100)] == pytest.approx([-0.125, -0.25, -0.5])
    assert report["models"]["model"]["best_profit"] == pytest.approx(0.5)
    assert report["models"]["model"]["best_percent"] == 26  # the first k with 2 contacts
    assert report["models"]["rule"]["best_percent"] == 1
    assert report["at_our_best_percent"]["profit"]["rule"] == pytest.approx(1.5)
    assert report["ours_beats_all_at_our_best_percent"] is False  # rule is better at k = 26
    assert report["base_rate"] == 0.5 and report["churners"] == 2
    assert report["value_lifetime_months"] == pytest.approx(0.5)


def test_the_profit_curve_ranks_by_the_priority_lists_expected_gain():
    """One implementation: our curve's per-customer gain is the list's expected_gain, and the
    curve contacts the customers in the list's priority order."""
    rng = np.random.default_rng(11)
    n = 500
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n)],
            "churned": rng.random(n) < 0.1,
            "monthly_fee": rng.choice([9.99, 19.99, 39.99, 199.0, np.nan], n),
            "p_model": rng.beta(1.2, 15, n),
            "p_rule": rng.random(n),
        }
    )
    p = ValueParams()
    models = {"model": "p_model", "rule": "p_rule"}
    gains, _ = per_customer_gains(frame, models, p)
    scored = add_value_columns(
        frame[["customer_id", "p_model", "monthly_fee"]].rename(
            columns={"p_model": "churn_probability"}
        ),
        p,
    )
    valued = scored.dropna(subset=["monthly_fee"]).reset_index(drop=True)
    np.testing.assert_allclose(gains["model"], valued["expected_gain"], rtol=1e-12)
    np.testing.assert_allclose(gains["value"], valued["clv"], rtol=1e-12)
    # the value is the same for every ranking: only the probability differs between the gains
    np.testing.assert_allclose(
        gains["rule"],
        frame.dropna(subset=["monthly_fee"])["p_rule"].to_numpy() * p.save_rate * valued["clv"]
        - p.contact_cost,
        rtol=1e-12,
    )
    # contacting the top n of the curve = contacting the first n of the priority ranks
    _, curves = profit_report(frame, models, p)
    by_rank = valued.sort_values("priority_rank")["customer_id"]
    realised = gains.set_index("customer_id")["realised"]
    cumulative = realised.loc[by_rank].cumsum().to_numpy()
    curve = curves["model"]
    np.testing.assert_allclose(curve["profit"], cumulative[curve["contacted"] - 1])
    # and the priority list is a prefix of that order (the customers with a positive gain)
    on_list = priority_list(scored, p)
    assert on_list["customer_id"].tolist() == by_rank.iloc[: len(on_list)].tolist()
    assert 0 < len(on_list) < len(by_rank)


def test_profit_curve_does_not_depend_on_row_order():
    f = hand_frame()
    shuffled = f.sample(frac=1.0, random_state=3)
    realised = np.arange(4.0)
    a = profit_curve(f.p_model.to_numpy(), realised, f.customer_id.to_numpy())
    order = shuffled.index.to_numpy()
    b = profit_curve(shuffled.p_model.to_numpy(), realised[order], shuffled.customer_id.to_numpy())
    pd.testing.assert_frame_equal(a, b)


def test_better_probabilities_earn_more():
    """Ranked by the true probabilities, the best contact list beats noisy and random rankings."""
    rng = np.random.default_rng(7)
    n = 20_000
    true_p = rng.beta(1.2, 18, n)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "churned": rng.random(n) < true_p,
            "monthly_fee": rng.choice([9.99, 19.99, 39.99, 199.0], n, p=[0.5, 0.3, 0.15, 0.05]),
            "p_true": true_p,
            "p_noisy": np.clip(true_p + rng.normal(0, 0.08, n), 0.001, 0.999),
            "p_flat": np.full(n, true_p.mean()),
        }
    )
    p = ValueParams(contact_cost=5.0)
    models = {"true": "p_true", "noisy": "p_noisy", "flat": "p_flat"}
    report, curves = profit_report(frame, models, p)
    at_k = report["at_our_best_percent"]["profit"]
    assert report["ours_beats_all_at_our_best_percent"]
    assert at_k["true"] > at_k["noisy"] > at_k["random"]
    assert report["models"]["true"]["best_profit"] > 0 > report["models"]["random"]["best_profit"]
    # contacting everyone earns the same whatever the ranking
    ends = {name: c["profit"].iloc[-1] for name, c in curves.items()}
    assert max(ends.values()) == pytest.approx(min(ends.values()))


def test_customers_without_fee_are_left_out():
    f = hand_frame()
    f.loc[3, "monthly_fee"] = np.nan
    report, curves = profit_report(f, {"model": "p_model"}, P)
    assert report["customers"] == 3 and report["customers_without_fee"] == 1
    assert curves["model"]["contacted"].max() == 3


def test_evaluate_writes_profit_curves(tmp_path):
    from models.evaluation.metrics import PREDICTIONS as MODELS
    from pipeline.evaluate import profit_curves

    f = hand_frame().assign(p_logreg=[0.5, 0.5, 0.5, 0.5])
    rows = f[["customer_id"]].assign(current_monthly_fee=f.monthly_fee)
    preds = f.drop(columns="monthly_fee")
    out = profit_curves(preds, rows, P, tmp_path)
    assert not out["skipped"]
    assert set(out["models"]) == {*MODELS, "random"}
    written = pd.read_csv(tmp_path / "profit" / "model.csv")
    assert list(written.columns) == ["percent_contacted", "contacted", "profit"]
    assert len(written) == 100
    skipped = profit_curves(preds, rows.drop(columns="current_monthly_fee"), P, tmp_path / "x")
    assert skipped["skipped"] and "value.fee_column" in skipped["reason"]
