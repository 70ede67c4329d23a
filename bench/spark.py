"""Benchmark: label, featurize and score on DuckDB vs Spark (`engine.name`), same data, one run.

    python bench/spark.py --customers 100000          # issue 17's size
    python bench/spark.py --customers 2000 --cores 2  # a quick look

Simulates a world (`simulate.world: simple`, N customers, 2024-06 .. 2025-12) and ingests it once,
then per engine runs `churn label`, `churn featurize` and `churn score --model` (a model trained
once, on DuckDB's table) each in its own subprocess, measuring wall time and the peak resident
memory of the process tree (Python and, on Spark, its JVM and Python workers; psutil polling every
100 ms). On Spark, `score` builds the scoring table and scores it as Spark jobs (mapInPandas).
Prints both engines side by side, checks that their feature tables and scores agree, and writes
an estimate of the Spark cores needed to featurize 10 B events and score 50 M customers within an
hour from the measured per-core throughput. That extrapolation assumes throughput scales linearly
with cores (no skew, shuffle and storage keeping up): a planning figure, not a measurement.

With `--keep DIR` every finished step is recorded in DIR/bench.json and skipped when the same
command runs again (a long run can be stopped and resumed); `--redo STAGE` measures that stage
again on both engines (e.g. `--redo score` after a change to scoring).
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
from typing import NamedTuple

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHURN = str(Path(sys.executable).parent / "churn")
SECTIONS = (
    "simulate",
    "ingest",
    "label",
    "featurize",
    "split",
    "train",
    "mlflow",
    "score",
    "value",
)
TARGET_EVENTS = 10e9
TARGET_CUSTOMERS = 50e6
HOUR = 3600.0


def _project(root: Path, customers: int, cores: int) -> None:
    """params.yaml + settings.yaml of the benchmark project (the repository's, resized)."""

    def sections(name: str) -> dict:
        data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
        return {k: v for k, v in data.items() if k in SECTIONS}

    params, settings = sections("params.yaml"), sections("settings.yaml")
    params["simulate"].update(
        customers=customers, world="simple", start_date="2024-06-01", chunk_size=50_000
    )
    params["label"]["first_cutoff"] = "2025-03-01"
    params["train"].update(min_positives=10, num_boost_round=100)
    settings["featurize"]["lexicon"] = str(ROOT / settings["featurize"]["lexicon"])
    settings["featurize"]["duckdb_threads"] = cores
    settings["engine"] = {"name": "duckdb", "spark": {"master": f"local[{cores}]"}}
    for name, data in (("params.yaml", params), ("settings.yaml", settings)):
        (root / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _engine(root: Path, name: str, driver_memory: str | None) -> None:
    path = root / "settings.yaml"
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    settings["engine"]["name"] = name
    if driver_memory:
        settings["engine"]["spark"]["driver_memory"] = driver_memory
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")


class Steps:
    """Measured steps of one benchmark project (root/bench.json): a step done is not run again."""

    def __init__(self, root: Path, redo: set[str]) -> None:
        self.path = root / "bench.json"
        self.done: dict[str, list[float]] = (
            json.loads(self.path.read_text()) if self.path.exists() else {}
        )
        for key in [k for k in self.done if k.split(":")[-1] in redo]:
            del self.done[key]
        self.root = root

    def run(self, key: str, *args: str) -> Step:
        if key not in self.done:
            self.done[key] = list(_run(self.root, *args))
            self.path.write_text(json.dumps(self.done, indent=1))
        wall, mb, *ok = self.done[key]
        return Step(wall, mb, bool(ok[0]) if ok else True)


class Step(NamedTuple):
    seconds: float
    peak_mb: float
    ok: bool  # False: the command failed (after `seconds`); its error is in bench.log


def _run(root: Path, *args: str) -> Step:
    """Run `churn ARGS` in `root`; its wall seconds, the peak RSS (MB) of its process tree, and
    whether it succeeded."""
    started = time.perf_counter()
    log = (root / "bench.log").open("a")
    proc = subprocess.Popen([CHURN, *args], cwd=root, stdout=log, stderr=subprocess.STDOUT)
    peak = 0
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    if proc.returncode != 0:
        print(f"churn {' '.join(args)} failed ({proc.returncode}); see {root / log.name}")
    return Step(time.perf_counter() - started, peak / 2**20, proc.returncode == 0)


def _rows(path: Path) -> int:
    return pq.ParquetDataset(path).read(columns=["customer_id"]).num_rows


def _max_float_gap(a: Path, b: Path, keys: list[str]) -> tuple[float, int]:
    """The largest absolute difference of any numeric column, and the differing non-numeric
    cells, between two tables (rows in `keys` order)."""
    x = pd.read_parquet(a).sort_values(keys).reset_index(drop=True)
    y = pd.read_parquet(b).sort_values(keys).reset_index(drop=True)[x.columns]
    gap, cells = 0.0, 0
    for c in x.columns:
        if pd.api.types.is_numeric_dtype(x[c]) and not pd.api.types.is_bool_dtype(x[c]):
            d = np.abs(x[c].to_numpy(float) - y[c].to_numpy(float))
            gap = max(gap, float(np.nanmax(d, initial=0.0)))
            cells += int((np.isnan(x[c].to_numpy(float)) != np.isnan(y[c].to_numpy(float))).sum())
        else:
            cells += int(((x[c] != y[c]) & ~(x[c].isna() & y[c].isna())).sum())
    return gap, cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N] and DuckDB threads")
    parser.add_argument("--keep", type=Path, help="keep the project in this directory")
    parser.add_argument("--redo", action="append", default=[], help="measure this stage again")
    parser.add_argument("--driver-memory", help="engine.spark.driver_memory (default: 6g)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    root.mkdir(parents=True, exist_ok=True)
    steps = Steps(root, set(args.redo))
    if not steps.done:
        _project(root, args.customers, args.cores)
    for stage in ("simulate", "ingest"):
        steps.run(stage, stage)
    events = pq.ParquetFile(root / "data/interim/events.parquet").metadata.num_rows
    print(f"{args.customers:,} customers, {events:,} events; {args.cores} cores per engine")
    results: dict[str, dict[str, Step]] = {}
    tables: dict[str, Path] = {}
    scored: dict[str, int] = {}
    for engine in ("duckdb", "spark"):
        _engine(root, engine, args.driver_memory)
        results[engine] = {s: steps.run(f"{engine}:{s}", s) for s in ("label", "featurize")}
        if engine == "duckdb":
            steps.run("duckdb:train", "train")
        tables[engine] = root / f"features-{engine}.parquet"
        made = root / "data/processed/features.parquet"
        if results[engine]["featurize"].ok and made.exists():
            shutil.rmtree(tables[engine], ignore_errors=True)
            shutil.move(made, tables[engine])
        score_dir = root / f"score-{engine}"
        score = ("score", "--model", "artifacts/model", "--out", str(score_dir))
        results[engine]["score"] = steps.run(f"{engine}:score", *score)
        if results[engine]["score"].ok:
            scored[engine] = _rows(score_dir / "scores.parquet")
    rows = _rows(tables["duckdb"])
    print(
        f"feature table: {rows:,} rows (customer x cutoff); scored {scored['duckdb']:,} customers"
    )
    print(f"{'stage':<10} {'DuckDB s':>9} {'MB':>7}   {'Spark s':>9} {'MB':>7}")
    for stage in ("label", "featurize", "score"):
        cells = [
            f"{r.seconds:>9.1f} {r.peak_mb:>7.0f}" if r.ok else f"{'failed':>9} {r.peak_mb:>7.0f}"
            for r in (results["duckdb"][stage], results["spark"][stage])
        ]
        print(f"{stage:<10} {cells[0]}   {cells[1]}")
    if all(results[e]["featurize"].ok for e in results):
        gap, cells = _max_float_gap(tables["duckdb"], tables["spark"], ["customer_id", "cutoff"])
        print(
            f"feature tables: largest numeric difference {gap:.2e}, other cells differing {cells}"
        )
    if "spark" in scored:
        scores = [root / f"score-{engine}/scores.parquet" for engine in ("duckdb", "spark")]
        gap, cells = _max_float_gap(*scores, ["customer_id"])
        print(f"scores: largest numeric difference {gap:.2e}, other cells differing {cells}")
    spark = results["spark"]
    if spark["featurize"].ok:
        feat_rate = events / (spark["featurize"].seconds * args.cores)
        print(
            f"Spark per core: featurize {feat_rate:,.0f} events/s (whole training spine); "
            f"linear in cores, 10 B events in an hour need about "
            f"{TARGET_EVENTS / (feat_rate * HOUR):,.0f} cores"
        )
    if spark["score"].ok:
        score_rate = scored["spark"] / (spark["score"].seconds * args.cores)
        print(
            f"Spark per core: score {score_rate:,.0f} customers/s (scoring table, mapInPandas "
            f"scoring, population columns); linear in cores, 50 M customers in an hour need "
            f"about {TARGET_CUSTOMERS / (score_rate * HOUR):,.0f} cores"
        )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
