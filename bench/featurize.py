"""Benchmark: our Ibis/DuckDB featurize vs a straightforward pandas version of the same features.

    python bench/featurize.py --events 20000000

Generates synthetic contract tables with DuckDB (N events, ~N/300 customers, 12 months,
responses N/100, tickets N/300), then runs in ONE run, each in its own subprocess:
  ours   - features.build.write_feature_table (all families, chunked per cutoff, streamed)
  pandas - pandas implementation of the engagement features (counts, value sums, active days,
           days since last, 30-day trend, weekly slope per engagement type) and of the service
           ticket counts (opened per window, open at cutoff) and payment failures per window
Measures wall time and peak RSS (psutil polling of the child, every 50 ms), prints both side by
side and checks that the two agree on a sample of rows.

With Featuretools (the peer for point-in-time features; `--peers featuretools` or `all`), on the
same files in the same run, the features both can express: per event type (the 9 generated
types) and window (30/90/180 days before the cutoff), the count of events and the sum and mean
of `value`, for every (customer_id, cutoff) of the spine, events strictly before the cutoff:
  ours (featurize stage) - features.build.write_feature_table with a config restricted to those
           types/windows (value sums for every type) over customers (id, signup) and events: it
           also computes active days, trend, slope, days since last and tenure (not shared);
           the mean is sum / count (our featurize has no mean feature; `value` has no nulls here,
           so that is Featuretools' MEAN), written with the keys and the 81 shared columns
  ours (shared only)     - the same code path's building blocks for exactly the shared features:
           features.families.engagement.daily_events + event_window_features (no active days,
           trend, recency), mean = sum / count in the same query
  reference              - one plain DuckDB SQL pass over the raw events (not our code): the join
           bounded to the longest window, grouped per (customer, cutoff, type), then pivoted
  Featuretools           - bench/featuretools_peer.py in its own venv (pandas 2): one ft.dfs per
           window with the spine as cutoff_time, training_window, include_cutoff_time=False
The shared matrices are compared on every row (`--sample N`: a random sample of N rows), floats
to 1e-9, key sets in full; one generated event in 1000 sits exactly on a cutoff, a microsecond
before it, or a window's first instant, so the check sees the boundaries. n_jobs=1: Featuretools'
n_jobs > 1 needs dask.distributed and the machine's 2 cores are shared; ours is also run with 1
DuckDB thread.
`--profile` times our featurize per step and per feature family (default config, all tables).

    python bench/featurize.py --events 2000000 --peers featuretools --profile
    python bench/featurize.py --install-peer --peers none  # .bench-venv from requirements-peer
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CUTOFFS = [f"2024-{m:02d}-01" for m in range(7, 13)]  # 6 monthly cutoffs, 6+ months of history
ENGAGEMENT_TYPES = ("login", "feature_use")
WINDOWS = (7, 30, 90, 180)
EVENT_MIX = [  # (type, share)
    ("login", 0.45),
    ("feature_use", 0.30),
    ("purchase", 0.05),
    ("payment", 0.06),
    ("payment_failure", 0.02),
    ("discount_request", 0.02),
    ("plan_change", 0.01),
    ("price_change", 0.01),
    ("survey_sent", 0.08),
]


def generate(n_events: int, out: Path, threads: int = 2) -> dict[str, int]:
    """Write customers/events/responses/tickets Parquet files and the spine with DuckDB range()."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    n_cust = max(n_events // 300, 10)
    con = duckdb.connect(
        config={"threads": threads, "memory_limit": "3GB", "temp_directory": str(out / "tmp")}
    )
    con.execute("SET TimeZone = 'UTC'")
    # cumulative thresholds for the event type mix
    cases, acc = [], 0.0
    for t, share in EVENT_MIX:
        acc += share
        cases.append(f"WHEN r < {acc:.4f} THEN '{t}'")
    type_case = "CASE " + " ".join(cases) + " ELSE 'login' END"
    con.execute(f"""
        COPY (SELECT 'C' || lpad(i::VARCHAR, 8, '0') AS customer_id,
                     TIMESTAMPTZ '2024-01-01 00:00:00+00'
                       - to_days((hash(i) % 200)::INTEGER) AS signup_date,
                     ['basic','pro','family'][1 + (hash(i * 3) % 3)::BIGINT] AS plan,
                     [9.99, 19.99, 29.99][1 + (hash(i * 3) % 3)::BIGINT] AS monthly_fee,
                     ['DE','FR','ES','IT'][1 + (hash(i * 5) % 4)::BIGINT] AS country,
                     random() AS noise
              FROM range({n_cust}) t(i)) TO '{out}/customers.parquet' (FORMAT PARQUET)""")
    # events sorted by time (as an append-only log would be), but one in 1000 is put exactly on
    # a point-in-time boundary: a cutoff (excluded), a microsecond before it, or a window's first
    # instant (cutoff - w days, included), so that the equality checks exercise the boundaries
    bounds = sorted(
        {
            f"TIMESTAMPTZ '{c} 00:00:00+00' - INTERVAL {d} DAY{' - INTERVAL 1 MICROSECOND' * us}"
            for c in CUTOFFS
            for d, us in [(0, 0), (0, 1), *((w, 0) for w in (*WINDOWS, *SHARED_WINDOWS))]
        }
    )
    con.execute(f"""
        COPY (SELECT 'C' || lpad((hash(i) % {n_cust})::VARCHAR, 8, '0') AS customer_id,
                     CASE WHEN i % 1000 = 7
                          THEN [{", ".join(bounds)}][1 + (hash(i) % {len(bounds)})::BIGINT]
                     ELSE TIMESTAMPTZ '2024-01-01 00:00:00+00'
                       + to_microseconds((i * (366 * 86400000000 // {n_events}))::BIGINT) END AS ts,
                     {type_case} AS event_type,
                     round(random() * 60, 1) AS value
              FROM (SELECT i, random() AS r FROM range({n_events}) t(i)))
        TO '{out}/events.parquet' (FORMAT PARQUET, ROW_GROUP_SIZE 1000000)""")
    n_resp = n_events // 100
    con.execute(f"""
        COPY (SELECT 'C' || lpad((hash(i * 7) % {n_cust})::VARCHAR, 8, '0') AS customer_id,
                     TIMESTAMPTZ '2024-01-01 00:00:00+00'
                       + to_microseconds((i * (366 * 86400000000 // {n_resp}))::BIGINT) AS ts,
                     ['onboarding','support','after_sales','billing','renewal','relationship']
                       [1 + (hash(i) % 6)::BIGINT] AS touchpoint,
                     CASE WHEN hash(i) % 6 = 5 THEN 'nps' ELSE 'csat' END AS metric,
                     (hash(i * 11) % 11)::DOUBLE AS score,
                     CASE WHEN hash(i) % 4 = 0 THEN 'too expensive and slow' END AS comment
              FROM range({n_resp}) t(i)) TO '{out}/responses.parquet' (FORMAT PARQUET)""")
    n_tk = max(n_events // 300, 1)
    con.execute(f"""
        COPY (SELECT customer_id, opened_at,
                     CASE WHEN hash(i) % 10 = 0 THEN NULL
                          ELSE opened_at + to_hours((1 + hash(i * 13) % 200)::BIGINT)
                     END AS closed_at,
                     ['billing','technical','account','cancellation']
                       [1 + (hash(i) % 4)::BIGINT] AS category,
                     'low' AS priority, hash(i) % 5 = 0 AS escalated,
                     (1 + hash(i * 17) % 5)::DOUBLE AS satisfaction, 'app is slow' AS text
              FROM (SELECT i,
                           'C' || lpad((hash(i * 19) % {n_cust})::VARCHAR, 8, '0') AS customer_id,
                           TIMESTAMPTZ '2024-01-01 00:00:00+00'
                             + to_microseconds((i * (366 * 86400000000 // {n_tk}))::BIGINT)
                             AS opened_at
                    FROM range({n_tk}) t(i)))
        TO '{out}/tickets.parquet' (FORMAT PARQUET)""")
    cut_list = ", ".join(f"TIMESTAMPTZ '{c} 00:00:00+00'" for c in CUTOFFS)
    con.execute(f"""
        COPY (SELECT c.customer_id, k.cutoff FROM '{out}/customers.parquet' c,
                     (SELECT unnest([{cut_list}]) AS cutoff) k
              WHERE c.signup_date < k.cutoff ORDER BY k.cutoff, c.customer_id)
        TO '{out}/spine.parquet' (FORMAT PARQUET)""")
    n_spine = con.execute(f"SELECT count(*) FROM '{out}/spine.parquet'").fetchone()[0]
    con.close()
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return {
        "customers": n_cust,
        "events": n_events,
        "responses": n_resp,
        "tickets": n_tk,
        "spine_rows": n_spine,
    }


def run_ours(data: Path, out: Path) -> None:
    """Our featurize: every family, chunked per cutoff, streamed to Parquet."""
    from features.build import write_feature_table
    from features.settings import FeaturizeParams
    from features.tables import connect, load_tables

    cfg = FeaturizeParams()
    con = connect(cfg.duckdb_memory_limit, cfg.duckdb_threads, data / "duckdb_tmp")
    tables = load_tables(con, data)
    spine = con.read_parquet(data / "spine.parquet")
    # the work dir sits beside the output (a run's temp dir), not in the data: kept data is reused
    catalog = write_feature_table(con, tables, spine, cfg, out, out.parent / "work_ours")
    print(json.dumps({"features": len(catalog)}))


def run_pandas(data: Path, out: Path) -> None:
    """Straightforward pandas: load the tables, merge with the cutoffs, filter, group by."""
    import numpy as np
    import pandas as pd

    spine = pd.read_parquet(data / "spine.parquet")
    spine["cutoff_day"] = spine.cutoff.astype("int64") // 86_400_000_000
    ev = pd.read_parquet(
        data / "events.parquet", columns=["customer_id", "ts", "event_type", "value"]
    )
    ev["day"] = ev.ts.astype("int64") // 86_400_000_000  # us since epoch -> days
    ev = ev[ev.event_type.isin([*ENGAGEMENT_TYPES, "payment_failure"])]
    m = ev.merge(spine[["customer_id", "cutoff", "cutoff_day"]], on="customer_id")
    m = m[m.day < m.cutoff_day]
    m["days_back"] = m.cutoff_day - m.day
    result = spine[["customer_id", "cutoff"]].copy()
    keys = ["customer_id", "cutoff"]
    for t in ENGAGEMENT_TYPES:
        e = m[m.event_type == t]
        name = f"{t}s"
        for w in WINDOWS:
            ew = e[e.days_back <= w]
            g = ew.groupby(keys).agg(n=("day", "size"), v=("value", "sum"), d=("day", "nunique"))
            g.columns = [f"{name}_{w}d", f"{t}_value_{w}d", f"{t}_active_days_{w}d"]
            result = result.merge(g, left_on=keys, right_index=True, how="left")
        last = e[e.days_back <= 30].groupby(keys).size().rename("last")
        prev = e[(e.days_back > 30) & (e.days_back <= 60)].groupby(keys).size().rename("prev")
        tr = pd.concat([last, prev], axis=1).fillna(0)
        result = result.merge(
            (tr["last"] - tr["prev"]).rename(f"{name}_30d_minus_prev_30d"),
            left_on=keys,
            right_index=True,
            how="left",
        )
        s = e[e.days_back <= 56]
        weight = ((7 - (s.days_back - 1) // 7) - 3.5) / 42
        slope = weight.groupby([s.customer_id, s.cutoff]).sum().rename(f"{name}_weekly_slope_8w")
        result = result.merge(slope, left_on=keys, right_index=True, how="left")
        since = e.groupby(keys).days_back.min().rename(f"days_since_last_{t}")
        result = result.merge(since, left_on=keys, right_index=True, how="left")
    pf = m[m.event_type == "payment_failure"]
    for w in WINDOWS:
        g = pf[pf.days_back <= w].groupby(keys).size().rename(f"payment_failures_{w}d")
        result = result.merge(g, left_on=keys, right_index=True, how="left")
    del m, ev
    tk = pd.read_parquet(
        data / "tickets.parquet", columns=["customer_id", "opened_at", "closed_at"]
    )
    tm = tk.merge(spine[["customer_id", "cutoff"]], on="customer_id")
    tm = tm[tm.opened_at < tm.cutoff]
    age = (tm.cutoff - tm.opened_at).dt.total_seconds() / 86_400
    for w in WINDOWS:
        g = tm[age <= w].groupby(keys).size().rename(f"tickets_opened_{w}d")
        result = result.merge(g, left_on=keys, right_index=True, how="left")
    is_open = tm.closed_at.isna() | (tm.closed_at >= tm.cutoff)
    g = tm[is_open].groupby(keys).size().rename("tickets_open_at_cutoff")
    result = result.merge(g, left_on=keys, right_index=True, how="left")
    counts = [c for c in result.columns if c not in keys and not c.startswith("days_since")]
    result[counts] = result[counts].fillna(0)
    result.to_parquet(out)
    print(
        json.dumps({"features": len(result.columns) - 2, "rows": len(result), "np": np.__version__})
    )


SHARED_TYPES = tuple(t for t, _ in EVENT_MIX)
SHARED_WINDOWS = (30, 90, 180)
PEER_VENV = ROOT / ".bench-venv"
PEER_REQUIREMENTS = ROOT / "bench" / "requirements-peer.txt"


def shared_columns() -> list[str]:
    """The shared feature matrix's columns (after the keys), in one order for both sides."""
    return [
        f"{k}_{t}_{w}d" for w in SHARED_WINDOWS for t in SHARED_TYPES for k in ("n", "sum", "mean")
    ]


def _shared_inputs(data: Path, threads: int):  # noqa: ANN202
    """Our connection, the tables restricted to the shared inputs (customer ids and signup dates,
    events; no responses or tickets) and the spine."""
    from features.tables import connect, load_tables

    con = connect("3GB", threads, data / f"duckdb_tmp_{threads}")
    tables = load_tables(con, data)
    tables = tables.replace(
        customers=tables.customers.select("customer_id", "signup_date"),
        responses=None,
        tickets=None,
        churn_events=None,
    )
    return con, tables, con.read_parquet(data / "spine.parquet")


def _shared_matrix(table, names: dict[tuple[str, int], tuple[str, str]]):  # noqa: ANN001, ANN202
    """Keys + n/sum/mean per (type, window) from our count and value-sum columns."""
    import ibis

    cols = {}
    for w in SHARED_WINDOWS:
        for t in SHARED_TYPES:
            n_col, sum_col = names[(t, w)]
            n, v = table[n_col].cast("float64"), table[sum_col].cast("float64")
            cols[f"n_{t}_{w}d"] = n
            cols[f"sum_{t}_{w}d"] = v
            cols[f"mean_{t}_{w}d"] = ibis.ifelse(n > 0, v / n, ibis.null("float64"))
    return table.select("customer_id", "cutoff", **cols)


def run_ours_shared(data: Path, out: Path, threads: int) -> None:
    """The featurize stage (write_feature_table) restricted to the shared event types/windows."""
    from features.build import write_feature_table
    from features.settings import FeaturizeParams
    from features.tables import plural, slug

    cfg = FeaturizeParams(
        windows=SHARED_WINDOWS,
        event_types=SHARED_TYPES,
        economic_event_types=(),
        fee_event_types=(),
        plan_change_event_type="",
        survey_event_type="",
        event_value_names={t: "value" for t in SHARED_TYPES},
        duckdb_threads=threads,
    )
    con, tables, spine = _shared_inputs(data, threads)
    full = out.with_suffix(".full.parquet")
    catalog = write_feature_table(
        con, tables, spine, cfg, full, out.parent / f"work_stage_{threads}"
    )
    names = {
        (t, w): (f"{plural(t)}_{w}d", f"{slug(t)}_value_{w}d")
        for t in SHARED_TYPES
        for w in SHARED_WINDOWS
    }
    _shared_matrix(con.read_parquet(full), names).to_parquet(out)
    print(
        json.dumps({"features": len(catalog), "shared": len(shared_columns()), "threads": threads})
    )


def run_ours_direct(data: Path, out: Path, threads: int) -> None:
    """Exactly the shared features with our building blocks: daily aggregate + event windows."""
    from features.families.engagement import EventSpec, daily_events, event_window_features
    from features.tables import plural, slug

    con, tables, spine = _shared_inputs(data, threads)
    daily = data / f"events_daily_direct_{threads}.parquet"
    daily_events(tables.events, SHARED_TYPES).to_parquet(daily)
    specs = [
        EventSpec(t, "engagement", SHARED_WINDOWS, value_name="value", days_since=False)
        for t in SHARED_TYPES
    ]
    fs = event_window_features(
        con.read_parquet(daily), spine.select("customer_id", "cutoff"), specs
    )
    names = {
        (t, w): (f"{plural(t)}_{w}d", f"{slug(t)}_value_{w}d")
        for t in SHARED_TYPES
        for w in SHARED_WINDOWS
    }
    _shared_matrix(fs.table, names).order_by(["customer_id", "cutoff"]).to_parquet(out)
    print(json.dumps({"shared": len(shared_columns()), "threads": threads}))


def run_reference(data: Path, out: Path, threads: int) -> None:
    """Reference pass (plain DuckDB SQL, not our code): the shared features from the raw events
    in one join bounded to the longest window, grouped per (customer, cutoff, type) with one
    FILTER per window, then pivoted to one row per (customer, cutoff)."""
    import duckdb

    con = duckdb.connect(config={"threads": threads, "memory_limit": "3GB"})
    con.execute("SET TimeZone = 'UTC'")
    longest = max(SHARED_WINDOWS)
    types = ", ".join(f"'{t}'" for t in SHARED_TYPES)
    per_window = ", ".join(
        f"count(*) FILTER (WHERE e.ts >= s.cutoff - INTERVAL {w} DAY) AS n_{w}, "
        f"coalesce(sum(e.value) FILTER (WHERE e.ts >= s.cutoff - INTERVAL {w} DAY), 0) AS v_{w}"
        for w in SHARED_WINDOWS
    )
    pivot = []
    for w in SHARED_WINDOWS:
        for t in SHARED_TYPES:
            n = f"coalesce(sum(l.n_{w}) FILTER (WHERE l.event_type = '{t}'), 0)::DOUBLE"
            v = f"coalesce(sum(l.v_{w}) FILTER (WHERE l.event_type = '{t}'), 0)::DOUBLE"
            pivot += [
                f"{n} AS n_{t}_{w}d",
                f"{v} AS sum_{t}_{w}d",
                f"CASE WHEN {n} > 0 THEN {v} / {n} END AS mean_{t}_{w}d",
            ]
    con.execute(f"""
        COPY (
          WITH s AS (SELECT customer_id, cutoff FROM '{data}/spine.parquet'),
          l AS (
            SELECT s.customer_id, s.cutoff, e.event_type, {per_window}
            FROM s JOIN (SELECT customer_id, ts, event_type, value::DOUBLE AS value
                         FROM '{data}/events.parquet' WHERE event_type IN ({types})) e
              ON e.customer_id = s.customer_id AND e.ts < s.cutoff
             AND e.ts >= s.cutoff - INTERVAL {longest} DAY
            GROUP BY ALL)
          SELECT s.customer_id, s.cutoff, {", ".join(pivot)}
          FROM s LEFT JOIN l ON l.customer_id = s.customer_id AND l.cutoff = s.cutoff
          GROUP BY s.customer_id, s.cutoff
        ) TO '{out}' (FORMAT PARQUET)""")
    print(json.dumps({"shared": len(shared_columns()), "threads": threads}))


def run_profile(data: Path, out: Path, threads: int) -> None:
    """Our featurize (default config, all tables) step by step: one query per family, each
    timed as building the Ibis expression, compiling it to SQL, and running it to Parquet."""
    t0 = time.perf_counter()
    from features.build import build_features, families, plan_families, with_event_rows
    from features.settings import FeaturizeParams
    from features.tables import connect, load_tables

    steps = [
        {"step": "import features (ibis, duckdb, pandera...)", "run": time.perf_counter() - t0}
    ]
    cfg = FeaturizeParams(duckdb_threads=threads)
    con = connect(cfg.duckdb_memory_limit, threads, data / "duckdb_tmp_profile")
    work = data / "work_profile"
    work.mkdir(parents=True, exist_ok=True)

    def timed(name: str, fn):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        result = fn()
        steps.append({"step": name, "run": time.perf_counter() - t0})
        return result

    def query(name: str, build, path: Path) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        fs = build()
        t1 = time.perf_counter()
        con.compile(fs.table)
        t2 = time.perf_counter()
        con.to_parquet(fs.table, path)  # compiles again: run = this minus the compile
        t3 = time.perf_counter()
        steps.append(
            {
                "step": name,
                "build": t1 - t0,
                "compile": t2 - t1,
                "run": (t3 - t2) - (t2 - t1),
                "columns": len(fs.catalog),
            }
        )

    tables = load_tables(con, data)
    spine = timed(
        "spine to Parquet and back",
        lambda: (
            con.read_parquet(data / "spine.parquet").to_parquet(work / "spine.parquet"),
            con.read_parquet(work / "spine.parquet"),
        )[1],
    )
    cached = timed(
        "event rows (a view of the events: no pass)",
        lambda: with_event_rows(tables, cfg, con, work, 1),
    )
    facts = timed("plan families (data facts)", lambda: plan_families(cached, cfg))
    keys = spine.select("customer_id", "cutoff").view()
    for i, family in enumerate(families()):
        name = family.__name__.removesuffix("_features")
        query(
            f"family {name}",
            lambda family=family: family(cached, keys, cfg, facts),
            work / f"family-{i}.parquet",
        )
    query(
        "all families in one query (as featurize runs them)",
        lambda: build_features(cached, keys, cfg, facts),
        work / "all.parquet",
    )
    out.write_text(json.dumps(steps))
    print(json.dumps({"steps": len(steps), "threads": threads}))


def peer_python(path: Path | None) -> Path:
    """The Featuretools venv's python (--featuretools-python, else .bench-venv)."""
    return path if path is not None else PEER_VENV / "bin" / "python"


def install_peer(venv: Path = PEER_VENV) -> Path:
    """Create the peer venv (python3.11 -m venv) and install bench/requirements-peer.txt."""
    base = shutil.which("python3.11") or sys.executable
    print(f"creating {venv} with {base} and installing {PEER_REQUIREMENTS.name} ...", flush=True)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(PEER_REQUIREMENTS)], check=True)
    return venv / "bin" / "python"


def check_peer(python: Path) -> str:
    """The peer's featuretools version; exits (status 1) saying how to get it if missing."""
    how = (
        "create it with: python bench/featurize.py --install-peer   (or by hand: python3.11 -m "
        "venv .bench-venv && .bench-venv/bin/pip install -r bench/requirements-peer.txt), "
        "or point --featuretools-python at a python that has featuretools"
    )
    if not python.exists():
        sys.exit(f"Featuretools python not found at {python}; {how}")
    probe = subprocess.run(
        [str(python), "-c", "import featuretools; print(featuretools.__version__)"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        sys.exit(f"{python} cannot import featuretools ({probe.stderr.strip()[-300:]}); {how}")
    return probe.stdout.strip()


def compare_shared(ours: Path, theirs: Path, n: int = 0) -> tuple[str, list[str]]:
    """Shared matrices: key sets in full, every shared column on a random sample of `n` rows
    (0: every row; floats to 1e-9, NaN = NaN). Returns (what was compared, problems)."""
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(ours).set_index(["customer_id", "cutoff"]).sort_index()
    b = pd.read_parquet(theirs).set_index(["customer_id", "cutoff"]).sort_index()
    problems = []
    if not a.index.equals(b.index):
        problems.append(f"row keys differ: ours {len(a)} rows, Featuretools {len(b)}")
        b = b.reindex(a.index)
    cols = shared_columns()
    missing = [c for c in cols if c not in a.columns or c not in b.columns]
    if missing:
        problems.append(f"columns missing: {missing[:5]}")
        cols = [c for c in cols if c not in missing]
    size = min(n, len(a)) if n > 0 else len(a)
    rows = np.random.default_rng(0).choice(len(a), size=size, replace=False)
    x = a.iloc[rows][cols].to_numpy(dtype="float64", na_value=np.nan)
    y = b.loc[a.index[rows], cols].to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)
    for j in np.flatnonzero(bad.any(axis=0)):
        i = int(np.flatnonzero(bad[:, j])[0])
        problems.append(
            f"{cols[j]}: {int(bad[:, j].sum())} rows differ, e.g. {a.index[rows[i]]}: "
            f"ours {x[i, j]!r}, Featuretools {y[i, j]!r}"
        )
    nonzero = int((np.nan_to_num(x) != 0).sum())
    what = (
        f"{len(rows)} {'sampled ' if len(rows) < len(a) else ''}rows x {len(cols)} columns "
        f"({nonzero} non-zero values), "
        f"keys of all {len(a)} rows"
    )
    return what, problems


def measure(cmd: list[str]) -> dict[str, float]:
    """Run `cmd` in a child process; wall seconds and peak RSS (child + its children) in MiB."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(
                c.memory_info().rss for c in proc.children(recursive=True)
            )
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mib": peak / 2**20, "out": stdout.strip().splitlines()[-1]}


def compare(ours: Path, theirs: Path, n: int = 500) -> tuple[int, list[str]]:
    """Compare shared columns on a random sample of rows; return (columns compared, problems)."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    p = pd.read_parquet(theirs)
    sample = (
        p.sample(min(n, len(p)), random_state=0).set_index(["customer_id", "cutoff"]).sort_index()
    )
    rename = {f"{t}_value_{w}d": f"{t}_minutes_{w}d" for t in ENGAGEMENT_TYPES for w in WINDOWS}
    sample = sample.rename(columns=rename)
    cols = [c for c in sample.columns if c in set(pq.read_schema(ours).names)]
    o = pd.read_parquet(ours, columns=["customer_id", "cutoff", *cols]).set_index(
        ["customer_id", "cutoff"]
    )
    o = o.loc[sample.index]
    problems = []
    for c in cols:
        a = sample[c].to_numpy(dtype="float64", na_value=np.nan)
        b = o[c].to_numpy(dtype="float64", na_value=np.nan)
        if not np.allclose(a, b, equal_nan=True, rtol=1e-6, atol=1e-6):
            problems.append(f"{c}: {int((~np.isclose(a, b, equal_nan=True)).sum())} rows differ")
    return len(cols), problems


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument(
        "--peers",
        choices=["pandas", "featuretools", "all", "none"],
        default="all",
        help="pandas: all families vs the pandas baseline; featuretools: the shared features; "
        "none: ours alone (all families; for sizes no peer can run)",
    )
    ap.add_argument("--skip-pandas", action="store_true", help="same as --peers featuretools")
    ap.add_argument("--profile", action="store_true", help="time our featurize per family")
    ap.add_argument(
        "--featuretools-python",
        type=Path,
        default=None,
        help=f"python with featuretools (default: {PEER_VENV.relative_to(ROOT)}/bin/python)",
    )
    ap.add_argument(
        "--install-peer",
        action="store_true",
        help=f"create {PEER_VENV.relative_to(ROOT)} from {PEER_REQUIREMENTS.relative_to(ROOT)}",
    )
    ap.add_argument("--featuretools-jobs", type=int, default=1, help="ft.dfs n_jobs")
    ap.add_argument(
        "--sample", type=int, default=0, help="rows compared with Featuretools (0: every row)"
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where to put the data (default: a temp dir)"
    )
    ap.add_argument(
        "--keep-data",
        type=Path,
        default=None,
        help="generate the tables into this dir and keep them; a later run with the same "
        "--events reuses them (generating 200 M events takes minutes)",
    )
    ap.add_argument(
        "--run",
        choices=["ours", "pandas", "shared", "direct", "reference", "profile"],
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads for ours (default 2)")
    args = ap.parse_args()
    if args.run == "ours":
        return run_ours(args.data, args.out)
    if args.run == "pandas":
        return run_pandas(args.data, args.out)
    if args.run == "shared":
        return run_ours_shared(args.data, args.out, args.threads)
    if args.run == "direct":
        return run_ours_direct(args.data, args.out, args.threads)
    if args.run == "reference":
        return run_reference(args.data, args.out, args.threads)
    if args.run == "profile":
        return run_profile(args.data, args.out, args.threads)

    peers = "featuretools" if args.skip_pandas and args.peers == "all" else args.peers
    ft_python = peer_python(args.featuretools_python)
    if args.install_peer and args.featuretools_python is None:
        ft_python = install_peer()
    ft_version = check_peer(ft_python) if peers in ("featuretools", "all") else None
    if args.install_peer and peers == "none" and not args.profile:
        print(f"featuretools {check_peer(ft_python)} at {ft_python}")
        return None

    work = Path(tempfile.mkdtemp(prefix="bench-featurize-", dir=args.workdir))
    try:
        sizes, data_dir = _data(args.events, args.keep_data or work / "data")
        me = [sys.executable, str(Path(__file__).resolve())]
        data = str(data_dir)
        head = (
            f"{args.events:,} events, {sizes['customers']:,} customers, "
            f"{len(CUTOFFS)} cutoffs, {sizes['spine_rows']:,} spine rows"
        )
        if peers == "none":
            _ours_alone(me, data, work, head)
        if peers in ("pandas", "all"):
            _pandas_comparison(me, data, work, head)
        if peers in ("featuretools", "all"):
            _featuretools_comparison(me, data, work, head, args, ft_python, ft_version)
        if args.profile:
            _profile(me, data, work, head, args.threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _data(n_events: int, where: Path) -> tuple[dict[str, int], Path]:
    """The generated tables in `where`: made there (timed) unless a previous run with the same
    event count left them (`--keep-data`), then reused as they are."""
    marker = where / "sizes.json"
    if marker.exists():
        sizes = json.loads(marker.read_text())
        if sizes["events"] != n_events:
            sys.exit(f"{where} holds {sizes['events']:,} events, not {n_events:,}: use another dir")
        print(f"reusing the data in {where}: {sizes}", flush=True)
        return sizes, where
    t0 = time.perf_counter()
    sizes = generate(n_events, where)
    marker.write_text(json.dumps(sizes))
    print(f"generated in {time.perf_counter() - t0:.1f}s: {sizes}", flush=True)
    return sizes, where


def _ours_alone(me: list[str], data: str, work: Path, head: str) -> None:
    """Our featurize (default config, every family) alone: where no peer can run (200 M)."""
    r = measure([*me, "--run", "ours", "--data", data, "--out", str(work / "ours.parquet")])
    print(f"\nfeaturize benchmark, ours alone: {head}")
    print(f"{'implementation':<34}{'wall s':>9}{'peak RSS MiB':>14}  output")
    print(_row("ours (Ibis/DuckDB)", r))


def _row(name: str, r: dict) -> str:
    return f"{name:<34}{r['wall_s']:>9.1f}{r['peak_rss_mib']:>14.0f}  {r['out']}"


def _pandas_comparison(me: list[str], data: str, work: Path, head: str) -> None:
    """All our families vs the pandas baseline of the engagement/payment/ticket features."""
    results = {}
    for name, run, out in (
        ("ours (Ibis/DuckDB)", "ours", "ours.parquet"),
        ("pandas baseline", "pandas", "pandas.parquet"),
    ):
        results[name] = measure([*me, "--run", run, "--data", data, "--out", str(work / out)])
        print(f"{name}:", results[name], flush=True)
    print(f"\nfeaturize benchmark vs pandas: {head}")
    print(f"{'implementation':<34}{'wall s':>9}{'peak RSS MiB':>14}  output")
    for name, r in results.items():
        print(_row(name, r))
    o, p = results["ours (Ibis/DuckDB)"], results["pandas baseline"]
    print(
        f"speed-up: {p['wall_s'] / o['wall_s']:.2f}x   memory: ours = "
        f"{o['peak_rss_mib'] / p['peak_rss_mib']:.2f} of pandas"
    )
    n_cols, problems = compare(work / "ours.parquet", work / "pandas.parquet")
    print(
        f"agreement on a 500-row sample, {n_cols} shared columns: "
        + ("OK" if not problems else "MISMATCH " + "; ".join(problems))
    )


def _featuretools_comparison(
    me: list[str],
    data: str,
    work: Path,
    head: str,
    args: argparse.Namespace,
    ft_python: Path,
    ft_version: str | None,
) -> None:
    """The shared features: ours (the stage; the building blocks) vs Featuretools, one run."""
    peer = Path(__file__).resolve().parent / "featuretools_peer.py"
    results = {}
    # (name, --run, DuckDB threads, output): the shared-only run is the exact shared features;
    # the stage run also computes the engagement extras; 1 thread matches Featuretools' n_jobs=1
    runs = [
        (f"ours: shared only, {args.threads} threads", "direct", args.threads, "direct.parquet"),
        ("ours: shared only, 1 thread", "direct", 1, "direct1.parquet"),
        (f"ours: featurize stage, {args.threads} thr", "shared", args.threads, "stage.parquet"),
        (
            f"reference: 1 DuckDB SQL pass, {args.threads} thr",
            "reference",
            args.threads,
            "ref.parquet",
        ),
    ]
    if args.threads == 1:
        del runs[1]
    for name, run, threads, out in runs:
        results[name] = measure(
            [*me, "--run", run, "--data", data, "--out", str(work / out), "--threads", str(threads)]
        )
        print(f"{name}:", results[name], flush=True)
    ft_name = f"Featuretools {ft_version} (n_jobs={args.featuretools_jobs})"
    results[ft_name] = measure(
        [
            str(ft_python),
            str(peer),
            "--data",
            data,
            "--out",
            str(work / "featuretools.parquet"),
            "--types",
            ",".join(SHARED_TYPES),
            "--windows",
            ",".join(map(str, SHARED_WINDOWS)),
            "--n-jobs",
            str(args.featuretools_jobs),
        ]
    )
    print(f"{ft_name}:", results[ft_name], flush=True)
    print(
        f"\nfeaturize benchmark vs Featuretools: {head}\nshared features: count, sum and mean "
        f"of value per event type ({len(SHARED_TYPES)}) and window "
        f"({'/'.join(map(str, SHARED_WINDOWS))} days) = {len(shared_columns())} columns, "
        "events strictly before the cutoff"
    )
    print(f"{'implementation':<34}{'wall s':>9}{'peak RSS MiB':>14}  output")
    for name, r in results.items():
        print(_row(name, r))
    f = results[ft_name]
    for name, *_ in runs:
        o = results[name]
        print(
            f"Featuretools / {name}: {f['wall_s'] / o['wall_s']:.2f}x time, "
            f"peak RSS {o['peak_rss_mib'] / f['peak_rss_mib']:.2f} of Featuretools'"
        )
    for name, _, _, out in runs:
        what, problems = compare_shared(work / out, work / "featuretools.parquet", args.sample)
        print(
            f"equal to Featuretools ({name}), {what}: "
            + ("OK" if not problems else "MISMATCH " + "; ".join(problems[:6]))
        )


def _profile(me: list[str], data: str, work: Path, head: str, threads: int) -> None:
    """Our featurize per step and per family (default config, all tables), one query each."""
    out = work / "profile.json"
    r = measure(
        [*me, "--run", "profile", "--data", data, "--out", str(out), "--threads", str(threads)]
    )
    steps = json.loads(out.read_text())
    print(f"\nprofile of our featurize ({threads} DuckDB threads): {head}")
    print(
        f"  (one process, {r['wall_s']:.1f} s wall, peak RSS {r['peak_rss_mib']:.0f} MiB; "
        "build = Ibis expression, compile = to SQL, run = DuckDB to Parquet)"
    )
    print(f"{'step':<52}{'build s':>9}{'compile s':>10}{'run s':>8}{'columns':>8}")

    def cell(v: float | None, width: int, digits: int = 2) -> str:
        return f"{'':>{width}}" if v is None else f"{v:>{width}.{digits}f}"

    fam = [s for s in steps if s["step"].startswith("family ")]
    total = {k: sum(s.get(k, 0.0) for s in fam) for k in ("build", "compile", "run")}
    for s in [*steps, {"step": "sum of the families run one by one", **total}]:
        cols = "" if s.get("columns") is None else str(s["columns"])
        print(
            f"{s['step']:<52}{cell(s.get('build'), 9)}{cell(s.get('compile'), 10)}"
            f"{cell(s.get('run'), 8)}{cols:>8}"
        )


if __name__ == "__main__":
    main()
