"""Stage `simulate` (`churn simulate`): the pipeline's default dataset, a subscription business
with known churn drivers, written to `paths.raw`. The simulator and its mechanics (drivers,
hazard, truth) are documented in `pipeline/simulator/__init__.py`."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from features.base.io import atomic_directory
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
    if not sim.enabled:
        return _note_only(Path(target))
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


OFF_NOTE = """# The simulator is off

`simulate.enabled` is false in params.yaml: this project reads real sources (settings.yaml
`ingest.tables`, under `paths.sources`), so no simulated data and no truth were written here.
Set `simulate.enabled: true` to generate the default simulated business again.
"""


def _note_only(target: Path) -> dict[str, Any]:
    """`simulate.enabled: false`: the stage's output is a note, not data (real-data presets)."""
    with atomic_directory(target) as work:
        (work / "README.md").write_text(OFF_NOTE, encoding="utf-8")
    log.info("simulate.enabled is false: no simulated data; wrote a note to %s", target)
    return {"enabled": False, "rows": {}, "out_dir": str(target)}
