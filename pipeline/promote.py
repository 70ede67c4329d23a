"""`churn promote`: make the last trained challenger the champion, by the same rule as `evaluate`.

After `dvc exp run` (which never promotes) and `dvc exp apply`, or with `registry.promote:
manual`, this applies models/promotion.py's rule on the challenger's test rows (the champion
re-scored on them); `--force` promotes whatever the comparison says. The decision is written to
`paths.promotion_report`, like evaluate's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from features.base.errors import require_inputs
from features.base.io import write_json
from models import promotion, tracking
from models.training.split import rows_of_predictions
from pipeline.config import Params


def run(params: Params, force: bool = False) -> dict[str, Any]:
    """Compare the registered challenger (paths.train_report) with the champion; promote if it
    wins (or when forced)."""
    paths = params.paths
    require_inputs(
        paths.test_predictions, paths.train_report, paths.features, produced_by="churn train"
    )
    summary = json.loads(Path(paths.train_report).read_text(encoding="utf-8"))
    predictions = pd.read_parquet(paths.test_predictions)
    rows = rows_of_predictions(paths.features, predictions)
    tracking.setup_tracking(params.mlflow.tracking_uri, params.mlflow.experiment)
    # asked for explicitly: promote when the rule says so (or always, when forced)
    decision = promotion.decide_on_test_predictions(
        summary, predictions, rows, params.registry, "auto", force
    )
    result = decision.to_dict()
    write_json(paths.promotion_report, result)
    return result
