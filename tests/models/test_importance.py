"""Mean |SHAP| from pred_contrib and planted-driver ranks."""

from __future__ import annotations

import pandas as pd

from models.evaluation.importance import driver_ranks, mean_abs_shap
from models.settings import TrainParams
from models.training.split import split_by_cutoff
from models.training.train import train_model


def test_planted_drivers_rank_above_noise(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    model = train_model(split, TrainParams(learning_rate=0.1, early_stopping_rounds=20))
    importance = mean_abs_shap(model.booster, model.model_frame(split.test))
    assert set(importance.index) == set(model.spec.features)
    ranks = driver_ranks(
        importance,
        {"disengagement": ["days_since_last_login"], "payment": ["payment_failures_90d"]},
    )
    noise_rank = list(importance.index).index("noise") + 1
    assert ranks["disengagement"]["rank"] < noise_rank
    assert ranks["payment"]["rank"] < noise_rank


def test_driver_rank_is_best_of_its_features_and_reports_missing() -> None:
    importance = pd.Series({"a": 3.0, "b": 2.0, "c": 1.0})
    ranks = driver_ranks(importance, {"d1": ["c", "b", "zz"], "d2": ["nope"]})
    assert ranks["d1"]["rank"] == 2 and ranks["d1"]["feature"] == "b"
    assert ranks["d1"]["missing_features"] == ["zz"]
    assert ranks["d2"]["rank"] is None
