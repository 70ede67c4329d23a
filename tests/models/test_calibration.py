"""Calibrators repair distorted scores, round-trip through JSON and are chosen out of fold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss

from models.training.calibration import Calibrator, choose_calibrator, cross_fitted_log_loss


def _distorted(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_p = 1 / (1 + np.exp(-rng.normal(-2.0, 1.0, n)))
    y = (rng.random(n) < true_p).astype(int)
    raw = 1 / (1 + np.exp(-(2.0 * np.log(true_p / (1 - true_p)) + 1.5)))  # over-confident, shifted
    return raw, y, true_p


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrator_repairs_distorted_scores(method: str) -> None:
    raw, y, _ = _distorted()
    calibrated = Calibrator(method).fit(raw[:2000], y[:2000]).predict(raw[2000:])
    assert log_loss(y[2000:], calibrated) < log_loss(y[2000:], raw[2000:])
    assert abs(calibrated.mean() - y[2000:].mean()) < 0.02


@pytest.mark.parametrize("method", ["none", "sigmoid", "isotonic"])
def test_round_trip_through_dict(method: str) -> None:
    raw, y, _ = _distorted(500)
    fitted = Calibrator(method).fit(raw, y)
    again = Calibrator.from_dict(fitted.to_dict())
    np.testing.assert_array_equal(fitted.predict(raw), again.predict(raw))


def test_choice_prefers_a_real_calibrator_for_distorted_scores() -> None:
    raw, y, _ = _distorted()
    calibrator, losses = choose_calibrator(raw, y, folds=5, seed=1)
    assert calibrator.method in ("sigmoid", "isotonic")
    assert losses[calibrator.method] == min(losses.values())


def test_choice_keeps_identity_for_calibrated_scores() -> None:
    _, y, true_p = _distorted(3000)
    calibrator, losses = choose_calibrator(true_p, y, methods=("none", "isotonic"), seed=1)
    # isotonic judged out of fold cannot beat the truth; judged in-sample it would.
    assert calibrator.method == "none"
    in_sample = log_loss(y, Calibrator("isotonic").fit(true_p, y).predict(true_p))
    assert in_sample < losses["none"] < losses["isotonic"]


def test_cross_fitting_is_seeded() -> None:
    raw, y, _ = _distorted(1000)
    a = cross_fitted_log_loss("isotonic", raw, y, 5, seed=3)
    assert a == cross_fitted_log_loss("isotonic", raw, y, 5, seed=3)


def test_unknown_method_is_rejected() -> None:
    raw, y, _ = _distorted(200)
    with pytest.raises(ValueError, match="allowed"):
        choose_calibrator(raw, y, methods=("beta",))


def test_isotonic_keeps_the_models_ranking() -> None:
    """The isotonic steps would tie many scores; ties are broken by the raw score, so the
    calibrated probabilities rank customers exactly as the model does, at no calibration cost."""
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    from models.training.calibration import Calibrator

    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.99, 5000)
    y = (rng.uniform(size=5000) < raw**2).astype(int)
    cal = Calibrator("isotonic").fit(raw, y)
    p = cal.predict(raw)
    assert len(np.unique(p)) == len(np.unique(raw))  # no ties
    assert (rankdata(p) == rankdata(raw)).all()
    assert roc_auc_score(y, p) == roc_auc_score(y, raw)
    steps = np.interp(raw, cal.x_, cal.y_)
    assert np.abs(p - np.clip(steps, 2e-6, 1 - 2e-6)).max() <= 1e-7
