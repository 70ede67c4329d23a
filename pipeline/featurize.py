"""Stage `featurize`: point-in-time features for every labelled (customer, cutoff), the feature
catalog, and which feature families were built or skipped (and why)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from features.base.errors import require_inputs
from features.base.io import write_json
from features.build import family_decisions, plan_families, training_spine, write_feature_table
from features.catalog import GROUPS
from features.tables import connect_engine, disconnect, load_tables, read_dataset
from pipeline.config import Params

log = logging.getLogger(__name__)


def run(params: Params) -> int:
    """Write the model table, its catalog and the family decisions; return the feature count."""
    cfg, paths = params.featurize, params.paths
    require_inputs(paths.labels, produced_by="churn label")
    out_dir = Path(paths.features).parent
    with tempfile.TemporaryDirectory(
        prefix="featurize-", dir=out_dir if out_dir.exists() else None
    ) as tmp:
        con = connect_engine(
            params.engine, cfg.duckdb_memory_limit, cfg.duckdb_threads, Path(tmp) / "duckdb"
        )
        tables = load_tables(con, paths.interim)
        facts = plan_families(tables, cfg)
        labels = read_dataset(con, paths.labels, table_name="labels")
        spine = labels.select(*training_spine(labels).columns, "churned", "churn_type")
        catalog = write_feature_table(
            con, tables, spine, cfg, paths.features, Path(tmp) / "work", facts=facts
        )
        disconnect(con)
    decisions = family_decisions(facts, cfg)
    write_json(paths.catalog, [f.to_dict() for f in catalog])
    # a file of its own (paths.feature_families): the catalog stays the list of features
    write_json(paths.feature_families, {d.name: d.to_dict() for d in decisions})
    counts = {g: sum(f.group == g for f in catalog) for g in GROUPS}
    skipped = {d.name: d.reason for d in decisions if not d.built}
    log.info(
        "features: %d columns %s -> %s, %s, %s",
        len(catalog),
        counts,
        paths.features,
        paths.catalog,
        paths.feature_families,
    )
    if skipped:
        log.warning("feature families skipped (no inputs in the data): %s", skipped)
    return len(catalog)
