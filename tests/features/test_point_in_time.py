"""Point-in-time property: features at a cutoff read only rows dated strictly before it.

1. Adding any rows dated at or after the cutoff, to any table, changes no feature.
2. Removing rows dated before the cutoff changes only the features that read them
   (removing logins changes login features, never ticket or survey features). Removing every
   row of a kind may remove the family that reads it (a feature is built only when its inputs
   occur in the data), never another one.
"""

from __future__ import annotations

import datetime as dt
import functools
import math

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.settings import FeaturizeParams
from features.tables import connect, plural, slug

from conftest import hand_data, spine_of, to_tables

# A smaller configuration than the default keeps each build fast; every window, touchpoint and
# category goes through the same code, so fewer of them lose no coverage of the rules.
CFG = FeaturizeParams(
    windows=(7, 30),
    summary_windows=(90,),
    touchpoints=("support", "after_sales"),
    ticket_categories=("billing", "technical"),
    max_categories=4,
)
C = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
SPINE = [("c1", "2024-07-01"), ("c2", "2024-07-01"), ("c3", "2024-07-01")]
CUSTOMERS = ["c1", "c2", "c3", "c9"]
EVENT_TYPES = [
    "login",
    "feature_use",
    "purchase",
    "payment",
    "payment_failure",
    "plan_change",
    "price_change",
    "discount_request",
    "survey_sent",
    "other",
]
TOUCHPOINTS = ["onboarding", "support", "after_sales", "billing", "renewal", "relationship"]
CATEGORIES = ["billing", "technical", "account", "cancellation"]
COMMENTS = [None, "too expensive", "too slow", "great", "cancel my contract"]

settings.register_profile(
    "pit", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PIT = settings.get_profile("pit")

_con = None


def con():
    global _con
    if _con is None:
        _con = connect("1GB", 2)
    return _con


def features(data: dict[str, pa.Table]) -> dict[tuple[str, str], object]:
    """{(customer_id, feature): value} at the cutoff."""
    fs = build_features(to_tables(data), spine_of(SPINE), CFG)
    df = con().to_pyarrow(fs.table).to_pandas()
    names = [f.name for f in fs.catalog]
    return {(r["customer_id"], n): r[n] for r in df.to_dict("records") for n in names}


def _null(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def same(a: object, b: object) -> bool:
    if _null(a) or _null(b):
        return _null(a) and _null(b)
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def diff(a: dict, b: dict, may_vanish: bool = False) -> set[str]:
    """Features whose value differs; with `may_vanish`, features missing from `b` count as
    changed (their inputs no longer occur), else the feature set must be the same."""
    if not may_vanish:
        assert a.keys() == b.keys(), "the feature set itself changed"
    assert b.keys() <= a.keys(), "removing rows added features"
    return {k[1] for k in a if k not in b or not same(a[k], b[k])}


def append(data: dict[str, pa.Table], name: str, rows: list[dict]) -> dict[str, pa.Table]:
    if not rows:
        return data
    base = data[name]
    extra = pa.Table.from_pylist(rows, schema=base.schema)
    return {**data, name: pa.concat_tables([base, extra])}


minutes = st.integers(min_value=0, max_value=400 * 24 * 60)  # offsets from the cutoff


def at(offset_minutes: int, sign: int = 1) -> dt.datetime:
    return C + sign * dt.timedelta(minutes=offset_minutes)


@st.composite
def future_rows(draw):
    ev = draw(
        st.lists(
            st.tuples(
                st.sampled_from(CUSTOMERS), minutes, st.sampled_from(EVENT_TYPES), st.floats(0, 100)
            ),
            max_size=8,
        )
    )
    rs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(CUSTOMERS),
                minutes,
                st.sampled_from(TOUCHPOINTS),
                st.sampled_from(["csat", "nps", "ces"]),
                st.integers(0, 10),
                st.sampled_from(COMMENTS),
            ),
            max_size=5,
        )
    )
    tk = draw(
        st.lists(
            st.tuples(
                st.sampled_from(CUSTOMERS),
                minutes,
                st.one_of(st.none(), minutes),
                st.sampled_from(CATEGORIES),
                st.booleans(),
                st.integers(1, 5),
                st.sampled_from(COMMENTS),
            ),
            max_size=4,
        )
    )
    cu = draw(
        st.lists(
            st.tuples(minutes, st.sampled_from(["basic", "pro"]), st.sampled_from(["DE", "FR"])),
            max_size=2,
        )
    )
    return ev, rs, tk, cu


@given(future_rows())
@PIT
def test_rows_at_or_after_the_cutoff_change_nothing(rows):
    ev, rs, tk, cu = rows
    data = hand_data()
    data = append(
        data,
        "events",
        [
            {"customer_id": c, "ts": at(m), "event_type": t, "value": v, "feature": "x"}
            for c, m, t, v in ev
        ],
    )
    data = append(
        data,
        "responses",
        [
            {
                "customer_id": c,
                "ts": at(m),
                "touchpoint": tp,
                "metric": me,
                "score": float(s),
                "comment": cm,
            }
            for c, m, tp, me, s, cm in rs
        ],
    )
    data = append(
        data,
        "tickets",
        [
            {
                "customer_id": c,
                "opened_at": at(m),
                "closed_at": None if d is None else at(m + d),
                "category": cat,
                "priority": "low",
                "escalated": esc,
                "satisfaction": float(sat),
                "text": txt,
            }
            for c, m, d, cat, esc, sat, txt in tk
        ],
    )
    data = append(
        data,
        "customers",
        [
            {
                "customer_id": f"new{i}",
                "signup_date": at(m),
                "plan": p,
                "monthly_fee": 5.0,
                "country": co,
                "noise": 0.0,
                "email": "a@x",
            }
            for i, (m, p, co) in enumerate(cu)
        ],
    )
    changed = diff(baseline(), features(data))
    assert not changed, f"features changed by rows dated at/after the cutoff: {sorted(changed)}"


def past_world() -> dict[str, pa.Table]:
    """The hand fixture plus seeded random rows before the cutoff (and a few after)."""
    rng = np.random.default_rng(7)
    data = hand_data()
    n = 60
    data = append(
        data,
        "events",
        [
            {
                "customer_id": str(rng.choice(CUSTOMERS[:3])),
                "ts": at(int(rng.integers(1, 250 * 1440)), -1),
                "event_type": str(rng.choice(EVENT_TYPES)),
                "value": float(rng.integers(1, 50)),
                "feature": "x",
            }
            for _ in range(n)
        ],
    )
    data = append(
        data,
        "responses",
        [
            {
                "customer_id": str(rng.choice(CUSTOMERS[:3])),
                "ts": at(int(rng.integers(1, 250 * 1440)), -1),
                "touchpoint": str(rng.choice(TOUCHPOINTS)),
                "metric": str(rng.choice(["csat", "nps", "ces"])),
                "score": float(rng.integers(0, 11)),
                "comment": rng.choice(COMMENTS),
            }
            for _ in range(15)
        ],
    )
    tickets = []
    for _ in range(10):
        opened = at(int(rng.integers(1, 250 * 1440)), -1)
        dur = int(rng.integers(60, 40 * 1440))
        tickets.append(
            {
                "customer_id": str(rng.choice(CUSTOMERS[:3])),
                "opened_at": opened,
                "closed_at": None if rng.random() < 0.2 else opened + dt.timedelta(minutes=dur),
                "category": str(rng.choice(CATEGORIES)),
                "priority": "low",
                "escalated": bool(rng.random() < 0.5),
                "satisfaction": float(rng.integers(1, 6)),
                "text": rng.choice(COMMENTS),
            }
        )
    return append(data, "tickets", tickets)


@functools.cache
def baseline() -> dict:
    return features(hand_data())


@functools.cache
def world_features() -> dict:
    return features(past_world())


def readers(source: str) -> callable:
    """Which features may change when rows of `source` ('events:<type>', 'responses',
    'tickets') go."""
    if source.startswith("events:"):
        t = source.split(":", 1)[1]
        keys = {slug(t), plural(t)}
        if t in CFG.fee_event_types:
            keys |= {"monthly_fee"}
        if t == CFG.survey_event_type:
            keys |= {"survey_response_rate"}
        return lambda name: any(k in name for k in keys)
    if source == "responses":
        return lambda name: name.startswith(("csat_", "ces_", "nps_", "survey_", "text_"))
    return lambda name: name.startswith(("tickets_", "ticket_", "days_since_last_ticket", "text_"))


SOURCES = [f"events:{t}" for t in EVENT_TYPES if t != "other"] + ["responses", "tickets"]


@given(st.sampled_from(SOURCES), st.data())
@PIT
def test_removing_past_rows_changes_only_their_readers(source, draw):
    world = past_world()
    table_name = source.split(":")[0]
    tbl = world[table_name]
    ts_col = {"events": "ts", "responses": "ts", "tickets": "opened_at"}[table_name]
    ts = tbl[ts_col].to_pylist()
    candidates = [i for i, v in enumerate(ts) if v < C]
    if source.startswith("events:"):
        types = tbl["event_type"].to_pylist()
        candidates = [i for i in candidates if types[i] == source.split(":", 1)[1]]
    if not candidates:
        return
    remove = set(draw.draw(st.lists(st.sampled_from(candidates), min_size=1, unique=True)))
    keep = pa.array([i not in remove for i in range(tbl.num_rows)])
    changed = diff(
        world_features(), features({**world, table_name: tbl.filter(keep)}), may_vanish=True
    )
    allowed = readers(source)
    wrong = sorted(n for n in changed if not allowed(n))
    assert not wrong, f"removing {len(remove)} {source} rows changed unrelated features: {wrong}"
