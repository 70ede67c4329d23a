"""Profit curve of a retention campaign: the realised profit of contacting the top k% by a ranking.

The value of keeping each test customer is the one the priority list uses, from the same
functions of models/value.py: ``value = customer_value(fee, L)``, the fee's margin over ``L``, the
discounted lifetime of the test book (``lifetime_months`` of OUR model's probabilities on the
test rows, as the score stage takes it over the scored population; or at value.base_churn_rate).
It does not depend on any customer's own probability, so it is the same for every ranking.

Each ranking orders the test customers by its expected contact gain, ``contact_gain``::

    p x save_rate x value - contact_cost

with its own probabilities p; for our model this is exactly the priority list's expected_gain on
the same rows. The realised profit of contacting the first n customers of a ranking is the same
function with the outcome in place of p::

    sum over contacted (churned x save_rate x value - contact_cost)

A contact saves an actual churner with probability save_rate (so this is the expected profit
given the outcomes) and costs contact_cost for everyone. Since the value is the same for every
ranking, the curves compare rankings, not the models' own value estimates.
``random`` is the expected profit of contacting n customers drawn at random: n/N of the total.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from models.settings import ValueParams
from models.value import contact_gain, customer_value, lifetime_months

PERCENTS: tuple[int, ...] = tuple(range(1, 101))


def contacts_at(percent: int, population: int) -> int:
    """How many customers 'the top k%' contacts: ceil(k% of the population)."""
    return min(population, math.ceil(percent * population / 100))


def realised_profit_per_customer(
    churned: np.ndarray, value: np.ndarray, p: ValueParams
) -> np.ndarray:
    """What contacting each customer earned: churned x save_rate x value - contact_cost."""
    return contact_gain(np.asarray(churned, dtype=float), value, p)


def per_customer_gains(
    frame: pd.DataFrame, models: dict[str, str], p: ValueParams
) -> tuple[pd.DataFrame, float]:
    """Per customer with a fee: value, realised profit and each ranking's expected contact gain.

    Returns (a frame of customer_id, value, realised and one gain column per model, named after
    it; the discounted lifetime in months of the value). The first model is ours: the lifetime
    comes from its probabilities over all rows, as the priority list takes it over all scored
    customers, so our column equals the list's expected_gain for the same rows.
    """
    ours = next(iter(models))
    # over every row, as add_value_columns takes it over every scored customer
    lifetime = lifetime_months(frame[models[ours]].to_numpy(dtype=float), p)
    fee = frame["monthly_fee"].to_numpy(dtype=float)
    rows = frame.loc[np.isfinite(fee)]
    fee = fee[np.isfinite(fee)]
    value = customer_value(fee, lifetime, p)
    out = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str).to_numpy(),
            "value": value,
            "realised": realised_profit_per_customer(
                rows["churned"].to_numpy(dtype=bool), value, p
            ),
        }
    )
    for name, col in models.items():
        out[name] = contact_gain(rows[col].to_numpy(dtype=float), value, p)
    return out, lifetime


def profit_curve(
    ranking_gain: np.ndarray | None,
    realised: np.ndarray,
    customer_id: np.ndarray,
) -> pd.DataFrame:
    """Realised profit of contacting the top k% (k = 1..100) by `ranking_gain` (None: random).

    Ties in the gain are broken by customer_id, so the curve does not depend on row order.
    """
    n = len(realised)
    counts = np.array([contacts_at(k, n) for k in PERCENTS])
    if ranking_gain is None:
        profit = realised.sum() * counts / max(n, 1)
    else:
        order = np.lexsort((np.asarray(customer_id, dtype=str), -np.asarray(ranking_gain)))
        cumulative = np.concatenate([[0.0], np.cumsum(realised[order])])
        profit = cumulative[counts]
    return pd.DataFrame({"percent_contacted": PERCENTS, "contacted": counts, "profit": profit})


def profit_report(
    frame: pd.DataFrame, models: dict[str, str], p: ValueParams
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Profit curves for every model's ranking and random; the profit-maximising k per model.

    `frame` has customer_id, churned, monthly_fee and one probability column per model
    (`models`: name -> column). The first model is ours: the report says whether its best
    contact list beats every other ranking at the same k.
    """
    known = np.isfinite(frame["monthly_fee"].to_numpy(dtype=float))
    churned = frame.loc[known, "churned"].to_numpy(dtype=bool)
    base_rate = float(churned.mean()) if len(churned) else float("nan")
    gains, lifetime = per_customer_gains(frame, models, p)
    realised = gains["realised"].to_numpy()
    ids = gains["customer_id"].to_numpy()
    curves = {name: profit_curve(gains[name].to_numpy(), realised, ids) for name in models}
    curves["random"] = profit_curve(None, realised, ids)
    summary: dict[str, dict[str, Any]] = {}
    for name, curve in curves.items():
        best = curve.loc[curve["profit"].idxmax()]
        summary[name] = {
            "best_percent": int(best["percent_contacted"]),
            "best_contacted": int(best["contacted"]),
            "best_profit": float(best["profit"]),
            "profit_contact_all": float(curve["profit"].iloc[-1]),
        }
    ours = next(iter(models))
    k = summary[ours]["best_percent"]
    at_k = {
        name: float(c.loc[c["percent_contacted"] == k, "profit"].iloc[0])
        for name, c in curves.items()
    }
    report: dict[str, Any] = {
        "customers": int(known.sum()),
        "customers_without_fee": int((~known).sum()),
        "churners": int(churned.sum()),
        "base_rate": base_rate,
        "save_rate": p.save_rate,
        "contact_cost": p.contact_cost,
        "value_lifetime_months": lifetime,
        "value_basis": "fee x margin_rate x the discounted lifetime of the test book under our "
        "model (models/value.py), the same for all rankings and the priority list",
        "models": summary,
        "ours": ours,
        "at_our_best_percent": {"percent_contacted": k, "profit": at_k},
        "ours_beats_all_at_our_best_percent": all(
            at_k[ours] > v for name, v in at_k.items() if name != ours
        ),
        "ours_best_beats_all_best": all(
            summary[ours]["best_profit"] > s["best_profit"] for n, s in summary.items() if n != ours
        ),
    }
    return report, curves
