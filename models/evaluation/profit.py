"""Profit curve of a retention campaign: the realised profit of contacting the top k% by a ranking.

Each ranking orders the test customers by its own expected contact gain,
``p x save_rate x CLV(p) - contact_cost`` (models/value.py), with its own probabilities p. The
realised profit of contacting the first n customers of a ranking is::

    sum over contacted (churned x save_rate x value - contact_cost)

A contact saves an actual churner with probability save_rate (so this is the expected profit
given the outcomes) and costs contact_cost for everyone. ``value`` is the same for every ranking:
the CLV of the customer's fee at the observed churn rate of the test population. It does not use
any ranking's probabilities, so the curves compare rankings, not the models' own value estimates.
``random`` is the expected profit of contacting n customers drawn at random: n/N of the total.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from models.settings import ValueParams
from models.value import clv

PERCENTS: tuple[int, ...] = tuple(range(1, 101))


def contacts_at(percent: int, population: int) -> int:
    """How many customers 'the top k%' contacts: ceil(k% of the population)."""
    return min(population, math.ceil(percent * population / 100))


def expected_gain(probability: np.ndarray, fee: np.ndarray, p: ValueParams) -> np.ndarray:
    """A ranking's own expected gain of one contact: p x save_rate x CLV(p) - contact_cost."""
    value = clv(fee, probability, p.margin_rate, p.discount_rate, p.horizon_months)
    return probability * p.save_rate * value - p.contact_cost


def realised_profit_per_customer(
    churned: np.ndarray, fee: np.ndarray, base_rate: float, p: ValueParams
) -> np.ndarray:
    """What contacting each customer earned: churned x save_rate x CLV(fee, base rate) - cost."""
    value = clv(fee, np.full(len(fee), base_rate), p.margin_rate, p.discount_rate, p.horizon_months)
    return churned.astype(float) * p.save_rate * value - p.contact_cost


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
    fee = frame["monthly_fee"].to_numpy(dtype=float)
    known = np.isfinite(fee)
    frame, fee = frame.loc[known], fee[known]
    churned = frame["churned"].to_numpy(dtype=bool)
    base_rate = float(churned.mean()) if len(churned) else float("nan")
    ids = frame["customer_id"].astype(str).to_numpy()
    realised = realised_profit_per_customer(churned, fee, base_rate, p)
    curves = {
        name: profit_curve(expected_gain(frame[col].to_numpy(dtype=float), fee, p), realised, ids)
        for name, col in models.items()
    }
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
        "customers": int(len(frame)),
        "customers_without_fee": int((~known).sum()),
        "churners": int(churned.sum()),
        "base_rate": base_rate,
        "save_rate": p.save_rate,
        "contact_cost": p.contact_cost,
        "value_basis": "CLV of the monthly fee at the observed test churn rate (all rankings)",
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
