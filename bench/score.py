"""Benchmark: batch scoring (`churn score`) at 100k and 1M customers, and our reason codes vs
shap.TreeExplainer on the same model and rows.

    python bench/score.py                      # 100k and 1M active customers
    python bench/score.py --sizes 100000       # one size
    python bench/score.py --model artifacts/model --shap-rows 100000

1. Data: `churn simulate` with ~1.3x the target count (4 scored months after a 3-month warm-up,
   every customer subscribed at the start, so ~78% are still active at the as-of date), cached in
   --work. The simulator writes contract-valid tables, so the bench reads them as the interim tables
   (ingest is measured by bench/ingest.py).
2. Scoring: `churn score --model <dir>` in a subprocess, each size in its own process; wall time and
   peak RSS of the process tree (psutil, polled every 50 ms). Memory should not grow with the count:
   features are built and scored in chunks of `score.chunk_rows` customers.
3. Reason codes on the first --shap-rows rows of the 100k scoring table, same booster and rows:
   shap.TreeExplainer(booster).shap_values(x) vs models.explain.treeshap.contributions(booster, x):
   rows/s, speed-up, max |difference| of the contributions (log-odds) and the share of customers
   whose top-3 reasons are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
SIM = {"start_date": "2025-09-01", "end_date": "2025-12-31", "existing_fraction": 1.0}
ACTIVE_SHARE = 0.78  # measured: share of simulated customers still active at the as-of date


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (bytes, process tree) and exit code of a command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
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
        sys.stderr.write(proc.stderr.read().decode()[-3000:])
    return seconds, peak, proc.returncode


def prepare(size: int, work: Path, model: Path) -> Path:
    """A project dir with simulated raw tables for ~`size` active customers and its params."""
    project = work / f"customers-{size}"
    raw = project / "raw"
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["simulate"].update(SIM, customers=int(size / ACTIVE_SHARE))
    params["featurize"]["lexicon"] = str(ROOT / params["featurize"]["lexicon"])
    params["score"]["model"] = str(model)
    params["paths"].update(
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
    args = parser.parse_args()
    model = args.model.resolve()
    print(f"machine: {os.cpu_count()} cores; model {model}")

    results = []
    for size in args.sizes:
        project = prepare(size, args.work, model)
        print(f"scoring ~{size:,} customers ...", flush=True)
        results.append(bench_scoring(project))
    print("\nchurn score (features + probability + 3 reason codes + atomic write):")
    print(f"{'customers':>10} {'seconds':>8} {'rows/s':>8} {'peak RSS':>10}")
    for r in results:
        print(
            f"{r['customers']:>10,} {r['seconds']:>8.1f} {r['rows_per_s']:>8,.0f} "
            f"{r['peak_rss'] / 2**20:>7,.0f} MiB"
        )

    project = prepare(min(args.sizes), args.work, model)
    rows = bench_reasons(project, model, args.shap_rows)
    print(f"\nreason codes, same booster ({rows[0]['trees']} trees) and {rows[0]['rows']:,} rows:")
    print(f"{'method':<24} {'rows/s':>10} {'speed-up':>9} {'max |diff|':>11} {'top-3 same':>11}")
    for r in rows:
        print(
            f"{r['method']:<24} {r['rows_per_s']:>10,.0f} {r['speedup']:>8.1f}x "
            f"{r['max_abs_diff']:>11.2e} {r['top3_same']:>10.2%}"
        )


if __name__ == "__main__":
    main()
