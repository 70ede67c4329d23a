"""Benchmark `churn ingest` on N synthetic events against a straightforward pandas baseline.

    .venv/bin/python bench/ingest.py --events 10_000_000

Generates N events (DuckDB `range()`, ~0.1 % bad rows: null id, unknown id, future timestamp,
exact duplicate) and a customers table into a temp dir, runs our ingest (`churn ingest` as a
subprocess) and the pandas baseline (read_parquet whole → boolean masks → write; only up to
--pandas-max events, beyond that it is skipped), each sampled for peak RSS of its process tree.
Each engine runs --repeat times, alternating (ours, pandas, ours, ...), so that both see the same
machine; prints the best and median wall time, the CPU time (user + system) of the best run, rows/s,
peak RSS and the peak disk use of the temp dir, side by side. On a shared machine the CPU time
moves much less with the load than the wall time. The temp dir is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHURN = Path(sys.executable).parent / "churn"
NOW = "2025-06-01T00:00:00Z"


def generate(work: Path, n_events: int, n_customers: int) -> None:
    """customers.parquet and events.parquet in `work`; bad rows every 1000th row, 4 kinds."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"""
        COPY (
            SELECT 'c' || lpad(i::VARCHAR, 7, '0') AS customer_id,
                   TIMESTAMP '2023-01-01' + INTERVAL (i % 365) DAY AS signup_date,
                   ['basic', 'pro', 'team'][1 + i % 3] AS plan
            FROM range({n_customers}) t(i)
        ) TO '{work / "customers.parquet"}' (FORMAT parquet)
    """)
    # j: the row whose values this row takes; i % 1000 = 5 repeats row i - 1 (an exact duplicate)
    con.execute(f"""
        COPY (
            WITH r AS (
                SELECT i, CASE WHEN i % 1000 = 5 THEN i - 1 ELSE i END AS j
                FROM range({n_events}) t(i)
            )
            SELECT
                CASE i % 1000 WHEN 1 THEN NULL WHEN 2 THEN 'unknown-' || i::VARCHAR
                     ELSE 'c' || lpad((hash(j) % {n_customers})::VARCHAR, 7, '0') END
                    AS customer_id,
                CASE WHEN i % 1000 = 3 THEN TIMESTAMP '2030-01-01'
                     ELSE TIMESTAMP '2024-01-01' + INTERVAL (j * 7919 % 40000000) SECOND END AS ts,
                ['login', 'feature_use', 'purchase', 'payment', 'payment_failure'][1 + j % 5]
                    AS event_type,
                CASE WHEN j % 5 IN (2, 3) THEN (j % 10000) / 100.0 END AS value
            FROM r
        ) TO '{work / "events.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
    """)
    con.close()


def pandas_baseline(work: Path) -> None:
    """The straightforward implementation: everything in memory with pandas."""
    import pandas as pd

    now = pd.Timestamp(NOW)
    customers = pd.read_parquet(work / "customers.parquet")
    events = pd.read_parquet(work / "events.parquet")
    events["customer_id"] = events["customer_id"].astype("string")
    events["ts"] = pd.to_datetime(events["ts"], utc=True, errors="coerce")
    events["value"] = pd.to_numeric(events["value"], errors="coerce")
    reason = pd.Series(pd.NA, index=events.index, dtype="string")
    checks = [
        ("null_customer_id", events["customer_id"].isna()),
        ("null_ts", events["ts"].isna()),
        ("null_event_type", events["event_type"].isna()),
        ("future_ts", events["ts"] > now),
        ("unknown_customer_id", ~events["customer_id"].isin(customers["customer_id"])),
        ("duplicate_row", events.duplicated(keep="first")),
    ]
    for name, mask in checks:
        reason = reason.mask(reason.isna() & mask.fillna(False).astype(bool), name)
    bad = reason.notna()
    out = work / "pandas_out"
    out.mkdir(exist_ok=True)
    events[~bad].to_parquet(out / "events.parquet", index=False)
    events[bad].assign(reason=reason[bad]).to_parquet(out / "quarantine.parquet", index=False)
    print(reason.value_counts().to_dict())


def measure(cmd: list[str], cwd: Path, disk: Path) -> dict[str, float]:
    """Run `cmd`, sampling the RSS of its process tree, the size of `disk` and of DuckDB's spill
    directories in it (churn-ingest-*/spill); wall and CPU (user + system) seconds, and peaks."""
    peak = {"rss": 0, "disk": 0, "spill": 0}
    done = threading.Event()

    def sample_disk() -> None:
        while not done.is_set():
            peak["disk"] = max(peak["disk"], dir_size(disk))
            spill = sum(dir_size(d) for d in disk.glob("churn-ingest-*/spill"))
            peak["spill"] = max(peak["spill"], spill)
            done.wait(0.5)

    def sample_rss(ps: psutil.Process) -> None:
        while not done.is_set():
            try:
                tree = [ps, *ps.children(recursive=True)]
                peak["rss"] = max(peak["rss"], sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            done.wait(0.05)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd)
    watchers = [
        threading.Thread(target=sample_disk, daemon=True),
        threading.Thread(target=sample_rss, args=(psutil.Process(proc.pid),), daemon=True),
    ]
    for w in watchers:
        w.start()
    proc.wait()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    for w in watchers:
        w.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu": cpu, **peak}


def dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--pandas-max",
        type=int,
        default=10_000_000,
        help="run the pandas baseline only up to this many events",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each engine, alternating (default: 3 up to 10M events, else 1)",
    )
    parser.add_argument("--memory-limit", default="2GB", help="ingest.memory_limit")
    parser.add_argument("--dir", default=None, help="parent of the temp dir (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--pandas-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pandas_worker:
        pandas_baseline(Path(args.pandas_worker))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.dir))
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    try:
        t0 = time.perf_counter()
        generate(work, args.events, args.customers)
        raw_bytes = dir_size(work)
        print(
            f"generated {args.events:,} events + {args.customers:,} customers in "
            f"{time.perf_counter() - t0:.1f}s ({raw_bytes / 1e9:.2f} GB parquet) in {work}"
        )
        params = {
            "ingest": {
                "tables": {
                    "customers": {"path": "customers.parquet"},
                    "events": {"path": "events.parquet"},
                },
                "now": NOW,
                "memory_limit": args.memory_limit,
                "temp_dir": str(work),
            }
        }
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        # the fixed cost of each process (start-up, imports, per-query overhead): both engines on
        # 1,000 events, same run; with --events 1M it is a large share of the total
        tiny = work / "startup"
        tiny.mkdir()
        generate(tiny, 1_000, min(args.customers, 1_000))
        (tiny / "params.yaml").write_text(
            yaml.safe_dump({"ingest": {**params["ingest"], "temp_dir": str(tiny)}})
        )
        ours_cmd = [str(CHURN), "ingest", "--params", "params.yaml"]
        startup = {  # best of 3 each
            "duckdb (ours)": min(measure(ours_cmd, tiny, tiny)["seconds"] for _ in range(3)),
            "pandas baseline": min(
                measure([sys.executable, __file__, "--pandas-worker", str(tiny)], tiny, tiny)[
                    "seconds"
                ]
                for _ in range(3)
            ),
        }
        repeat = args.repeat or (3 if args.events <= 10_000_000 else 1)
        pandas_cmd = [sys.executable, __file__, "--pandas-worker", str(work)]
        runs: dict[str, list[dict[str, float]]] = {"duckdb (ours)": []}
        if args.events <= args.pandas_max:
            runs["pandas baseline"] = []
        for i in range(repeat):
            runs["duckdb (ours)"].append(measure(ours_cmd, work, work))
            if i == 0:
                print((work / "reports" / "ingest.json").read_text())
            if "pandas baseline" in runs:
                runs["pandas baseline"].append(measure(pandas_cmd, work, work))
        print(
            f"\n{'engine':<16} {'events':>13} {'best s':>7} {'median s':>9} {'cpu s':>6} "
            f"{'rows/s':>11} {'peak RSS':>9} {'peak disk':>10} {'spill':>7}"
        )
        results = {}
        for name, rs in runs.items():
            best = min(rs, key=lambda r: r["seconds"])
            median = sorted(r["seconds"] for r in rs)[len(rs) // 2]
            results[name] = best
            print(
                f"{name:<16} {args.events:>13,} {best['seconds']:>7.2f} {median:>9.2f} "
                f"{best['cpu']:>6.2f} {args.events / best['seconds']:>11,.0f} "
                f"{max(r['rss'] for r in rs) / 2**20:>7.0f}MB "
                f"{max(r['disk'] for r in rs) / 1e9:>8.2f}GB "
                f"{max(r['spill'] for r in rs) / 2**20:>5.0f}MB"
            )
        every = [f"{n} " + ", ".join(f"{r['seconds']:.2f}" for r in rs) for n, rs in runs.items()]
        print("all runs (s): " + "; ".join(every))
        if "pandas baseline" in results:
            ours, base = results["duckdb (ours)"], results["pandas baseline"]
            print(
                f"throughput ours / pandas (best of {repeat} each): "
                f"{base['seconds'] / ours['seconds']:.2f}x; "
                f"CPU time pandas / ours: {base['cpu'] / ours['cpu']:.2f}x"
            )
        print(
            "fixed cost per process (1,000 events, best of 3, same run): "
            + ", ".join(f"{name} {sec:.2f}s" for name, sec in startup.items())
        )
        if "pandas baseline" not in results:
            print(
                f"{'pandas baseline':<16} {args.events:>13,}   skipped: above --pandas-max "
                f"{args.pandas_max:,} (whole table in memory)"
            )
        print(
            "peak disk = raw inputs + outputs + DuckDB spill/staging in the temp dir; "
            "spill = DuckDB's spill directory alone (0 for pandas)"
        )
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
