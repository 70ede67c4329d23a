"""Customer value: CLV, value tiers, value at risk, and whom to contact first to prevent churn.

CLV (customer lifetime value, expected discounted future margin)
----------------------------------------------------------------
With the customer's monthly margin ``m = monthly_fee x margin_rate``, the model's calibrated
probability ``p`` that the customer churns within the next month (the label horizon, 30 days),
the per-month retention ``r = 1 - p`` (assumed constant from now on), the monthly discount rate
``d`` and a horizon of ``H`` months::

    CLV = sum_{t=1..H} m * r^t / (1 + d)^t = m * x * (1 - x^H) / (1 - x),   x = r / (1 + d)
    CLV (H infinite) = m * x / (1 - x) = m * r / (1 + d - r)

The margin of month t is earned only if the customer is still there after t months of churn
risk, and is discounted t months. ``x = 1`` (no churn, no discount) gives ``m * H``.

Derived columns (one row per scored customer)
---------------------------------------------
* ``value_at_risk = p x CLV``: the expected value lost to churn.
* ``expected_gain = p x save_rate x CLV - contact_cost``: the expected net value of one retention
  contact (it reaches a would-be churner with probability p and keeps them with probability
  save_rate; it always costs contact_cost).
* ``value_tier``: CLV band. Edges are either fixed (``value.tier_clv_edges``) or the
  ``value.tier_quantiles`` of CLV over the WHOLE scored population (never one scoring chunk), so
  a customer's tier does not depend on how the population was split into chunks.
* ``priority_rank``: 1 = contact first, ordered by expected_gain (ties: customer_id), global over
  every customer passed in. Customers with a non-positive gain keep a rank (after every positive
  one) but are left out of the priority list: contacting them is expected to lose money. A
  customer without a fee (CLV unknown) gets no tier and no rank.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from features.base.errors import BadInputError
from models.settings import ValueParams

log = logging.getLogger(__name__)

VALUE_COLUMNS: tuple[str, ...] = (
    "clv",
    "value_tier",
    "value_at_risk",
    "expected_gain",
    "priority_rank",
)
REQUIRED: tuple[str, ...] = ("customer_id", "churn_probability", "monthly_fee")


class ValueInputError(BadInputError, ValueError):
    """The scores handed to the value code miss a column or hold impossible values."""


def clv(
    monthly_fee: np.ndarray | pd.Series,
    churn_probability: np.ndarray | pd.Series,
    margin_rate: float,
    discount_rate: float,
    horizon_months: int | None,
) -> np.ndarray:
    """Expected discounted margin over the horizon (formula in the module docstring)."""
    fee = np.asarray(monthly_fee, dtype=float)
    p = np.asarray(churn_probability, dtype=float)
    margin = fee * margin_rate
    x = (1.0 - p) / (1.0 + discount_rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        if horizon_months is None:
            factor = x / (1.0 - x)
        else:
            factor = np.where(
                np.isclose(x, 1.0),
                float(horizon_months),
                x * (1.0 - x**horizon_months) / (1.0 - x),
            )
    return margin * factor


def check_scores(scores: pd.DataFrame, where: str = "scores") -> None:
    """Raise ValueInputError naming the missing column or an example impossible value."""
    missing = [c for c in REQUIRED if c not in scores.columns]
    if missing:
        raise ValueInputError(
            f"{where}: missing column(s) {missing}; found {list(scores.columns)}. The value "
            "columns need customer_id, churn_probability and the monthly fee as `monthly_fee` "
            "(e.g. the model table's current_monthly_fee renamed)."
        )
    p = pd.to_numeric(scores["churn_probability"], errors="coerce")
    bad = scores.loc[p.isna() | (p < 0) | (p > 1), ["customer_id", "churn_probability"]]
    if len(bad):
        row = bad.iloc[0]
        raise ValueInputError(
            f"{where}: churn_probability must be a number in [0, 1]; {len(bad)} row(s) are not, "
            f"e.g. customer {row.customer_id!r}: {row.churn_probability!r}. Score with a "
            "calibrated model."
        )
    fee = pd.to_numeric(scores["monthly_fee"], errors="coerce")
    negative = scores.loc[fee < 0, ["customer_id", "monthly_fee"]]
    if len(negative):
        row = negative.iloc[0]
        raise ValueInputError(
            f"{where}: monthly_fee must be >= 0; {len(negative)} row(s) are negative, e.g. "
            f"customer {row.customer_id!r}: {row.monthly_fee!r}. Fix the fee in the source."
        )


def tier_edges(clv_values: np.ndarray | pd.Series, p: ValueParams) -> np.ndarray:
    """CLV edges between the tiers: fixed from params, or quantiles of the population given."""
    if p.tier_clv_edges is not None:
        return np.asarray(p.tier_clv_edges, dtype=float)
    values = np.asarray(clv_values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.full(len(p.tier_quantiles), np.nan)
    return np.quantile(values, p.tier_quantiles)


def assign_tiers(clv_values: np.ndarray | pd.Series, edges: np.ndarray, names: tuple[str, ...]):
    """Tier name per customer: names[i] for edges[i-1] <= clv < edges[i]; null CLV -> null."""
    values = np.asarray(clv_values, dtype=float)
    index = np.searchsorted(edges, values, side="right")
    tiers = np.asarray(names, dtype=object)[np.minimum(index, len(names) - 1)]
    tiers[~np.isfinite(values)] = None
    return pd.Categorical(tiers, categories=list(names), ordered=True)


def priority_ranks(customer_id: pd.Series, expected_gain: pd.Series) -> pd.Series:
    """1 = highest expected gain; ties by customer_id; no gain (null) -> no rank."""
    order = pd.DataFrame(
        {"gain": expected_gain.to_numpy(), "id": customer_id.astype(str).to_numpy()}
    )
    known = order["gain"].notna()
    ranked = order.loc[known].sort_values(["gain", "id"], ascending=[False, True], kind="stable")
    rank = pd.Series(pd.NA, index=order.index, dtype="Int64")
    rank.loc[ranked.index] = np.arange(1, len(ranked) + 1)
    return pd.Series(rank.to_numpy(), index=expected_gain.index, dtype="Int64")


def add_value_columns(
    scores: pd.DataFrame, p: ValueParams, edges: np.ndarray | None = None
) -> pd.DataFrame:
    """A copy of `scores` with clv, value_tier, value_at_risk, expected_gain, priority_rank.

    Pass the whole scored population (one row per customer): tier quantiles and priority_rank
    are computed over the rows given. `edges` (from `tier_edges`) overrides the tier edges.
    """
    check_scores(scores)
    fee = pd.to_numeric(scores["monthly_fee"], errors="coerce")
    prob = scores["churn_probability"].astype(float)
    value = clv(fee, prob, p.margin_rate, p.discount_rate, p.horizon_months)
    edges = tier_edges(value, p) if edges is None else np.asarray(edges, dtype=float)
    out = scores.copy()
    out["clv"] = value
    out["value_tier"] = assign_tiers(value, edges, p.tier_names)
    out["value_at_risk"] = prob.to_numpy() * value
    out["expected_gain"] = prob.to_numpy() * p.save_rate * value - p.contact_cost
    out["priority_rank"] = priority_ranks(out["customer_id"], out["expected_gain"])
    if fee.isna().any():
        log.warning(
            "%d of %d customers have no monthly_fee: no CLV, tier or priority rank for them",
            int(fee.isna().sum()),
            len(fee),
        )
    log.info(
        "value: %d customers, CLV tier edges %s, %d with a positive expected contact gain",
        len(out),
        np.round(edges, 2).tolist(),
        int((out["expected_gain"] > 0).sum()),
    )
    return out


def with_value_tier(
    rows: pd.DataFrame, churn_probability: np.ndarray, p: ValueParams
) -> pd.DataFrame:
    """`rows` (model-table rows) with their customers' value tier: CLV from `churn_probability`
    and the fee column at the cutoff, tiers over these rows. Unchanged when the rows already
    have a value tier or no fee column."""
    if "value_tier" in rows.columns or p.fee_column not in rows.columns:
        return rows
    valued = add_value_columns(
        pd.DataFrame(
            {
                "customer_id": rows["customer_id"].astype(str).to_numpy(),
                "churn_probability": churn_probability,
                "monthly_fee": pd.to_numeric(rows[p.fee_column], errors="coerce").to_numpy(),
            }
        ),
        p,
    )
    return rows.assign(value_tier=valued["value_tier"].astype("string").to_numpy())


def priority_list(scores: pd.DataFrame, p: ValueParams | None = None) -> pd.DataFrame:
    """Whom to contact first: customers with a positive expected gain, by priority_rank.

    Columns: priority_rank, customer_id, churn_probability, monthly_fee, clv, value_tier,
    value_at_risk, expected_gain; as_of, risk_tier, churn_type, reason_<i> and reason_<i>_text
    when the scores carry them; owner (the scores' owner_team when present, else the tier's
    owner from value.tier_owners).
    """
    missing = [c for c in (*REQUIRED, *VALUE_COLUMNS) if c not in scores.columns]
    if missing:
        raise ValueInputError(
            f"scores: missing column(s) {missing} for the priority list; run add_value_columns "
            "on the scores first."
        )
    p = p or ValueParams()
    rows = scores.loc[(scores["expected_gain"] > 0) & scores["priority_rank"].notna()]
    rows = rows.sort_values("priority_rank", kind="stable")
    reasons = sorted(
        (c for c in rows.columns if re.fullmatch(r"reason_\d+(_text)?", c)),
        key=lambda c: (int(c.split("_")[1]), c),
    )
    extra = [
        c
        for c in ("as_of", "risk_tier", "churn_type", *reasons, "model_version")
        if c in rows.columns
    ]
    out = rows[
        [
            "priority_rank",
            "customer_id",
            "churn_probability",
            "monthly_fee",
            "clv",
            "value_tier",
            "value_at_risk",
            "expected_gain",
            *extra,
        ]
    ].copy()
    if "owner_team" in rows.columns:
        out["owner"] = rows["owner_team"].to_numpy()
    else:
        out["owner"] = rows["value_tier"].astype(object).map(p.tier_owners).to_numpy()
    return out.reset_index(drop=True)
