"""Champion/challenger promotion in the MLflow registry, decided on the same rows.

The rule (documented in the README):

1. The challenger (the version `train` just registered) and the current champion are compared on
   the SAME rows: the challenger's test-cutoff rows, which the champion scores again. Figures
   logged by earlier runs are never compared, because they come from other test months.
2. The challenger is promoted only when its `registry.metric` on those rows is at least the
   champion's plus `registry.min_improvement` (default 0: never a worse model, so repeated small
   losses cannot add up).
3. A champion that cannot score those rows (a feature it needs is gone, its files are damaged) is
   not replaced automatically: the report says why, and `churn promote --force` decides.
4. Automatic promotion happens only in `dvc repro` / `churn evaluate` with `registry.promote:
   auto`. Inside `dvc exp run` (DVC sets DVC_EXP_NAME) and with `registry.promote: manual` the
   challenger is only compared and registered; `churn promote` applies the same rule later (after
   `dvc exp apply`), and `churn promote --force` promotes without it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from models.model import load_model_uri
from models.settings import RegistryParams
from models.tracking import CHAMPION
from models.training.split import LABEL

log = logging.getLogger(__name__)

METRICS = {"pr_auc": average_precision_score, "roc_auc": roc_auc_score}
EXPERIMENT_ENV = "DVC_EXP_NAME"  # set by DVC for the stages of `dvc exp run`


@dataclass
class PromotionDecision:
    """What the registry did with a challenger, and the figures it compared (same rows)."""

    model_name: str
    metric: str
    min_improvement: float
    challenger_version: str
    challenger_value: float
    champion_version: str | None
    champion_value: float | None
    rows: int
    test_cutoffs: list[str] | None
    promoted: bool
    challenger_wins: bool | None
    reason: str
    mode: str  # auto | manual | experiment | forced

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metric_value(metric: str, labels: np.ndarray, probabilities: np.ndarray) -> float:
    if metric not in METRICS:
        raise ValueError(f"registry.metric must be one of {sorted(METRICS)}, found {metric!r}")
    return float(METRICS[metric](labels, probabilities))


def promotion_mode(setting: str) -> str:
    """`experiment` inside `dvc exp run`, else the registry.promote setting (auto | manual)."""
    if os.environ.get(EXPERIMENT_ENV):
        return "experiment"
    return setting


def _champion(client: Any, model_name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def decide(
    model_name: str,
    challenger_version: str,
    rows: pd.DataFrame,
    labels: np.ndarray,
    challenger_probabilities: np.ndarray,
    metric: str,
    min_improvement: float,
    mode: str,
    test_cutoffs: list[str] | None = None,
    force: bool = False,
) -> PromotionDecision:
    """Compare the challenger with the champion on `rows` and move the alias if the rule says so.

    `rows` are the challenger's test rows (model-table columns), `labels` their outcomes and
    `challenger_probabilities` the challenger's probabilities for them, in the same order.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    labels = np.asarray(labels, dtype=int)
    decision = PromotionDecision(
        model_name=model_name,
        metric=metric,
        min_improvement=min_improvement,
        challenger_version=str(challenger_version),
        challenger_value=metric_value(metric, labels, np.asarray(challenger_probabilities)),
        champion_version=None,
        champion_value=None,
        rows=len(rows),
        test_cutoffs=test_cutoffs,
        promoted=False,
        challenger_wins=None,
        reason="",
        mode="forced" if force else mode,
    )
    champion = _champion(client, model_name)
    if champion is None:
        decision.challenger_wins, decision.reason = True, "no champion yet"
    elif str(champion.version) == str(challenger_version):
        decision.champion_version = str(champion.version)
        decision.champion_value = decision.challenger_value
        decision.challenger_wins, decision.reason = True, "the challenger is already the champion"
    else:
        decision.champion_version = str(champion.version)
        try:
            loaded = load_model_uri(f"models:/{model_name}@{CHAMPION}")
            champion_p = loaded.model.predict(rows)
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot compare", reported
            decision.reason = (
                f"champion v{champion.version} cannot score the challenger's test rows "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); not replaced "
                "automatically: `churn promote --force` promotes the challenger"
            )
            log.warning("promotion: %s", decision.reason)
        else:
            decision.champion_value = metric_value(metric, labels, champion_p)
            needed = decision.champion_value + min_improvement
            decision.challenger_wins = decision.challenger_value >= needed
            op = ">=" if decision.challenger_wins else "<"
            decision.reason = (
                f"on the same {len(rows):,} test rows: challenger v{challenger_version} "
                f"{metric} {decision.challenger_value:.4f} {op} champion v{champion.version} "
                f"{decision.champion_value:.4f} + min_improvement {min_improvement}"
            )
    if force:
        decision.promoted = True
        decision.reason += " (forced)"
    elif decision.challenger_wins and mode == "auto":
        decision.promoted = True
    elif decision.challenger_wins:
        why = "inside `dvc exp run`" if mode == "experiment" else "registry.promote is manual"
        decision.reason += f"; not promoted ({why}): `churn promote` promotes it"
    if decision.promoted:
        client.set_registered_model_alias(model_name, CHAMPION, str(challenger_version))
    log.info(
        "promotion: %s → %s",
        decision.reason,
        f"v{challenger_version} is champion" if decision.promoted else "champion unchanged",
    )
    return decision


def decide_on_test_predictions(
    summary: dict[str, Any],
    predictions: pd.DataFrame,
    rows: pd.DataFrame,
    registry: RegistryParams,
    mode: str,
    force: bool = False,
) -> PromotionDecision:
    """`decide` for the challenger `train` registered (reports/train.json `summary`) on its test
    predictions and their model-table `rows` (`rows_of_predictions`): evaluate's and
    `churn promote`'s one call."""
    cutoffs = pd.to_datetime(predictions["cutoff"], utc=True)
    return decide(
        summary["model_name"],
        summary["model_version"],
        rows,
        predictions[LABEL].to_numpy(),
        predictions["p_model"].to_numpy(),
        registry.metric,
        registry.min_improvement,
        mode,
        sorted({c.isoformat() for c in cutoffs}),
        force=force,
    )
