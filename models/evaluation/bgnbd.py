"""BG/NBD (Fader, Hardie & Lee 2005): the buy-till-you-die model of a non-contractual purchase log.

Each customer buys at Poisson rate lambda ~ Gamma(r, alpha) while alive and, after each purchase,
drops out for good with probability p ~ Beta(a, b). A customer's history is summarised by
`frequency` x (repeat purchases: purchase days after the first), `recency` t_x (first to last
purchase) and `age` T (first purchase to the cutoff), all in one time unit. Used as a peer of the
churn model on purchase logs (bench/cdnow_peers.py): fitted by maximum likelihood on the history
before a cutoff, it scores the expected purchases, or the probability of none, in (T, T + t].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

ArrayLike = np.ndarray | pd.Series | list[float]


@dataclass(frozen=True)
class BGNBDParams:
    """The four BG/NBD parameters: lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


def _arrays(
    frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    big_t = np.asarray(age, dtype=float)
    if not (x.shape == t_x.shape == big_t.shape):
        raise ValueError(
            f"frequency, recency and age need the same shape; found {x.shape}, {t_x.shape}, "
            f"{big_t.shape}"
        )
    bad = (x < 0) | (t_x < 0) | (t_x > big_t) | ((x == 0) & (t_x != 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} customer(s) with an impossible history, e.g. frequency {x[i]}, "
            f"recency {t_x[i]}, age {big_t[i]}: need 0 <= recency <= age, recency 0 when "
            "frequency is 0"
        )
    return x, t_x, big_t


def _log_terms(
    p: BGNBDParams, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log of the 'still alive at T' and 'dropped after the last purchase' likelihood terms.

    The second is -inf for customers without a repeat purchase (they cannot have dropped out).
    """
    r, alpha, a, b = p.r, p.alpha, p.a, p.b
    common = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
    )
    alive = common - (r + x) * np.log(alpha + big_t)
    repeat = x > 0
    dropped = np.full_like(x, -np.inf)
    xr = x[repeat]
    dropped[repeat] = (
        common[repeat] + np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    )
    return alive, dropped


def log_likelihood(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
) -> np.ndarray:
    """Each customer's BG/NBD log-likelihood (FHL 2005, equation 6)."""
    x, t_x, big_t = _arrays(frequency, recency, age)
    alive, dropped = _log_terms(params, x, t_x, big_t)
    return np.logaddexp(alive, dropped)


class BGNBD:
    """BG/NBD fitted by maximum likelihood (scipy L-BFGS-B on the log parameters)."""

    def __init__(self, max_iter: int = 2000, initial: BGNBDParams | None = None) -> None:
        self.max_iter = max_iter
        self.initial = initial

    def fit(self, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> BGNBD:
        """Fit the four parameters to the customers' (frequency, recency, age)."""
        x, t_x, big_t = _arrays(frequency, recency, age)
        if x.size == 0:
            raise ValueError("BG/NBD fit: no customers")
        # identical histories share one likelihood term: fit on the distinct ones, weighted
        hist = pd.DataFrame({"x": x, "t_x": t_x, "T": big_t})
        grouped = hist.value_counts().reset_index(name="n")
        gx, gt, gT, n = (grouped[c].to_numpy(dtype=float) for c in ("x", "t_x", "T", "n"))
        start = self.initial or BGNBDParams(1.0, float(np.mean(big_t)) or 1.0, 1.0, 1.0)
        theta0 = np.log([start.r, start.alpha, start.a, start.b])

        def neg_ll(theta: np.ndarray) -> float:
            p = BGNBDParams(*np.exp(np.clip(theta, -20, 20)))
            value = -float(np.dot(n, log_likelihood(p, gx, gt, gT))) / n.sum()
            return value if np.isfinite(value) else 1e100

        res = optimize.minimize(
            neg_ll, theta0, method="L-BFGS-B", options={"maxiter": self.max_iter}
        )
        if not res.success:
            res = optimize.minimize(
                neg_ll,
                res.x,
                method="Nelder-Mead",
                options={"maxiter": self.max_iter * 5, "xatol": 1e-8, "fatol": 1e-12},
            )
        if not np.all(np.isfinite(res.x)):
            raise RuntimeError(f"BG/NBD fit failed: {res.message}")
        self.params_ = BGNBDParams(*np.exp(res.x))
        self.log_likelihood_ = -float(res.fun) * float(n.sum())
        self.converged_ = bool(res.success)
        self.n_customers_ = int(n.sum())
        return self

    def _fitted(self) -> BGNBDParams:
        if not hasattr(self, "params_"):
            raise RuntimeError("BGNBD is not fitted yet: call fit(frequency, recency, age) first")
        return self.params_

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
    ) -> np.ndarray:
        """P(the customer has not dropped out by T | history) (FHL 2005, equation 11)."""
        x, t_x, big_t = _arrays(frequency, recency, age)
        alive, dropped = _log_terms(self._fitted(), x, t_x, big_t)
        return np.exp(alive - np.logaddexp(alive, dropped))

    def expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
    ) -> np.ndarray:
        """E[purchases in (T, T + t] | history] (FHL 2005, equation 10)."""
        x, t_x, big_t = _arrays(frequency, recency, age)
        p = self._fitted()
        r, alpha, a, b = p.r, p.alpha, p.a, p.b
        z = t / (alpha + big_t + t)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        ratio = np.exp((r + x) * (np.log(alpha + big_t) - np.log(alpha + big_t + t)))
        numerator = (a + b + x - 1) / (a - 1) * (1 - ratio * hyp)
        odds_dropped = np.zeros_like(x)
        repeat = x > 0
        xr = x[repeat]
        odds_dropped[repeat] = (
            a
            / (b + xr - 1)
            * np.exp((r + xr) * (np.log(alpha + big_t[repeat]) - np.log(alpha + t_x[repeat])))
        )
        return numerator / (1 + odds_dropped)

    def probability_no_purchase(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
    ) -> np.ndarray:
        """P(no purchase in (T, T + t] | history).

        Alive at T with rate lambda, the next purchase comes after t with probability
        exp(-lambda t) (dropout only follows a purchase), so the 'alive' likelihood term with T
        replaced by T + t, over the full likelihood, is this probability.
        """
        x, t_x, big_t = _arrays(frequency, recency, age)
        p = self._fitted()
        alive, dropped = _log_terms(p, x, t_x, big_t)
        alive_later, _ = _log_terms(p, x, t_x, big_t + t)
        return np.exp(np.logaddexp(alive_later, dropped) - np.logaddexp(alive, dropped))


def purchase_history(
    purchases: pd.DataFrame,
    cutoff: pd.Timestamp,
    unit_days: float = 7.0,
    id_column: str = "customer_id",
    time_column: str = "ts",
) -> pd.DataFrame:
    """Per customer with a purchase strictly before `cutoff`: frequency, recency and age.

    Purchases are counted by day (several on one day are one purchase); frequency = purchase
    days after the first, recency = first to last purchase day, age = first purchase day to the
    cutoff day, in units of `unit_days` days.
    """
    day = pd.to_datetime(purchases[time_column], utc=True).dt.floor("D")
    cut = pd.Timestamp(cutoff)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    days = pd.DataFrame({"customer_id": purchases[id_column].to_numpy(), "day": day})
    days = days[days["day"] < cut.floor("D")].drop_duplicates()
    g = days.groupby("customer_id")["day"]
    first, last, count = g.min(), g.max(), g.size()
    unit = pd.Timedelta(days=unit_days)
    return pd.DataFrame(
        {
            "frequency": (count - 1).astype(float),
            "recency": (last - first) / unit,
            "age": (cut.floor("D") - first) / unit,
        }
    )
