"""BG/NBD: the fit recovers the parameters of simulated customers, and its conditional
expectations match what the simulated customers then do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.bgnbd import BGNBD, BGNBDParams, log_likelihood, purchase_history

# close to the CDNOW estimates (weeks): few repeat buyers, a heavy-tailed purchase rate
TRUE = BGNBDParams(r=0.25, alpha=4.0, a=0.8, b=2.5)
HORIZON = 39.0  # weeks after the calibration period


def simulate(
    p: BGNBDParams, n: int, horizon: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The BG/NBD process: (frequency, recency, age) up to each customer's age, and the
    purchases in (age, age + horizon]. Time 0 is the first purchase; dropout follows a repeat
    purchase with probability p."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(p.r, 1 / p.alpha, n)
    drop = rng.beta(p.a, p.b, n)
    age = rng.uniform(30, 78, n)
    x, t_x, later = np.zeros(n), np.zeros(n), np.zeros(n)
    now, active = np.zeros(n), np.ones(n, dtype=bool)
    while active.any():
        i = np.flatnonzero(active)
        now[i] += rng.exponential(1 / rate[i])
        past_end = now[i] > age[i] + horizon
        active[i[past_end]] = False
        i = i[~past_end]
        in_calibration = now[i] <= age[i]
        x[i[in_calibration]] += 1
        t_x[i[in_calibration]] = now[i[in_calibration]]
        later[i[~in_calibration]] += 1
        active[i[rng.random(i.size) < drop[i]]] = False
    return x, t_x, age, later


def fitted_with(params: BGNBDParams) -> BGNBD:
    model = BGNBD()
    model.params_ = params
    return model


def test_fit_recovers_the_simulated_parameters() -> None:
    x, t_x, age, _ = simulate(TRUE, 20_000, HORIZON, seed=0)
    model = BGNBD().fit(x, t_x, age)
    fit = model.params_
    # Tolerance: at 20,000 customers the estimates' standard errors are about 2-4 % (r, alpha)
    # and 6-10 % (a, b) (checked over seeds 0-4: largest errors 3.6 % and 12 %); 25 % is more
    # than two standard errors for each, and far below what a wrong likelihood gives.
    for name in ("r", "alpha", "a", "b"):
        got, want = getattr(fit, name), getattr(TRUE, name)
        assert abs(got / want - 1) < 0.25, f"{name}: fitted {got:.3f}, true {want}"
    # the maximum is a maximum: the truth does not fit better than the estimate
    assert model.log_likelihood_ >= log_likelihood(TRUE, x, t_x, age).sum() - 1e-6
    assert model.converged_


@pytest.mark.parametrize(("lo", "hi"), [(0, 0), (1, 2), (3, np.inf)])
def test_conditional_expectation_matches_monte_carlo(lo: float, hi: float) -> None:
    """Among customers with a given kind of history, the model's expected purchases (and
    probability of none) in (T, T + t] average to what the simulated customers then did."""
    x, t_x, age, later = simulate(TRUE, 40_000, HORIZON, seed=1)
    model = fitted_with(TRUE)
    group = (x >= lo) & (x <= hi)
    expected = model.expected_purchases(HORIZON, x, t_x, age)[group]
    none = model.probability_no_purchase(HORIZON, x, t_x, age)[group]
    for predicted, observed in ((expected, later[group]), (none, later[group] == 0)):
        diff = observed - predicted
        z = diff.mean() / (diff.std() / np.sqrt(diff.size))
        # Monte-Carlo tolerance: 4 standard errors of the mean difference
        assert abs(z) < 4, (
            f"x in [{lo}, {hi}]: predicted {predicted.mean():.4f}, "
            f"simulated {np.mean(observed):.4f} (z = {z:.2f})"
        )


def test_closed_forms_agree_at_the_limits() -> None:
    model = fitted_with(TRUE)
    x, t_x, age = np.array([0.0, 2, 10]), np.array([0.0, 5, 50]), np.array([40.0, 40, 60])
    # no time ahead: no purchases, certainly none
    assert np.allclose(model.expected_purchases(1e-9, x, t_x, age), 0, atol=1e-8)
    assert np.allclose(model.probability_no_purchase(1e-9, x, t_x, age), 1)
    # a customer without repeat purchases cannot have dropped out
    assert model.probability_alive(x, t_x, age)[0] == pytest.approx(1)
    # more time ahead: more purchases expected, a smaller chance of none
    assert np.all(
        model.expected_purchases(52, x, t_x, age) > model.expected_purchases(4, x, t_x, age)
    )
    assert np.all(
        model.probability_no_purchase(52, x, t_x, age)
        < model.probability_no_purchase(4, x, t_x, age)
    )


def test_impossible_history_is_named() -> None:
    with pytest.raises(ValueError, match="recency 50.0, age 40.0"):
        BGNBD().fit([1, 2], [5, 50], [40, 40])
    with pytest.raises(RuntimeError, match="not fitted"):
        BGNBD().expected_purchases(10, [0], [0], [10])


def test_purchase_history_counts_days_strictly_before_the_cutoff() -> None:
    purchases = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c"],
            "ts": pd.to_datetime(
                [
                    "1997-01-01 00:00",
                    "1997-01-01 15:00",
                    "1997-01-15 00:00",
                    "1997-02-01 00:00",
                    "1997-01-29 00:00",
                    "1997-02-05 00:00",
                ],
                utc=True,
            ),
        }
    )
    h = purchase_history(purchases, pd.Timestamp("1997-02-01", tz="UTC"))
    assert list(h.index) == ["a", "b"]  # c first bought after the cutoff; a's 02-01 is not before
    assert h.loc["a"].tolist() == [1.0, 2.0, pytest.approx(31 / 7)]
    assert h.loc["b"].tolist() == [0.0, 0.0, pytest.approx(3 / 7)]
