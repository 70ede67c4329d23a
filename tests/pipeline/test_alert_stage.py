"""The `alert` and `alert_backtest` stages end to end on tiny hand-made interim tables."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app

from helpers import churn

TS = pa.timestamp("us", tz="UTC")

RULES = {
    "routing": [{"when": {"segment": "enterprise"}, "owner": "account_manager"}],
    "rules": [
        {
            "name": "after_sales_csat_low",
            "source": "responses",
            "level": "high",
            "condition": 'touchpoint == "after_sales" and score <= 5',
            "window_days": 30,
            "action": "Call within a day.",
        },
        {
            "name": "price_mention",
            "source": "responses",
            "level": "medium",
            "condition": "mentions(price)",
            "window_days": 30,
            "routing": [{"owner": "sales"}],
        },
        {
            "name": "payment_failure",
            "source": "events",
            "level": "high",
            "condition": 'event_type == "payment_failure" and tenure_days > 30',
        },
        {
            "name": "escalated_open",
            "source": "tickets",
            "level": "critical",
            "condition": "escalated and is_open",
            "trigger": {"delayed_days": 2},
        },
        {
            "name": "high_risk",
            "source": "scores",
            "level": "high",
            "condition": "churn_probability >= 0.5",
        },
    ],
}


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def write(path: Path, columns: dict[str, list], types: dict[str, pa.DataType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: pa.array(v, types.get(k, pa.string())) for k, v in columns.items()}
    pq.write_table(pa.table(arrays), path)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    interim = tmp_path / "interim"
    write(
        interim / "customers.parquet",
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "signup_date": [ts("2024-01-05"), ts("2024-02-10"), ts("2024-03-01"), ts("2024-04-01")],
            "segment": ["consumer", "enterprise", "smb", "consumer"],
            "country": ["US", "GB", "KR", "RU"],
            "plan": ["basic", "premium", "basic", "basic"],
        },
        {"signup_date": TS},
    )
    write(
        interim / "churn_events.parquet",
        {"customer_id": ["c4"], "churn_date": [ts("2024-06-25")]},
        {"churn_date": TS},
    )
    write(
        interim / "responses.parquet",
        {
            "customer_id": ["c1", "c2", "c3", "c1", "c4", "c2"],
            "ts": [
                ts("2024-06-20"),
                ts("2024-06-21 10:00"),
                ts("2024-06-22"),
                ts("2024-05-01"),
                ts("2024-06-20"),
                ts("2024-07-01 00:00"),
            ],
            "touchpoint": [
                "after_sales",
                "after_sales",
                "support",
                "after_sales",
                "after_sales",
                "after_sales",
            ],
            "metric": ["csat"] * 6,
            "score": [3.0, 4.0, 9.0, 2.0, 1.0, 1.0],
            "comment": [None, "Way too expensive", "слишком дорого", None, None, None],
        },
        {"ts": TS, "score": pa.float64()},
    )
    write(
        interim / "events.parquet",
        {
            "customer_id": ["c1", "c2", "c3"],
            "ts": [ts("2024-06-10"), ts("2024-06-15"), ts("2024-06-16")],
            "event_type": ["payment_failure", "payment_failure", "login"],
            "value": [None, None, 3.0],
        },
        {"ts": TS, "value": pa.float64()},
    )
    write(
        interim / "tickets.parquet",
        {
            "customer_id": ["c3", "c1"],
            "opened_at": [ts("2024-06-24"), ts("2024-06-24")],
            "category": ["technical", "billing"],
            "closed_at": [ts("2024-07-03"), ts("2024-06-25")],
            "priority": ["high", "low"],
            "escalated": [True, True],
            "satisfaction": [None, 8.0],
            "text": ["it is slow", "refund please"],
        },
        {"opened_at": TS, "closed_at": TS, "escalated": pa.bool_(), "satisfaction": pa.float64()},
    )
    processed = tmp_path / "processed"
    cutoffs = [ts("2024-06-01"), ts("2024-07-01")]
    write(
        processed / "labels.parquet",
        {
            "customer_id": ["c1", "c2", "c3", "c4", "c1", "c2", "c3"],
            "cutoff": [cutoffs[0]] * 4 + [cutoffs[1]] * 3,
            "churned": [False, False, False, True, True, False, False],
        },
        {"cutoff": TS, "churned": pa.bool_()},
    )
    write(
        processed / "features.parquet",
        {
            "customer_id": ["c1", "c2", "c3", "c4", "c1", "c2", "c3"],
            "cutoff": [cutoffs[0]] * 4 + [cutoffs[1]] * 3,
            "churned": [False, False, False, True, True, False, False],
            "tenure_days": [148, 112, 92, 61, 178, 142, 122],
        },
        {"cutoff": TS, "churned": pa.bool_(), "tenure_days": pa.int64()},
    )
    write(
        processed / "test_predictions.parquet",
        {
            "customer_id": ["c1", "c2", "c3"],
            "cutoff": [cutoffs[1]] * 3,
            "churned": [1, 0, 0],
            "p_model": [0.8, 0.3, 0.6],
        },
        {"cutoff": TS, "churned": pa.int8(), "p_model": pa.float64()},
    )
    scores = tmp_path / "scores"
    write(
        scores / "scores.parquet",
        {
            "customer_id": ["c1", "c2", "c3"],
            "as_of": [cutoffs[1]] * 3,
            "churn_probability": [0.7, 0.2, 0.55],
            "reason_1": ["logins_30d", "plan", "tenure_days"],
            "reason_1_text": ["few logins", "plan", "new"],
        },
        {"as_of": TS, "churn_probability": pa.float64()},
    )
    write(
        scores / "features.parquet",
        {
            "customer_id": ["c1", "c2", "c3"],
            "cutoff": [cutoffs[1]] * 3,
            "tenure_days": [178, 142, 122],
        },
        {"cutoff": TS, "tenure_days": pa.int64()},
    )
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(RULES), encoding="utf-8")
    params = {
        "paths": {
            "interim": str(interim),
            "scores": str(scores / "scores.parquet"),
            "score_features": str(scores / "features.parquet"),
            "alerts": str(tmp_path / "alerts"),
            "alerts_report": str(tmp_path / "reports" / "alerts.md"),
            "ledger": str(tmp_path / "alerts" / "delivery_ledger.json"),
            "labels": str(processed / "labels.parquet"),
            "features": str(processed / "features.parquet"),
            "test_predictions": str(processed / "test_predictions.parquet"),
            "backtest_report": str(tmp_path / "reports" / "alerts_backtest.json"),
        },
        "alert": {"rules": str(tmp_path / "alerts.yaml")},
        "label": {"horizon_days": 30},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return tmp_path


def firings(alerts: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(rule, customer, owner team) of every rule listed on the work items."""
    return sorted(
        (rule, c, team)
        for rules, c, team in zip(
            alerts["rules"], alerts["customer_id"], alerts["owner_team"], strict=True
        )
        for rule in rules.split(", ")
    )


def test_alert_stage_writes_alerts_csv_and_report(project: Path) -> None:
    started = pd.Timestamp.now(tz="UTC").floor("s")
    assert (
        churn("alert", "--params", project / "params.yaml") == 0
    )  # default as-of: the scores' (07-01)
    alerts = pd.read_parquet(project / "alerts" / "alerts.parquet")
    # one work item per customer and owner team, with every rule that fired for them
    assert not alerts.duplicated(["customer_id", "owner_team"]).any()
    assert len(alerts) == 5
    # due from when the item was raised (this run), never already overdue when written
    assert (alerts["raised_at"] >= started).all() and (alerts["due_at"] > alerts["raised_at"]).all()
    with_csat = alerts["rules"].str.contains("after_sales_csat_low")
    assert with_csat.sum() == 2 and (alerts.loc[with_csat, "actions"] == "Call within a day.").all()
    got = firings(alerts)
    assert got == [
        ("after_sales_csat_low", "c1", "support"),
        ("after_sales_csat_low", "c2", "account_manager"),  # c4 left on 06-25; 07-01 unseen
        ("escalated_open", "c3", "support"),  # c1's ticket was closed the next day
        ("high_risk", "c1", "support"),
        ("high_risk", "c3", "support"),
        ("payment_failure", "c1", "support"),
        ("payment_failure", "c2", "account_manager"),
        ("price_mention", "c2", "sales"),
        ("price_mention", "c3", "sales"),
    ]
    c1 = alerts[alerts["customer_id"] == "c1"].iloc[0]
    assert c1["churn_probability"] == 0.7 and c1["reason_1_text"] == "few logins"
    assert alerts["level"].iloc[0] == "critical"  # most urgent first
    csv = pd.read_csv(project / "alerts" / "alerts.csv")
    assert list(csv.columns) == list(alerts.columns) and len(csv) == len(alerts)
    report = (project / "reports" / "alerts.md").read_text()
    assert "| after_sales_csat_low | 2 |" in report and "| sales | 2 |" in report
    assert "| critical | 1 |" in report
    assert (project / "alerts" / "delivery_ledger.json").exists()  # a declared output


def test_same_as_of_twice_gives_the_same_alerts(project: Path) -> None:
    """Only the raise time (and the due time counted from it) differs between two runs."""
    params = project / "params.yaml"
    assert churn("alert", "--params", params, "--as-of", "2024-07-01") == 0
    first = pd.read_parquet(project / "alerts" / "alerts.parquet")
    assert churn("alert", "--params", params, "--as-of", "2024-07-01") == 0
    second = pd.read_parquet(project / "alerts" / "alerts.parquet")
    timing = ["raised_at", "due_at"]
    pd.testing.assert_frame_equal(first.drop(columns=timing), second.drop(columns=timing))
    assert set(p.name for p in (project / "alerts").glob("alerts.*")) == {
        "alerts.parquet",
        "alerts.csv",
    }


def test_an_earlier_as_of_ignores_later_scores(project: Path) -> None:
    assert churn("alert", "--params", project / "params.yaml", "--as-of", "2024-06-23") == 0
    alerts = pd.read_parquet(project / "alerts" / "alerts.parquet")
    rules = {rule for rule, _, _ in firings(alerts)}
    assert "high_risk" not in rules  # the scores are dated 07-01: the future
    assert "escalated_open" not in rules  # tickets opened on 06-24
    assert alerts["churn_probability"].isna().all()
    assert "price_mention" in rules


def test_an_invalid_rule_fails_with_exit_2_and_names_it(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {
        "rules": [
            {
                "name": "typo",
                "source": "responses",
                "level": "low",
                "condition": 'touchpoint == "after_sales" and scor <= 5',
            }
        ]
    }
    (project / "alerts.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert churn("alert", "--params", project / "params.yaml") == 2
    assert "rule 'typo': type error at column 33: unknown field 'scor'" in caplog.text
    assert "tenure_days (number)" in caplog.text  # the customer's features are listed too
    assert not (project / "alerts" / "alerts.parquet").exists()


def test_a_bad_channel_fails_with_exit_2_before_any_alert(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = yaml.safe_load((project / "alerts.yaml").read_text())
    rules["teams"] = {"support": {"channels": [{"type": "email", "host": "localhost"}]}}
    (project / "alerts.yaml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    for command in ("alert", "alert-backtest"):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert churn(command, "--params", project / "params.yaml") == 2
        assert "alerts.yaml: teams.support.channels[0]: an email channel needs to:" in caplog.text
    assert not (project / "alerts" / "alerts.parquet").exists()
    assert not (project / "reports" / "alerts_backtest.json").exists()


def test_backtest_stage_writes_the_documented_schema(project: Path) -> None:
    result = CliRunner().invoke(app, ["alert-backtest", "--params", str(project / "params.yaml")])
    assert result.exit_code == 0, result.output
    report = json.loads((project / "reports" / "alerts_backtest.json").read_text())
    assert report["horizon_days"] == 30
    assert report["cutoffs"] == ["2024-06-01", "2024-07-01"]
    assert report["base_rate"] == pytest.approx(2 / 7)
    rows = {r["rule"]: r for r in report["rules"]}
    for row in rows.values():
        assert {"rule", "level", "alerted", "churned", "precision", "recall", "lift"} <= set(row)
    # 07-01: c1 (churned) and c2 had an after-sales CSAT <= 5 in June; 06-01: nobody
    csat = rows["after_sales_csat_low"]
    assert (csat["alerted"], csat["churned"]) == (2, 1)
    assert csat["lift"] == pytest.approx(0.5 / (2 / 7))
    risk = rows["high_risk"]  # p_model >= 0.5 at the test cutoff: c1 (churned) and c3
    assert (risk["alerted"], risk["churned"], risk["cutoffs"]) == (2, 1, ["2024-07-01"])


def test_cli_alert_command(project: Path) -> None:
    result = CliRunner().invoke(
        app, ["alert", "--params", str(project / "params.yaml"), "--as-of", "2024-07-01"]
    )
    assert result.exit_code == 0, result.output
    assert (project / "alerts" / "alerts.parquet").exists()
    bad = CliRunner().invoke(
        app, ["alert", "--params", str(project / "params.yaml"), "--as-of", "yesterday"]
    )
    assert bad.exit_code == 2


def test_without_scores_the_as_of_is_the_day_after_the_data(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["paths"]["scores"] = str(project / "no_scores.parquet")
    params["paths"]["score_features"] = str(project / "no_features.parquet")
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert churn("alert", "--params", project / "params.yaml") == 2  # tenure_days is a feature
    assert "no customer features were found" in caplog.text
    rules = yaml.safe_load((project / "alerts.yaml").read_text())
    rules["rules"] = [r for r in rules["rules"] if r["name"] != "payment_failure"]
    (project / "alerts.yaml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert churn("alert", "--params", project / "params.yaml") == 0
    alerts = pd.read_parquet(project / "alerts" / "alerts.parquet")
    # latest timestamp: a ticket closed 2024-07-03 -> as-of 2024-07-04
    assert set(alerts["as_of"]) == {ts("2024-07-04")}
    got = firings(alerts)
    assert "high_risk" not in {r for r, _, _ in got} and "rule high_risk: no scores" in caplog.text
    # the 07-01 after-sales CSAT of c2 is now before the as-of date; c2 has a cool-down from 06-21
    assert sorted(c for r, c, _ in got if r == "after_sales_csat_low") == ["c1", "c2"]


def test_priority_owners_must_be_teams_of_the_rules_file(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The priority list and the alerts route to one set of team names."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["value"] = {"tier_owners": {"bronze": "customer_success", "gold": "account_manager"}}
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert churn("alert", "--params", project / "params.yaml") == 2
    assert "customer_success" in caplog.text and "value.tier_owners" in caplog.text
