"""Money at risk of the driver report: value at risk = churn probability x CLV per test row.

CLV and the discounted lifetime come from models/value.py (the formula of the scores, the
priority list and the profit curve). A module of its own so that the snapshot tables, which
use the driver analysis without customer value, do not depend on models/value.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.settings import ValueParams
from models.value import customer_value, lifetime_months


def value_at_risk(
    rows: pd.DataFrame, churn_probability: np.ndarray, p: ValueParams
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`rows` (every test row) with churn_probability, clv and value_at_risk = p x CLV
    (models/value.py: CLV = fee x margin_rate x the discounted lifetime of these customers), and
    a summary. Without the fee column (value.fee_column) clv and value_at_risk are empty and the
    summary's `available` is False with a note saying why."""
    prob = np.asarray(churn_probability, dtype=float)
    out = rows.assign(churn_probability=prob)
    summary: dict[str, Any] = {
        "available": False,
        "fee_column": p.fee_column,
        "customers": int(len(rows)),
        "expected_churners": float(np.nansum(prob)),
    }
    fee = (
        pd.to_numeric(rows[p.fee_column], errors="coerce").to_numpy(dtype=float)
        if p.fee_column in rows.columns
        else np.full(len(rows), np.nan)
    )
    if not np.isfinite(fee).any():
        summary["note"] = (
            f"The data has no monthly fee (value.fee_column {p.fee_column!r} is "
            + ("empty" if p.fee_column in rows.columns else "not a column of the model table")
            + "), so this report shows no money figures: no CLV, no value at risk."
        )
        return out.assign(clv=np.nan, value_at_risk=np.nan), summary
    lifetime = lifetime_months(prob, p)
    clv = customer_value(fee, lifetime, p)
    risk = prob * clv
    summary.update(
        available=True,
        lifetime_months=lifetime,
        customers_with_fee=int(np.isfinite(fee).sum()),
        mean_monthly_fee=float(np.nanmean(fee)),
        mean_clv=float(np.nanmean(clv)),
        total_clv=float(np.nansum(clv)),
        value_at_risk=float(np.nansum(risk)),
        margin_rate=p.margin_rate,
        discount_rate=p.discount_rate,
        horizon_months=p.horizon_months,
        base_churn_rate=p.base_churn_rate,
    )
    return out.assign(clv=clv, value_at_risk=risk), summary
