"""Tiny simulated model tables: one row per (customer, monthly cutoff), planted churn drivers.

A module of its own (on the tests' path, like helpers.py) so that tests in any folder import it
by one name; `from conftest import ...` would find whichever conftest was imported first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_model_table(
    customers: int = 700, cutoffs: int = 6, seed: int = 0, base_logit: float = -2.6
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model table and its truth (true churn probability per row) from a known logistic model."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2024-07-01", periods=cutoffs, freq="MS", tz="UTC")
    ids = np.array([f"c{i:05d}" for i in range(customers)])
    plan = rng.choice(["basic", "pro", "enterprise"], customers, p=[0.5, 0.35, 0.15])
    country = rng.choice(
        [f"C{i:02d}" for i in range(30)], customers, p=np.r_[[0.5], [0.5 / 29] * 29]
    )
    signup_days = rng.integers(30, 900, customers)
    rows, truth = [], []
    for m, cutoff in enumerate(months):
        n = customers
        days_since_login = rng.exponential(8, n)
        csat = np.where(rng.random(n) < 0.3, np.nan, rng.normal(7, 1.8, n).clip(1, 10))
        failures = rng.poisson(0.3, n)
        z = (
            base_logit
            + 0.09 * days_since_login
            - 0.35 * np.nan_to_num(csat - 7, nan=0.0)
            + 0.8 * failures
            + np.where(plan == "basic", 0.4, 0.0)
        )
        p = 1 / (1 + np.exp(-z))
        y = rng.random(n) < p
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "cutoff": cutoff,
                    "churned": y,
                    "churn_type": np.where(y, "dissatisfaction", None),
                    "days_since_last_login": days_since_login,
                    "csat_mean_90d": csat,
                    "payment_failures_90d": failures,
                    "tenure_days": signup_days + 30 * m,
                    "has_discount": rng.random(n) < 0.2,
                    "noise": rng.normal(size=n),
                    "plan": plan,
                    "country": country,
                }
            )
        )
        truth.append(
            pd.DataFrame({"customer_id": ids, "month_start": cutoff, "true_probability": p})
        )
    return pd.concat(rows, ignore_index=True), pd.concat(truth, ignore_index=True)
