"""`churn featurize`: point-in-time features for every labelled (customer, cutoff), "
"plus the catalog."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from features.build import training_spine, write_feature_table
from features.catalog import GROUPS
from features.tables import connect, load_tables
from pipeline.config import FeaturizeParams, load_params
from pipeline.io import write_json

log = logging.getLogger(__name__)


def run(cfg: FeaturizeParams) -> int:
    """Write data/processed/features.parquet and feature_catalog.json; return the feature count."""
    with tempfile.TemporaryDirectory(
        prefix="featurize-", dir=Path(cfg.out).parent if Path(cfg.out).parent.exists() else None
    ) as tmp:
        con = connect(cfg.duckdb_memory_limit, cfg.duckdb_threads, Path(tmp) / "duckdb")
        tables = load_tables(con, cfg.interim_dir)
        labels_path = Path(cfg.labels)
        if not labels_path.exists():
            raise FileNotFoundError(f"{labels_path}: labels not found; run `churn label` first")
        labels = con.read_parquet(labels_path, table_name="labels")
        spine = labels.select(*training_spine(labels).columns, "churned", "churn_type")
        catalog = write_feature_table(con, tables, spine, cfg, cfg.out, Path(tmp) / "work")
        con.disconnect()
    write_json(cfg.catalog_out, [f.to_dict() for f in catalog])
    counts = {g: sum(f.group == g for f in catalog) for g in GROUPS}
    log.info("features: %d columns %s -> %s, %s", len(catalog), counts, cfg.out, cfg.catalog_out)
    return len(catalog)


def main(params_path: Path | str = "params.yaml") -> None:
    """Entry point of the `featurize` stage."""
    run(load_params(params_path).featurize)
