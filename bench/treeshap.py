"""Benchmark: exact TreeSHAP reason codes, shap.TreeExplainer vs the alternatives vs ours.

    python bench/treeshap.py                       # the real model and a 300-tree model, 20k rows
    python bench/treeshap.py --rows 100000 --trees 300
    python bench/treeshap.py --trees 0             # only the real model (artifacts/model)
    python bench/treeshap.py --candidate-python /tmp/venv-fts/bin/python

Same booster, same rows (`ChurnModel.model_frame` of data/processed/features.parquet, repeated
when --rows exceeds the table) for every method:
  shap.TreeExplainer(booster).shap_values(x)   the baseline (explainer built outside the timing)
  booster.predict(x, pred_contrib=True)        what shap calls for a LightGBM booster
  fasttreeshap (algorithm v2), woodelf         when importable here, or in the interpreters given
                                               by --candidate-python (run in a subprocess)
  ours: models.explain.treeshap.Explainer              table backend (numba); build time shown apart
Per method: rows/s, speed-up vs shap, max |difference| of the contributions vs shap (log-odds,
feature columns and bias) and the share of rows whose top-3 reasons (3 largest contributions,
descending) are identical to shap's. The 300-tree model is trained here on the feature table
(num_leaves 31, no early stopping), as the issue frames the problem on a 300-tree model.
Timings are the best of --repeats runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.explain import treeshap  # noqa: E402

ContribFn = Callable[[lgb.Booster, pd.DataFrame], np.ndarray]
TOP_K = 3

# Runs one candidate library in another interpreter: argv = library, model file, rows parquet,
# output .npy; prints a JSON line {"seconds", "build_seconds"} or {"error"}.
_CANDIDATE_SCRIPT = r"""
import json, sys, time, warnings
import lightgbm as lgb, numpy as np, pandas as pd
warnings.simplefilter("ignore")
which, model_file, rows_file, out_file = sys.argv[1:5]
booster = lgb.Booster(model_file=model_file)
x = pd.read_parquet(rows_file)
try:
    t0 = time.perf_counter()
    if which == "fasttreeshap":
        import fasttreeshap
        explainer = fasttreeshap.TreeExplainer(booster, algorithm="v2", n_jobs=2)
        if explainer.model.trees is None:  # its tree parser gave up (it does on "a||b" splits)
            raise ValueError("fasttreeshap cannot parse the trees (categorical splits)")
        t1 = time.perf_counter()
        phi = explainer.shap_values(x)
        phi = np.asarray(phi[-1] if isinstance(phi, list) else phi)
        bias = float(np.ravel(explainer.expected_value)[-1])
    else:
        from woodelf.explainer import WoodelfExplainer
        explainer = WoodelfExplainer(booster)
        t1 = time.perf_counter()
        phi = np.asarray(explainer.shap_values(x, verbose=False))
        bias = np.nan
    t2 = time.perf_counter()
    np.save(out_file, np.column_stack([phi, np.full(len(x), bias)]))
    print(json.dumps({"seconds": t2 - t1, "build_seconds": t1 - t0}))
except Exception as err:
    print(json.dumps({"error": f"{type(err).__name__}: {str(err)[:200]}"}))
"""


def top_k(contrib: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Indices of the k largest feature contributions per row, largest first (bias excluded)."""
    phi = contrib[:, :-1]
    part = np.argpartition(-phi, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(phi, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _timed(fn: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, float]:
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    assert out is not None
    return out, best


def _shap_baseline(booster: lgb.Booster, x: pd.DataFrame, repeats: int) -> dict[str, Any]:
    import shap

    started = time.perf_counter()
    explainer = shap.TreeExplainer(booster)
    build = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phi, seconds = _timed(lambda: np.asarray(explainer.shap_values(x)), repeats)
    bias = float(np.ravel(explainer.expected_value)[-1])
    contrib = np.column_stack([phi.reshape(len(x), -1), np.full(len(x), bias)])
    return {"method": "shap.TreeExplainer", "contrib": contrib, "seconds": seconds, "build": build}


def _in_process_candidate(name: str, booster: lgb.Booster, x: pd.DataFrame) -> dict[str, Any]:
    """fasttreeshap / woodelf when importable in this interpreter."""
    try:
        if name == "fasttreeshap":
            import fasttreeshap  # noqa: F401
        else:
            import woodelf  # noqa: F401
    except Exception as err:  # noqa: BLE001 - report whatever stops the import
        return {"method": name, "status": f"not installed here ({type(err).__name__}: {err})"}
    with tempfile.TemporaryDirectory() as tmp:
        result = _subprocess_candidate(name, sys.executable, booster, x, Path(tmp))
    return result or {"method": name, "status": "failed: import in a subprocess"}


def _subprocess_candidate(
    name: str, python: str, booster: lgb.Booster, x: pd.DataFrame, tmp: Path
) -> dict[str, Any] | None:
    model_file, rows_file, out_file = tmp / "model.txt", tmp / "rows.parquet", tmp / "phi.npy"
    if not model_file.exists():
        booster.save_model(model_file)
        x.to_parquet(rows_file)
    proc = subprocess.run(
        [python, "-c", _CANDIDATE_SCRIPT, name, str(model_file), str(rows_file), str(out_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    label = f"{name} ({Path(python).parents[1].name})"
    if lines and "ModuleNotFoundError" in lines[-1]:
        return None  # that interpreter does not have this library
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"method": label, "status": f"failed: {tail[:200]}"}
    result = json.loads(lines[-1])
    if "error" in result:
        return {"method": label, "status": f"failed: {result['error']}"}
    return {
        "method": label,
        "contrib": np.load(out_file),
        "seconds": result["seconds"],
        "build": result["build_seconds"],
    }


def compare(
    booster: lgb.Booster,
    x: pd.DataFrame,
    repeats: int = 1,
    candidate_pythons: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Every method on the same booster and rows, measured against shap.TreeExplainer.

    Each dict: method, rows, trees, seconds, rows_per_s, speedup (vs shap), max_abs_diff (vs
    shap, log-odds), top3_same (share of rows with shap's top-3 reasons), build_seconds, status.
    """
    baseline = _shap_baseline(booster, x, repeats)
    runs: list[dict[str, Any]] = [baseline]
    contrib, seconds = _timed(lambda: booster.predict(x, pred_contrib=True), repeats)
    runs.append({"method": "lightgbm pred_contrib", "contrib": contrib, "seconds": seconds})
    for name in ("fasttreeshap", "woodelf"):
        runs.append(_in_process_candidate(name, booster, x))
    if candidate_pythons:
        with tempfile.TemporaryDirectory() as tmp:
            for python in candidate_pythons:
                for name in ("fasttreeshap", "woodelf"):
                    result = _subprocess_candidate(name, python, booster, x, Path(tmp))
                    if result is not None:
                        runs.append(result)
    started = time.perf_counter()
    explainer = treeshap.Explainer(booster)
    explainer.contributions(x.iloc[:1])  # numba compiles (or loads its cache) on the first call
    build = time.perf_counter() - started
    contrib, seconds = _timed(lambda: explainer.contributions(x), repeats)
    runs.append(
        {
            "method": f"ours ({explainer.backend})",
            "contrib": contrib,
            "seconds": seconds,
            "build": build,
        }
    )

    reference = baseline["contrib"]
    ref_top = top_k(reference)
    rows: list[dict[str, Any]] = []
    for run in runs:
        row: dict[str, Any] = {
            "method": run["method"],
            "rows": len(x),
            "trees": booster.num_trees(),
            "status": run.get("status", "ok"),
            "build_seconds": run.get("build", 0.0),
        }
        if "contrib" in run:
            phi = run["contrib"]
            if phi.shape != reference.shape:
                row["status"] = f"failed: output shape {phi.shape}, expected {reference.shape}"
            else:
                diff = np.abs(phi - reference)
                row.update(
                    seconds=run["seconds"],
                    rows_per_s=len(x) / run["seconds"],
                    speedup=baseline["seconds"] / run["seconds"],
                    max_abs_diff=float(np.nanmax(diff)),
                    top3_same=float((top_k(phi) == ref_top).all(axis=1).mean()),
                )
        rows.append(row)
    return rows


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(
        f"{'method':<34} {'rows/s':>9} {'speed-up':>9} {'max |diff|':>11} {'top-3 same':>11} "
        f"{'build s':>8}"
    )
    for r in rows:
        if "rows_per_s" not in r:
            print(f"{r['method']:<34} {r['status']}")
            continue
        print(
            f"{r['method']:<34} {r['rows_per_s']:>9,.0f} {r['speedup']:>8.1f}x "
            f"{r['max_abs_diff']:>11.2e} {r['top3_same']:>10.2%} {r['build_seconds']:>8.2f}"
        )


def load_rows(n_rows: int) -> tuple[Any, pd.DataFrame]:
    """The real model and n_rows of the feature table (repeated if it has fewer)."""
    from models.model import load_model

    model = load_model(ROOT / "artifacts" / "model")
    table = pd.read_parquet(ROOT / "data" / "processed" / "features.parquet")
    if n_rows > len(table):
        table = pd.concat([table] * (n_rows // len(table) + 1), ignore_index=True)
    return model, table.iloc[:n_rows].reset_index(drop=True)


def train_model(trees: int) -> tuple[lgb.Booster, Any]:
    """A `trees`-tree booster on the whole feature table: no early stopping, num_leaves 31."""
    from models.model import fit_feature_spec, to_model_frame
    from models.settings import TrainParams
    from models.training.train import lgb_params

    table = pd.read_parquet(ROOT / "data" / "processed" / "features.parquet")
    spec = fit_feature_spec(table)
    x = to_model_frame(table, spec)
    params = lgb_params(TrainParams(), {"num_leaves": 31})
    data = lgb.Dataset(x, label=table["churned"].to_numpy())
    return lgb.train(params, data, num_boost_round=trees), spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--trees", type=int, default=None, help="0 = only the real model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--candidate-python", action="append", default=[])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.rows:,} rows; best of {args.repeats} runs")

    model, table = load_rows(args.rows)
    if args.trees in (None, 0):
        x = model.model_frame(table)
        title = f"real model (artifacts/model, {model.booster.num_trees()} trees), {len(x):,} rows"
        print_table(title, compare(model.booster, x, args.repeats, tuple(args.candidate_python)))
    if args.trees != 0:
        trees = args.trees or 300
        print(f"training a {trees}-tree model on the feature table ...", flush=True)
        booster, spec = train_model(trees)
        from models.model import to_model_frame

        x = to_model_frame(table, spec)
        title = f"{trees}-tree model (num_leaves 31, trained here), {len(x):,} rows"
        print_table(title, compare(booster, x, args.repeats, tuple(args.candidate_python)))


if __name__ == "__main__":
    main()
