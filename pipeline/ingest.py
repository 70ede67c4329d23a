"""Stage `ingest`: validate every source table (`ingest.tables`) into `paths.interim`, with the
rows that cannot be used in `paths.quarantine` and the row accounting in `paths.ingest_report`
(features/validation.py does the work).

DVC reruns this stage when a file under `paths.sources` changes (its dependency), so the files
that `ingest.tables` reads belong there; a `path:` source outside it, or a `sql:` source that
names a file outside it, is warned about (changing that file would not rerun the pipeline)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from features.validation import validate_sources
from pipeline.config import Params

log = logging.getLogger(__name__)

# quoted file names in a DuckDB query: read_csv('x.csv'), FROM 'x.parquet', read_json(['a', 'b'])
_QUOTED_FILE = re.compile(r"'([^']+\.(?:csv|tsv|txt|parquet|json|jsonl|ndjson|gz|zip)[^']*)'", re.I)


def sources_outside(params: Params) -> list[str]:
    """Files `ingest.tables` reads that are not under `paths.sources` (table: file)."""
    root = Path(params.paths.sources).resolve()
    outside = []
    for name, source in params.ingest.tables.items():
        files = [source.path] if source.path else _QUOTED_FILE.findall(source.sql or "")
        for file in files:
            if not Path(file).resolve().is_relative_to(root):
                outside.append(f"{name}: {file}")
    return outside


def run(params: Params) -> dict[str, Any]:
    """Validate the configured sources; return the ingest report."""
    paths = params.paths
    outside = sources_outside(params)
    if outside:
        log.warning(
            "%d source file(s) are outside paths.sources (%s), so DVC will not rerun ingest when "
            "they change: %s. Set paths.sources in settings.yaml to their directory.",
            len(outside),
            paths.sources,
            "; ".join(outside[:5]),
        )
    return validate_sources(params.ingest, paths.interim, paths.quarantine, paths.ingest_report)
