"""Customer value: CLV, value tiers, value at risk, and whom to contact first to prevent churn.

CLV: the expected discounted future margin of KEEPING the customer
-------------------------------------------------------------------
With the customer's monthly margin ``m = monthly_fee x margin_rate``, the monthly discount rate
``d``, a horizon of ``H`` months (``value.horizon_months``; None = infinite) and the book's
survival curve ``S(t)``, the share of customers still there after ``t`` months::

    L   = sum_{t=1..H} S(t) / (1 + d)^t       (discounted lifetime in months: `lifetime_months`)
    CLV = m x L                               (`customer_value`)

``S(t)`` is the survival of the WHOLE population valued, the same for every customer, never the
customer's own churn probability ``p``:

* by default ``S(t) = mean_i (1 - p_i)^t`` over the customers valued (the score stage: the whole
  scored population; ``evaluate``: the test rows under our model), each customer ``i`` keeping
  their calibrated monthly churn probability ``p_i`` from now on. ``L`` is then the expected
  discounted lifetime of a customer drawn at random from the book. (It is longer than a constant
  churn at the mean probability, ``(1 - mean p)^t``: the low-risk majority stays longer.)
* with ``value.base_churn_rate = b`` set: ``S(t) = (1 - b)^t`` for everyone.

Per customer ``i`` the sum is the closed form of ``clv`` (margin 1, ``x = (1 - p_i) / (1 + d)``)::

    sum_{t=1..H} x^t = x * (1 - x^H) / (1 - x)        (H infinite: x / (1 - x); x = 1: H)

Why not the customer's own ``p``: CLV is the value of a customer who stays, i.e. whom the contact
saved; the risk the contact removed says nothing reliable about their retention afterwards. A CLV
from ``p`` multiplies ``p`` by about ``1 / p`` in ``p x CLV`` and cancels the model out: the
priority list then ranks by fee alone (Spearman(expected_gain, p) = 0.01 on the default scores).
With the book's lifetime, CLV depends on the fee only (equal fees, equal CLV, whatever the risk)
and the value at risk and the gain rise with ``p``. (One customer moves ``L`` by about ``1 / N``
of their own term; ``value.base_churn_rate`` removes even that.)

Derived columns (one row per scored customer)
---------------------------------------------
The profit curve of ``evaluate`` (models/evaluation/profit.py) calls the same ``lifetime_months``,
``customer_value`` and ``contact_gain``, so the policy it evaluates is the one the list applies.

* ``clv = m x L``.
* ``value_at_risk = p x CLV``: the expected value lost to churn next month.
* ``expected_gain = p x save_rate x CLV - contact_cost`` (``contact_gain``): the expected net value
  of one retention contact (it reaches a would-be churner with probability p and keeps them with
  probability save_rate; it always costs contact_cost). At a fixed fee it rises with p.
* ``value_tier``: CLV band, hence a band of the fee. Edges are either fixed
  (``value.tier_clv_edges``) or the ``value.tier_quantiles`` of CLV over the WHOLE scored
  population (never one scoring chunk), so a customer's tier does not depend on how the
  population was split into chunks. A CLV equal to an edge belongs to the upper tier, so with
  many equal fees the tier shares differ from the quantiles.
* ``priority_rank``: 1 = contact first, ordered by expected_gain (ties: customer_id), global over
  every customer passed in. Customers with a non-positive gain keep a rank (after every positive
  one) but are left out of the priority list: contacting them is expected to lose money. A
  customer without a fee (CLV unknown) gets no tier and no rank.

Without any fee (no ``value.fee_column`` in the data, e.g. a marketplace's order log) there is no
value: ``clv``, ``value_tier``, ``value_at_risk`` and ``expected_gain`` are present but empty, and
``priority_rank`` orders every customer by churn probability (ties: customer_id), since contacting
the riskiest first is the best order left (``without_value``). The priority list then holds every
scored customer in that order, with the same columns (``priority_list``).
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
    """Discounted margin over the horizon at a constant monthly churn rate (module docstring).

    The value columns use it per customer only to build the book's lifetime (`lifetime_months`);
    a customer's CLV never comes from their own churn probability.
    """
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


def lifetime_months(churn_probability: np.ndarray | pd.Series, p: ValueParams) -> float:
    """Discounted expected lifetime L (months) of a customer of the book (module docstring)."""
    if p.base_churn_rate is not None:
        rates = np.array([p.base_churn_rate], dtype=float)
    else:
        rates = np.asarray(churn_probability, dtype=float)
        rates = rates[np.isfinite(rates)]
    if len(rates) == 0:
        return float("nan")
    return float(clv(np.ones(len(rates)), rates, 1.0, p.discount_rate, p.horizon_months).mean())


def customer_value(
    monthly_fee: np.ndarray | pd.Series, lifetime: float, p: ValueParams
) -> np.ndarray:
    """CLV of keeping each customer: fee x margin_rate x the book's lifetime (`lifetime_months`)."""
    return np.asarray(monthly_fee, dtype=float) * p.margin_rate * lifetime


def contact_gain(
    churn_probability: np.ndarray | pd.Series, value: np.ndarray | pd.Series, p: ValueParams
) -> np.ndarray:
    """Expected net value of one retention contact: p x save_rate x value - contact_cost."""
    prob = np.asarray(churn_probability, dtype=float)
    return prob * p.save_rate * np.asarray(value, dtype=float) - p.contact_cost


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
    scores: pd.DataFrame,
    p: ValueParams,
    edges: np.ndarray | None = None,
    lifetime: float | None = None,
) -> pd.DataFrame:
    """A copy of `scores` with clv, value_tier, value_at_risk, expected_gain, priority_rank.

    Pass the whole scored population (one row per customer): the lifetime, tier quantiles and
    priority_rank are computed over the rows given. `edges` (from `tier_edges`) and `lifetime`
    (from `lifetime_months`) override them, e.g. when valuing one chunk of a population.
    """
    check_scores(scores)
    fee = pd.to_numeric(scores["monthly_fee"], errors="coerce")
    prob = scores["churn_probability"].astype(float)
    lifetime = lifetime_months(prob, p) if lifetime is None else float(lifetime)
    value = customer_value(fee, lifetime, p)
    edges = tier_edges(value, p) if edges is None else np.asarray(edges, dtype=float)
    out = scores.copy()
    out["clv"] = value
    out["value_tier"] = assign_tiers(value, edges, p.tier_names)
    out["value_at_risk"] = prob.to_numpy() * value
    out["expected_gain"] = contact_gain(prob, value, p)
    out["priority_rank"] = priority_ranks(out["customer_id"], out["expected_gain"])
    if fee.isna().any():
        log.warning(
            "%d of %d customers have no monthly_fee: no CLV, tier or priority rank for them",
            int(fee.isna().sum()),
            len(fee),
        )
    log.info(
        "value: %d customers, discounted lifetime %.2f months, CLV tier edges %s, %d with a "
        "positive expected contact gain",
        len(out),
        lifetime,
        np.round(edges, 2).tolist(),
        int((out["expected_gain"] > 0).sum()),
    )
    return out


def without_value(scores: pd.DataFrame) -> pd.DataFrame:
    """A copy of `scores` (customer_id, churn_probability) when no customer has a fee: the value
    columns empty (null), priority_rank by churn probability (1 = riskiest; ties: customer_id)."""
    missing = [c for c in ("customer_id", "churn_probability") if c not in scores.columns]
    if missing:
        raise ValueInputError(f"scores: missing column(s) {missing}; found {list(scores.columns)}")
    out = scores.copy()
    n = len(out)
    out["monthly_fee"] = np.full(n, np.nan)
    out["clv"] = np.full(n, np.nan)
    out["value_tier"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out["value_at_risk"] = np.full(n, np.nan)
    out["expected_gain"] = np.full(n, np.nan)
    out["priority_rank"] = priority_ranks(
        out["customer_id"], out["churn_probability"].astype(float)
    )
    return out


def with_value_tier(
    rows: pd.DataFrame, churn_probability: np.ndarray, p: ValueParams
) -> pd.DataFrame:
    """`rows` (model-table rows) with their customers' value tier: CLV from the fee column at the
    cutoff and the lifetime of these rows' `churn_probability`, tiers over these rows. Unchanged
    when the rows already have a value tier or no fee column."""
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
    Without value (expected_gain empty, `without_value`): every ranked customer, by churn
    probability.

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
    # a null gain with a rank only comes from `without_value`: no fee, ranked by probability
    gain = pd.to_numeric(scores["expected_gain"], errors="coerce")
    rows = scores.loc[((gain > 0) | gain.isna()) & scores["priority_rank"].notna()]
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
