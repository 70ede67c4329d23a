"""Benchmark: our churn model vs BG/NBD and RFM models on the CDNOW test rows, in one run.

    churn preset configs/cdnow.yaml && dvc repro      # (or the stages ingest .. evaluate)
    python bench/cdnow_peers.py                       # --json for one JSON object on stdout

The rows are ours: the customers and the test cutoff (1998-04-01) of
data/processed/test_predictions.parquet; churned = no purchase in [cutoff, cutoff + 90 days),
recomputed here from the raw purchase log and checked against the pipeline's label. On those rows,
side by side, the out-of-time ROC AUC and PR AUC (churn = positive, average precision) of:

  ours         the pipeline's test predictions (p_model); the LightGBM settings it kept on the
               validation cutoff (train.candidates) are in the note
  ours' logreg the pipeline's own logistic-regression baseline (p_logreg), for reference
  BG/NBD       fitted (maximum likelihood, weeks) on every customer's purchase days before the
               test cutoff; scores: minus the expected purchases in the next 90 days (what issue
               13 reported), and P(no purchase in the next 90 days)
  RFM LR, HGB  logistic regression (standardised inputs; otherwise scikit-learn defaults, more
               iterations) and HistGradientBoosting (defaults) on recency, tenure, orders,
               dollars, CDs, mean order value and orders in the last 30/90/180/365 days, one row
               per customer and training cutoff, label = no purchase in the 90 days from it.
               Two sets of training cutoffs: ours (reports/train.json: the cutoffs our registered
               model was fitted on, train + valid when train.refit is on), and `observed`: only
               the cutoffs whose 90-day label window has ended by the test cutoff, the ones a
               model trained on the test date could really use (later windows overlap the test
               window: their labels hold some of the test period's purchases).

No leakage: features use purchases strictly before each cutoff, labels the window from it; BG/NBD
sees nothing after the test cutoff. Purchases are counted by customer-day, as in the preset's
mapping. The paired bootstrap gives a 95 % interval of ours minus each peer's ROC AUC.
Reference figures of issue 13 (all 23,570 customers): BG/NBD 0.833, RFM LR 0.838, RFM HGB 0.834.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluation.bgnbd import BGNBD, purchase_history  # noqa: E402

RFM_WINDOWS = (30, 90, 180, 365)
RFM_FEATURES = (
    "recency_days",
    "tenure_days",
    "orders",
    "dollars",
    "cds",
    "mean_order_value",
    *(f"orders_{w}d" for w in RFM_WINDOWS),
)


def read_purchase_days(path: Path) -> pd.DataFrame:
    """The CDNOW log as one row per customer and purchase day (dollars and CDs summed)."""
    raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str}, engine="python")
    raw["day"] = pd.to_datetime(raw["date"], format="%Y%m%d", utc=True)
    return (
        raw.groupby(["customer_id", "day"], as_index=False)
        .agg(cds=("number_of_cds", "sum"), dollars=("dollar_value", "sum"))
        .sort_values(["customer_id", "day"], ignore_index=True)
    )


def churned_after(
    days: pd.DataFrame, customers: pd.Index, cutoff: pd.Timestamp, horizon: int
) -> pd.Series:
    """True for each customer with no purchase day in [cutoff, cutoff + horizon days)."""
    window = days[(days["day"] >= cutoff) & (days["day"] < cutoff + pd.Timedelta(days=horizon))]
    return pd.Series(~customers.isin(window["customer_id"].unique()), index=customers)


def rfm_features(days: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """RFM features per customer with a purchase strictly before the cutoff."""
    before = days[days["day"] < cutoff]
    g = before.groupby("customer_id")
    out = pd.DataFrame(
        {
            "recency_days": (cutoff - g["day"].max()).dt.days,
            "tenure_days": (cutoff - g["day"].min()).dt.days,
            "orders": g.size(),
            "dollars": g["dollars"].sum(),
            "cds": g["cds"].sum(),
        }
    )
    out["mean_order_value"] = out["dollars"] / out["orders"]
    age = (cutoff - before["day"]).dt.days
    for w in RFM_WINDOWS:
        recent = before[age <= w].groupby("customer_id").size()
        out[f"orders_{w}d"] = recent.reindex(out.index, fill_value=0)
    return out


def rfm_rows(
    days: pd.DataFrame, cutoffs: list[pd.Timestamp], horizon: int
) -> tuple[pd.DataFrame, pd.Series]:
    """Stacked (features, churned) for the given training cutoffs."""
    frames, labels = [], []
    for c in cutoffs:
        f = rfm_features(days, c)
        frames.append(f)
        labels.append(churned_after(days, f.index, c, horizon))
    return pd.concat(frames, ignore_index=True), pd.concat(labels, ignore_index=True)


def chosen_settings(meta_path: Path) -> str:
    """`; LightGBM <candidate> (valid log loss per candidate)` from the model's metadata."""
    if not meta_path.exists():
        return ""
    info = json.loads(meta_path.read_text()).get("info", {})
    tried = info.get("candidates") or {}
    losses = ", ".join(f"{k} {v['valid_log_loss']:.5f}" for k, v in tried.items())
    return f"; LightGBM {info.get('candidate', 'base')} (valid log loss: {losses})" if tried else ""


def scores(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
    }


def paired_bootstrap(
    y: np.ndarray, ours: np.ndarray, peer: np.ndarray, n: int = 200, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of ROC AUC(ours) - ROC AUC(peer), rows resampled together."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        i = rng.integers(0, y.size, y.size)
        diffs.append(roc_auc_score(y[i], ours[i]) - roc_auc_score(y[i], peer[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", type=Path, default=Path("."), help="the project run on CDNOW")
    ap.add_argument("--log", type=Path, default=Path("data/examples/cdnow/CDNOW_master.txt"))
    ap.add_argument(
        "--predictions", type=Path, default=Path("data/processed/test_predictions.parquet")
    )
    ap.add_argument("--train-report", type=Path, default=Path("reports/train.json"))
    ap.add_argument("--meta", type=Path, default=Path("artifacts/model/artifacts/model_meta.json"))
    ap.add_argument("--horizon-days", type=int, default=90)
    ap.add_argument("--unit-days", type=float, default=7.0, help="BG/NBD time unit")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    here = args.project
    t0 = time.perf_counter()

    days = read_purchase_days(here / args.log)
    preds = pd.read_parquet(here / args.predictions)
    preds["cutoff"] = pd.to_datetime(preds["cutoff"], utc=True)
    if preds["cutoff"].nunique() != 1:
        raise SystemExit(f"expected one test cutoff, found {sorted(preds['cutoff'].unique())}")
    test_cutoff = preds["cutoff"].iloc[0]
    preds = preds.set_index("customer_id")
    test_ids = preds.index
    y = churned_after(days, test_ids, test_cutoff, args.horizon_days).to_numpy()
    label_mismatch = int((y != preds["churned"].astype(bool).to_numpy()).sum())

    # training cutoffs: the pipeline's, and those whose label window ends by the test cutoff
    report = json.loads((here / args.train_report).read_text())
    # the cutoffs our registered model was fitted on (train + valid when train.refit is on)
    trained_on = report.get("trained_on_cutoffs") or report["split"]["train"]["cutoffs"]
    ours_train = [pd.Timestamp(c) for c in trained_on]
    ours_valid = [pd.Timestamp(c) for c in report["split"]["valid"]["cutoffs"]]
    horizon = pd.Timedelta(days=args.horizon_days)
    observed = sorted({c for c in ours_train + ours_valid if c + horizon <= test_cutoff})
    assert all(c < test_cutoff for c in ours_train + observed)

    ranked: dict[str, np.ndarray] = {"ours": preds["p_model"].to_numpy()}
    notes: dict[str, str] = {
        "ours": f"pipeline test predictions ({args.predictions}){chosen_settings(here / args.meta)}"
    }
    if "p_logreg" in preds.columns:  # the pipeline's own baseline, fitted on ours' cutoffs
        ranked["ours' logreg baseline"] = preds["p_logreg"].to_numpy()
        notes["ours' logreg baseline"] = "train's logistic regression on ours' features"

    # BG/NBD on the history before the test cutoff (no labels, nothing after the cutoff)
    hist = purchase_history(days.rename(columns={"day": "ts"}), test_cutoff, args.unit_days)
    hist = hist.reindex(test_ids)
    if hist.isna().any().any():
        raise SystemExit("some test customers have no purchase before the test cutoff")
    bg = BGNBD().fit(hist["frequency"], hist["recency"], hist["age"])
    t_units = args.horizon_days / args.unit_days
    h = (hist["frequency"], hist["recency"], hist["age"])
    ranked["BG/NBD -E[purchases]"] = -bg.expected_purchases(t_units, *h)
    ranked["BG/NBD P(none)"] = bg.probability_no_purchase(t_units, *h)
    p = bg.params_
    for name in ("BG/NBD -E[purchases]", "BG/NBD P(none)"):
        notes[name] = (
            f"r={p.r:.3f} alpha={p.alpha:.3f} a={p.a:.3f} b={p.b:.3f} (weeks), "
            f"{bg.n_customers_} customers before {test_cutoff.date()}"
        )

    x_test = rfm_features(days, test_cutoff).reindex(test_ids)[list(RFM_FEATURES)]
    for tag, cutoffs in (("ours' cutoffs", ours_train), ("observed cutoffs", observed)):
        x_train, y_train = rfm_rows(days, cutoffs, args.horizon_days)
        x_train = x_train[list(RFM_FEATURES)]
        span = (
            f"{len(cutoffs)} cutoffs {cutoffs[0].date()}..{cutoffs[-1].date()}, {len(x_train)} rows"
        )
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        lr.fit(x_train, y_train)
        ranked[f"RFM LR ({tag})"] = lr.predict_proba(x_test)[:, 1]
        notes[f"RFM LR ({tag})"] = span
        hgb = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)
        ranked[f"RFM HGB ({tag})"] = hgb.predict_proba(x_test)[:, 1]
        notes[f"RFM HGB ({tag})"] = span

    rows = []
    for name, score in ranked.items():
        row = {"ranking": name, **scores(y, score)}
        if name != "ours":
            lo, hi = paired_bootstrap(y, ranked["ours"], score, args.bootstrap)
            row["ours_minus_peer_auc_95"] = [round(lo, 4), round(hi, 4)]
        row["note"] = notes[name]
        rows.append(row)
    summary = {
        "test_cutoff": test_cutoff.isoformat(),
        "rows": int(y.size),
        "churn_rate": float(y.mean()),
        "label_mismatches_vs_pipeline": label_mismatch,
        "ours_trained_on_cutoffs": [c.date().isoformat() for c in ours_train],
        "ours_validation_cutoffs": [c.date().isoformat() for c in ours_valid],
        "observed_training_cutoffs": [c.date().isoformat() for c in observed],
        "results": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"CDNOW test cutoff {test_cutoff.date()}: {y.size} customers, churn rate {y.mean():.3f} "
        f"(no purchase in {args.horizon_days} days); label mismatches vs the pipeline: "
        f"{label_mismatch}"
    )
    print(f"{'ranking':<28} {'ROC AUC':>8} {'PR AUC':>8}  {'ours - peer (95%)':>18}  note")
    for r in rows:
        ci = r.get("ours_minus_peer_auc_95")
        ci_text = f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""
        figures = f"{r['roc_auc']:>8.4f} {r['pr_auc']:>8.4f}"
        print(f"{r['ranking']:<28} {figures}  {ci_text:>18}  {r['note']}")
    print("issue 13 reference (all 23,570): BG/NBD 0.833, RFM LR 0.838, RFM HGB 0.834")
    print(f"{summary['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
