"""Early-warning alerts: rules evaluated over a window ending at the as-of date, and their backtest.

Point in time (the same convention as the features, which read strictly before the cutoff):
a rule sees only records with timestamp < as_of; the as-of day itself is NOT included. Ticket
fields that become known later are hidden: a ticket closed at or after the evaluation time has
closed_at and satisfaction missing and `is_open` true.

What a rule sees (its "fields"), first name wins:
1. the record's columns (responses, tickets, events; for a scores rule, the scores' columns);
   derived record fields: `days_to_renewal` (days from the record's time, or the as-of date for
   scores, to the customer's next monthly anniversary of signup_date, 0 on the day itself) and,
   for tickets, `is_open`;
2. the scores at the as-of date when present (`churn_probability`, `risk_tier`, `value_tier` ...,
   declared in models/scores_contract.py);
3. the customer's features at the as-of date (data/scores/features.parquet; in the backtest the
   feature table's row at the cutoff); the label columns are never visible;
4. the customer's own columns (segment, country, plan ...).
Customer-level fields are those at the as-of date, not at the record's time.

Triggers. `immediate`: every matching record fires at its timestamp. `delayed N days`: a record
at t fires at t + N when the condition held at t and still holds at t + N (record fields as known
then), and no follow-up record (the trigger's `follow_up` condition on its source, same customer)
arrived in (t, t + N); it fires only if t + N <= as_of.
Cool-down: per customer and rule, a firing within `cooldown_days` after a kept one is dropped.
The chain is computed over the window plus the cool-down before it, so one as-of date always
gives the same alerts (no hidden state); that start may differ from a chain over all history.
An alert is listed when it fired in [as_of - window_days, as_of]. A scores rule fires once per
customer at the scores' as-of date (the stage keeps no history of scores, so no cool-down).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.lexicon import Lexicon
from models.scores_contract import SCORE_COLUMNS
from models.warning.rules import (
    LEVELS,
    TEXT_FIELDS,
    FieldType,
    Rule,
    RuleError,
    RulesFile,
    allowed_values,
    evaluate,
    field_types_of_frame,
    referenced_categories,
    referenced_fields,
)

log = logging.getLogger(__name__)

TIME_COLUMNS: dict[str, str] = {"responses": "ts", "tickets": "opened_at", "events": "ts"}
RECORD_SOURCES: tuple[str, ...] = tuple(TIME_COLUMNS)
# Columns of the feature table that are labels or keys, never visible to a rule.
HIDDEN_FEATURE_COLUMNS = frozenset({"customer_id", "cutoff", "churned", "churn_type", "as_of"})
# The scores' top reasons carried onto an alert when the customer was scored.
REASON_COLUMNS: tuple[str, ...] = tuple(c for c in SCORE_COLUMNS if c.startswith("reason_"))
# Score fields a rule may name before the scores exist (the reasons are carried, not ruled on).
SCORE_FIELD_TYPES: dict[str, FieldType] = {
    c: kind for c, kind in SCORE_COLUMNS.items() if c not in REASON_COLUMNS
}
DERIVED_FIELDS: dict[str, FieldType] = {"days_to_renewal": "number"}
TICKET_DERIVED_FIELDS: dict[str, FieldType] = {"is_open": "bool"}
ROUTING_COLUMNS: tuple[str, ...] = ("segment", "country", "plan", "value_tier")
ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id",
    "as_of",
    "customer_id",
    "rule",
    "level",
    "source",
    "owner_team",
    "triggered_at",
    "due_at",
    "evidence",
    "churn_probability",
    "value_tier",
    *REASON_COLUMNS,
)
_T = "_t"  # a record's own time
_ROW = "_row"


@dataclass(frozen=True)
class Snapshot:
    """What is known at `as_of`: records before it, and customer-level data at it.

    `records[source]` holds at least the records in [as_of - lookback, as_of) of every rule (more
    is fine: the engine filters); tickets keep their raw closed_at (masked here per evaluation
    time). `features` and `scores` hold one row per customer (or are None).
    """

    as_of: pd.Timestamp
    records: Mapping[str, pd.DataFrame]
    customers: pd.DataFrame
    features: pd.DataFrame | None = None
    scores: pd.DataFrame | None = None
    scores_as_of: pd.Timestamp | None = None
    # Customers who had left before as_of (no alerts for them); None = nobody is known to have.
    departed: frozenset[str] | None = None

    @cached_property
    def customer_sources(self) -> tuple[pd.Index, list[pd.DataFrame]]:
        """The customers (ids of `customers`) and the customer-level sources in precedence order
        (scores, features, the customer's own columns), each one row per customer indexed by
        customer_id. Built once per snapshot; every rule reads its fields through it."""
        ids = pd.Index(self.customers["customer_id"].drop_duplicates(), name="customer_id")
        frames = [self.customers]
        if self.features is not None:
            hidden = [c for c in HIDDEN_FEATURE_COLUMNS if c != "customer_id"]
            frames.insert(0, self.features.drop(columns=hidden, errors="ignore"))
        if self.scores is not None:
            frames.insert(0, self.scores.drop(columns=["as_of"], errors="ignore"))
        by_customer = [f.drop_duplicates("customer_id").set_index("customer_id") for f in frames]
        return ids, by_customer


# ---------------------------------------------------------------- fields


def fields_by_source(
    record_fields: Mapping[str, Mapping[str, FieldType]],
    customer_fields: Mapping[str, FieldType],
    feature_fields: Mapping[str, FieldType] | None = None,
    score_fields: Mapping[str, FieldType] | None = None,
) -> dict[str, dict[str, FieldType]]:
    """Every source's visible fields, in the precedence of the module docstring."""
    # Declared score fields stay visible (missing values) until the scores carry them.
    scores = {**SCORE_FIELD_TYPES, **(score_fields or {})}
    scores.pop("customer_id", None)
    scores.pop("as_of", None)
    customer: dict[str, FieldType] = {
        k: v for k, v in customer_fields.items() if k != "customer_id"
    }
    customer.update(
        {k: v for k, v in (feature_fields or {}).items() if k not in HIDDEN_FEATURE_COLUMNS}
    )
    customer.update(scores)
    customer.update(DERIVED_FIELDS)
    out: dict[str, dict[str, FieldType]] = {}
    for source, fields in record_fields.items():
        own = dict(fields)
        if source == "tickets":
            own.update(TICKET_DERIVED_FIELDS)
        out[source] = {**customer, **own}
    out["scores"] = dict(customer)
    return out


def snapshot_fields(snapshot: Snapshot) -> dict[str, dict[str, FieldType]]:
    """Fields per source for a snapshot built in memory (tests, backtest)."""
    records = {s: field_types_of_frame(f) for s, f in snapshot.records.items()}
    features = field_types_of_frame(snapshot.features) if snapshot.features is not None else None
    scores = field_types_of_frame(snapshot.scores) if snapshot.scores is not None else None
    return fields_by_source(records, field_types_of_frame(snapshot.customers), features, scores)


# ---------------------------------------------------------------- derived fields


def days_to_renewal(signup: pd.Series, at: pd.Series) -> pd.Series:
    """Days from `at` to the next monthly anniversary of `signup` (0 when `at` is on one).

    Monthly subscriptions renew on the signup day of the month, or the month's last day when
    that month is shorter (signed up on the 31st -> renews on the 30th in April).
    """
    signup = pd.to_datetime(signup, utc=True)
    day = pd.to_datetime(at, utc=True).dt.floor("D")
    this_month = _anniversary(signup.dt.day, day.dt.year, day.dt.month)
    next_y = day.dt.year + (day.dt.month == 12)
    next_m = day.dt.month % 12 + 1
    following = _anniversary(signup.dt.day, next_y, next_m)
    renewal = this_month.where(this_month >= day, following)
    return (renewal - day).dt.days.astype("float64")


def _anniversary(signup_day: pd.Series, year: pd.Series, month: pd.Series) -> pd.Series:
    first = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1}), utc=True)
    last_day = first.dt.days_in_month
    day = np.minimum(signup_day.to_numpy(), last_day.to_numpy())
    return first + pd.to_timedelta(day - 1, unit="D")


def tickets_known_at(tickets: pd.DataFrame, at: pd.Series | pd.Timestamp) -> pd.DataFrame:
    """Tickets as known at `at`: closed_at/satisfaction hidden unless closed before it."""
    out = tickets.copy()
    closed = out["closed_at"] if "closed_at" in out.columns else pd.Series(pd.NaT, index=out.index)
    known = closed.notna() & (closed < at)
    if "closed_at" in out.columns:
        out["closed_at"] = closed.where(known)
    if "satisfaction" in out.columns:
        out["satisfaction"] = out["satisfaction"].where(known)
    out["is_open"] = ~known
    return out


# ---------------------------------------------------------------- evaluation


def _customer_columns(snapshot: Snapshot, names: Iterable[str]) -> pd.DataFrame:
    """One row per customer with the requested customer-level columns (scores > features > own);
    a name no source has is a column of missing values."""
    ids, sources = snapshot.customer_sources
    names = [n for n in dict.fromkeys(names) if n != "customer_id"]
    parts = [pd.DataFrame({"customer_id": ids.to_numpy()})]
    placed: set[str] = set()
    for source in sources:
        take = [c for c in names if c in source.columns and c not in placed]
        if take:
            parts.append(source[take].reindex(ids).reset_index(drop=True))
            placed.update(take)
    out = pd.concat(parts, axis=1)
    for name in names:
        if name not in out.columns:
            out[name] = pd.Series(pd.NA, index=out.index, dtype="object")
    return out


def _with_fields(
    records: pd.DataFrame, snapshot: Snapshot, names: Iterable[str], at_column: str
) -> pd.DataFrame:
    """Records plus the customer-level and derived fields named (record columns win)."""
    names = [n for n in names if n not in records.columns]
    wanted = [n for n in names if n not in DERIVED_FIELDS]
    frame = records
    needs_signup = "days_to_renewal" in names
    cols = _customer_columns(snapshot, [*wanted, *(["signup_date"] if needs_signup else [])])
    frame = frame.merge(cols, on="customer_id", how="left", suffixes=("", "_customer"))
    if needs_signup:
        frame["days_to_renewal"] = days_to_renewal(
            frame["signup_date_customer"]
            if "signup_date_customer" in frame.columns
            else frame["signup_date"],
            frame[at_column],
        )
    return frame


def _firings_from_records(
    rule: Rule, rules_file: RulesFile, snapshot: Snapshot, lexicon: Lexicon
) -> pd.DataFrame:
    """Every (record, fire time) that matches the rule's condition and trigger, before cool-down."""
    source = rule.source
    time_col = TIME_COLUMNS[source]
    records = snapshot.records.get(source)
    if records is None or records.empty:
        return pd.DataFrame()
    as_of = snapshot.as_of
    start = as_of - pd.Timedelta(days=rule.lookback_days)
    records = records[(records[time_col] >= start) & (records[time_col] < as_of)].copy()
    records[_T] = records[time_col]
    records[_ROW] = np.arange(len(records))
    names = list(rule.fields)  # routing columns are added to the fired rows only
    text_field = TEXT_FIELDS.get(source)
    if rule.trigger.kind == "immediate":
        known = _known_at(records, source, as_of)
        frame = _with_fields(known, snapshot, names, _T)
        hit = evaluate(rule.ast, frame, lexicon, text_field)
        fired = frame[hit].copy()
        fired["triggered_at"] = fired[_T]
        return fired
    delay = pd.Timedelta(days=rule.trigger.days)
    records = records[records[_T] + delay <= as_of]
    at_start = _with_fields(_known_at(records, source, records[_T]), snapshot, names, _T)
    held = evaluate(rule.ast, at_start, lexicon, text_field)
    later = _known_at(records, source, records[_T] + delay)
    at_end = _with_fields(later, snapshot, names, _T)
    still = evaluate(rule.ast, at_end, lexicon, text_field)
    fired = at_end[held.to_numpy() & still.to_numpy()].copy()
    fired["triggered_at"] = fired[_T] + delay
    if rule.trigger.follow_up_ast is not None and not fired.empty:
        fired = fired[~_followed_up(rule, fired, snapshot, lexicon)]
    return fired


def _known_at(records: pd.DataFrame, source: str, at: pd.Series | pd.Timestamp) -> pd.DataFrame:
    return tickets_known_at(records, at) if source == "tickets" else records


def _followed_up(
    rule: Rule, fired: pd.DataFrame, snapshot: Snapshot, lexicon: Lexicon
) -> np.ndarray:
    """Whether a follow-up record came for the customer in (t, t + delay) of each firing."""
    trig = rule.trigger
    assert trig.follow_up_source is not None and trig.follow_up_ast is not None
    source = trig.follow_up_source
    records = snapshot.records.get(source)
    if records is None or records.empty:
        return np.zeros(len(fired), dtype=bool)
    time_col = TIME_COLUMNS[source]
    records = records[records[time_col] < snapshot.as_of].copy()
    records[_T] = records[time_col]
    known = _known_at(records, source, snapshot.as_of)
    frame = _with_fields(known, snapshot, referenced_fields(trig.follow_up_ast), _T)
    hits = frame[evaluate(trig.follow_up_ast, frame, lexicon, TEXT_FIELDS.get(source))]
    pairs = fired[["customer_id", _T, "triggered_at"]].reset_index(names="_fired")
    joined = pairs.merge(
        hits[["customer_id", _T]].rename(columns={_T: "_follow_t"}), on="customer_id"
    )
    inside = (joined["_follow_t"] > joined[_T]) & (joined["_follow_t"] < joined["triggered_at"])
    done = set(joined.loc[inside, "_fired"])
    return np.array([i in done for i in fired.index], dtype=bool)


def apply_cooldown(fired: pd.DataFrame, cooldown_days: int) -> pd.DataFrame:
    """Keep a firing only if no kept firing of the same customer lies less than the cool-down
    before it; one firing per customer and fire time."""
    if fired.empty:
        return fired
    ordered = fired.sort_values(["customer_id", "triggered_at", _ROW], kind="stable")
    ordered = ordered.drop_duplicates(["customer_id", "triggered_at"])
    gap = pd.Timedelta(days=cooldown_days)
    keep = np.zeros(len(ordered), dtype=bool)
    last_customer, last_kept = None, None
    customers = ordered["customer_id"].to_numpy()
    times = ordered["triggered_at"].to_numpy()
    for i, (customer, when) in enumerate(zip(customers, times, strict=True)):
        if customer != last_customer or last_kept is None or when - last_kept >= gap:
            keep[i] = True
            last_customer, last_kept = customer, when
    return ordered[keep]


def rule_alerts(
    rule: Rule, rules_file: RulesFile, snapshot: Snapshot, lexicon: Lexicon
) -> pd.DataFrame:
    """The alerts of one rule at the snapshot's as-of date (columns: ALERT_COLUMNS)."""
    as_of = snapshot.as_of
    if rule.source == "scores":
        if snapshot.scores is None:
            log.warning("rule %s: no scores at %s; skipped", rule.name, as_of.date())
            return _empty()
        scores_at = snapshot.scores_as_of or as_of
        frame = snapshot.scores[["customer_id"]].drop_duplicates("customer_id").copy()
        frame[_T] = scores_at
        frame[_ROW] = np.arange(len(frame))
        frame = _with_fields(frame, snapshot, list(rule.fields), _T)
        fired = frame[evaluate(rule.ast, frame, lexicon, None)].copy()
        fired["triggered_at"] = scores_at
    else:
        fired = apply_cooldown(
            _firings_from_records(rule, rules_file, snapshot, lexicon), rule.cooldown_days
        )
    if fired.empty:
        return _empty()
    start = as_of - pd.Timedelta(days=rule.window_days)
    fired = fired[(fired["triggered_at"] >= start) & (fired["triggered_at"] <= as_of)]
    if fired.empty:
        return _empty()
    return _alert_rows(rule, rules_file, fired, snapshot, lexicon)


def _alert_rows(
    rule: Rule, rules_file: RulesFile, fired: pd.DataFrame, snapshot: Snapshot, lexicon: Lexicon
) -> pd.DataFrame:
    fired = fired.reset_index(drop=True)
    extra = [
        c
        for c in (
            *ROUTING_COLUMNS,
            "churn_probability",
            *REASON_COLUMNS,
        )
        if c not in fired.columns
    ]
    fired = fired.merge(_customer_columns(snapshot, extra), on="customer_id", how="left")
    triggered = pd.to_datetime(fired["triggered_at"], utc=True)
    due = triggered + pd.Timedelta(hours=rules_file.due(rule))
    routing = fired.reindex(columns=list(ROUTING_COLUMNS)).astype(object)
    owners = [rules_file.owner(rule, values) for values in routing.to_dict("records")]
    evidence = _evidence(rule, fired, lexicon)
    out = pd.DataFrame(
        {
            "alert_id": [
                alert_id(c, rule.name, t)
                for c, t in zip(fired["customer_id"], triggered, strict=True)
            ],
            "as_of": snapshot.as_of,
            "customer_id": fired["customer_id"].astype(str),
            "rule": rule.name,
            "level": rule.level,
            "source": rule.source,
            "owner_team": owners,
            "triggered_at": triggered,
            "due_at": due,
            "evidence": evidence,
            "churn_probability": pd.to_numeric(fired["churn_probability"], errors="coerce"),
        }
    )
    for col in ALERT_COLUMNS[11:]:
        out[col] = fired[col].astype(object).where(fired[col].notna(), None).to_numpy()
    return out[list(ALERT_COLUMNS)]


def alert_id(customer_id: str, rule: str, triggered_at: pd.Timestamp | dt.datetime) -> str:
    """Deterministic id of an alert: the same customer, rule and fire time give the same id."""
    stamp = pd.Timestamp(triggered_at).tz_convert("UTC").isoformat()
    return hashlib.sha256(f"{customer_id}|{rule}|{stamp}".encode()).hexdigest()[:20]


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "missing"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _evidence(rule: Rule, fired: pd.DataFrame, lexicon: Lexicon) -> list[str]:
    """Per alert: the values of the fields the rule reads, and the matched text spans."""
    names = sorted(f for f in rule.fields if f in fired.columns)
    cats = list(dict.fromkeys(referenced_categories(rule.ast)))
    text_field = TEXT_FIELDS.get(rule.source)
    out = []
    for row in fired.to_dict("records"):
        parts = [f"{name}={_format(row.get(name))}" for name in names]
        if cats and text_field is not None:
            text = row.get(text_field)
            found = lexicon.find(text if isinstance(text, str) else None, cats)
            spans = [f'{m.category}: "{m.text}"' for m in found]
            if spans:
                parts.append(f"{text_field} mentions " + "; ".join(spans))
        if rule.trigger.kind == "delayed":
            parts.append(
                f"record at {pd.Timestamp(row[_T]).isoformat()}, "
                f"unresolved after {rule.trigger.days} days"
            )
        out.append(", ".join(parts))
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in ALERT_COLUMNS})


_LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}


def build_alerts(rules_file: RulesFile, snapshot: Snapshot, lexicon: Lexicon) -> pd.DataFrame:
    """All rules' alerts at the snapshot's as-of date, in a deterministic order."""
    parts = [rule_alerts(r, rules_file, snapshot, lexicon) for r in rules_file.rules]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _empty()
    out = pd.concat(parts, ignore_index=True)
    if snapshot.departed:
        gone = out["customer_id"].isin(snapshot.departed)
        if gone.any():
            log.info(
                "alerts: %d alert(s) of customers who had left before %s dropped",
                int(gone.sum()),
                snapshot.as_of.date(),
            )
        out = out[~gone]
    out["_rank"] = out["level"].map(_LEVEL_RANK)
    out = out.sort_values(["_rank", "due_at", "customer_id", "rule"], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)


# ---------------------------------------------------------------- work items for people

# One row per customer and owner team: what a person acts on (alerts.parquet / .csv, delivery).
WORK_COLUMNS: tuple[str, ...] = (
    "alert_id",
    "as_of",
    "raised_at",
    "customer_id",
    "owner_team",
    "level",
    "rules",
    "sources",
    "triggered_at",
    "due_at",
    "actions",
    "evidence",
    "churn_probability",
    "value_tier",
    *REASON_COLUMNS,
)


def work_items(
    alerts: pd.DataFrame,
    rules_file: RulesFile,
    raised_at: pd.Timestamp,
    snapshot: Snapshot | None = None,
) -> pd.DataFrame:
    """The rules' alerts grouped into one row per customer and owner team.

    Several rules firing for one customer and team become one item: the highest level, every rule
    with its evidence and action text, the earliest trigger time. `due_at` counts from when the
    item is raised (`raised_at`, the run's time), by the most urgent of its rules' due hours, so
    an item is never already overdue when it is written. The rules file's `contact_columns` are
    copied from the customer's data. `alert_id` is deterministic in the customer, the team and
    the member alerts, so redelivery of the same item is recognised.
    """
    raised_at = pd.Timestamp(raised_at).tz_convert("UTC")
    contacts = list(rules_file.contact_columns)
    if alerts.empty:
        out = pd.DataFrame({c: pd.Series(dtype="object") for c in (*WORK_COLUMNS, *contacts)})
        return out
    frame = alerts.copy()
    frame["_rank"] = frame["level"].map(_LEVEL_RANK)
    frame["_due_hours"] = [rules_file.due(rules_file.rule(r)) for r in frame["rule"]]
    frame["_action"] = [rules_file.rule(r).action for r in frame["rule"]]
    frame = frame.sort_values(["customer_id", "owner_team", "_rank", "triggered_at", "rule"])
    rows = []
    for (customer, team), group in frame.groupby(["customer_id", "owner_team"], sort=False):
        first = group.iloc[0]
        rules = list(dict.fromkeys(group["rule"]))
        members = ",".join(sorted(group["alert_id"]))
        row = {
            "alert_id": hashlib.sha256(f"{customer}|{team}|{members}".encode()).hexdigest()[:20],
            "as_of": first["as_of"],
            "raised_at": raised_at,
            "customer_id": customer,
            "owner_team": team,
            "level": first["level"],
            "rules": ", ".join(rules),
            "sources": ", ".join(dict.fromkeys(group["source"])),
            "triggered_at": pd.to_datetime(group["triggered_at"], utc=True).min(),
            "due_at": raised_at + pd.Timedelta(hours=int(group["_due_hours"].min())),
            "actions": "; ".join(a for a in dict.fromkeys(group["_action"]) if a),
            "evidence": " | ".join(
                f"{r}: {e}" for r, e in zip(group["rule"], group["evidence"], strict=True)
            ),
            "churn_probability": first["churn_probability"],
            "value_tier": first["value_tier"],
        }
        for col in REASON_COLUMNS:
            row[col] = first[col]
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(WORK_COLUMNS))
    if contacts:
        frames = [] if snapshot is None else [snapshot.customers, snapshot.features]
        frames += [] if snapshot is None else [snapshot.scores]
        available = {c for f in frames if f is not None for c in f.columns}
        missing = [c for c in contacts if c not in available]
        if missing:
            raise RuleError(
                f"{rules_file.path}: contact_columns {missing} are not columns of the customers "
                "table, the feature table or the scores; list existing customer columns (e.g. "
                "email, phone) or remove them"
            )
        found = _customer_columns(snapshot, contacts)  # type: ignore[arg-type]
        out = out.merge(found[["customer_id", *contacts]], on="customer_id", how="left")
    out["_rank"] = out["level"].map(_LEVEL_RANK)
    out = out.sort_values(["_rank", "due_at", "customer_id", "owner_team"], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)


# ---------------------------------------------------------------- backtest


def lookback_by_source(rules_file: RulesFile) -> dict[str, int]:
    """Days of records each source needs before the as-of date (rules and their follow-ups)."""
    out: dict[str, int] = {}
    for rule in rules_file.rules:
        if rule.source in TIME_COLUMNS:
            out[rule.source] = max(out.get(rule.source, 0), rule.lookback_days)
        follow = rule.trigger.follow_up_source
        if follow is not None:
            out[follow] = max(out.get(follow, 0), rule.lookback_days)
    return out


def event_types_read(rules_file: RulesFile) -> frozenset | None:
    """The event types any rule (or follow-up) on `events` can fire on; None = any type.

    Events are by far the largest table: reading only these types keeps the window's records
    small (logins and feature use are most events, and no default rule reads them).
    """
    conditions = [r.ast for r in rules_file.rules if r.source == "events"]
    conditions += [
        r.trigger.follow_up_ast
        for r in rules_file.rules
        if r.trigger.follow_up_source == "events" and r.trigger.follow_up_ast is not None
    ]
    out: frozenset = frozenset()
    for node in conditions:
        allowed = allowed_values(node, "event_type")
        if allowed is None:
            return None
        out |= allowed
    return out


def _score_fields(rule: Rule) -> set[str]:
    return rule.fields & set(SCORE_FIELD_TYPES)


def backtest(
    rules_file: RulesFile,
    lexicon: Lexicon,
    labels: pd.DataFrame,
    snapshot_at: Callable[[pd.Timestamp], Snapshot],
    horizon_days: int,
    test_predictions: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Each rule at every labelled cutoff: precision, recall, lift over the base rate.

    `labels`: customer_id, cutoff, churned (the customers active at each cutoff). A customer
    counts as alerted at a cutoff when the rule has an alert there (fired in the window before
    it). Precision = churned among alerted; recall = alerted among churned; lift = precision /
    base rate; counts are summed over cutoffs. Rules that read score fields are evaluated only
    at the test cutoff of `test_predictions` (p_model as churn_probability), when they need no
    other score field; the rest are listed under `not_backtested` with the reason.
    """
    labels = labels[["customer_id", "cutoff", "churned"]].copy()
    labels["churned"] = labels["churned"].astype(bool)
    cutoffs = sorted(pd.to_datetime(labels["cutoff"], utc=True).unique())
    plain = [r for r in rules_file.rules if r.source != "scores" and not _score_fields(r)]
    scored = [r for r in rules_file.rules if r not in plain]
    alerted: dict[str, list[pd.DataFrame]] = {r.name: [] for r in plain}
    for cutoff in cutoffs:
        snapshot = snapshot_at(pd.Timestamp(cutoff))
        for rule in plain:
            found = rule_alerts(rule, rules_file, snapshot, lexicon)
            alerted[rule.name].append(
                pd.DataFrame({"customer_id": found["customer_id"].unique(), "cutoff": cutoff})
            )
        log.info("backtest: cutoff %s done", pd.Timestamp(cutoff).date())
    base_rate = float(labels["churned"].mean()) if len(labels) else 0.0
    results = [
        _metrics(rule, labels, pd.concat(alerted[rule.name], ignore_index=True), base_rate)
        for rule in plain
    ]
    not_backtested = []
    for rule in scored:
        entry, reason = _backtest_scored(
            rule, rules_file, lexicon, labels, snapshot_at, test_predictions
        )
        if entry is not None:
            results.append(entry)
        else:
            not_backtested.append({"rule": rule.name, "level": rule.level, "reason": reason})
    return {
        "horizon_days": int(horizon_days),
        "base_rate": base_rate,
        "cutoffs": [pd.Timestamp(c).date().isoformat() for c in cutoffs],
        "rows": int(len(labels)),
        "churned": int(labels["churned"].sum()),
        "rules": results,
        "not_backtested": not_backtested,
        "definition": (
            "alerted = (customer, cutoff) pairs with an alert of the rule in its window before "
            "the cutoff, among customers active at the cutoff; churned = those that churned "
            f"within {horizon_days} days after the cutoff; precision = churned / alerted; "
            "recall = churned / all churned (customer, cutoff) pairs; lift = precision / "
            "base_rate"
        ),
    }


def _metrics(
    rule: Rule,
    labels: pd.DataFrame,
    alerted: pd.DataFrame,
    base_rate: float,
    **extra: Any,
) -> dict[str, Any]:
    hits = labels.merge(alerted.drop_duplicates(), on=["customer_id", "cutoff"], how="inner")
    n_alerted = int(len(hits))
    n_churned = int(hits["churned"].sum())
    total_churned = int(labels["churned"].sum())
    precision = n_churned / n_alerted if n_alerted else 0.0
    return {
        "rule": rule.name,
        "level": rule.level,
        "source": rule.source,
        "alerted": n_alerted,
        "churned": n_churned,
        "precision": precision,
        "recall": n_churned / total_churned if total_churned else 0.0,
        "lift": precision / base_rate if base_rate else 0.0,
        **extra,
    }


def _backtest_scored(
    rule: Rule,
    rules_file: RulesFile,
    lexicon: Lexicon,
    labels: pd.DataFrame,
    snapshot_at: Callable[[pd.Timestamp], Snapshot],
    test_predictions: pd.DataFrame | None,
) -> tuple[dict[str, Any] | None, str]:
    other = sorted(_score_fields(rule) - {"churn_probability"})
    if other:
        return None, (
            f"reads score field(s) {other}, which exist only at scoring time "
            "(no past scores to backtest against)"
        )
    if test_predictions is None or test_predictions.empty:
        return None, "reads churn_probability and no test predictions are available"
    preds = test_predictions.copy()
    preds["cutoff"] = pd.to_datetime(preds["cutoff"], utc=True)
    cutoff = preds["cutoff"].max()
    preds = preds[preds["cutoff"] == cutoff]
    scores = pd.DataFrame(
        {"customer_id": preds["customer_id"].astype(str), "churn_probability": preds["p_model"]}
    )
    base = snapshot_at(pd.Timestamp(cutoff))
    snapshot = Snapshot(base.as_of, base.records, base.customers, base.features, scores, cutoff)
    found = rule_alerts(rule, rules_file, snapshot, lexicon)
    at_cutoff = labels[labels["cutoff"] == cutoff]
    alerted = pd.DataFrame({"customer_id": found["customer_id"].unique(), "cutoff": cutoff})
    rate = float(at_cutoff["churned"].mean()) if len(at_cutoff) else 0.0
    entry = _metrics(
        rule,
        at_cutoff,
        alerted,
        rate,
        cutoffs=[pd.Timestamp(cutoff).date().isoformat()],
        cutoff_base_rate=rate,
        note="backtested at the test cutoff only: p_model of test_predictions as "
        "churn_probability (out-of-time, the model never saw this cutoff)",
    )
    return entry, ""


# ---------------------------------------------------------------- the alerts file


_ARROW_TYPES: dict[str, pa.DataType] = {
    "as_of": pa.timestamp("us", tz="UTC"),
    "raised_at": pa.timestamp("us", tz="UTC"),
    "triggered_at": pa.timestamp("us", tz="UTC"),
    "due_at": pa.timestamp("us", tz="UTC"),
    "churn_probability": pa.float64(),
}


def alerts_table(alerts: pd.DataFrame, columns: Iterable[str] = ALERT_COLUMNS) -> pa.Table:
    """A fixed schema, so that an empty run writes the same columns as a full one (extra columns,
    e.g. contacts, as text)."""
    columns = list(columns)
    arrays = []
    for col in columns:
        kind = _ARROW_TYPES.get(col, pa.string())
        values = alerts[col] if col in alerts.columns else pd.Series([], dtype=object)
        if pa.types.is_timestamp(kind):
            values = pd.to_datetime(values, utc=True)
        elif kind == pa.float64():
            values = pd.to_numeric(values, errors="coerce")
        else:
            values = values.astype(object).where(values.notna(), None)
        arrays.append(pa.array(values, type=kind, from_pandas=True))
    return pa.Table.from_arrays(arrays, names=columns)
