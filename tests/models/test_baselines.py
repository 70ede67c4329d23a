"""Baselines: logistic regression on the model's features and the best single-feature rule."""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import roc_auc_score

from models.model import fit_feature_spec
from models.training.baselines import fit_logreg, fit_single_feature_rule, predict_logreg
from models.training.split import split_by_cutoff


def test_rule_picks_the_strongest_single_feature_on_validation(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    spec = fit_feature_spec(split.train)
    rule = fit_single_feature_rule(split, spec)
    assert rule.feature == "days_since_last_login" and rule.direction == 1
    p = rule.predict(split.test)
    assert ((p >= 0) & (p <= 1)).all()


def test_logreg_handles_unseen_levels_and_missing_values(model_table: pd.DataFrame) -> None:
    split = split_by_cutoff(model_table)
    spec = fit_feature_spec(split.train)
    model = fit_logreg(split, spec, max_levels=5)
    test = split.test.assign(plan="brand-new-plan")
    p = predict_logreg(model, test, spec)
    assert p.shape == (len(test),)
    assert roc_auc_score(test["churned"], p) > 0.6
