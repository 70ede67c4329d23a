"""The rule condition language (tokenizer, parser, checker, evaluator) and the rules file."""

from __future__ import annotations

import builtins
from pathlib import Path

import pandas as pd
import pytest

from features.lexicon import load_lexicon
from models.warning.alerts import SCORE_FIELD_TYPES, fields_by_source
from models.warning.rules import (
    BoolOp,
    Compare,
    ConditionError,
    InList,
    Mentions,
    Not,
    RuleError,
    allowed_values,
    check_condition,
    check_rules,
    evaluate,
    load_rules,
    parse_condition,
    parse_rules,
    referenced_fields,
)

ROOT = Path(__file__).resolve().parents[2]
LEXICON = load_lexicon()
FIELDS = {
    "touchpoint": "string",
    "score": "number",
    "comment": "string",
    "escalated": "bool",
    "ts": "timestamp",
}
RESPONSE_FIELDS = {
    "customer_id": "string",
    "ts": "timestamp",
    "touchpoint": "string",
    "metric": "string",
    "score": "number",
    "comment": "string",
}
TICKET_FIELDS = {
    "customer_id": "string",
    "opened_at": "timestamp",
    "closed_at": "timestamp",
    "category": "string",
    "priority": "string",
    "escalated": "bool",
    "satisfaction": "number",
    "text": "string",
}
EVENT_FIELDS = {
    "customer_id": "string",
    "ts": "timestamp",
    "event_type": "string",
    "value": "number",
}
CUSTOMER_FIELDS = {
    "customer_id": "string",
    "signup_date": "timestamp",
    "plan": "string",
    "segment": "string",
    "country": "string",
}


def contract_fields() -> dict:
    return fields_by_source(
        {"responses": RESPONSE_FIELDS, "tickets": TICKET_FIELDS, "events": EVENT_FIELDS},
        CUSTOMER_FIELDS,
        {"tenure_days": "number"},
        None,
    )


def rule_file(condition: str, source: str = "responses", **extra) -> dict:
    return {
        "rules": [
            {"name": "my_rule", "source": source, "condition": condition, "level": "high", **extra}
        ]
    }


def check(condition: str, source: str = "responses") -> None:
    fields = contract_fields()
    rules = parse_rules(rule_file(condition, source), "alerts.yaml", fields)
    check_rules(rules, fields, LEXICON)


# ---------------------------------------------------------------- parsing


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    node = parse_condition('not escalated or touchpoint == "a" and score <= 5')
    assert isinstance(node, BoolOp) and node.op == "or"
    assert isinstance(node.left, Not)
    assert isinstance(node.right, BoolOp) and node.right.op == "and"
    assert isinstance(node.right.right, Compare) and node.right.right.op == "<="


def test_parentheses_in_lists_negative_numbers_and_mentions() -> None:
    node = parse_condition("(score > -1.5 or score < 2e1) and touchpoint not in [\"a\", 'b',]")
    assert isinstance(node, BoolOp) and node.op == "and"
    assert isinstance(node.right, InList) and node.right.negated
    assert [i.value for i in node.right.items.items] == ["a", "b"]
    assert node.left.left.right.value == -1.5 and node.left.right.right.value == 20.0
    assert isinstance(parse_condition("mentions(price)"), Mentions)
    assert referenced_fields(node) == {"score", "touchpoint"}


def test_python_code_is_a_parse_error() -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition("__import__('os')")
    assert info.value.kind == "syntax error" and info.value.column == 1
    assert "unknown function '__import__'" in str(info.value)
    with pytest.raises(RuleError) as rule_info:
        check("__import__('os').system('true')")
    message = str(rule_info.value)
    assert "alerts.yaml: rule 'my_rule': syntax error at column 1" in message
    assert "fields available:" in message and "touchpoint (string)" in message


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("score = 5", 7, "write '=='"),
        ('touchpoint == "after_sales', 15, "string not closed"),
        ("score <=", 9, "the end of the condition"),
        ('touchpoint == "a" score <= 5', 19, "missing 'and'/'or'"),
        ("score <= 5 and", 15, "the end of the condition"),
        ("score in 5", 10, "'in' needs a list"),
        ("score; 1", 6, "unexpected character ';'"),
        ("mentions(price, speed)", 15, "mentions takes one category"),
        ("", 1, "empty condition"),
        ("touchpoint.lower()", 11, "unexpected character '.'"),
    ],
)
def test_syntax_errors_give_the_column(text: str, column: int, words: str) -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert info.value.column == column
    assert words in info.value.message


# ---------------------------------------------------------------- type checking


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ('score == "x"', 7, "cannot compare field 'score' (number) with value 'x' (string)"),
        ("touchpoint <= 5", 12, "cannot compare field 'touchpoint' (string)"),
        ('touchpoint <= "a"', 12, "compares numbers only"),
        ("touchpoint in [1, 2]", 16, "does not match field 'touchpoint' (string)"),
        ("scor <= 5", 1, "unknown field 'scor' (did you mean score?)"),
        ("mentions(prices)", 10, "unknown lexicon category 'prices'"),
        ("score and escalated", 1, "'and' needs a true/false condition, found a number"),
        ("score", 1, "a condition must be true/false"),
        ("ts >= 5", 1, "is a timestamp and cannot be compared"),
        ("1 == 1", 3, "needs at least one field"),
    ],
)
def test_type_errors_name_rule_column_and_fields(text: str, column: int, words: str) -> None:
    with pytest.raises(RuleError) as info:
        check(text)
    message = str(info.value)
    assert f"rule 'my_rule': type error at column {column}" in message
    assert words in message
    assert "fields available:" in message and "score (number)" in message


def test_mentions_needs_a_text_source() -> None:
    with pytest.raises(RuleError, match="mentions\\(\\) needs a text field"):
        check("mentions(price)", source="events")
    check("mentions(price) and days_to_renewal <= 14", source="tickets")


def test_score_fields_are_visible_to_every_source() -> None:
    check('churn_probability >= 0.6 and value_tier in ["gold", "platinum"]', source="scores")
    check("after_sales_flag == 1".replace("after_sales_flag", "tenure_days"), source="events")
    assert set(SCORE_FIELD_TYPES) <= set(contract_fields()["responses"])


def test_labels_are_never_fields() -> None:
    fields = fields_by_source(
        {"responses": RESPONSE_FIELDS},
        CUSTOMER_FIELDS,
        {"churned": "bool", "churn_type": "string", "tenure_days": "number"},
        None,
    )
    assert "churned" not in fields["responses"]
    assert fields["responses"]["churn_type"] == "string"  # the scores' predicted type


# ---------------------------------------------------------------- evaluation


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "touchpoint": ["after_sales", "support", "after_sales", None],
            "score": [4.0, 3.0, None, 9.0],
            "escalated": [True, False, True, False],
            "comment": ["Way too expensive!", None, "Слишком дорого и медленно", "great"],
        }
    )


def run(text: str, frame: pd.DataFrame) -> list[bool]:
    node = parse_condition(text)
    check_condition(node, {**FIELDS, "comment": "string"}, LEXICON.categories, "comment")
    return evaluate(node, frame, LEXICON, "comment").tolist()


def test_comparisons_and_boolean_logic(frame: pd.DataFrame) -> None:
    assert run('touchpoint == "after_sales" and score <= 5', frame) == [True, False, False, False]
    assert run("score > 3 or escalated", frame) == [True, False, True, True]
    assert run('touchpoint in ["support", "billing"]', frame) == [False, True, False, False]
    assert run('touchpoint not in ["support"]', frame) == [True, False, True, False]


def test_missing_values_make_a_comparison_false(frame: pd.DataFrame) -> None:
    assert run("score <= 5", frame) == [True, True, False, False]
    assert run("not score <= 5", frame) == [False, False, True, True]
    assert run('touchpoint != "support"', frame) == [True, False, True, False]


def test_mentions_uses_the_shared_lexicon_in_every_language(frame: pd.DataFrame) -> None:
    assert run("mentions(price)", frame) == [True, False, True, False]
    assert run("mentions(speed) and not mentions(service)", frame) == [False, False, True, False]
    python_path = [
        LEXICON.mentions(t if isinstance(t, str) else None, "price") for t in frame["comment"]
    ]
    assert run("mentions(price)", frame) == python_path


def test_evaluation_never_calls_eval_or_exec(
    frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert run('touchpoint == "after_sales" and mentions(price)', frame) == [
        True,
        False,
        True,
        False,
    ]


# ---------------------------------------------------------------- the rules file


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"level": "urgent"}, "level must be one of"),
        ({"source": "emails"}, "source must be one of"),
        ({"trigger": {"delayed_days": 0}}, "expected a whole number >= 1"),
        ({"trigger": {"delay": 3}}, "unknown key(s) ['delay']"),
        ({"cooldown_days": -1}, "cooldown_days: expected a whole number >= 0"),
        ({"routing": [{"owner": "marketing"}]}, "owner 'marketing' is not a team"),
        ({"routing": [{"when": {"city": "Oslo"}, "owner": "sales"}]}, "cannot route on ['city']"),
        ({"colour": "red"}, "unknown key(s) ['colour']"),
    ],
)
def test_invalid_rule_entries_are_named(change: dict, words: str) -> None:
    data = rule_file("score <= 5", **change)
    data["rules"][0].update(change)
    with pytest.raises(RuleError) as info:
        parse_rules(data, "alerts.yaml")
    assert "alerts.yaml" in str(info.value) and "my_rule" in str(info.value)
    assert words in str(info.value)


def test_duplicate_names_and_delayed_scores_are_rejected() -> None:
    twice = {"rules": [rule_file("score <= 5")["rules"][0]] * 2}
    with pytest.raises(RuleError, match="duplicate rule name 'my_rule'"):
        parse_rules(twice)
    with pytest.raises(RuleError, match="a scores rule can only be immediate"):
        parse_rules(rule_file("churn_probability > 0.5", "scores", trigger={"delayed_days": 2}))


def test_declared_teams_can_own_alerts_and_keep_their_settings_for_delivery() -> None:
    settings = {"channels": [{"type": "webhook", "url": "http://x", "enabled": True}]}
    data = {
        **rule_file("score <= 5"),
        "teams": {"retention": settings, "sales": None},
        "default_owner": "retention",
        "routing": [{"when": {"segment": "enterprise"}, "owner": "retention"}],
    }
    rules = parse_rules(data, "alerts.yaml")
    assert rules.default_owner == "retention" and rules.routes[0].owner == "retention"
    assert rules.teams == {"retention": settings, "sales": None}  # parsed by pipeline/delivery.py
    with pytest.raises(RuleError, match="teams: expected a mapping team -> settings"):
        parse_rules({**data, "teams": ["retention"]}, "alerts.yaml")
    with pytest.raises(RuleError, match="owner 'marketing' is not a team"):
        parse_rules({**data, "routing": [{"owner": "marketing"}]}, "alerts.yaml")


def test_routing_first_match_rule_routes_first_then_default() -> None:
    data = {
        "default_owner": "support",
        "routing": [
            {"when": {"segment": "enterprise"}, "owner": "account_manager"},
            {"when": {"level": "critical"}, "owner": "call_centre"},
        ],
        "rules": [
            {"name": "a", "source": "responses", "condition": "score <= 5", "level": "critical"},
            {
                "name": "b",
                "source": "responses",
                "condition": "score <= 5",
                "level": "low",
                "routing": [{"when": {"country": ["US", "GB"]}, "owner": "sales"}],
            },
        ],
    }
    rules = parse_rules(data)
    a, b = rules.rules
    assert rules.owner(a, {"segment": "enterprise"}) == "account_manager"
    assert rules.owner(a, {"segment": "consumer"}) == "call_centre"
    assert rules.owner(b, {"segment": "enterprise", "country": "US"}) == "sales"
    assert rules.owner(b, {"segment": "consumer", "country": "KR"}) == "support"


def test_the_shipped_rules_file_is_valid() -> None:
    rules = load_rules(ROOT / "alerts.yaml", contract_fields())
    check_rules(rules, contract_fields(), LEXICON)
    names = {r.name for r in rules.rules}
    assert {"after_sales_csat_low", "price_mention"} <= names


def test_missing_rules_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="alert.rules in params.yaml"):
        load_rules(tmp_path / "nope.yaml")


def test_allowed_values_only_where_the_condition_requires_them() -> None:
    def allowed(text: str) -> frozenset | None:
        return allowed_values(parse_condition(text), "event_type")

    assert allowed('event_type == "payment_failure" and value > 3') == {"payment_failure"}
    assert allowed('event_type in ["a", "b"] and not (value > 3)') == {"a", "b"}
    assert allowed('event_type == "a" or event_type == "b"') == {"a", "b"}
    assert allowed('event_type in ["a", "b"] and event_type == "b"') == {"b"}
    # not restricted: the filter must not be pushed down
    assert allowed('event_type == "a" or value > 3') is None
    assert allowed('not event_type == "a"') is None
    assert allowed('event_type not in ["a"]') is None
    assert allowed("value > 3") is None
