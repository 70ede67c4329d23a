"""Stage `ingest`: validate every source table (`ingest.tables`) into `paths.interim`, with the
rows that cannot be used in `paths.quarantine` and the row accounting in `paths.ingest_report`
(features/validation.py does the work)."""

from __future__ import annotations

from typing import Any

from features.validation import validate_sources
from pipeline.config import Params


def run(params: Params) -> dict[str, Any]:
    """Validate the configured sources; return the ingest report."""
    paths = params.paths
    return validate_sources(params.ingest, paths.interim, paths.quarantine, paths.ingest_report)
