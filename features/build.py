"""One feature table for any spine: training (labelled cutoffs) and scoring (as-of date) alike."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.parquet as pq

from features.base.io import atomic_path, parquet_schema
from features.base.time import utc_midnight
from features.catalog import DataFacts, FamilyDecision, FeatureInfo, FeatureSet
from features.contract import CONTRACTS
from features.families.economic import economic_families, economic_features
from features.families.engagement import (
    all_event_types,
    daily_events,
    engagement_families,
    engagement_features,
    event_rows,
    merge,
)
from features.families.experience import experience_families, experience_features
from features.families.profile import profile_families, profile_features
from features.families.purchases import purchase_families, purchase_features
from features.families.service import service_families, service_features
from features.families.text import has_feedback_text, text_families, text_features
from features.labels import population
from features.settings import FeaturizeParams, LabelParams
from features.spark import cached, is_spark
from features.tables import KEYS, Tables, cast_to, output_schema, replaceable, write_table

log = logging.getLogger(__name__)

Family = Callable[[Tables, ibis.Table, FeaturizeParams, DataFacts | None], FeatureSet]
Decisions = Callable[[DataFacts, FeaturizeParams], tuple[FamilyDecision, ...]]


def families() -> list[Family]:
    """Every feature family, in the column order of the feature table."""
    return [
        engagement_features,
        purchase_features,
        economic_features,
        experience_features,
        service_features,
        profile_features,
        text_features,
    ]


def _family_rules() -> list[Decisions]:
    """Each family module's rule: which of its families the data has inputs for, and why."""
    return [
        engagement_families,
        purchase_families,
        economic_families,
        experience_families,
        service_families,
        profile_families,
        text_families,
    ]


def data_facts(tables: Tables, cfg: FeaturizeParams) -> DataFacts:
    """What the tables hold over all their rows (schema facts, no cutoff): see DataFacts.

    Reads the event rows the features read when there are (`Tables.events_daily`), else the
    events.
    """
    types = list(all_event_types(cfg))
    occurring: set[str] = set()
    valued: set[str] = set()
    source = tables.events_daily if tables.events_daily is not None else tables.events
    if source is not None and types:
        ev = source.filter(source.event_type.isin(types))
        if "value_sum" in ev.columns:
            valued_rows = ev.value_sum.notnull().cast("int64").sum()
        elif "value" in ev.columns:
            valued_rows = ev.value.notnull().cast("int64").sum()
        else:
            valued_rows = ibis.literal(0, "int64")
        per_type = ev.group_by("event_type").aggregate(valued=valued_rows).to_pyarrow().to_pylist()
        occurring = {r["event_type"] for r in per_type}
        valued = {r["event_type"] for r in per_type if r["valued"]}
    metrics: set[str] = set()
    if tables.responses is not None:
        r = tables.responses
        found = r.select(metric=r.metric.cast("string").lower()).distinct().to_pyarrow()
        metrics = {m if m is not None else "" for m in found["metric"].to_pylist()}
    has_tickets = tables.tickets is not None and bool(tables.tickets.count().to_pyarrow().as_py())
    return DataFacts(
        customer_columns=frozenset(tables.customers.columns),
        event_types=frozenset(occurring),
        valued_event_types=frozenset(valued),
        has_events=tables.events is not None,
        has_responses=bool(metrics),
        response_metrics=frozenset(metrics - {""}),
        has_tickets=has_tickets,
        has_texts=has_feedback_text(tables),
    )


def family_decisions(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Every feature family, built or skipped, with the reason, in the feature table's order."""
    return tuple(d for rule in _family_rules() for d in rule(facts, cfg))


def plan_families(tables: Tables, cfg: FeaturizeParams, keep: Collection[str] = ()) -> DataFacts:
    """The facts that decide which families are built, logged per family.

    `keep`: feature columns that must be built when the code can build them at all (at scoring:
    the model's features). A family that would be skipped, or an event type that does not occur,
    is forced when that brings back one of them, so a model always gets the columns it was
    trained on even if their inputs have since vanished (they then hold nulls or zeros).
    """
    facts = data_facts(tables, cfg)
    if keep:
        facts = _force_for(tables, cfg, facts, set(keep))
    for d in family_decisions(facts, cfg):
        if d.built:
            log.info("feature family %s: built (%s)", d.name, d.reason)
        else:
            log.warning("feature family %s: skipped, %s", d.name, d.reason)
    return facts


def _force_for(tables: Tables, cfg: FeaturizeParams, facts: DataFacts, keep: set[str]) -> DataFacts:
    """`facts` with the families forced that bring back a column of `keep` (lazy builds only)."""
    probe = ibis.memtable(
        pa.table(
            {
                "customer_id": pa.array([], pa.string()),
                "cutoff": pa.array([], pa.timestamp("us", tz="UTC")),
            }
        )
    )

    def names(f: DataFacts) -> set[str]:
        return {i.name for i in _build(tables, probe, cfg, f).catalog}

    have = names(facts)
    wanted = keep - have
    if not wanted:
        return facts
    forced: set[str] = set()
    for d in family_decisions(facts, cfg):
        brings = names(replace(facts, forced=frozenset({d.name}))) - have
        if brings & wanted:
            forced.add(d.name)
            log.warning(
                "feature family %s built for the model's columns %s (%s)",
                d.name,
                sorted(brings & wanted)[:5],
                d.reason,
            )
    return replace(facts, forced=frozenset(forced))


def _build(tables: Tables, keys: ibis.Table, cfg: FeaturizeParams, facts: DataFacts) -> FeatureSet:
    return merge(keys, [family(tables, keys, cfg, facts) for family in families()])


def build_features(
    tables: Tables,
    spine: ibis.Table,
    cfg: FeaturizeParams,
    facts: DataFacts | None = None,
) -> FeatureSet:
    """All features for every (customer_id, cutoff) of `spine`: one row per spine row.

    Everything reads only rows dated strictly before each row's cutoff. Cutoffs must be
    UTC midnights (day-level windows); `training_spine` and `scoring_spine` guarantee that.
    Only the families the data has inputs for are built (`facts`, from `plan_families` on the
    whole tables when not given).
    """
    if facts is None:
        facts = plan_families(tables, cfg)
    keys = spine.select(*KEYS).view()
    fs = _build(tables, keys, cfg, facts)
    names = [f.name for f in fs.catalog]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"feature names produced by more than one family: {dupes}")
    return FeatureSet(_round_floats(fs.table), fs.catalog)


FLOAT_DIGITS = 9


def _round_floats(table: ibis.Table) -> ibis.Table:
    """Round float features to FLOAT_DIGITS decimals.

    Parallel aggregation adds floats in a varying order, so sums differ in the last bits from
    run to run; LightGBM's bin edges then flip and the same data trains a different model.
    Rounding makes the feature table (and so training) reproducible byte for byte.
    """
    return table.mutate(
        **{
            name: table[name].round(FLOAT_DIGITS)
            for name, dtype in table.schema().items()
            if dtype.is_floating()
        }
    )


def training_spine(labels: ibis.Table) -> ibis.Table:
    """(customer_id, cutoff) of the label table: the rows of the training table."""
    return labels.select(*KEYS)


def scoring_spine(
    tables: Tables, as_of: str | dt.date | dt.datetime, label: LabelParams | None = None
) -> ibis.Table:
    """(customer_id, cutoff = as_of's UTC midnight) for every customer in the label's population
    at `as_of` (`features.labels.population`), so a scoring row is exactly a training row
    without its label: features use data strictly before the as-of day."""
    return population(tables, [utc_midnight(as_of)], label or LabelParams())


def with_event_rows(
    tables: Tables,
    cfg: FeaturizeParams,
    con: ibis.BaseBackend,
    work_dir: Path,
    buckets: int = 1,
) -> Tables:
    """`tables` with the rows every event feature reads (`Tables.events_daily`), for the event
    types the features use: one row per event (`engagement.event_rows`, read from the events as
    the feature query runs), or with customer buckets the daily aggregate of each bucket.

    One chunk (a scoring table, a training spine under the chunk size): no aggregate per
    (customer, type, day) first; on event logs with about one event of a type per customer and
    day (the simulated worlds, the benchmark's) it shrank 16.1 M events to 14.5 M rows and cost
    more than every event feature built from it. With `buckets` > 1 (beyond one chunk's rows)
    the events are partitioned by customer bucket (a `bucket` column, one directory each) so
    that a bucket's features read only its own customers' rows, and each bucket is aggregated
    per day once, to Parquet: every cutoff group's chunk reads it again (at 200 M events, 6
    cutoffs and 2 buckets, chunks reading raw events took 731 s, the aggregate 608 s). The other
    customer tables (churn events, responses, tickets) are split the same way, one pass each,
    so that no chunk scans a whole table.
    """
    if tables.events is None:
        return tables
    types = list(all_event_types(cfg))
    if buckets <= 1:
        return replace(tables, events_daily=event_rows(tables.events, types), events_per_event=True)
    # One streaming pass splits the events the features read by customer bucket (a partitioned
    # copy, no aggregation; aggregating and splitting in one pass runs out of a 1 GB limit at a
    # million customers); then each bucket is aggregated on its own, so the memory needed stays
    # that of one bucket however many customers there are.
    ev = tables.events
    columns = [c for c in EVENT_COLUMNS if c in ev.columns]  # the contract's: what families read
    wanted = ev.filter(ev.event_type.isin(types)).select(*columns)
    by_bucket = work_dir / "events_by_bucket"
    con.to_parquet(
        wanted.mutate(bucket=_bucket(wanted.customer_id, buckets)),
        by_bucket,
        partition_by=("bucket",),
    )
    if not any(by_bucket.glob("*/*.parquet")):  # none of the event types occur
        return with_event_rows(tables, cfg, con, work_dir, 1)
    events = con.read_parquet(
        f"{by_bucket}/*/*.parquet", hive_partitioning=True, table_name="events_by_bucket"
    )
    path = work_dir / "events_daily"
    for bucket in range(buckets):
        part = path / f"bucket={bucket}"
        part.mkdir(parents=True, exist_ok=True)
        one = events.filter(events.bucket == bucket).drop("bucket")
        daily_events(one, types).to_parquet(part / "data.parquet")
    log.info("daily event aggregate written to %s (%d customer buckets)", path, buckets)
    # `events` becomes the bucketed copy (only the types features read): a bucket's raw events
    # (fee changes) are then one partition, not a filtered scan of every event.
    split: dict[str, ibis.Table | None] = {
        "events": events,
        "events_daily": con.read_parquet(
            f"{path}/*/*.parquet", hive_partitioning=True, table_name="events_daily"
        ),
    }
    for name in ("churn_events", "responses", "tickets"):
        table = getattr(tables, name)
        if table is None or "bucket" in table.columns:
            continue
        target = work_dir / f"{name}_by_bucket"
        con.to_parquet(
            table.mutate(bucket=_bucket(table.customer_id, buckets)),
            target,
            partition_by=("bucket",),
        )
        if any(target.glob("*/*.parquet")):  # an empty table stays as it is
            split[name] = con.read_parquet(
                f"{target}/*/*.parquet", hive_partitioning=True, table_name=f"{name}_by_bucket"
            )
    return tables.replace(**split)


def _only_bucket(tables: Tables, bucket: int, buckets: int) -> Tables:
    """The event-like tables restricted to one customer bucket (all rows when `buckets` is 1).

    `customers` stays whole: profile features decide from all customers which attributes are
    features (e.g. how many categories a column has), and a bucket must not change that.
    """
    changed: dict[str, ibis.Table | None] = {}
    for name in _INPUTS:
        table = getattr(tables, name)
        if table is None:
            continue
        if "bucket" in table.columns:  # the bucketed copies: prune partitions
            if buckets > 1:
                table = table.filter(table.bucket == bucket)
            changed[name] = table.drop("bucket")
        elif buckets > 1:
            changed[name] = table.filter(_bucket(table.customer_id, buckets) == bucket)
    return tables.replace(**changed)


# The events columns of the input contract: the bucketed copy keeps only these, so that extra
# columns (free text, ids) are not copied.
EVENT_COLUMNS = tuple(c.name for c in CONTRACTS["events"].columns)
_INPUTS = ("churn_events", "events", "responses", "tickets", "events_daily")


class _ChunkQuery:
    """The feature query of one chunk, built and compiled once and re-run for every chunk.

    Its inputs (the chunk's spine rows and the chunk's bucket of each customer table but
    `customers`) are named views that each chunk replaces; the feature expression reads the
    views, so the Ibis expressions and their SQL are made once per table, not once per chunk (a
    few seconds of Python each), and a chunk costs only its query.
    """

    _serial = 0

    def __init__(self, con: ibis.BaseBackend) -> None:
        _ChunkQuery._serial += 1
        self.con = con
        self.prefix = f"_features_{os.getpid()}_{_ChunkQuery._serial}"
        self.views: list[str] = []

    def bind(self, spine: ibis.Table, tables: Tables) -> tuple[ibis.Table, Tables]:
        """Point the input views at this chunk's rows; return the tables that read the views."""
        named: dict[str, ibis.Table | None] = {}
        for name, table in (("spine", spine), *((n, getattr(tables, n)) for n in _INPUTS)):
            if table is None:
                named[name] = None
                continue
            view = f"{self.prefix}_{name}"
            self.con.create_view(view, table, overwrite=True)
            if view not in self.views:
                self.views.append(view)
            named[name] = self.con.table(view)
        chunk = named.pop("spine")
        assert chunk is not None
        return chunk, tables.replace(**named)

    def register_functions(self, expr: ibis.Table) -> None:
        """Register the Python UDFs `expr` calls (the text normaliser): running an expression
        does it, creating a view of it does not."""
        hooks = getattr(self.con, "_run_pre_execute_hooks", None)
        if hooks is not None:  # Ibis' own step before running an expression
            hooks(expr)
        else:  # another Ibis version: run it on no rows
            expr.limit(0).to_pyarrow()

    def drop(self) -> None:
        """Drop every view this query made (the feature view first, then its inputs)."""
        for view in reversed(self.views):  # (Ibis' drop_view emits no name with this sqlglot)
            self.con.raw_sql(f'DROP VIEW IF EXISTS "{view}"')


def write_feature_table(
    con: ibis.BaseBackend,
    tables: Tables,
    spine: ibis.Table,
    cfg: FeaturizeParams,
    out: Path | str,
    work_dir: Path | str | None = None,
    rows_per_chunk: int = 500_000,
    keep: Collection[str] = (),
    facts: DataFacts | None = None,
) -> tuple[FeatureInfo, ...]:
    """Build features for `spine` and write spine columns + features to `out`, atomically.

    Which families are built is decided once, from the whole tables (`facts`, else
    `plan_families(tables, cfg, keep)`), never per chunk or bucket: the same tables give the
    same columns for training and scoring; `keep` (the model's features at scoring) forces the
    families that produce them.

    Runs a few whole cutoffs at a time (about `rows_per_chunk` spine rows: the events join
    each customer's few cutoffs in the chunk, not all of them) and streams every chunk to
    Parquet, so memory stays bounded by the chunk, not by the whole spine. Extra spine columns
    (churned, churn_type) come first, after the keys. Returns the feature catalog.
    """
    if is_spark(con):
        return _write_on_spark(con, tables, spine, cfg, out, keep, facts)
    own_tmp = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="featurize-")) if own_tmp else Path(work_dir)  # type: ignore[arg-type]
    work.mkdir(parents=True, exist_ok=True)
    query: _ChunkQuery | None = None
    try:
        # The spine is evaluated once (it may be a query over whole tables, e.g. the scoring
        # population): every chunk then reads its rows from this file, not the query again.
        spine_path = work / "spine.parquet"
        spine.to_parquet(spine_path)
        spine = con.read_parquet(spine_path)
        cutoffs = cutoffs_of(spine)
        chunks = _chunks(spine, cutoffs, rows_per_chunk)
        most = max((buckets for _, _, buckets in chunks), default=1)
        cached = with_event_rows(tables, cfg, con, work, most)
        if facts is None:
            facts = plan_families(cached, cfg, keep)
        extra = [c for c in spine.columns if c not in KEYS]
        if not chunks:
            fs = build_features(_only_bucket(cached, 0, 1), spine, cfg, facts)
            empty = spine.left_join(fs.table, list(KEYS)).select(
                *KEYS, *extra, *[f.name for f in fs.catalog]
            )
            _write_parts([], Path(out), output_schema(empty.schema()).to_pyarrow())
            return fs.catalog
        parts: list[Path] = []
        catalog: tuple[FeatureInfo, ...] = ()
        query = _ChunkQuery(con)
        features: ibis.Table | None = None
        ctype = spine.cutoff.type()
        for i, (group, bucket, buckets) in enumerate(chunks):
            lo, hi = group[0], group[-1]
            chunk = spine.filter(
                spine.cutoff >= ibis.literal(lo, ctype), spine.cutoff <= ibis.literal(hi, ctype)
            )
            if buckets > 1:
                chunk = chunk.filter(_bucket(chunk.customer_id, buckets) == bucket)
            chunk, chunk_tables = query.bind(chunk, _only_bucket(cached, bucket, buckets))
            if features is None:  # built once: the views it reads change with every chunk
                chunk = chunk.view()
                fs = build_features(chunk_tables, chunk, cfg, facts)
                catalog = fs.catalog
                joined = chunk.left_join(fs.table, list(KEYS))
                expr = joined.select(*KEYS, *extra, *[f.name for f in catalog])
                name = f"{query.prefix}_features"
                query.register_functions(expr)
                con.create_view(name, expr, overwrite=True)
                query.views.append(name)
                # explicit output types: DuckDB's view types a SUM as HUGEINT, which its
                # Parquet writer would store as double, not the int64 the expression declares
                view = con.table(name)
                features = cast_to(view, output_schema(expr.schema())).order_by(list(KEYS))
            part = work / f"part-{i:04d}.parquet"
            features.to_parquet(part)
            parts.append(part)
            log.info(
                "features for cutoffs %s .. %s (customer bucket %d of %d) written",
                lo.date(),
                hi.date(),
                bucket + 1,
                buckets,
            )
        _write_parts(parts, Path(out), None)
        return catalog
    finally:
        if query is not None:
            query.drop()
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


def _write_on_spark(
    con: ibis.BaseBackend,
    tables: Tables,
    spine: ibis.Table,
    cfg: FeaturizeParams,
    out: Path | str,
    keep: Collection[str],
    facts: DataFacts | None,
) -> tuple[FeatureInfo, ...]:
    """`write_feature_table` on Spark: one expression for the whole spine, written by the
    executors as a Parquet dataset directory. Spark partitions and spills the work itself, so
    there are no chunks or customer buckets (those are DuckDB's memory bound)."""
    spine = cached(con, spine)  # the spine may be a query over whole tables: evaluated once
    kept = tables
    if tables.events is not None:  # every event feature reads one daily aggregate, kept cached
        daily = daily_events(tables.events, list(all_event_types(cfg)))
        kept = tables.replace(events_daily=cached(con, daily))
    if facts is None:
        facts = plan_families(kept, cfg, keep)
    fs = build_features(kept, spine, cfg, facts)
    extra = [c for c in spine.columns if c not in KEYS]
    expr = spine.left_join(fs.table, list(KEYS)).select(
        *KEYS, *extra, *[f.name for f in fs.catalog]
    )
    write_table(con, expr, out, order_by=KEYS)
    return fs.catalog


def _bucket(customer_id: ibis.StringValue, buckets: int) -> ibis.IntegerValue:
    """A stable bucket in [0, buckets) per customer id (a hash, so buckets have similar sizes)."""
    return ((customer_id.hash() % buckets) + buckets) % buckets


def _chunks(
    spine: ibis.Table, cutoffs: list[dt.datetime], rows_per_chunk: int
) -> list[tuple[list[dt.datetime], int, int]]:
    """Work units of about `rows_per_chunk` spine rows: (cutoffs, bucket, bucket count).

    Consecutive cutoffs are grouped while they fit; a single cutoff with more rows than that
    (scoring a million customers at one as-of date) is split into customer-hash buckets, so
    memory stays bounded by the chunk size, not by the customer count.
    """
    groups = _cutoff_groups(spine, cutoffs, rows_per_chunk)
    # one bucket count for every group that needs splitting: the partitions of the cached event
    # aggregate are made once, by that count
    most = max((-(-n // rows_per_chunk) for _, n in groups), default=1)
    return [
        (group, bucket, buckets)
        for group, n in groups
        for buckets in [most if n > rows_per_chunk else 1]
        for bucket in range(buckets)
    ]


def _cutoff_groups(
    spine: ibis.Table, cutoffs: list[dt.datetime], rows_per_chunk: int
) -> list[tuple[list[dt.datetime], int]]:
    """Consecutive cutoffs grouped so that each group has about `rows_per_chunk` spine rows."""
    counts = dict(
        spine.group_by("cutoff")
        .aggregate(n=spine.count())
        .to_pyarrow()
        .to_pandas()
        .assign(cutoff=lambda d: d.cutoff.map(utc_midnight))
        .itertuples(index=False)
    )
    groups: list[tuple[list[dt.datetime], int]] = []
    for c in cutoffs:
        n = int(counts.get(c, 0))
        if groups and groups[-1][1] + n <= rows_per_chunk:
            groups[-1][0].append(c)
            groups[-1] = (groups[-1][0], groups[-1][1] + n)
        else:
            groups.append(([c], n))
    return groups


def cutoffs_of(spine: ibis.Table) -> list[dt.datetime]:
    """The spine's distinct cutoffs (checked to be UTC midnights), ascending."""
    values = spine.select("cutoff").distinct().order_by("cutoff").to_pyarrow()["cutoff"].to_pylist()
    bad = [c for c in values if (c.hour, c.minute, c.second, c.microsecond) != (0, 0, 0, 0)]
    if bad:
        raise ValueError(
            f"spine cutoffs must be UTC midnights (features use whole days); found {bad[0]}. "
            "Use features.base.time.utc_midnight to build cutoffs."
        )
    return [utc_midnight(c) for c in values]


def to_single_file(dataset: Path | str, out: Path | str) -> None:
    """A Parquet dataset directory (a Spark output) as one Parquet file `out`, streamed batch by
    batch; a single file is copied as it is."""
    dataset = Path(dataset)
    if dataset.is_file():
        with atomic_path(replaceable(out)) as tmp:
            shutil.copyfile(dataset, tmp)
        return
    parts = sorted(p for p in dataset.glob("*.parquet") if not p.name.startswith((".", "_")))
    _write_parts(parts, Path(out), None if parts else parquet_schema(dataset))


def _write_parts(parts: Sequence[Path], out: Path, schema: pa.Schema | None) -> None:
    """Concatenate Parquet parts into `out` batch by batch (bounded memory), atomically."""
    if parts:
        schema = pq.read_schema(parts[0])
    assert schema is not None
    with atomic_path(replaceable(out)) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for part in parts:
                pf = pq.ParquetFile(part)
                for batch in pf.iter_batches(batch_size=65_536):
                    writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)
