"""Stage `label`: point-in-time churn labels per customer and monthly cutoff."""

from __future__ import annotations

import logging
import tempfile

from features.base.errors import BadInputError
from features.base.io import atomic_path
from features.labels import build_labels, monthly_cutoffs
from features.tables import connect, load_tables, max_timestamp
from pipeline.config import Params

log = logging.getLogger(__name__)


def run(params: Params) -> int:
    """Write the label table for every monthly cutoff with a fully observed label window;
    return its rows."""
    p, paths = params.label, params.paths
    with tempfile.TemporaryDirectory(prefix="label-") as tmp:
        con = connect(params.featurize.duckdb_memory_limit, params.featurize.duckdb_threads, tmp)
        tables = load_tables(con, paths.interim)
        data_end = max_timestamp(tables)
        cutoffs = monthly_cutoffs(p.first_cutoff, data_end, p.lead_days, p.horizon_days)
        if not cutoffs:
            raise BadInputError(
                f"no cutoff from {p.first_cutoff} leaves a full label window "
                f"({p.lead_days} + {p.horizon_days} days) before the data ends at {data_end}; "
                "lower label.first_cutoff or label.horizon_days"
            )
        labels = build_labels(tables, p, cutoffs)
        with atomic_path(paths.labels) as out:
            labels.to_parquet(out)
        n = con.read_parquet(paths.labels).count().to_pyarrow().as_py()
        con.disconnect()
    log.info(
        "labels: %d rows, %d cutoffs (%s .. %s), data ends %s -> %s",
        n,
        len(cutoffs),
        cutoffs[0].date(),
        cutoffs[-1].date(),
        data_end,
        paths.labels,
    )
    return n
