"""Text features: exact counts per category and window, point in time, one row per spine row."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import ibis
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features.lexicon as lexicon_module
from features.families.text import mention_windows, text_features
from features.settings import FeaturizeParams

C = datetime(2024, 7, 1, tzinfo=UTC)
C2 = datetime(2024, 8, 1, tzinfo=UTC)
DAY = timedelta(days=1)
TS = pa.timestamp("us", tz="UTC")
CFG = FeaturizeParams(lexicon=str(lexicon_module.DEFAULT_LEXICON))
CATEGORIES = ("price", "speed", "service", "competitor", "cancel_intent")


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


def _responses(rows):
    return ibis.memtable(
        pa.table(
            {
                "customer_id": pa.array([r[0] for r in rows], pa.string()),
                "ts": pa.array([r[1] for r in rows], TS),
                "touchpoint": pa.array(["app"] * len(rows), pa.string()),
                "metric": pa.array(["csat"] * len(rows), pa.string()),
                "score": pa.array([3.0] * len(rows), pa.float64()),
                "comment": pa.array([r[2] for r in rows], pa.string()),
            }
        )
    )


def _tickets(rows):
    return ibis.memtable(
        pa.table(
            {
                "customer_id": pa.array([r[0] for r in rows], pa.string()),
                "opened_at": pa.array([r[1] for r in rows], TS),
                "closed_at": pa.array([None] * len(rows), TS),
                "category": pa.array(["billing"] * len(rows), pa.string()),
                "text": pa.array([r[2] for r in rows], pa.string()),
            }
        )
    )


def _spine(rows):
    return ibis.memtable(
        pa.table(
            {
                "customer_id": pa.array([r[0] for r in rows], pa.string()),
                "cutoff": pa.array([r[1] for r in rows], TS),
            }
        )
    )


R1 = "Too expensive, I will cancel"
T1 = "Оператор ответил грубо, дорого"
R3 = "너무느려요"
RESPONSES = [
    ("a", C - DAY, R1),  # price, cancel_intent: a day before the cutoff counts
    ("a", C, "太贵"),  # price: at the cutoff, so only for the later cutoff C2
    ("a", C - 90 * DAY, R3),  # speed: exactly 90 days before C is inside the 90-day window
    ("a", C - 91 * DAY, "Rivalix is better"),  # competitor: 180-day window only
    ("a", C - 2 * DAY, None),  # no comment: not a feedback text
    ("b", C - 5 * DAY, "great app"),
    ("d", C - DAY, "too expensive"),  # not in the spine
]
TICKETS = [
    ("a", C - 10 * DAY, T1),  # service, price
    ("a", C - 200 * DAY, "cancel"),  # older than every window
    ("a", C - 3 * DAY, "   "),  # blank: not a feedback text
]
SPINE = [("a", C), ("a", C2), ("b", C), ("c", C)]


def _run(con, tables, spine_rows=SPINE, cfg=CFG):
    fs = text_features(tables, _spine(spine_rows), cfg)
    rows = con.to_pyarrow(fs.table).to_pylist()
    return fs, {(r["customer_id"], r["cutoff"]): r for r in rows}


def _expect(counts: dict[int, dict[str, int]], feedback: int, mean_length: float | None):
    out: dict[str, object] = {}
    for w in (30, 90, 180):
        for cat in CATEGORIES:
            out[f"text_{cat}_mentions_{w}d"] = counts.get(w, {}).get(cat, 0)
        out[f"text_mentions_total_{w}d"] = sum(counts.get(w, {}).values())
    out["text_feedback_count_90d"] = feedback
    out["text_feedback_mean_length_90d"] = mean_length
    return out


def test_exact_counts_per_category_and_window(con):
    tables = SimpleNamespace(responses=_responses(RESPONSES), tickets=_tickets(TICKETS))
    fs, rows = _run(con, tables)
    assert len(rows) == len(SPINE)

    def features(key):
        return {k: v for k, v in rows[key].items() if k not in ("customer_id", "cutoff")}

    assert features(("a", C)) == _expect(
        {
            30: {"price": 2, "service": 1, "cancel_intent": 1},
            90: {"price": 2, "service": 1, "cancel_intent": 1, "speed": 1},
            180: {"price": 2, "service": 1, "cancel_intent": 1, "speed": 1, "competitor": 1},
        },
        feedback=3,
        mean_length=pytest.approx((len(R1) + len(T1) + len(R3)) / 3),
    )
    assert features(("a", C2)) == _expect(
        {
            90: {"price": 3, "service": 1, "cancel_intent": 1},
            180: {"price": 3, "service": 1, "cancel_intent": 1, "speed": 1, "competitor": 1},
        },
        feedback=3,
        mean_length=pytest.approx((len(R1) + len("太贵") + len(T1)) / 3),
    )
    assert features(("b", C)) == _expect({}, feedback=1, mean_length=pytest.approx(9.0))
    assert features(("c", C)) == _expect({}, feedback=0, mean_length=None)


def test_catalog_matches_columns(con):
    tables = SimpleNamespace(responses=_responses(RESPONSES), tickets=None)
    fs = text_features(tables, _spine(SPINE), CFG)
    assert fs.table.columns == ("customer_id", "cutoff", *(f.name for f in fs.catalog))
    assert {f.group for f in fs.catalog} == {"text"}
    price_90 = next(f for f in fs.catalog if f.name == "text_price_mentions_90d")
    assert "last 90 days" in price_90.description and "太贵" in price_90.description
    assert fs.table.schema()["text_price_mentions_90d"] == ibis.dtype("int64")


@settings(max_examples=20, deadline=None)
@given(hours=st.lists(st.integers(-24 * 200, 24 * 3), max_size=12))
def test_point_in_time(con, hours):
    """Only texts with cutoff - w days <= ts < cutoff count; later texts never change a count."""
    rows = [("a", C + timedelta(hours=h), "too expensive") for h in hours]
    _, out = _run(con, SimpleNamespace(responses=_responses(rows), tickets=None), [("a", C)])
    row = out[("a", C)]
    for w in (30, 90, 180):
        expected = sum(1 for h in hours if -w * 24 <= h < 0)
        assert row[f"text_price_mentions_{w}d"] == expected
        assert row[f"text_mentions_total_{w}d"] == expected
    assert row["text_feedback_count_90d"] == sum(1 for h in hours if -90 * 24 <= h < 0)


def test_each_text_is_normalised_once(con, monkeypatch):
    import features.families.text as text_module

    lex = lexicon_module.load_lexicon()  # before counting: loading normalises the terms
    monkeypatch.setattr(text_module, "load_lexicon", lambda path: lex)
    seen: list[int] = []
    real = lexicon_module.normalize_array

    def counting(texts):
        seen.append(len(texts))
        return real(texts)

    monkeypatch.setattr(lexicon_module, "normalize_array", counting)
    texts = [("a", C - k * DAY, f"too slow {k}") for k in range(1, 6)]
    spine = [("a", C), ("a", C + 7 * DAY), ("a", C + 14 * DAY)]
    _, out = _run(con, SimpleNamespace(responses=_responses(texts), tickets=None), spine)
    assert out[("a", C + 14 * DAY)]["text_speed_mentions_30d"] == 5
    assert sum(seen) == len(texts)  # not once per cutoff, not once per category


def test_missing_sources_give_zero_counts(con):
    no_text = _responses([("a", C - DAY, "x")]).drop("comment")
    for tables in (
        SimpleNamespace(responses=None, tickets=None),
        SimpleNamespace(responses=no_text, tickets=None),
        object(),
    ):
        fs, out = _run(con, tables, [("a", C), ("b", C)])
        assert len(out) == 2
        row = out[("a", C)]
        assert row["text_feedback_mean_length_90d"] is None
        assert all(v == 0 for k, v in row.items() if k.startswith("text_") and "mean" not in k)


def test_tickets_only(con):
    tables = SimpleNamespace(responses=None, tickets=_tickets(TICKETS))
    _, out = _run(con, tables, [("a", C)])
    assert out[("a", C)]["text_service_mentions_30d"] == 1
    assert out[("a", C)]["text_feedback_count_90d"] == 1


def test_windows_and_custom_lexicon(con, tmp_path):
    path = tmp_path / "lex.yaml"
    path.write_text("categories:\n  bugs:\n    en: [crash*]\n", encoding="utf-8")
    cfg = dataclasses.replace(CFG, windows=(7, 90), lexicon=str(path))
    rows = [("a", C - DAY, "It crashed again"), ("a", C - 60 * DAY, "crashes")]
    fs, out = _run(con, SimpleNamespace(responses=_responses(rows), tickets=None), [("a", C)], cfg)
    assert [f.name for f in fs.catalog] == [
        "text_bugs_mentions_90d",
        "text_mentions_total_90d",
        "text_feedback_count_90d",
        "text_feedback_mean_length_90d",
    ]
    assert out[("a", C)]["text_bugs_mentions_90d"] == 2


def test_windows_shorter_than_30_days_are_not_used():
    assert mention_windows((7, 30, 90, 180)) == [30, 90, 180]
    with pytest.raises(ValueError, match=r"featurize\.windows"):
        mention_windows((7, 14))


def test_portuguese_and_japanese_comments_are_counted(con):
    """A marketplace with Portuguese (accents typed or not) and Japanese comments: not constant."""
    rows = [
        ("a", C - DAY, "Muito caro e a entrega NÃO CHEGOU"),  # price, speed
        ("a", C - 2 * DAY, "pessimo atendimento, quero cancelar"),  # service, cancel_intent
        ("b", C - DAY, "ｷｬﾝｾﾙしたい。他社に乗り換えます"),  # cancel_intent, competitor
        ("c", C - DAY, "A Carolina adorou o produto"),  # nothing
    ]
    _, out = _run(
        con,
        SimpleNamespace(responses=_responses(rows), tickets=None),
        [("a", C), ("b", C), ("c", C)],
    )
    mentions = {
        key[0]: {cat: row[f"text_{cat}_mentions_30d"] for cat in CATEGORIES}
        for key, row in out.items()
    }
    assert mentions["a"] == {
        "price": 1,
        "speed": 1,
        "service": 1,
        "competitor": 0,
        "cancel_intent": 1,
    }
    assert mentions["b"] == {
        "price": 0,
        "speed": 0,
        "service": 0,
        "competitor": 1,
        "cancel_intent": 1,
    }
    assert set(mentions["c"].values()) == {0}
