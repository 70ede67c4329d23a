"""Alerts from hand-made records: window, point in time, triggers, cool-down, routing, backtest."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.lexicon import load_lexicon
from models.scores_contract import SCORE_COLUMNS
from models.warning.alerts import (
    ALERT_COLUMNS,
    Snapshot,
    alert_id,
    backtest,
    build_alerts,
    days_to_renewal,
    fields_by_source,
    snapshot_fields,
    work_items,
)
from models.warning.rules import RuleError, RulesFile, check_rules, parse_rules

LEXICON = load_lexicon()
AS_OF = pd.Timestamp("2024-07-01", tz="UTC")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "signup_date": [ts("2024-01-15"), ts("2023-03-31"), ts("2024-02-01"), ts("2024-05-20")],
            "segment": ["consumer", "enterprise", "smb", "consumer"],
            "country": ["US", "GB", "KR", "RU"],
            "plan": ["basic", "premium", "basic", "standard"],
        }
    )


def responses(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["customer_id", "ts", "touchpoint", "metric", "score", "comment"]
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["score"] = frame["score"].astype(float)
    return frame


def tickets(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "opened_at",
            "closed_at",
            "category",
            "escalated",
            "satisfaction",
            "text",
        ],
    )
    frame["opened_at"] = pd.to_datetime(frame["opened_at"], utc=True)
    frame["closed_at"] = pd.to_datetime(frame["closed_at"], utc=True)
    frame["satisfaction"] = frame["satisfaction"].astype(float)
    frame["escalated"] = frame["escalated"].astype(bool)
    return frame


def events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "event_type", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["value"] = frame["value"].astype(float)
    return frame


def snapshot(as_of: pd.Timestamp = AS_OF, **records: pd.DataFrame) -> Snapshot:
    base = {"responses": responses([]), "tickets": tickets([]), "events": events([])}
    return Snapshot(as_of, {**base, **records}, customers())


def rules(*entries: dict, **top: object) -> RulesFile:
    return parse_rules({"rules": list(entries), **top}, "alerts.yaml")


def rule(condition: str, source: str = "responses", **extra: object) -> dict:
    return {
        "name": extra.pop("name", "r"),
        "source": source,
        "condition": condition,
        "level": extra.pop("level", "high"),
        **extra,
    }


def alerts_of(rules_file: RulesFile, snap: Snapshot) -> pd.DataFrame:
    check_rules(rules_file, snapshot_fields(snap), LEXICON)
    return build_alerts(rules_file, snap, LEXICON)


# ---------------------------------------------------------------- derived fields


def test_days_to_renewal_is_the_next_monthly_anniversary() -> None:
    signup = pd.Series([ts("2024-01-31"), ts("2024-01-31"), ts("2023-06-15"), ts("2024-03-10")])
    at = pd.Series(
        [ts("2024-02-10 13:00"), ts("2024-01-31 08:00"), ts("2024-12-20"), ts("2024-04-09")]
    )
    # Feb 2024 has 29 days: renews on the 29th; on the anniversary itself: 0; December -> January
    assert days_to_renewal(signup, at).tolist() == [19.0, 0.0, 26.0, 1.0]


# ---------------------------------------------------------------- window and point in time


def test_immediate_rule_reads_only_records_before_the_as_of_date_within_the_window() -> None:
    low = responses(
        [
            ("c1", "2024-06-30 23:59:59", "after_sales", "csat", 4, None),  # last second before
            ("c2", "2024-07-01 00:00:00", "after_sales", "csat", 2, None),  # the as-of day: unseen
            ("c3", "2024-05-31 00:00:00", "after_sales", "csat", 3, None),  # 31 days before: out
            ("c4", "2024-06-01 00:00:00", "after_sales", "csat", 3, None),  # exactly 30 days: in
            ("c4", "2024-06-20 00:00:00", "support", "csat", 1, None),  # other touchpoint
        ]
    )
    rf = rules(rule('touchpoint == "after_sales" and score <= 5', window_days=30, cooldown_days=0))
    out = alerts_of(rf, snapshot(responses=low))
    assert sorted(out["customer_id"]) == ["c1", "c4"]
    c1 = out.set_index("customer_id").loc["c1"]
    assert c1["triggered_at"] == ts("2024-06-30 23:59:59")
    assert c1["evidence"] == "score=4, touchpoint=after_sales"


def test_ticket_fields_known_later_are_hidden() -> None:
    # closed after the as-of date: still open as far as the rule can know; satisfaction unknown
    t = tickets([("c1", "2024-06-20", "2024-07-05", "technical", True, 2, "slow app")])
    rf = rules(rule("is_open and not satisfaction <= 3", "tickets", cooldown_days=0))
    assert alerts_of(rf, snapshot(tickets=t))["customer_id"].tolist() == ["c1"]


# ---------------------------------------------------------------- delayed triggers


def test_delayed_trigger_fires_only_if_the_condition_still_holds() -> None:
    t = tickets(
        [
            ("c1", "2024-06-10", "2024-06-11", "billing", True, None, "x"),  # closed after 1 day
            ("c2", "2024-06-10", "2024-06-20", "billing", True, None, "x"),  # open at day 3
            ("c3", "2024-06-10", None, "billing", True, None, "x"),  # never closed
            ("c4", "2024-06-10", None, "billing", False, None, "x"),  # not escalated
            ("c1", "2024-06-29", None, "billing", True, None, "x"),  # day 3 is after the as-of date
        ]
    )
    rf = rules(
        rule("escalated and is_open", "tickets", trigger={"delayed_days": 3}, cooldown_days=0)
    )
    out = alerts_of(rf, snapshot(tickets=t)).set_index("customer_id")
    assert sorted(out.index) == ["c2", "c3"]
    assert out.loc["c2", "triggered_at"] == ts("2024-06-13")
    assert "unresolved after 3 days" in out.loc["c2", "evidence"]
    # one day later the c1 ticket of 06-29 has been open for 3 days too
    later = alerts_of(rf, snapshot(ts("2024-07-02"), tickets=t))
    assert ts("2024-07-02") in set(later["triggered_at"])


def test_delayed_trigger_is_cancelled_by_a_follow_up() -> None:
    low = responses(
        [
            ("c1", "2024-06-01", "support", "csat", 3, None),  # ticket 2 days later: followed up
            ("c2", "2024-06-01", "support", "csat", 3, None),  # ticket only after 9 days
            ("c3", "2024-06-01", "support", "csat", 3, None),  # never
        ]
    )
    t = tickets(
        [
            ("c1", "2024-06-03", "2024-06-04", "other", False, None, "call me"),
            ("c2", "2024-06-10", "2024-06-11", "other", False, None, "call me"),
        ]
    )
    rf = rules(
        rule(
            "score <= 5",
            trigger={"delayed_days": 7, "follow_up": {"source": "tickets", "condition": "true"}},
        )
    )
    out = alerts_of(rf, snapshot(responses=low, tickets=t))
    assert sorted(out["customer_id"]) == ["c2", "c3"]
    assert set(out["triggered_at"]) == {ts("2024-06-08")}


# ---------------------------------------------------------------- cool-down


def test_cooldown_per_customer_and_rule() -> None:
    low = responses(
        [
            ("c1", "2024-05-01", "after_sales", "csat", 2, None),  # fires
            ("c1", "2024-05-11", "after_sales", "csat", 2, None),  # 10 days later: cooled down
            ("c1", "2024-05-31", "after_sales", "csat", 2, None),  # 30 days after the first: fires
            ("c1", "2024-06-05", "after_sales", "csat", 2, None),  # 5 days after: cooled down
            ("c2", "2024-05-11", "after_sales", "csat", 2, None),  # another customer: fires
        ]
    )
    first = rule("score <= 5", name="first", window_days=90, cooldown_days=30)
    second = rule("score <= 3", name="second", window_days=90, cooldown_days=0)
    out = alerts_of(rules(first, second), snapshot(responses=low))
    mine = out[out["rule"] == "first"].sort_values(["customer_id", "triggered_at"])
    assert list(zip(mine["customer_id"], mine["triggered_at"], strict=True)) == [
        ("c1", ts("2024-05-01")),
        ("c1", ts("2024-05-31")),
        ("c2", ts("2024-05-11")),
    ]
    assert (out["rule"] == "second").sum() == 5  # cool-down is per rule


def test_cooldown_chain_reaches_back_before_the_window() -> None:
    low = responses(
        [
            ("c1", "2024-05-25", "after_sales", "csat", 2, None),
            ("c1", "2024-06-10", "after_sales", "csat", 2, None),
        ]
    )
    rf = rules(rule("score <= 5", window_days=14, cooldown_days=30))
    # the 06-10 record is within 30 days of the 05-25 alert (outside the window): no alert
    assert alerts_of(rf, snapshot(responses=low)).empty


# ---------------------------------------------------------------- routing, due, evidence


def test_routing_due_dates_and_evidence() -> None:
    low = responses(
        [
            ("c1", "2024-06-20", "after_sales", "csat", 2, "Too expensive for what it does"),
            ("c2", "2024-06-20", "after_sales", "csat", 2, "дорого"),
            ("c3", "2024-06-20", "after_sales", "csat", 2, "fine"),
        ]
    )
    rf = rules(
        rule("score <= 5 and mentions(price)", name="price_low", level="critical"),
        rule(
            "score <= 5",
            name="low",
            level="medium",
            due_hours=12,
            routing=[{"when": {"country": "KR"}, "owner": "sales"}],
        ),
        routing=[
            {"when": {"segment": "enterprise"}, "owner": "account_manager"},
            {"when": {"level": "critical"}, "owner": "call_centre"},
        ],
        levels={"critical": {"due_hours": 4}},
    )
    out = alerts_of(rf, snapshot(responses=low)).set_index(["rule", "customer_id"])
    assert out.loc[("price_low", "c1"), "owner_team"] == "call_centre"
    assert out.loc[("price_low", "c2"), "owner_team"] == "account_manager"
    assert out.loc[("low", "c3"), "owner_team"] == "sales"
    assert out.loc[("low", "c1"), "owner_team"] == "support"  # the default owner
    assert out.loc[("price_low", "c1"), "due_at"] == ts("2024-06-20 04:00")
    assert out.loc[("low", "c1"), "due_at"] == ts("2024-06-20 12:00")
    assert out.loc[("price_low", "c1"), "evidence"] == (
        'score=2, comment mentions price: "Too expensive"'
    )
    assert out.loc[("price_low", "c2"), "evidence"].endswith('price: "дорого"')
    # critical first in the file order
    assert alerts_of(rf, snapshot(responses=low))["level"].iloc[0] == "critical"


def test_value_tier_routes_and_scores_rules() -> None:
    scores = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "churn_probability": [0.7, 0.65, 0.1],
            "value_tier": ["gold", "bronze", "gold"],
            "reason_1": ["logins_30d", "tenure_days", "plan"],
        }
    )
    snap = Snapshot(AS_OF, {"responses": responses([])}, customers(), None, scores, AS_OF)
    rf = rules(
        rule(
            'churn_probability >= 0.6 and value_tier in ["gold", "platinum"]',
            "scores",
            name="vip",
            level="critical",
        ),
        rule("churn_probability >= 0.6", "scores", name="risk", level="high"),
        routing=[{"when": {"value_tier": ["gold", "platinum"]}, "owner": "account_manager"}],
    )
    out = alerts_of(rf, snap)
    assert list(zip(out["rule"], out["customer_id"], out["owner_team"], strict=True)) == [
        ("vip", "c1", "account_manager"),
        ("risk", "c1", "account_manager"),
        ("risk", "c2", "support"),
    ]
    assert set(out["triggered_at"]) == {AS_OF}
    assert out["reason_1"].tolist() == ["logins_30d", "logins_30d", "tenure_days"]
    assert out["churn_probability"].tolist() == [0.7, 0.7, 0.65]


def test_every_scores_contract_column_is_a_rule_field_or_carried_onto_the_alert() -> None:
    before_scoring = fields_by_source({"responses": {"score": "number"}}, {"customer_id": "string"})
    for column, kind in SCORE_COLUMNS.items():
        assert before_scoring["scores"].get(column) == kind or column in ALERT_COLUMNS, column
    assert ALERT_COLUMNS[-6:] == (
        "reason_1", "reason_2", "reason_3", "reason_1_text", "reason_2_text", "reason_3_text",
    )  # fmt: skip


def test_events_and_customer_features() -> None:
    ev = events(
        [
            ("c1", "2024-06-10", "payment_failure", None),
            ("c2", "2024-06-10", "payment_failure", None),
            ("c3", "2024-06-10", "login", 5),
        ]
    )
    features = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "tenure_days": [150, 30, 90],
            "churned": [True, False, False],
        }
    )
    snap = Snapshot(AS_OF, {"events": ev}, customers(), features)
    rf = rules(rule('event_type == "payment_failure" and tenure_days > 60', "events"))
    assert alerts_of(rf, snap)["customer_id"].tolist() == ["c1"]


def test_departed_customers_get_no_alerts() -> None:
    low = responses(
        [
            ("c1", "2024-06-20", "support", "csat", 1, None),
            ("c2", "2024-06-20", "support", "csat", 1, None),
        ]
    )
    snap = Snapshot(AS_OF, {"responses": low}, customers(), departed=frozenset({"c2"}))
    assert alerts_of(rules(rule("score <= 5")), snap)["customer_id"].tolist() == ["c1"]


def test_same_inputs_give_the_same_alerts_and_ids() -> None:
    low = responses(
        [
            ("c1", "2024-06-20", "support", "csat", 1, "slow"),
            ("c2", "2024-06-21", "support", "csat", 1, None),
        ]
    )
    rf = rules(rule("score <= 5"), rule("mentions(speed)", name="slow"))
    first = alerts_of(rf, snapshot(responses=low))
    second = alerts_of(rf, snapshot(responses=low.iloc[::-1]))  # order of records is irrelevant
    pd.testing.assert_frame_equal(first, second)
    assert first["alert_id"].is_unique
    assert first.loc[0, "alert_id"] == alert_id(
        first.loc[0, "customer_id"], first.loc[0, "rule"], first.loc[0, "triggered_at"]
    )


# ---------------------------------------------------------------- backtest


def test_backtest_precision_recall_lift_by_hand() -> None:
    # Two cutoffs, four customers each; 2 of 8 rows churned -> base rate 0.25.
    cut1, cut2 = ts("2024-06-01"), ts("2024-07-01")
    labels = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"] * 2,
            "cutoff": [cut1] * 4 + [cut2] * 4,
            "churned": [True, False, False, False, False, False, True, False],
        }
    )
    low = responses(
        [
            ("c1", "2024-05-20", "after_sales", "csat", 2, None),  # alerted at cut1, churned
            ("c2", "2024-05-25", "after_sales", "csat", 3, None),  # alerted at cut1, stayed
            ("c3", "2024-06-15", "after_sales", "csat", 1, None),  # alerted at cut2, churned
            ("c4", "2024-04-01", "after_sales", "csat", 1, None),  # too old for either window
        ]
    )
    rf = rules(
        rule("score <= 5", name="csat", window_days=30, cooldown_days=0),
        rule("churn_probability > 0.5", "scores", name="risk"),
        rule('value_tier == "gold"', "scores", name="vip"),
    )

    def snapshot_at(cutoff: pd.Timestamp) -> Snapshot:
        return Snapshot(cutoff, {"responses": low}, customers())

    preds = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "cutoff": [cut2] * 4,
            "p_model": [0.2, 0.9, 0.8, 0.1],
            "churned": [0, 0, 1, 0],
        }
    )
    result = backtest(rf, LEXICON, labels, snapshot_at, 30, preds)
    assert result["base_rate"] == 0.25 and result["horizon_days"] == 30
    assert result["cutoffs"] == ["2024-06-01", "2024-07-01"]
    csat = next(r for r in result["rules"] if r["rule"] == "csat")
    assert (csat["alerted"], csat["churned"]) == (3, 2)
    assert csat["precision"] == pytest.approx(2 / 3)
    assert csat["recall"] == pytest.approx(1.0)
    assert csat["lift"] == pytest.approx((2 / 3) / 0.25)
    risk = next(r for r in result["rules"] if r["rule"] == "risk")
    assert (risk["alerted"], risk["churned"], risk["cutoffs"]) == (2, 1, ["2024-07-01"])
    assert risk["lift"] == pytest.approx(0.5 / 0.25)
    assert result["not_backtested"][0]["rule"] == "vip"
    assert "value_tier" in result["not_backtested"][0]["reason"]


# ---------------------------------------------------------------- point in time (property)

_day = st.integers(min_value=-60, max_value=20)  # days relative to the as-of date


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2", "c3"]), _day, st.integers(0, 10), _day, st.booleans()
        ),
        min_size=1,
        max_size=12,
    )
)
def test_records_at_or_after_the_as_of_date_never_change_the_alerts(rows: list[tuple]) -> None:
    """Whatever happens from the as-of day on (new records, tickets closed later) is invisible."""

    def at(days: int) -> pd.Timestamp:
        return AS_OF + pd.Timedelta(days=days, hours=3)

    low = responses([(c, at(d), "after_sales", "csat", s, "too slow") for c, d, s, _, _ in rows])
    t = tickets(
        [
            (c, at(d), at(d + abs(c2)) if closed else None, "other", True, s, "price")
            for c, d, s, c2, closed in rows
        ]
    )
    rf = rules(
        rule("score <= 5 and mentions(speed)", name="a", cooldown_days=7),
        rule(
            "escalated and is_open",
            "tickets",
            name="b",
            trigger={"delayed_days": 3},
            cooldown_days=0,
        ),
        rule(
            "score >= 3",
            name="c",
            trigger={"delayed_days": 5, "follow_up": {"source": "tickets", "condition": "is_open"}},
        ),
    )
    everything = alerts_of(rf, snapshot(responses=low, tickets=t))
    past_t = t[t["opened_at"] < AS_OF].copy()
    past_t["closed_at"] = past_t["closed_at"].where(past_t["closed_at"] < AS_OF)
    only_past = alerts_of(rf, snapshot(responses=low[low["ts"] < AS_OF], tickets=past_t))
    pd.testing.assert_frame_equal(everything, only_past, check_dtype=False)


# ---------------------------------------------------------------- work items for people


def test_work_items_group_a_customers_alerts_per_owner_and_count_due_from_the_raise() -> None:
    """Three rules fire for c1 (two route to the same team): one item per customer and team,
    the highest level, every rule's evidence and action, due from the run's time."""
    file = rules(
        rule("score <= 5", name="csat_low", level="medium", action="Call back."),
        rule('metric == "csat" and score <= 3', name="csat_very_low", level="critical"),
        rule("mentions(price)", name="price", level="low", routing=[{"owner": "sales"}]),
        contact_columns=["country"],
    )
    snap = snapshot(
        responses=responses(
            [
                ("c1", "2024-06-01 10:00", "support", "csat", 2, "too expensive"),
                ("c2", "2024-06-20 09:00", "support", "csat", 4, ""),
            ]
        )
    )
    fired = alerts_of(file, snap)
    assert len(fired) == 4  # c1: csat_low, csat_very_low, price; c2: csat_low
    raised = ts("2024-06-30 08:00")  # a month after the c1 responses: they were long overdue
    items = work_items(fired, file, raised, snap)
    assert not items.duplicated(["customer_id", "owner_team"]).any() and len(items) == 3
    c1 = items[(items["customer_id"] == "c1") & (items["owner_team"] == "support")].iloc[0]
    assert c1["level"] == "critical" and c1["rules"] == "csat_very_low, csat_low"
    assert c1["due_at"] == raised + pd.Timedelta(hours=24)  # the critical rule's due time
    assert c1["triggered_at"] == ts("2024-06-01 10:00") and c1["raised_at"] == raised
    assert "csat_low: " in c1["evidence"] and "csat_very_low: " in c1["evidence"]
    assert c1["actions"] == "Call back."  # csat_very_low has no action text or description
    assert c1["country"] == "US"  # a contact column copied from the customer
    assert (items["due_at"] > items["raised_at"]).all()
    order = ["critical", "high", "medium", "low"]
    assert list(items["level"]) == sorted(items["level"], key=order.index)


def test_a_contact_column_that_does_not_exist_is_an_error_naming_it() -> None:
    file = rules(rule("score <= 5"), contact_columns=["email"])
    snap = snapshot(responses=responses([("c1", "2024-06-01", "support", "csat", 2, "")]))
    with pytest.raises(RuleError, match=r"contact_columns \['email'\]"):
        work_items(alerts_of(file, snap), file, ts("2024-06-30"), snap)
