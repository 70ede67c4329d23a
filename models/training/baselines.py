"""Baselines fitted on the model's split: logistic regression and the best single-feature rule.

Like the model, each is refit on the training + validation rows when `train.refit` is on
(`fit_logreg_rows`, `refit_rule`): the rule keeps the feature and direction chosen on VALID.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.model import FeatureSpec
from models.training.split import LABEL, Split

log = logging.getLogger(__name__)


def _frame(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    out = {c: pd.to_numeric(frame[c].astype("float64"), errors="coerce") for c in spec.numeric}
    for c in spec.categorical:
        s = frame[c]
        out[c] = s.astype("object").where(s.notna(), "(missing)").astype(str)
    return pd.DataFrame(out, index=frame.index)


def fit_logreg(split: Split, spec: FeatureSpec, c: float = 1.0, max_levels: int = 20) -> Pipeline:
    """Logistic regression on the model's features: median-impute + standardise numerics,
    one-hot categoricals capped to their `max_levels` most frequent TRAIN levels."""
    return fit_logreg_rows(split.train, spec, c, max_levels)


def fit_logreg_rows(
    rows: pd.DataFrame, spec: FeatureSpec, c: float = 1.0, max_levels: int = 20
) -> Pipeline:
    """`fit_logreg` on the given rows (the refit: training + validation rows)."""
    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    categorical = OneHotEncoder(
        handle_unknown="infrequent_if_exist", max_categories=max_levels, sparse_output=False
    )
    pre = ColumnTransformer(
        [("num", numeric, spec.numeric), ("cat", categorical, list(spec.categorical))]
    )
    model = Pipeline([("pre", pre), ("lr", LogisticRegression(C=c, max_iter=2000))])
    model.fit(_frame(rows, spec), rows[LABEL].to_numpy())
    return model


def predict_logreg(model: Pipeline, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """Churn probability from the logistic-regression baseline."""
    return model.predict_proba(_frame(frame, spec))[:, 1]


@dataclass
class SingleFeatureRule:
    """Rank by one feature in one direction; probabilities from an isotonic map fit on TRAIN."""

    feature: str
    direction: int  # +1: higher value = riskier; -1: lower value = riskier
    fill_value: float
    valid_auc: float
    level_rates: dict[str, float] | None = None  # categorical feature: TRAIN churn rate per level
    iso_: IsotonicRegression | None = None

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The rule's risk score (monotone in the feature)."""
        s = frame[self.feature]
        if self.level_rates is not None:
            values = s.astype("object").where(s.notna(), "(missing)").astype(str)
            x = values.map(self.level_rates).astype(float).fillna(self.fill_value).to_numpy()
        else:
            x = pd.to_numeric(s.astype("float64"), errors="coerce").fillna(self.fill_value)
            x = x.to_numpy()
        return self.direction * x

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability from the rule."""
        if self.iso_ is None:
            raise ValueError("rule is not fitted; use fit_single_feature_rule()")
        return self.iso_.predict(self.score(frame))

    def describe(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "direction": "higher is riskier" if self.direction > 0 else "lower is riskier",
            "valid_auc": self.valid_auc,
        }


def fit_single_feature_rule(split: Split, spec: FeatureSpec) -> SingleFeatureRule:
    """Choose the single feature and direction with the best VALID AUC (fill values from TRAIN)."""
    y_train = split.train[LABEL].to_numpy()
    y_valid = split.valid[LABEL].to_numpy()
    best: SingleFeatureRule | None = None
    candidates: list[SingleFeatureRule] = []
    for col in spec.numeric:
        train_x = pd.to_numeric(split.train[col].astype("float64"), errors="coerce")
        fill = float(train_x.median()) if train_x.notna().any() else 0.0
        for direction in (1, -1):
            candidates.append(SingleFeatureRule(col, direction, fill, float("nan")))
    for col in spec.categorical:
        values = split.train[col].astype("object").where(split.train[col].notna(), "(missing)")
        rates = pd.Series(y_train).groupby(values.astype(str).to_numpy()).mean().to_dict()
        candidates.append(
            SingleFeatureRule(col, 1, float(y_train.mean()), float("nan"), level_rates=rates)
        )
    for rule in candidates:
        auc = float(roc_auc_score(y_valid, rule.score(split.valid)))
        rule.valid_auc = auc
        if best is None or auc > best.valid_auc:
            best = rule
    assert best is not None
    best.iso_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    best.iso_.fit(best.score(split.train), y_train)
    log.info("single-feature rule: %s (valid AUC %.4f)", best.describe(), best.valid_auc)
    return best


def refit_rule(rule: SingleFeatureRule, rows: pd.DataFrame) -> SingleFeatureRule:
    """The rule's feature and direction (chosen on VALID) with its fill value, level rates and
    isotonic map fitted again on `rows` (the refit: training + validation rows)."""
    y = rows[LABEL].to_numpy()
    s = rows[rule.feature]
    if rule.level_rates is not None:
        values = s.astype("object").where(s.notna(), "(missing)").astype(str)
        rates = pd.Series(y).groupby(values.to_numpy()).mean().to_dict()
        new = SingleFeatureRule(rule.feature, 1, float(y.mean()), rule.valid_auc, rates)
    else:
        x = pd.to_numeric(s.astype("float64"), errors="coerce")
        fill = float(x.median()) if x.notna().any() else 0.0
        new = SingleFeatureRule(rule.feature, rule.direction, fill, rule.valid_auc)
    new.iso_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    new.iso_.fit(new.score(rows), y)
    return new
