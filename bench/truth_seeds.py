"""Truth figures with their uncertainty over simulator seeds (issue 15).

For each seed, in a scratch copy of the committed project (`git archive HEAD`; default size,
the params.yaml world unless --world): `dvc repro evaluate` and `churn explain`, then print from
reports/metrics.json and reports/truth.json: ours vs logistic regression ROC AUC with the paired
bootstrap 95 % interval of the difference (same resampled test rows), the oracle's AUC and our
gap to it with its interval, ECE, the mean absolute error vs the true probability with its
interval, the best single-feature AUC, the driver check by latent-driver proxy group (groups
ranked by mean |SHAP| summed within the group), whether neutral ratings raise churn in truth
(from the raw tables and the truth file) and what the driver report's rating bands show.

    PATH=.venv/bin:$PATH python bench/truth_seeds.py                 # seeds 42 43 44
    PATH=.venv/bin:$PATH python bench/truth_seeds.py --seeds 42 --keep /tmp/bench_truth
    PATH=.venv/bin:$PATH python bench/truth_seeds.py --test-cutoffs 3  # the last 3 months as test

With several test cutoffs a customer has a row at each; the intervals resample customers.

Not asserted in the test suite (STYLE 10): it prints the acceptance points and each verdict.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def scratch_copy(dest: Path) -> None:
    """The committed tree (`git archive HEAD`: no data, outputs or work in progress) as a fresh
    git repository, which DVC needs."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(dest, filter="data")
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench copy"],
    ):
        subprocess.run(cmd, cwd=dest, check=True)


def run_seed(
    dest: Path, seed: int, world: str | None, test_cutoffs: int | None = None
) -> tuple[float, float | None]:
    """Set simulate.seed (world, split.test_cutoffs) in the copy and `dvc repro evaluate`; the
    wall seconds of the whole run and of the simulate stage (from its log line)."""
    params_path = dest / "params.yaml"
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["simulate"]["seed"] = seed
    if world:
        params["simulate"]["world"] = world
    if test_cutoffs:
        params["split"]["test_cutoffs"] = test_cutoffs
    params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(dest)}
    began = time.perf_counter()
    result = subprocess.run(
        [shutil.which("dvc") or "dvc", "repro", "evaluate"],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"seed {seed}: dvc repro failed\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    found = re.search(
        r"pipeline\.simulate: wrote .* in ([0-9.]+) s;", result.stdout + result.stderr
    )
    return time.perf_counter() - began, float(found.group(1)) if found else None


def run_explain(dest: Path) -> dict[str, Any]:
    """`churn explain` in the copy (the driver report's own code); its rating-band figures:
    neutral minus high raters' churn pooled over every labelled cutoff with its interval, and the
    test cutoff's bands (rating_bands.csv)."""
    env = {**os.environ, "PYTHONPATH": str(dest)}
    result = subprocess.run(
        [shutil.which("churn") or "churn", "explain"], cwd=dest, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"churn explain failed\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    drivers = dest / "reports/drivers"
    header = json.loads((drivers / "report.json").read_text(encoding="utf-8"))
    bands = (
        pd.read_csv(drivers / "rating_bands.csv")
        if (drivers / "rating_bands.csv").exists()
        else None
    )
    return {"pooled": header.get("rating_bands", {}), "bands": bands}


def neutral_ratings(dest: Path) -> dict[str, Any]:
    """Mean true churn probability of customer-months by their latest CSAT in the 90 days before
    the month: neutral (5-7) vs high (8-10) vs low (1-4)."""
    raw = dest / "data/raw"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        f"""
        WITH latest AS (
            SELECT t.customer_id, t.month_start, t.true_probability,
                   arg_max(r.score, r.ts) AS last_score
            FROM read_parquet('{raw}/truth.parquet') t
            JOIN read_parquet('{raw}/responses.parquet') r
              ON r.customer_id = t.customer_id AND r.metric = 'csat'
             AND r.ts < t.month_start AND r.ts >= t.month_start - INTERVAL 90 DAY
            GROUP BY ALL)
        SELECT CASE WHEN last_score >= 8 THEN 'high' WHEN last_score >= 5 THEN 'neutral'
                    ELSE 'low' END, avg(true_probability), count(*)
        FROM latest GROUP BY ALL
        """
    ).fetchall()
    return {band: {"mean_true_probability": p, "customer_months": n} for band, p, n in rows}


def _ci(ci: dict[str, list[float]], key: str) -> str:
    lo, hi = ci.get(key, [float("nan"), float("nan")])
    return f"[{lo:+.4f}, {hi:+.4f}]"


def report(seed: int, dest: Path, seconds: float, sim_seconds: float | None) -> dict[str, Any]:
    metrics = json.loads((dest / "reports/metrics.json").read_text(encoding="utf-8"))
    truth = json.loads((dest / "reports/truth.json").read_text(encoding="utf-8"))
    sim = json.loads((dest / "data/raw/simulation.json").read_text(encoding="utf-8"))
    ci = truth["ci95"]
    ours, lr = truth["model_roc_auc"], metrics["baselines"]["logreg"]["roc_auc"]
    oracle = truth["oracle_roc_auc"]
    best = truth["best_single_feature"]
    neutral = neutral_ratings(dest)
    print(
        f"\n=== seed {seed}: world {truth.get('world')} (dvc repro evaluate {seconds:.0f} s, "
        f"of which simulate {sim_seconds} s)"
    )
    churners = round(truth["observed_rate"] * truth["rows"])
    cutoffs = truth.get("test_cutoffs", 1)
    print(f"rows {truth['rows_matched']} at {cutoffs} test cutoff(s), churners {churners}")
    print(f"ROC AUC   ours {ours:.4f}   logistic regression {lr:.4f}")
    print(f"  ours - LR        {ours - lr:+.4f}  95% {_ci(ci, 'model_minus_logreg_roc_auc')}")
    print(
        f"  ours - rule      {ours - metrics['baselines']['rule']['roc_auc']:+.4f}  95% "
        f"{_ci(ci, 'model_minus_rule_roc_auc')}"
    )
    print(f"  oracle {oracle:.4f}  95% {_ci(ci, 'oracle_roc_auc')}")
    if "oracle_without_frailty_roc_auc" in truth:
        without = truth["oracle_without_frailty_roc_auc"]
        print(f"  oracle without the frailty (latent states only) {without:.4f}")
    print(
        f"  gap to oracle    {truth['auc_gap_to_oracle']:+.4f}  95% {_ci(ci, 'auc_gap_to_oracle')}"
    )
    print(f"ECE {metrics['ece']:.4f}")
    print(
        f"mean |p - true p| {truth['mean_abs_probability_error']:.4f}  95% "
        f"{_ci(ci, 'mean_abs_probability_error')}"
    )
    print(
        f"best single feature {best['feature']} AUC {best['roc_auc']:.4f} "
        f"(oracle - best = {oracle - best['roc_auc']:+.4f})"
    )
    print("driver check (latent driver: mean |contrib| on test rows, proxy group rank):")
    for d in truth.get("drivers", []):
        rank = d.get("group_rank", d.get("rank"))
        strength = d.get("strength_mean_abs_contrib")
        print(
            f"  {d['driver']:<18} {strength if strength is None else round(strength, 5)!s:<9} "
            f"group rank {rank}{'  (unobserved)' if d.get('unobserved') else ''}"
        )
    groups = truth.get("top_groups", [])[:6]
    listed = ", ".join(f"{g['rank']}. {g['group']} {g['mean_abs_shap_sum']:.3f}" for g in groups)
    print(f"  top groups: {listed}")
    print(
        f"  strongest 3 with a proxy: {truth.get('strongest_3')}; all in top 5: "
        f"{truth.get('strongest_3_in_top_5')}"
    )
    print(
        "neutral ratings (latest CSAT 5-7) vs high (8-10) vs low (1-4), mean true probability: "
        + ", ".join(
            f"{b} {v['mean_true_probability']:.4f} (n={v['customer_months']})"
            for b, v in sorted(neutral.items())
        )
    )
    explained = run_explain(dest)
    pooled = explained["pooled"].get("neutral_minus_high")
    if pooled:
        print(
            f"driver report, pooled over {explained['pooled'].get('cutoffs')} labelled cutoffs: "
            f"neutral {100 * pooled['rate_first']:.2f} % ({pooled['rows_first']}) vs high "
            f"{100 * pooled['rate_second']:.2f} % ({pooled['rows_second']}): "
            f"{100 * pooled['difference']:+.2f} pp, 95% [{100 * pooled['low']:+.2f}, "
            f"{100 * pooled['high']:+.2f}] pp (customer-clustered)"
        )
    bands = explained["bands"]
    if bands is not None:
        cols = [c for c in ("band", "customers", "churn_rate", "mean_probability",
                            "rating_effect_pp") if c in bands.columns]  # fmt: skip
        print("driver report, test cutoff:\n" + bands[cols].to_string(index=False))
    print(f"frailty: {sim.get('frailty', {}).get('shape')} (Gamma shape)")
    return {
        "seed": seed,
        "report_neutral_up": bool(pooled) and pooled["low"] > 0,
        "lr_diff_lo": ci["model_minus_logreg_roc_auc"][0],
        "ece": metrics["ece"],
        "single_within_005": oracle - best["roc_auc"] < 0.05,
        "drivers_top5": bool(truth.get("strongest_3_in_top_5")),
        "neutral_up": neutral["neutral"]["mean_true_probability"]
        > neutral["high"]["mean_true_probability"],
        "simulate_world": sim.get("world"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--world", choices=["realistic", "simple"], default=None)
    parser.add_argument(
        "--test-cutoffs",
        type=int,
        default=None,
        help="split.test_cutoffs (default: params.yaml's); intervals resample customers",
    )
    parser.add_argument("--keep", type=Path, default=None, help="scratch root to keep")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="truth_seeds_"))
    results = []
    for seed in args.seeds:
        dest = root / f"seed_{seed}"
        if dest.exists():
            shutil.rmtree(dest)
        scratch_copy(dest)
        seconds, sim_seconds = run_seed(dest, seed, args.world, args.test_cutoffs)
        results.append(report(seed, dest, seconds, sim_seconds))
    n = len(results)
    print("\n=== acceptance (issue 15)")
    lr_pass = sum(r["lr_diff_lo"] > 0 for r in results)
    print(
        f"ours - LR > 0 with the 95% interval above 0: {lr_pass}/{n} seeds "
        f"(needs >= 2 of 3): {'PASS' if lr_pass >= min(2, n) else 'FAIL'}"
    )
    ece_pass = all(r["ece"] <= 0.02 for r in results)
    eces = ", ".join(f"{r['ece']:.4f}" for r in results)
    print(f"ECE <= 0.02 on every seed: {'PASS' if ece_pass else 'FAIL'} ({eces})")
    single = not any(r["single_within_005"] for r in results)
    print(f"no single feature within 0.05 of the oracle AUC: {'PASS' if single else 'FAIL'}")
    drivers = sum(r["drivers_top5"] for r in results)
    print(
        f"3 strongest latent drivers' proxy groups in the top 5 groups: {drivers}/{n} seeds: "
        f"{'PASS' if drivers == n else 'FAIL'}"
    )
    neutral = all(r["neutral_up"] for r in results)
    print(f"neutral ratings raise churn in truth (vs high): {'PASS' if neutral else 'FAIL'}")
    shown = sum(r["report_neutral_up"] for r in results)
    print(
        f"the driver report shows it (pooled interval above 0): {shown}/{n} seeds: "
        f"{'PASS' if shown == n else 'FAIL'}"
    )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
