"""Stage `score`: calibrated churn probabilities with reason codes for every active customer.

`churn score [--as-of DATE] [--model URI] [--csv PATH]`

1. The scoring table: every customer active at the as-of date (the label definition's "active"),
   features built by the same code as training (`features.build.write_feature_table`), using
   only data strictly before the as-of day. Written to `paths.score_features` (the alert stage
   reads it). A scoring row is a training row without its label.
2. The model: `score.model` (default `models:/churn-model@champion`), or `--model` (a registry
   URI or an MLflow model directory such as `artifacts/model`).
3. Values never seen in training: per categorical model column, the customers with a level the
   training rows did not have (the model reads it as missing); event types and survey touchpoints
   in the longest feature window before the as-of date that the data before the model's last
   training cutoff does not have (models that predate that record skip this check). Count, share
   and examples go to score.json ("unseen") and the log; a share above `score.max_unseen_share`
   exits 2 before anything is scored.
4. Chunks of `score.chunk_rows` customers: probability, exact TreeSHAP reasons, churn type.
   Memory is bounded by the chunk, not by the number of customers.
5. Whole-population columns (risk decile, value, priority) once every probability is known,
   then the scores file is written in one atomic rename: a killed job leaves the previous file.
   With `engine.name: spark`, 1, 4 and 5 are Spark jobs (`models.spark_scoring`: the same
   `score_frame` in mapInPandas, the population columns as window functions); the scores are
   staged as the same single file and CSV and published with the other outputs as below.
6. The priority list (`paths.priority`), always written: customers with a positive expected
   contact gain, best first; without any monthly fee (`value.fee_column` absent or empty) the
   value columns are empty and the list ranks every customer by churn probability, which
   score.json ("notes") and the log say.
7. Score history (for `churn monitor`): a run writing the configured paths (not `--out`) also
   keeps its scores, scoring table and summary in `monitor.history_dir/<as-of date>/`, swapped in
   whole, and deletes the entries older than `monitor.history_retention_days` before the newest.

Default as-of: the day after the latest timestamp in the data, so every record counts.
Exit codes (pipeline/cli.py): 0 ok, 2 bad input (missing or damaged model, missing tables, feature
columns that do not match, too many values never seen in training), 1 when DuckDB runs out of its
memory limit (the message names the setting).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from features.base.errors import BadInputError, ResourceLimitError
from features.base.io import atomic_directory, atomic_path, exclusive_lock, write_json
from features.base.time import as_of_date, day_after, utc_midnight
from features.build import scoring_spine, to_single_file, write_feature_table
from features.catalog import FeatureInfo
from features.spark import spark_session
from features.tables import (
    Tables,
    connect_engine,
    disconnect,
    load_tables,
    max_timestamp,
    timestamp_range,
)
from models import tracking
from models.model import FeatureSpec, LoadedModel, load_model_uri
from models.monitoring import history
from models.scores_contract import SCORE_COLUMNS
from models.scoring import (
    add_counts,
    check_signature,
    check_unseen,
    no_fee_note,
    population_columns,
    score_frame,
    unseen_level_counts,
    unseen_summary,
    unseen_window_counts,
)
from models.settings import MonitorParams, ValueParams
from models.spark_scoring import SparkScores, score_on_spark
from models.value import VALUE_COLUMNS, priority_list
from pipeline.config import Params

log = logging.getLogger(__name__)


Counts = tuple[dict[str, pd.Series], dict[str, int]]  # per column: rows per value, rows in all
# engine spark: the scoring table as Spark wrote it (a dataset directory in the work directory)
SPARK_TABLE = "features-dataset"


def unseen_in_tables(tables: Tables, spec: FeatureSpec, as_of: pd.Timestamp, days: int) -> Counts:
    """Event types and survey touchpoints in the `days` before `as_of` that never occur before
    the model's last training cutoff (skipped for models that did not record it)."""
    counts: dict[str, pd.Series] = {}
    totals: dict[str, int] = {}
    if spec.train_end is None:
        log.info("the model does not record its training cutoff: new event types not checked")
        return counts, totals
    train_end, start = pd.Timestamp(spec.train_end), as_of - pd.Timedelta(days=days)
    for name, table, column in (
        ("events.event_type", tables.events, "event_type"),
        ("responses.touchpoint", tables.responses, "touchpoint"),
    ):
        found = None
        if table is not None:
            found = unseen_window_counts(table, column, "ts", train_end, start, as_of)
        if found is None:
            log.info("%s: no data before the training cutoff %s: not checked", name, train_end)
            continue
        counts[name], totals[name] = found
    return counts, totals


def unseen_levels_in_file(features_path: Path, spec: FeatureSpec, chunk_rows: int) -> Counts:
    """Rows per categorical level never seen in training, over the scoring table in chunks."""
    pf = pq.ParquetFile(features_path)
    columns = [c for c in spec.categorical if c in pf.schema_arrow.names]
    counts: dict[str, pd.Series] = {}
    if columns:  # a missing column is reported by `check_signature`
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
            counts = add_counts(counts, unseen_level_counts(batch.to_pandas(), spec))
    return counts, dict.fromkeys(counts, pf.metadata.num_rows)


def check_as_of(as_of: pd.Timestamp, first: pd.Timestamp, last: pd.Timestamp) -> None:
    """An as-of date must lie in the data: after its first day, at most the day after its end."""
    end = day_after(last)
    if as_of > end:
        raise BadInputError(
            f"--as-of {as_of.date()} is after the data's end ({last.date()}): the days in between "
            "have no records, so every customer would look inactive. Pass --as-of "
            f"{end.date()} or earlier, or load the newer data first (`churn ingest`)."
        )
    if as_of <= utc_midnight(first):
        raise BadInputError(
            f"--as-of {as_of.date()} is before any record (the data starts {first.date()}): "
            f"nobody can be scored. Pass a date after {first.date()} (at most {end.date()})."
        )


def build_scoring_table(
    params: Params,
    as_of: pd.Timestamp | None,
    work: Path,
    spec: FeatureSpec,
    features_out: Path,
) -> tuple[pd.Timestamp, dict[str, FeatureInfo], Counts]:
    """Write the scoring feature table at `as_of` (default: the day after the latest data) to
    `features_out`; return the as-of date, the catalog by feature name and the event types /
    touchpoints of the scoring window never seen in training."""
    cfg = params.featurize
    con = connect_engine(
        params.engine, params.score.duckdb_memory_limit, cfg.duckdb_threads, work / "duckdb"
    )
    spark = params.engine.name == "spark"
    try:
        tables = load_tables(con, params.paths.interim)
        if as_of is None:
            as_of = day_after(max_timestamp(tables))
        else:
            first, last = timestamp_range(tables)
            check_as_of(as_of, pd.Timestamp(first), pd.Timestamp(last))
        spine = scoring_spine(tables, as_of, params.label)
        log.info("scoring table as of %s", as_of.date())
        # on Spark the executors write a dataset (the scoring job reads it); the published
        # scoring table is one file, as on DuckDB
        table_out = work / SPARK_TABLE if spark else features_out
        catalog = write_feature_table(
            con,
            tables,
            spine,
            cfg,
            table_out,
            work / "features",
            rows_per_chunk=params.score.chunk_rows,
            keep=spec.features,  # the families the model was trained with, even if now absent
        )
        if spark:
            to_single_file(table_out, features_out)
        unseen = unseen_in_tables(tables, spec, as_of, max(cfg.windows))
    except duckdb.OutOfMemoryException as exc:
        raise ResourceLimitError(
            f"DuckDB ran out of memory building the scoring table ({str(exc).splitlines()[0]}). "
            "Raise score.duckdb_memory_limit, or lower score.chunk_rows; the previous scores "
            "are intact."
        ) from exc
    finally:
        disconnect(con)
    return as_of, {f.name: f for f in catalog}, unseen


def score_chunks(
    features_path: Path,
    loaded: LoadedModel,
    catalog: dict[str, FeatureInfo],
    reasons: int,
    chunk_rows: int,
    fee_column: str,
    work: Path,
) -> tuple[list[Path], pd.DataFrame]:
    """Score the table chunk by chunk into Parquet parts; return them and the per-customer columns
    that need the whole population (probability, monthly fee) in file order."""
    pf = pq.ParquetFile(features_path)
    check_signature(pf.schema_arrow.names, loaded.model, str(features_path))
    parts: list[Path] = []
    population: list[pd.DataFrame] = []
    batches = pf.iter_batches(batch_size=chunk_rows)
    total = -(-pf.metadata.num_rows // chunk_rows)
    for i, batch in enumerate(tqdm(batches, total=total, desc="scoring", unit="chunk")):
        frame = batch.to_pandas()
        scored = score_frame(frame, loaded, catalog, reasons)
        part = work / f"scores-{i:05d}.parquet"
        pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), part)
        parts.append(part)
        population.append(
            pd.DataFrame(
                {
                    "customer_id": scored["customer_id"].to_numpy(),
                    "churn_probability": scored["churn_probability"].to_numpy(),
                    "monthly_fee": pd.to_numeric(frame[fee_column], errors="coerce").to_numpy()
                    if fee_column in frame.columns
                    else np.nan,
                }
            )
        )
    if not population:
        return parts, pd.DataFrame(columns=["customer_id", "churn_probability", "monthly_fee"])
    return parts, pd.concat(population, ignore_index=True)


def write_priority(scores: Path, target: Path, value: ValueParams, has_value: bool) -> int:
    """The priority list: customers worth a retention contact, best expected gain first; without
    any fee (`has_value` false), every customer by churn probability. Always written (a header
    only when nobody is listed), so the stage's declared output exists for every business."""
    names = pq.read_schema(scores).names
    if "priority_rank" not in names:  # nobody scored: the file holds customer_id only
        rows = pd.DataFrame(columns=["churn_probability", "monthly_fee", *VALUE_COLUMNS])
        rows.insert(0, "customer_id", pd.Series(dtype="string"))
    elif has_value:
        rows = pq.read_table(scores, filters=[("expected_gain", ">", 0.0)]).to_pandas()
    else:
        rows = pq.read_table(scores).to_pandas()
    listed = priority_list(rows, value)
    with atomic_path(target) as tmp:
        listed.to_csv(tmp, index=False)
    return len(listed)


def write_scores(parts: list[Path], extra: pd.DataFrame, out: Path, csv: Path | None) -> int:
    """Join the parts with the whole-population columns; write `out` (and `csv`) atomically,
    both in the same pass over the parts."""
    order = ["customer_id", "as_of", "churn_probability", "risk_decile", "risk_tier"]
    order += ["monthly_fee", *VALUE_COLUMNS]
    offset = 0
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        tmp_csv = stack.enter_context(atomic_path(csv)) if csv is not None else None
        writer: pq.ParquetWriter | None = None
        csv_writer: pacsv.CSVWriter | None = None
        schema: pa.Schema | None = None
        for part in parts:
            frame = pq.read_table(part).to_pandas()
            n = len(frame)
            cols = extra.iloc[offset : offset + n]
            offset += n
            for name in cols.columns:
                frame[name] = cols[name].to_numpy()
            rest = [c for c in frame.columns if c not in order]
            frame = frame[[c for c in order if c in frame.columns] + rest]
            arrow = _typed(pa.Table.from_pandas(frame, preserve_index=False))
            if writer is None:
                schema = arrow.schema  # the first chunk's types hold for every chunk
                writer = stack.enter_context(pq.ParquetWriter(tmp, schema))
                if tmp_csv is not None:
                    csv_writer = stack.enter_context(pacsv.CSVWriter(tmp_csv, schema))
            arrow = arrow.cast(schema)
            writer.write_table(arrow)
            if csv_writer is not None:
                csv_writer.write_table(arrow)
        if writer is None:
            empty = pa.table({"customer_id": pa.array([], pa.string())})
            pq.write_table(empty, tmp)
            if tmp_csv is not None:
                pacsv.write_csv(empty, tmp_csv)
    return offset


def score_with_spark(
    params: Params,
    loaded: LoadedModel,
    catalog: dict[str, FeatureInfo],
    work: Path,
    staged: dict[str, Path],
) -> SparkScores:
    """engine spark: score the scoring table Spark wrote (`work/SPARK_TABLE`) as Spark jobs
    (`models.spark_scoring`), then stage the scores as one Parquet file and the CSV, streamed from
    Spark's part files, so the published outputs are the DuckDB path's files."""
    sp = params.score
    dataset, found = score_on_spark(
        spark_session(params.engine.spark),
        work / SPARK_TABLE,
        loaded,
        catalog,
        reasons=sp.reasons,
        fee_column=params.value.fee_column,
        risk_tiers=sp.risk_tiers,
        default_tier=sp.default_tier,
        value=params.value,
        work=work,
    )
    to_single_file(dataset, staged["scores"])
    pf = pq.ParquetFile(staged["scores"])
    with atomic_path(staged["csv"]) as tmp, pacsv.CSVWriter(tmp, pf.schema_arrow) as writer:
        for batch in pf.iter_batches(batch_size=65_536):
            writer.write_batch(batch)
    return found


def _typed(table: pa.Table) -> pa.Table:
    """`table` with every all-null column (Arrow type null, e.g. value_tier without any fee) given
    its contract kind (models/scores_contract.py; text otherwise), so that readers such as the
    alert rules see a string or a number column and every chunk shares the first one's schema."""
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            kind = SCORE_COLUMNS.get(field.name, "string")
            typ = pa.float64() if kind == "number" else pa.string()
            table = table.set_column(i, pa.field(field.name, typ), table.column(i).cast(typ))
    return table


def remove_stale_work_dirs(directory: Path) -> None:
    """Delete the work directories of scoring jobs that were killed (their process is gone)."""
    for path in directory.glob(".score-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by a scoring job that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


OUTPUTS: tuple[str, ...] = ("features", "scores", "csv", "priority", "summary")


def output_paths(params: Params, out: Path | None, csv: str | None) -> dict[str, Path]:
    """Where one run's outputs go: the configured paths, or all of them inside `out`."""
    paths = params.paths
    if out is not None:
        names = ("features.parquet", "scores.parquet", "scores.csv", "priority.csv", "score.json")
        return {k: out / name for k, name in zip(OUTPUTS, names, strict=True)}
    return {
        "features": Path(paths.score_features),
        "scores": Path(paths.scores),
        "csv": Path(csv or paths.scores_csv),
        "priority": Path(paths.priority),
        "summary": Path(paths.score_report),
    }


def publish(staged: dict[str, Path], targets: dict[str, Path]) -> None:
    """Move every staged output into place, one rename each, the summary last."""
    for key in OUTPUTS:
        targets[key].parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staged[key], targets[key])
        except OSError:  # another file system: copy, then rename beside the target
            with atomic_path(targets[key]) as tmp:
                shutil.copyfile(staged[key], tmp)


def run(
    params: Params,
    as_of: pd.Timestamp | None = None,
    model_uri: str | None = None,
    csv: str | None = None,
    out: Path | str | None = None,
) -> dict[str, Any]:
    """Score every active customer at `as_of` (default: `score.as_of`, else the day after the
    latest data); return the summary.

    One run's outputs (scoring table, scores Parquet + CSV, priority list, summary) are built in
    a work directory and published together at the end, under a lock on the scores' directory: a
    second run exits 2 while one is running, and a run that fails or is killed leaves every
    output of the previous run as it was.
    """
    sp = params.score
    if as_of is None and sp.as_of is not None:
        as_of = as_of_date(sp.as_of)
    targets = output_paths(params, Path(out) if out is not None else None, csv)
    scores_dir = targets["scores"].parent
    with exclusive_lock(scores_dir / ".score.lock", f"`churn score` writing to {scores_dir}"):
        summary = _run_locked(params, as_of, model_uri, targets)
        if out is None:  # the configured outputs: also kept by as-of date for `churn monitor`
            keep_in_history(targets, params.monitor, pd.Timestamp(summary["as_of"]))
        return summary


def keep_in_history(targets: dict[str, Path], monitor: MonitorParams, as_of: pd.Timestamp) -> Path:
    """Keep this run's scores, scoring table and summary in `monitor.history_dir/<as-of date>/`
    (the directory swapped in whole: a killed copy leaves the previous entry), then delete the
    entries older than `monitor.history_retention_days` before the newest one."""
    target = Path(monitor.history_dir) / history.entry_name(as_of)
    with atomic_directory(target) as staging:
        for key, name in (
            ("scores", history.SCORES),
            ("features", history.FEATURES),
            ("summary", history.SUMMARY),
        ):
            try:  # the published file is never written in place again (runs replace it)
                os.link(targets[key], staging / name)
            except OSError:
                shutil.copyfile(targets[key], staging / name)
    history.prune(monitor.history_dir, monitor.history_retention_days)
    log.info("score history: %s", target)
    return target


def _run_locked(
    params: Params, as_of: pd.Timestamp | None, model_uri: str | None, targets: dict[str, Path]
) -> dict[str, Any]:
    sp = params.score
    started = time.perf_counter()
    mlflow.set_tracking_uri(tracking.tracking_uri(params.mlflow.tracking_uri))
    loaded = load_model_uri(model_uri or sp.model)
    log.info("model %s: version %s, run %s", loaded.uri, loaded.version, loaded.run_id)
    scores_dir = targets["scores"].parent
    scores_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_work_dirs(scores_dir)
    work = Path(tempfile.mkdtemp(prefix=f".score-{os.getpid()}-", dir=scores_dir))
    (work / "publish").mkdir()
    staged = {k: work / "publish" / f"{k}{targets[k].suffix}" for k in OUTPUTS}
    notes: list[str] = []
    try:
        as_of, catalog, (counts, totals) = build_scoring_table(
            params, as_of, work, loaded.model.spec, staged["features"]
        )
        level_counts, rows = unseen_levels_in_file(
            staged["features"], loaded.model.spec, sp.chunk_rows
        )
        unseen = unseen_summary({**level_counts, **counts}, {**rows, **totals})
        check_unseen(unseen, sp.max_unseen_share, f"scoring data as of {as_of.date()}")
        if params.engine.name == "spark":
            found = score_with_spark(params, loaded, catalog, work, staged)
            n, has_value, tiers = found.customers, found.has_value, found.risk_tiers
            mean_probability = found.mean_churn_probability
        else:
            parts, pop = score_chunks(
                staged["features"],
                loaded,
                catalog,
                sp.reasons,
                sp.chunk_rows,
                params.value.fee_column,
                work,
            )
            extra = population_columns(pop, sp.risk_tiers, sp.default_tier, params.value)
            n = write_scores(parts, extra, staged["scores"], staged["csv"])
            has_value = bool(pop["monthly_fee"].notna().any())
            mean_probability = float(pop["churn_probability"].mean()) if n else None
            tiers = extra["risk_tier"].value_counts().sort_index().to_dict() if n else {}
        if n and not has_value:
            notes.append(no_fee_note(params.value.fee_column))
        listed = write_priority(staged["scores"], staged["priority"], params.value, has_value)
        summary = {
            "as_of": as_of.isoformat(),
            "customers": n,
            "model_uri": loaded.uri,
            "model_version": loaded.version,
            "run_id": loaded.run_id,
            "mean_churn_probability": mean_probability,
            "risk_tiers": tiers,
            # per column: values never seen in training (count, rows, share, examples)
            "unseen": unseen,
            "priority_listed": listed,
            "seconds": round(time.perf_counter() - started, 1),
            "scores": str(targets["scores"]),
            "outputs": {k: str(targets[k]) for k in OUTPUTS},
        }
        if notes:  # what the outputs hold for this business (e.g. no fee: no value columns)
            summary["notes"] = notes
        write_json(staged["summary"], summary)
        publish(staged, targets)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("%d customers on the priority list %s", listed, targets["priority"])
    log.info(
        "scored %d customers as of %s in %.1f s -> %s",
        n,
        as_of.date(),
        summary["seconds"],
        targets["scores"],
    )
    return summary
