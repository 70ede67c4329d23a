"""`churn label`: point-in-time churn labels per customer and monthly cutoff."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from features.labels import build_labels, monthly_cutoffs
from features.tables import connect, load_tables, max_timestamp
from pipeline.config import LabelParams, load_params
from pipeline.io import atomic_path

log = logging.getLogger(__name__)


def run(params: LabelParams, memory_limit: str = "3GB", threads: int = 2) -> int:
    """Write the label table for every monthly cutoff with a fully observed label "
    "window; return its rows."""
    with tempfile.TemporaryDirectory(prefix="label-") as tmp:
        con = connect(memory_limit, threads, tmp)
        tables = load_tables(con, params.interim_dir)
        data_end = max_timestamp(tables)
        cutoffs = monthly_cutoffs(
            params.first_cutoff, data_end, params.lead_days, params.horizon_days
        )
        if not cutoffs:
            raise SystemExit(
                f"label: no cutoff from {params.first_cutoff} leaves a full label window "
                f"({params.lead_days} + {params.horizon_days} days) before the data "
                f"ends at {data_end}; "
                "lower label.first_cutoff or horizon_days"
            )
        labels = build_labels(tables, params, cutoffs)
        with atomic_path(params.out) as out:
            labels.to_parquet(out)
        n = con.read_parquet(params.out).count().to_pyarrow().as_py()
        con.disconnect()
    log.info(
        "labels: %d rows, %d cutoffs (%s .. %s), data ends %s -> %s",
        n,
        len(cutoffs),
        cutoffs[0].date(),
        cutoffs[-1].date(),
        data_end,
        params.out,
    )
    return n


def main(params_path: Path | str = "params.yaml") -> None:
    """Entry point of the `label` stage."""
    run(load_params(params_path).label)
