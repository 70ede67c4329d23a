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
    # events sorted by time (as an append-only log would be)
    con.execute(f"""
        COPY (SELECT 'C' || lpad((hash(i) % {n_cust})::VARCHAR, 8, '0') AS customer_id,
                     TIMESTAMPTZ '2024-01-01 00:00:00+00'
                       + to_microseconds((i * (366 * 86400000000 // {n_events}))::BIGINT) AS ts,
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
    catalog = write_feature_table(con, tables, spine, cfg, out, data / "work")
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
    ap.add_argument("--skip-pandas", action="store_true", help="do not run the pandas baseline")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where to put the data (default: a temp dir)"
    )
    ap.add_argument("--run", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run == "ours":
        return run_ours(args.data, args.out)
    if args.run == "pandas":
        return run_pandas(args.data, args.out)

    work = Path(tempfile.mkdtemp(prefix="bench-featurize-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        sizes = generate(args.events, work / "data")
        print(f"generated in {time.perf_counter() - t0:.1f}s: {sizes}", flush=True)
        me = [sys.executable, str(Path(__file__).resolve())]
        results = {}
        results["ours (Ibis/DuckDB)"] = measure(
            [
                *me,
                "--run",
                "ours",
                "--data",
                str(work / "data"),
                "--out",
                str(work / "ours.parquet"),
            ]
        )
        print("ours:", results["ours (Ibis/DuckDB)"], flush=True)
        if not args.skip_pandas:
            results["pandas baseline"] = measure(
                [
                    *me,
                    "--run",
                    "pandas",
                    "--data",
                    str(work / "data"),
                    "--out",
                    str(work / "pandas.parquet"),
                ]
            )
            print("pandas:", results["pandas baseline"], flush=True)
        print(
            f"\nfeaturize benchmark: {args.events:,} events, {sizes['customers']:,} customers, "
            f"{len(CUTOFFS)} cutoffs, {sizes['spine_rows']:,} spine rows"
        )
        print(f"{'implementation':<22}{'wall s':>10}{'peak RSS MiB':>15}  output")
        for name, r in results.items():
            print(f"{name:<22}{r['wall_s']:>10.1f}{r['peak_rss_mib']:>15.0f}  {r['out']}")
        if "pandas baseline" in results:
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
        else:
            print("pandas baseline not run (--skip-pandas)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
