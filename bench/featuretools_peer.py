"""The Featuretools side of bench/featurize.py: the shared event features with Featuretools.

Runs in its own venv (Featuretools does not support pandas 3; see bench/requirements-peer.txt):

    .bench-venv/bin/python bench/featuretools_peer.py --data DIR --out matrix.parquet \
        --types login,feature_use --windows 30,90,180

Reads DIR/customers.parquet, DIR/events.parquet and DIR/spine.parquet (customer_id, cutoff),
builds an EntitySet (customers 1-n events, time index `ts`, last time indexes), and makes one
`ft.dfs` call per window with the spine as `cutoff_time`, `training_window="<w> days"`,
`include_cutoff_time=False` (events strictly before the cutoff, and window = [cutoff - w days,
cutoff), the same rows as ours), COUNT/SUM/MEAN as where-primitives over the interesting
values of `event_type`, `max_depth=1`, `n_jobs=1` (n_jobs > 1 needs dask.distributed and
would compete for the machine's 2 cores). Writes customer_id, cutoff and, per type t and window
w, n_<t>_<w>d, sum_<t>_<w>d, mean_<t>_<w>d (NaN when no events) to --out.
"""

from __future__ import annotations

import argparse
import json
import warnings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--types", required=True, help="comma-separated event types")
    ap.add_argument("--windows", required=True, help="comma-separated days, e.g. 30,90,180")
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # per-chunk pandas FutureWarnings inside featuretools

    import featuretools as ft
    import pandas as pd

    types = [t for t in args.types.split(",") if t]
    windows = [int(w) for w in args.windows.split(",") if w]
    data = args.data
    ev = pd.read_parquet(
        f"{data}/events.parquet", columns=["customer_id", "ts", "event_type", "value"]
    )
    ev = ev[ev.event_type.isin(types)].reset_index(drop=True)
    # naive UTC times: the same instants, without woodwork's timezone handling per chunk
    ev["ts"] = ev.ts.dt.tz_convert("UTC").dt.tz_localize(None)
    ev.insert(0, "event_id", range(len(ev)))
    customers = pd.read_parquet(f"{data}/customers.parquet", columns=["customer_id"])
    spine = pd.read_parquet(f"{data}/spine.parquet", columns=["customer_id", "cutoff"])
    cutoff_time = pd.DataFrame(
        {
            "customer_id": spine.customer_id,
            "time": spine.cutoff.dt.tz_convert("UTC").dt.tz_localize(None),
        }
    )

    es = ft.EntitySet("bench")
    es.add_dataframe(dataframe_name="customers", dataframe=customers, index="customer_id")
    es.add_dataframe(
        dataframe_name="events",
        dataframe=ev,
        index="event_id",
        time_index="ts",
        logical_types={"event_type": "Categorical", "value": "Double"},
    )
    es.add_relationship("customers", "customer_id", "events", "customer_id")
    es.add_last_time_indexes()  # the docs' advice with training_window
    es.add_interesting_values(dataframe_name="events", values={"event_type": types})

    names = {"COUNT": "n", "SUM": "sum", "MEAN": "mean"}
    parts = []
    for w in windows:
        fm, defs = ft.dfs(
            entityset=es,
            target_dataframe_name="customers",
            cutoff_time=cutoff_time,
            cutoff_time_in_index=True,
            training_window=f"{w} days",
            include_cutoff_time=False,
            agg_primitives=["count", "sum", "mean"],
            where_primitives=["count", "sum", "mean"],
            trans_primitives=[],
            max_depth=1,
            drop_exact=["COUNT(events)", "SUM(events.value)", "MEAN(events.value)"],
            n_jobs=args.n_jobs,
        )
        rename = {}
        for f in defs:
            if f.where is None:
                continue
            prim = type(f.primitive).__name__.upper()
            value = f.where.primitive.value  # the interesting value: an event type
            rename[f.get_name()] = f"{names[prim]}_{value}_{w}d"
        parts.append(fm[list(rename)].rename(columns=rename))
    out = pd.concat(parts, axis=1).reset_index()
    out = out.rename(columns={"time": "cutoff"})
    out["cutoff"] = out.cutoff.dt.tz_localize("UTC")
    for c in out.columns:
        if c not in ("customer_id", "cutoff"):
            out[c] = out[c].astype("float64")
    out.to_parquet(args.out, index=False)
    print(
        json.dumps(
            {
                "features": out.shape[1] - 2,
                "rows": len(out),
                "featuretools": ft.__version__,
                "pandas": pd.__version__,
                "n_jobs": args.n_jobs,
            }
        )
    )


if __name__ == "__main__":
    main()
