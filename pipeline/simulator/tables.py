"""The output tables: their schemas, a simulated chunk as Arrow tables, and `simulate`, which
writes every chunk and `simulation.json` (row counts, realised driver lifts) atomically."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.base.io import atomic_directory, write_json
from pipeline.settings import SimulateParams
from pipeline.simulator.calendar import Calendar, build_calendar
from pipeline.simulator.latent import CONTRIB_NAMES, LatentChunkSimulator
from pipeline.simulator.month import NEVER_CLOSED, NO_CHURN, ChunkSimulator
from pipeline.simulator.texts import TEXTS, WARNING_WORDS
from pipeline.simulator.world import (
    BASELINE_HAZARD,
    CHANNELS,
    CHURN_TYPES,
    COUNTRIES,
    DEVICE_OS,
    DIS,
    DRIVERS,
    ECO,
    EVENT_FEATURES,
    EVENT_TYPES,
    FRAILTY_RATIONALE,
    FRAILTY_SHAPE,
    LANGUAGES,
    LATENT_DRIVERS,
    LIFE_EVENT_PROBABILITY,
    LIST_FEE,
    METRICS,
    NOISE_COLUMNS,
    PLANS,
    PRICE_SENSITIVITY,
    PRIORITIES,
    REALISTIC_BASELINE_HAZARD,
    REALISTIC_LIFE_EVENT_PROBABILITY,
    REGIME_RAMP_MONTHS,
    REGIME_SHIFT_COUNTRY,
    REGIME_SHIFT_DATE,
    SEGMENTS,
    SIT,
    TICKET_CATEGORIES,
    TOUCHPOINTS,
)

log = logging.getLogger(__name__)

TS_TYPE = pa.timestamp("us", tz="UTC")

# ----------------------------------------------------------------------------- output schemas
SCHEMAS: dict[str, pa.Schema] = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("signup_date", TS_TYPE),
            ("plan", pa.string()),
            ("monthly_fee", pa.float64()),
            ("country", pa.string()),
            ("language", pa.string()),
            ("segment", pa.string()),
            ("channel", pa.string()),
            ("marketing_opt_in", pa.bool_()),
            ("device_os", pa.string()),
            ("birth_month", pa.int16()),
            ("referral_code", pa.string()),
        ]
    ),
    "churn_events": pa.schema(
        [("customer_id", pa.string()), ("churn_date", TS_TYPE), ("churn_reason", pa.string())]
    ),
    "events": pa.schema(
        [
            ("customer_id", pa.string()),
            ("ts", TS_TYPE),
            ("event_type", pa.string()),
            ("value", pa.float64()),
            ("feature", pa.string()),
        ]
    ),
    "responses": pa.schema(
        [
            ("customer_id", pa.string()),
            ("ts", TS_TYPE),
            ("touchpoint", pa.string()),
            ("metric", pa.string()),
            ("score", pa.int16()),
            ("comment", pa.string()),
        ]
    ),
    "tickets": pa.schema(
        [
            ("customer_id", pa.string()),
            ("opened_at", TS_TYPE),
            ("closed_at", TS_TYPE),
            ("category", pa.string()),
            ("priority", pa.string()),
            ("escalated", pa.bool_()),
            ("satisfaction", pa.int16()),
            ("text", pa.string()),
        ]
    ),
    "truth": pa.schema(
        [
            ("customer_id", pa.string()),
            ("month_start", TS_TYPE),
            ("true_probability", pa.float64()),
            ("probability_this_month", pa.float64()),
            ("hazard_dissatisfaction", pa.float64()),
            ("hazard_economic", pa.float64()),
            ("hazard_situational", pa.float64()),
            ("contrib_baseline", pa.float64()),
            *[(f"contrib_{d.name}", pa.float64()) for d in DRIVERS],
            ("prob_dissatisfaction", pa.float64()),
            ("prob_economic", pa.float64()),
            ("prob_situational", pa.float64()),
            ("dominant_churn_type", pa.string()),
            ("true_churn_type", pa.string()),
        ]
    ),
}
TABLES = tuple(SCHEMAS)


def truth_schema(world: str) -> pa.Schema:
    """The truth table's schema: the simple world's planted drivers (`SCHEMAS["truth"]`, no
    metadata) or the realistic world's latent drivers, with metadata `world` and
    `proxy_feature_groups` (latent driver -> feature-name patterns, read by the truth check)."""
    if world == "simple":
        return SCHEMAS["truth"]
    simple = SCHEMAS["truth"]
    fields = [f for f in simple if not f.name.startswith("contrib_")]
    at = [f.name for f in fields].index("prob_dissatisfaction")
    contrib = [pa.field(f"contrib_{name}", pa.float64()) for name in CONTRIB_NAMES]
    groups = {d.name: list(d.proxy_group) for d in LATENT_DRIVERS}
    metadata = {"world": world, "proxy_feature_groups": json.dumps(groups)}
    return pa.schema(fields[:at] + contrib + fields[at:], metadata=metadata)


def _world_chunk(world: str) -> type[ChunkSimulator]:
    if world not in WORLD_CHUNKS:
        raise ValueError(f"simulate.world must be one of {sorted(WORLD_CHUNKS)}, found {world!r}")
    return WORLD_CHUNKS[world]


WORLD_CHUNKS: dict[str, type[ChunkSimulator]] = {
    "realistic": LatentChunkSimulator,
    "simple": ChunkSimulator,
}


# ----------------------------------------------------------------------------- a chunk as arrow
def _ids(prefix: str, first: int, n: int) -> pa.Array:
    """Zero-padded string ids like C0000001, vectorised."""
    numbers = pa.array(np.arange(first, first + n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, 7, "0"), "")


def _codes(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """int codes (negative = null) -> string array through a dictionary."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string())).cast(
        pa.string()
    )


def _ts(values: np.ndarray, null: int | None = None) -> pa.Array:
    """int64 µs -> UTC timestamps (`null` marks missing values)."""
    mask = None if null is None else values == null
    return pa.array(values, type=pa.int64(), mask=mask).cast(TS_TYPE)


def _int16(values: np.ndarray) -> pa.Array:
    """int codes (negative = null) -> int16 array."""
    return pa.array(values.astype(np.int16), mask=values < 0)


def _chunk_tables(chunk: ChunkSimulator) -> dict[str, pa.Table]:
    """The output tables of a simulated chunk, rows sorted by customer and time."""
    ids = _ids("C", chunk.first_id, chunk.n)
    cal = chunk.cal
    out: dict[str, pa.Table] = {}

    def table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
        return pa.Table.from_arrays(list(columns.values()), schema=SCHEMAS[name])

    referral = pa.array(chunk.referral_code, pa.binary(), mask=~chunk.referred).cast(pa.string())
    out["customers"] = table(
        "customers",
        {
            "customer_id": ids,
            "signup_date": _ts(chunk.signup),
            "plan": _codes(chunk.plan0, PLANS),
            "monthly_fee": pa.array(LIST_FEE[chunk.plan0]),
            "country": _codes(chunk.country, COUNTRIES),
            "language": _codes(chunk.language, LANGUAGES),
            "segment": _codes(chunk.segment, SEGMENTS),
            "channel": _codes(chunk.channel, CHANNELS),
            "marketing_opt_in": pa.array(chunk.marketing_opt_in),
            "device_os": _codes(chunk.device_os, DEVICE_OS),
            "birth_month": pa.array(chunk.birth_month.astype(np.int16)),
            "referral_code": referral,
        },
    )
    churned = np.flatnonzero(chunk.churn_ts != NO_CHURN)
    out["churn_events"] = table(
        "churn_events",
        {
            "customer_id": ids.take(churned),
            "churn_date": _ts(chunk.churn_ts[churned]),
            "churn_reason": _codes(chunk.churn_type[churned], CHURN_TYPES),
        },
    )

    ev = chunk.events.arrays()
    order = np.lexsort((ev["type"], ev["ts"], ev["cust"]))
    out["events"] = table(
        "events",
        {
            "customer_id": ids.take(ev["cust"][order]),
            "ts": _ts(ev["ts"][order]),
            "event_type": _codes(ev["type"][order], EVENT_TYPES),
            "value": pa.array(ev["value"][order], mask=np.isnan(ev["value"][order])),
            "feature": _codes(ev["feature"][order], EVENT_FEATURES),
        },
    )
    del ev

    rs = chunk.responses.arrays()
    order = np.lexsort((rs["touchpoint"], rs["ts"], rs["cust"]))
    out["responses"] = table(
        "responses",
        {
            "customer_id": ids.take(rs["cust"][order]),
            "ts": _ts(rs["ts"][order]),
            "touchpoint": _codes(rs["touchpoint"][order], TOUCHPOINTS),
            "metric": _codes(rs["metric"][order], METRICS),
            "score": _int16(rs["score"][order]),
            "comment": _codes(rs["comment"][order], TEXTS),
        },
    )

    tk = chunk.tickets.arrays()
    order = np.lexsort((tk["opened"], tk["cust"]))
    cust = tk["cust"][order]
    closed = tk["closed"][order]
    unknown = (closed >= np.minimum(chunk.churn_ts[cust], cal.end)) | (closed == NEVER_CLOSED)
    closed = np.where(unknown, NEVER_CLOSED, closed)
    out["tickets"] = table(
        "tickets",
        {
            "customer_id": ids.take(cust),
            "opened_at": _ts(tk["opened"][order]),
            "closed_at": _ts(closed, null=NEVER_CLOSED),
            "category": _codes(tk["category"][order], TICKET_CATEGORIES),
            "priority": _codes(tk["priority"][order], PRIORITIES),
            "escalated": pa.array(tk["escalated"][order].astype(bool)),
            "satisfaction": _int16(np.where(unknown, -1, tk["satisfaction"][order])),
            "text": _codes(tk["text"][order], TEXTS),
        },
    )

    tr = chunk.truth.parts
    cust = np.concatenate(tr["cust"]) if tr["cust"] else np.zeros(0, np.int64)
    month = np.concatenate(tr["month"]) if tr["month"] else np.zeros(0, np.int64)
    order = np.lexsort((month, cust))

    def col(name: str, width: int | None = None) -> np.ndarray:
        if not tr[name]:
            return np.zeros((0, width)) if width else np.zeros(0)
        return np.concatenate(tr[name])[order]

    world = getattr(chunk, "world", "simple")
    names = CONTRIB_NAMES if world != "simple" else ("baseline",) + tuple(d.name for d in DRIVERS)
    width = len(names) if world != "simple" else len(DRIVERS)
    h, contrib, prob = col("h", 3), col("contrib", width), col("prob", 3)
    columns: dict[str, pa.Array] = {
        "customer_id": ids.take(cust[order]),
        "month_start": _ts(cal.bounds[month[order]]),
        "true_probability": pa.array(col("true_probability")),
        "probability_this_month": pa.array(col("p_month")),
        "hazard_dissatisfaction": pa.array(h[:, DIS]),
        "hazard_economic": pa.array(h[:, ECO]),
        "hazard_situational": pa.array(h[:, SIT]),
    }
    if world == "simple":
        contrib = np.column_stack([np.full(len(order), BASELINE_HAZARD), contrib])
    for j, name in enumerate(names):
        columns[f"contrib_{name}"] = pa.array(contrib[:, j])
    columns["prob_dissatisfaction"] = pa.array(prob[:, DIS])
    columns["prob_economic"] = pa.array(prob[:, ECO])
    columns["prob_situational"] = pa.array(prob[:, SIT])
    columns["dominant_churn_type"] = _codes(np.argmax(prob, axis=1), CHURN_TYPES)
    columns["true_churn_type"] = _codes(col("churn_type").astype(np.int64), CHURN_TYPES)
    out["truth"] = pa.Table.from_arrays(list(columns.values()), schema=truth_schema(world))
    return out


# ----------------------------------------------------------------------------- summary
class _Summary:
    """Row counts and realised driver lifts, accumulated over chunks."""

    def __init__(self, world: str) -> None:
        self.world = world
        self.rows = dict.fromkeys(TABLES, 0)
        self.customer_months = 0
        self.churned = 0
        self.true_probability_sum = 0.0
        self.by_type = dict.fromkeys(CHURN_TYPES, 0)
        self.names = (
            [d.name for d in DRIVERS] if world == "simple" else [d.name for d in LATENT_DRIVERS]
        )
        j = len(self.names)
        self.pos, self.pos_churn = np.zeros(j), np.zeros(j)
        self.contrib_sum = np.zeros(j)
        self.contrib_abs_sum = np.zeros(j)

    def add(self, tables: dict[str, pa.Table]) -> None:
        for name, t in tables.items():
            self.rows[name] += t.num_rows
        truth = tables["truth"]
        churned = truth["true_churn_type"].is_valid().to_numpy(zero_copy_only=False)
        self.customer_months += truth.num_rows
        self.churned += int(churned.sum())
        self.true_probability_sum += float(np.sum(truth["true_probability"].to_numpy()))
        kinds = truth["true_churn_type"].to_numpy(zero_copy_only=False)
        for name in CHURN_TYPES:
            self.by_type[name] += int(np.sum(kinds == name))
        for j, name in enumerate(self.names):
            c = truth[f"contrib_{name}"].to_numpy()
            self.pos[j] += np.sum(c > 0)
            self.pos_churn[j] += np.sum(churned & (c > 0))
            self.contrib_sum[j] += c.sum()
            self.contrib_abs_sum[j] += np.abs(c).sum()

    def drivers(self) -> list[dict[str, Any]]:
        n = max(self.customer_months, 1)
        mean_contrib = self.contrib_sum / n
        if self.world != "simple":  # frailty's contribution is signed: rank by mean |contrib|
            mean_contrib = self.contrib_abs_sum / n
        rank = np.argsort(np.argsort(-mean_contrib, kind="stable"), kind="stable") + 1
        out = []
        for j in range(len(self.names)):
            neg = n - self.pos[j]
            rate_pos = self.pos_churn[j] / self.pos[j] if self.pos[j] else None
            rate_neg = (self.churned - self.pos_churn[j]) / neg if neg else None
            lift = rate_pos / rate_neg if rate_pos is not None and rate_neg else None
            if self.world == "simple":
                driver = DRIVERS[j]
                entry: dict[str, Any] = {
                    "name": driver.name,
                    "contrib_column": f"contrib_{driver.name}",
                    "churn_type": driver.churn_type,
                    "observable": driver.observable,
                    "window_days": driver.window_days,
                    "feature_hint": driver.feature_hint,
                    "coefficient": driver.coefficient,
                    "strength": round(float(mean_contrib[j]), 6),
                    "strength_rank": int(rank[j]),
                    "prevalence": round(float(self.pos[j] / n), 6),
                    "realised_monthly_churn_rate_with": _round(rate_pos),
                    "realised_monthly_churn_rate_without": _round(rate_neg),
                    "realised_lift": _round(lift),
                }
            else:
                latent = LATENT_DRIVERS[j]
                entry = {
                    "name": latent.name,
                    "contrib_column": f"contrib_{latent.name}",
                    "churn_type": latent.churn_type,
                    "latent_state": latent.state,
                    "observed_through": latent.observed_through,
                    "proxy_group": list(latent.proxy_group),
                    "strength_mean_abs_contrib": round(float(mean_contrib[j]), 6),
                    "strength_rank": int(rank[j]),
                }
            out.append(entry)
        return out


def _round(value: float | None, digits: int = 6) -> float | None:
    """`value` rounded for JSON; None when missing or not finite."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# ----------------------------------------------------------------------------- writing
def simulate(params: SimulateParams, horizon_days: int, out_dir: Path | str) -> dict[str, Any]:
    """Simulate `params.customers` customers into `out_dir` atomically; return the summary."""
    if horizon_days <= 0:
        raise ValueError(f"label.horizon_days must be > 0, found {horizon_days}")
    cal = build_calendar(params.start_date, params.end_date)
    n_chunks = math.ceil(params.customers / params.chunk_size)
    seeds = np.random.SeedSequence(params.seed).spawn(n_chunks)
    world = getattr(params, "world", "simple")
    _world_chunk(world)
    writers: dict[str, pq.ParquetWriter] = {}
    summary = _Summary(world)
    with atomic_directory(out_dir) as staging:
        try:
            for name in TABLES:
                schema = truth_schema(world) if name == "truth" else SCHEMAS[name]
                writers[name] = pq.ParquetWriter(staging / f"{name}.parquet", schema)
            for i, seed in enumerate(seeds):
                began = time.perf_counter()
                first = i * params.chunk_size
                n = min(params.chunk_size, params.customers - first)
                tables = simulate_chunk(
                    first + 1, n, seed, cal, horizon_days, params.existing_fraction, world
                )
                for name, t in tables.items():
                    writers[name].write_table(t)
                summary.add(tables)
                log.info(
                    "chunk %d/%d: %d customers, %d events, %d customer-months (%.1f s)",
                    i + 1,
                    n_chunks,
                    n,
                    tables["events"].num_rows,
                    tables["truth"].num_rows,
                    time.perf_counter() - began,
                )
                del tables
            for w in writers.values():
                w.close()
            writers.clear()
            result = _describe(params, horizon_days, cal, summary)
            write_json(staging / "simulation.json", result)
        finally:
            for w in writers.values():
                w.close()
    return result


def simulate_chunk(
    first_id: int,
    n: int,
    seed: np.random.SeedSequence,
    cal: Calendar,
    horizon_days: int,
    existing_fraction: float = 0.5,
    world: str = "simple",
) -> dict[str, pa.Table]:
    """Simulate customers first_id .. first_id + n - 1 with their own seed; return their tables."""
    chunk = _world_chunk(world)(first_id, n, seed, cal, horizon_days, existing_fraction)
    chunk.run()
    return _chunk_tables(chunk)


def _describe(
    params: SimulateParams, horizon_days: int, cal: Calendar, summary: _Summary
) -> dict[str, Any]:
    """The content of simulation.json (deterministic: no wall-clock values)."""
    settings = dataclasses.asdict(params)
    months = max(summary.customer_months, 1)
    drivers = summary.drivers()
    common = {
        "generator": "pipeline.simulate",
        "world": summary.world,
        "params": settings,
        "horizon_days": horizon_days,
        "warmup_start": str(np.datetime64(int(cal.bounds[0]), "us").astype("datetime64[D]")),
        "rows": summary.rows,
        "customer_months": summary.customer_months,
        "realised": {
            "monthly_churn_rate": round(summary.churned / months, 6),
            "mean_true_probability": round(summary.true_probability_sum / months, 6),
            "churns_by_type": summary.by_type,
        },
    }
    if summary.world != "simple":
        return {**common, **_describe_realistic(drivers)}
    return {
        **common,
        "hazard": {
            "formula": (
                "h_k = sum_{j of type k} coefficient_j * x_j(m) (+ baseline for situational); "
                "p_month = 1 - (1 - life_event_probability) * exp(-(h_dis + h_eco + h_sit))"
            ),
            "unit": "monthly hazard",
            "baseline": BASELINE_HAZARD,
            "life_event_probability": LIFE_EVENT_PROBABILITY,
            "truth_horizon": "state frozen at month_start for horizons past the month end",
        },
        "drivers": drivers,
        "strongest_drivers": [
            d["name"] for d in sorted(drivers, key=lambda d: d["strength_rank"])[:3]
        ],
        "price_sensitivity": {
            seg: {plan: float(PRICE_SENSITIVITY[s, p]) for p, plan in enumerate(PLANS)}
            for s, seg in enumerate(SEGMENTS)
        },
        "warning_words": {lang: list(words) for lang, words in WARNING_WORDS.items()},
        "noise_columns": list(NOISE_COLUMNS),
        "windows": "[date - window_days, date), timestamps UTC",
    }


def _describe_realistic(drivers: list[dict[str, Any]]) -> dict[str, Any]:
    """The realistic world's part of simulation.json: hazard, latent drivers, regime shift and
    the proxy feature groups the truth check ranks."""
    ranked = sorted(drivers, key=lambda d: d["strength_rank"])
    return {
        "hazard": {
            "formula": (
                "H = frailty * (baseline(tenure) + sum_j term_j(latent states)); "
                "p_month = 1 - (1 - life_event_probability) * exp(-H); "
                "contrib_frailty = (frailty - 1) * (baseline + sum_j term_j)"
            ),
            "unit": "monthly hazard",
            "baseline": REALISTIC_BASELINE_HAZARD,
            "life_event_probability": REALISTIC_LIFE_EVENT_PROBABILITY,
            "truth_horizon": "state frozen at month_start for horizons past the month end",
            "details": "pipeline/simulator/latent.py (module docstring)",
        },
        "drivers": drivers,
        "strongest_drivers": [d["name"] for d in ranked[:3]],
        "strongest_observable_drivers": [d["name"] for d in ranked if d["proxy_group"]][:3],
        "frailty": {"shape": FRAILTY_SHAPE, "why": FRAILTY_RATIONALE},
        "regime_shift": {
            "what": "a competitor (Rivalix) enters one country",
            "country": REGIME_SHIFT_COUNTRY,
            "date": REGIME_SHIFT_DATE,
            "ramp_months": REGIME_RAMP_MONTHS,
            "driver": "competitor",
        },
        "proxy_feature_groups": {d["name"]: d["proxy_group"] for d in drivers},
        "proxy_note": (
            "each latent driver is seen only through the feature group of fnmatch patterns; "
            "frailty has none (unobserved); the truth check ranks groups by mean |SHAP| summed "
            "within the group, every feature in no group counting as a group of its own"
        ),
        "warning_words": {lang: list(words) for lang, words in WARNING_WORDS.items()},
        "noise_columns": list(NOISE_COLUMNS),
        "windows": "[date - window_days, date), timestamps UTC",
    }
