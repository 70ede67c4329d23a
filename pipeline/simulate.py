"""Stage `simulate` (`churn simulate`): the pipeline's default dataset, a subscription business
with known churn drivers, written to `paths.raw`. The simulator and its mechanics (drivers,
hazard, truth) are documented in `pipeline/simulator/__init__.py`."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.simulator.tables import simulate

log = logging.getLogger(__name__)


def run(
    params: Params,
    customers: int | None = None,
    seed: int | None = None,
    out_dir: Path | str | None = None,
) -> dict[str, Any]:
    """`churn simulate`: the `simulate` params with the command line's overrides, into
    `paths.raw` (or `out_dir`)."""
    overrides: dict[str, Any] = {}
    if customers is not None:
        overrides["customers"] = customers
    if seed is not None:
        overrides["seed"] = seed
    sim = dataclasses.replace(params.simulate, **overrides)
    target = str(out_dir) if out_dir is not None else params.paths.raw
    log.info("simulating %d customers (seed %d) into %s", sim.customers, sim.seed, target)
    began = time.perf_counter()
    result = simulate(sim, params.label.horizon_days, target)
    log.info(
        "wrote %s in %.1f s; monthly churn rate %.4f",
        ", ".join(f"{k}={v:,}" for k, v in result["rows"].items()),
        time.perf_counter() - began,
        result["realised"]["monthly_churn_rate"],
    )
    return result
