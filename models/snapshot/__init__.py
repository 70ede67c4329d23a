"""Snapshot tables (one row per customer and a churn column): type inference and the model.

Inference (`infer_schema`) looks at the values only, never at the label: numbers stored as text
(blanks, currency signs, thousands separators), booleans in any spelling (Yes/No, True/False,
Y/N, 1/0, with blanks), dates (turned into "days before the latest date of that column"),
identifiers (unique per row: an explicit `--id`, a name like `customerID`, a row number, free
text) and constant or empty columns (dropped, each with its reason). Categorical levels are
fixed later, inside each training fold, by `models.model.fit_feature_spec` (rare levels folded
into one, so hundreds of levels cannot be memorised) and LightGBM's `min_data_per_group` /
`cat_smooth` guards.

The model (`fit_snapshot_model`), fitted on training rows only: the leakage guard; LightGBM
candidates (small to large trees, and one with HistGradientBoosting's default settings) scored
by inner K-fold out-of-fold predictions, each candidate at ONE round count shared by the inner
folds (the minimum of their mean validation log loss, as `lgb.cv`: scoring each fold at its own
early-stopping round would let that fold's labels choose its predictions and flatter fast,
large candidates on noisy tables); every (candidate, weight) pair of the logit-space blend with
the logistic-regression baseline judged by its out-of-fold AUC on the same folds (weight 1 =
LightGBM alone); the chosen candidate refitted on all training rows for its shared round count
(x `refit_rounds_factor`, as it sees more rows); the calibrator chosen and fitted on the
out-of-fold blend. No setting depends on the dataset: small noisy tables pick small trees and
some logistic weight, tables with sharp interactions pick larger trees.

`cv.evaluate_folds` also fits the peers on each outer fold's training rows and scores them on
the same test rows: logistic regression, LightGBM and HistGradientBoosting with their default
settings (`summary.json` → `peers`; `bench/snapshot_peers.py` prints them side by side).

Modules: `schema` (inference, parsers, the target), `model` (the scorecard, the model, its fit,
the MLflow pyfunc), `cv` (K-fold evaluation), `job` (the table job: read, fit, score, summary).
"""

# MLflow pickles the pyfunc wrapper by its import path: models saved before this package was
# split name `models.snapshot.SnapshotPyfunc`. Keep that name importable so they still load.
from models.snapshot.model import SnapshotPyfunc  # noqa: E402, F401
