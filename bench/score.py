"""Benchmark: batch scoring (`churn score`) at 100k and 1M customers beside one DuckDB pass over
the same events, the TreeSHAP kernels' first call cold and warm, and our reason codes vs
shap.TreeExplainer on the same model and rows.

    python bench/score.py                      # 100k and 1M active customers
    python bench/score.py --sizes 100000       # one size
    python bench/score.py --model artifacts/model --shap-rows 100000 --repeats 2

1. Data: `churn simulate` with ~1.3x the target count (4 scored months after a 3-month warm-up,
   every customer subscribed at the start, so ~78% are still active at the as-of date), cached in
   --work. The simulator writes contract-valid tables, so the bench reads them as the interim tables
   (ingest is measured by bench/ingest.py).
2. numba: the TreeSHAP kernels' first call (Explainer build + one row) in a new process with an
   empty cache directory (cold: compiles and writes the cache), then in a second new process with
   that directory (warm: loads it). The default cache directory is warmed the same way before the
   scoring runs, as any earlier run on the machine would have.
3. Scoring: `churn score --model <dir>` in a subprocess, each size in its own process; wall time and
   peak RSS of the process tree (psutil, polled every 50 ms). Memory should not grow with the count:
   features are built and scored in chunks of `score.chunk_rows` customers.
4. The reference: one DuckDB pass over the same events file (2 threads, 1 GB, as `churn score`):
   per customer, count(*) and sum(value) per event type with FILTER over the last 7/30/90/180
   days before the as-of date, and the days since the last event of each type (9 types: 81
   aggregates), grouped by customer and written to Parquet; its own process, measured the same
   way. With --repeats N, each of ours and the reference at the smallest size run N times,
   interleaved, and the best of each is compared (the machine is shared).
5. Reason codes on the first --shap-rows rows of the 100k scoring table, same booster and rows:
   shap.TreeExplainer(booster).shap_values(x) vs models.explain.treeshap.contributions(booster, x):
   rows/s, speed-up, max |difference| of the contributions (log-odds) and the share of customers
   whose top-3 reasons are identical (--shap-rows 0 skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
SIM = {"start_date": "2025-09-01", "end_date": "2025-12-31", "existing_fraction": 1.0}
ACTIVE_SHARE = 0.78  # measured: share of simulated customers still active at the as-of date


def run_measured(
    cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (bytes, process tree) and exit code of a command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(extra_env or {})
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    started = time.perf_counter()
    # stderr to a file, not a pipe: a pipe nobody reads blocks the child once its buffer is full
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        err.seek(0)
        sys.stderr.write(err.read().decode(errors="replace")[-3000:])
    err.close()
    return seconds, peak, proc.returncode


def prepare(size: int, work: Path, model: Path) -> Path:
    """A project dir with simulated raw tables for ~`size` active customers and its params."""
    project = work / f"customers-{size}"
    raw = project / "raw"
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    settings = yaml.safe_load((ROOT / "settings.yaml").read_text(encoding="utf-8"))
    params["simulate"].update(SIM, customers=int(size / ACTIVE_SHARE))
    settings["featurize"]["lexicon"] = str(ROOT / settings["featurize"]["lexicon"])
    settings["score"]["model"] = str(model)
    settings["paths"].update(
        raw=str(raw),
        interim=str(raw),
        score_features=str(project / "scores" / "features.parquet"),
        scores=str(project / "scores" / "scores.parquet"),
        scores_csv=str(project / "scores" / "scores.csv"),
        priority=str(project / "priority.csv"),
        score_report=str(project / "score.json"),
    )
    project.mkdir(parents=True, exist_ok=True)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    (project / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), "utf-8")
    if not (raw / "simulation.json").exists():
        n = params["simulate"]["customers"]
        print(f"simulating {n:,} customers into {raw} ...", flush=True)
        seconds, _, code = run_measured(
            [str(BIN / "churn"), "simulate", "--params", "params.yaml"], project
        )
        if code != 0:
            raise SystemExit(f"simulate failed (exit {code})")
        print(f"  simulated in {seconds:.0f} s", flush=True)
    return project


def bench_scoring(project: Path) -> dict[str, float]:
    seconds, peak, code = run_measured(
        [str(BIN / "churn"), "score", "--params", "params.yaml"], project
    )
    if code != 0:
        raise SystemExit(f"churn score failed (exit {code}) in {project}")
    summary = json.loads((project / "score.json").read_text(encoding="utf-8"))
    n = summary["customers"]
    return {"customers": n, "seconds": seconds, "rows_per_s": n / seconds, "peak_rss": peak}


REFERENCE_WINDOWS = (7, 30, 90, 180)


def reference_sql(events: Path, out: Path, as_of: str, types: list[str]) -> str:
    """The single DuckDB pass the scoring table is compared with (see the module docstring)."""
    aggs = []
    for t in types:
        for w in REFERENCE_WINDOWS:
            cond = f"event_type = '{t}' AND ts >= TIMESTAMPTZ '{as_of}' - INTERVAL {w} DAY"
            aggs.append(f'count(*) FILTER (WHERE {cond}) AS "{t}_count_{w}d"')
            aggs.append(f'sum(value) FILTER (WHERE {cond}) AS "{t}_value_{w}d"')
        aggs.append(
            f"date_diff('day', max(ts) FILTER (WHERE event_type = '{t}'), "
            f"TIMESTAMPTZ '{as_of}') AS \"{t}_days_since_last\""
        )
    return (
        f"COPY (SELECT customer_id, {', '.join(aggs)} FROM read_parquet('{events}') "
        f"WHERE ts < TIMESTAMPTZ '{as_of}' GROUP BY customer_id) TO '{out}' (FORMAT parquet)"
    )


def reference_pass(events: Path, out: Path, as_of: str) -> None:
    """Run the reference query (in the bench's subprocess: `--reference-pass`)."""
    import duckdb

    con = duckdb.connect(config={"threads": 2, "memory_limit": "1GB"})
    con.sql("SET TimeZone = 'UTC'")
    types = [
        r[0]
        for r in con.sql(
            f"SELECT DISTINCT event_type FROM read_parquet('{events}') ORDER BY 1"
        ).fetchall()
    ]
    con.sql(reference_sql(events, out, as_of, types))
    aggregates = len(types) * (2 * len(REFERENCE_WINDOWS) + 1)
    print(json.dumps({"aggregates": aggregates, "types": len(types)}))


def bench_reference(project: Path, as_of: str) -> dict[str, float]:
    out = project / "reference.parquet"
    events = project / "raw" / "events.parquet"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--reference-pass", str(events)]
    seconds, peak, code = run_measured([*cmd, str(out), as_of], project)
    if code != 0:
        raise SystemExit(f"reference pass failed (exit {code})")
    import pyarrow.parquet as pq

    meta = pq.read_metadata(out)
    return {
        "customers": meta.num_rows,
        "aggregates": meta.num_columns - 1,
        "seconds": seconds,
        "peak_rss": peak,
    }


FIRST_CALL = """
import sys, time
sys.path.insert(0, {root!r})
from models.model import load_model
booster = load_model({model!r}).booster
started = time.perf_counter()
from models.explain.treeshap import Explainer, kernel_cache_dir
explainer = Explainer(booster)
import numpy as np
explainer.contributions(np.zeros((1, booster.num_feature())))
print(time.perf_counter() - started, explainer.backend, kernel_cache_dir())
"""


def first_call(model: Path, cache_dir: Path | None) -> tuple[float, str, str]:
    """Seconds of the TreeSHAP kernels' first call in a new process (Explainer build + one row),
    with `cache_dir` as NUMBA_CACHE_DIR (None: the default directory)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    code = FIRST_CALL.format(root=str(ROOT), model=str(model))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    seconds, backend, where = out.stdout.strip().splitlines()[-1].split(" ", 2)
    return float(seconds), backend, where


def bench_reasons(project: Path, model_dir: Path, rows: int) -> list[dict[str, float | str]]:
    """shap.TreeExplainer vs ours on the same booster and rows."""
    import numpy as np
    import pyarrow.parquet as pq
    import shap

    from models.explain.treeshap import contributions
    from models.model import load_model

    model = load_model(model_dir)
    table = pq.read_table(project / "scores" / "features.parquet").slice(0, rows).to_pandas()
    x = model.model_frame(table)
    explainer = shap.TreeExplainer(model.booster)
    started = time.perf_counter()
    theirs = np.asarray(explainer.shap_values(x))
    t_shap = time.perf_counter() - started
    started = time.perf_counter()
    ours = contributions(model.booster, x)
    t_ours = time.perf_counter() - started
    theirs = theirs.reshape(len(x), -1)
    diff = float(np.max(np.abs(ours[:, :-1] - theirs[:, : ours.shape[1] - 1])))
    top_t = np.argsort(-theirs[:, : ours.shape[1] - 1], axis=1, kind="stable")[:, :3]
    top_o = np.argsort(-ours[:, :-1], axis=1, kind="stable")[:, :3]
    same = float((top_t == top_o).all(axis=1).mean())
    trees = model.booster.num_trees()
    return [
        {"method": "shap.TreeExplainer", "rows": len(x), "trees": trees, "seconds": t_shap,
         "rows_per_s": len(x) / t_shap, "speedup": 1.0, "max_abs_diff": 0.0, "top3_same": 1.0},
        {"method": "ours (models.explain.treeshap)", "rows": len(x), "trees": trees,
         "seconds": t_ours,
         "rows_per_s": len(x) / t_ours, "speedup": t_shap / t_ours, "max_abs_diff": diff,
         "top3_same": same},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "model")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-score"))
    parser.add_argument("--shap-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--reference-pass", nargs=3, metavar=("EVENTS", "OUT", "AS_OF"))
    args = parser.parse_args()
    if args.reference_pass:
        events, out, as_of = args.reference_pass
        reference_pass(Path(events), Path(out), as_of)
        return
    model = args.model.resolve()
    print(f"machine: {os.cpu_count()} cores; model {model}")

    with tempfile.TemporaryDirectory() as tmp:
        cold = first_call(model, Path(tmp))
        warm = first_call(model, Path(tmp))
    default = first_call(model, None)  # warms the default cache the scoring runs use
    print("\nTreeSHAP first call in a new process (Explainer build + one row):")
    print(f"  cold (empty cache, compiles): {cold[0]:6.2f} s  [{cold[1]}]")
    print(f"  warm (second process):       {warm[0]:6.2f} s  [{warm[1]}]")
    print(f"  default cache dir {default[2]}: {default[0]:.2f} s")

    projects = {size: prepare(size, args.work, model) for size in args.sizes}
    smallest = min(args.sizes)
    as_of = None
    ours: dict[int, list[dict[str, float]]] = {size: [] for size in args.sizes}
    reference: list[dict[str, float]] = []
    for _ in range(max(1, args.repeats)):
        print(f"scoring ~{smallest:,} customers ...", flush=True)
        ours[smallest].append(bench_scoring(projects[smallest]))
        if as_of is None:
            summary = projects[smallest] / "score.json"
            as_of = json.loads(summary.read_text(encoding="utf-8"))["as_of"][:10]
        print(f"reference DuckDB pass over the ~{smallest:,} customers' events ...", flush=True)
        reference.append(bench_reference(projects[smallest], as_of))
    for size in args.sizes:
        if size != smallest:
            print(f"scoring ~{size:,} customers ...", flush=True)
            ours[size].append(bench_scoring(projects[size]))

    def best(runs: list[dict[str, float]]) -> dict[str, float]:
        return min(runs, key=lambda r: r["seconds"])

    print("\nchurn score (features + probability + 3 reason codes + atomic write):")
    print(f"{'customers':>10} {'seconds':>8} {'rows/s':>8} {'peak RSS':>10}  runs (s)")
    for size in args.sizes:
        r = best(ours[size])
        runs = ", ".join(f"{x['seconds']:.1f}" for x in ours[size])
        print(
            f"{r['customers']:>10,} {r['seconds']:>8.1f} {r['rows_per_s']:>8,.0f} "
            f"{r['peak_rss'] / 2**20:>7,.0f} MiB  {runs}"
        )
    ref = best(reference)
    runs = ", ".join(f"{x['seconds']:.1f}" for x in reference)
    print(
        f"\nreference: one DuckDB pass ({ref['aggregates']:.0f} aggregates per customer, "
        f"{ref['customers']:,.0f} customers, 2 threads, 1 GB) over the ~{smallest:,} events: "
        f"{ref['seconds']:.1f} s, peak RSS {ref['peak_rss'] / 2**20:,.0f} MiB  (runs: {runs} s)"
    )
    small = best(ours[smallest])
    print(f"ours / reference at ~{smallest:,}: {small['seconds'] / ref['seconds']:.2f}x")
    for size in args.sizes:
        if size != smallest:
            r = best(ours[size])
            print(
                f"ours at ~{size:,} / ours at ~{smallest:,}: "
                f"{r['seconds'] / small['seconds']:.2f}x for "
                f"{r['customers'] / small['customers']:.2f}x the customers"
            )

    if args.shap_rows <= 0:
        return
    rows = bench_reasons(projects[smallest], model, args.shap_rows)
    print(f"\nreason codes, same booster ({rows[0]['trees']} trees) and {rows[0]['rows']:,} rows:")
    print(f"{'method':<24} {'rows/s':>10} {'speed-up':>9} {'max |diff|':>11} {'top-3 same':>11}")
    for r in rows:
        print(
            f"{r['method']:<24} {r['rows_per_s']:>10,.0f} {r['speedup']:>8.1f}x "
            f"{r['max_abs_diff']:>11.2e} {r['top3_same']:>10.2%}"
        )


if __name__ == "__main__":
    main()
