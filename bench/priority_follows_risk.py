"""Check: does the retention priority list follow risk? Ours beside the old value formula.

    dvc repro score                          # (or `make run`)
    python bench/priority_follows_risk.py    # --scores PATH --params PATH

On the published scores (data/scores/scores.parquet), within each quartile of the monthly fee,
Spearman(expected_gain, churn_probability) for

  ours      expected_gain as published: p x save_rate x CLV - contact_cost, CLV = fee x margin x L
            with L the book's lifetime (models/value.py), the same for every customer;
  baseline  the formula issue 14 replaced: CLV from the customer's OWN probability
            (fee x margin x sum_t ((1 - p) / (1 + d))^t), which cancels p out of p x CLV;

with quartiles taken two ways: of the fee's values (pandas qcut: equal fees stay in one quartile)
and of the customers sorted by fee (equal sizes; ties split by customer_id). Also the share of the
critical and high-risk customers with a fee above the median who are on reports/priority.csv.
And Spearman within each fee shared by >= 100 customers (at one fee, the gain should follow p
exactly). Issue 14 asks for Spearman >= 0.5 in each quartile and >= 80 % on the list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.value import clv, contact_gain  # noqa: E402
from pipeline.config import load_params  # noqa: E402


def spearman_by_quartile(scores: pd.DataFrame, gain: pd.Series, quartiles: pd.Series) -> list:
    return [
        round(float(gain[g.index].corr(g["churn_probability"], method="spearman")), 3)
        for _, g in scores.groupby(quartiles, observed=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", default="data/scores/scores.parquet")
    parser.add_argument("--priority", default="reports/priority.csv")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    value = load_params(args.params).value
    s = pd.read_parquet(args.scores).sort_values("customer_id", ignore_index=True)
    fee, p = s["monthly_fee"], s["churn_probability"]
    own_clv = clv(fee, p, value.margin_rate, value.discount_rate, value.horizon_months)
    gains = {
        "ours": s["expected_gain"],
        "baseline (CLV from own p)": pd.Series(contact_gain(p, own_clv, value), index=s.index),
    }
    by_value = pd.qcut(fee, 4, duplicates="drop")
    by_rank = pd.qcut(fee.rank(method="first"), 4, labels=False)
    print(f"{len(s):,} scored customers; fee quartiles by value: {list(by_value.cat.categories)}")
    print(f"{'':28s} {'by fee value (qcut)':>32s}   {'by equal size':>32s}")
    for name, gain in gains.items():
        a = spearman_by_quartile(s, gain, by_value)
        b = spearman_by_quartile(s, gain, by_rank)
        print(f"{name:28s} {str(a):>32s}   {str(b):>32s}")
    common = fee.value_counts()
    common = common[common >= 100].index.sort_values()
    at_fee = fee.where(fee.isin(common))
    print(f"at one fee (levels with >= 100 customers: {list(common)}):")
    for name, gain in gains.items():
        print(f"{name:28s} {spearman_by_quartile(s, gain, at_fee)}")
    listed = set(pd.read_csv(args.priority, usecols=["customer_id"])["customer_id"])
    hot = s[s["risk_tier"].isin(["critical", "high"]) & (fee > fee.median())]
    share = hot["customer_id"].isin(listed).mean() if len(hot) else float("nan")
    print(
        f"critical/high with a fee above the median on the priority list: "
        f"{int(hot['customer_id'].isin(listed).sum())} of {len(hot)} ({share:.1%}); "
        f"list length {len(listed):,}"
    )


if __name__ == "__main__":
    main()
