"""The feature catalog: every feature's name, group and plain-language description, and which
feature families the data has inputs for (built) or not (skipped, with the reason)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import ibis

Group = Literal["engagement", "experience", "service", "economic", "contract", "text", "profile"]

GROUPS: tuple[str, ...] = (
    "engagement",
    "experience",
    "service",
    "economic",
    "contract",
    "text",
    "profile",
)

# How analysts read a group: which churn type it speaks for (DESIGN.md).
GROUP_CHURN_TYPE: dict[str, str] = {
    "experience": "dissatisfaction",
    "service": "dissatisfaction",
    "text": "dissatisfaction",
    "economic": "economic",
    "engagement": "disengagement",
    "contract": "other",
    "profile": "other",
}


@dataclass(frozen=True)
class FeatureInfo:
    """One feature column: what it is called, which group it belongs to, what it means."""

    name: str
    group: str
    description: str

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(
                f"feature {self.name!r}: unknown group {self.group!r}; use one of {GROUPS}"
            )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureSet:
    """A feature family's output: one row per spine row (customer_id, cutoff) plus its catalog.

    `table` has exactly the spine's keys and the columns named in `catalog`, nothing else.
    """

    table: ibis.Table
    catalog: tuple[FeatureInfo, ...]


@dataclass(frozen=True)
class DataFacts:
    """What the source tables hold, over all their rows: which families have inputs.

    Schema facts (a column exists, an event type or survey metric occurs at least once, a table
    has rows), not values at a cutoff: the same tables give the same facts at featurize and at
    scoring time, and so the same feature columns. `forced` names families built even without
    inputs (as before this check), because a model reads their columns.
    """

    customer_columns: frozenset[str]
    event_types: frozenset[str] = frozenset()  # the event types featurize reads that occur
    valued_event_types: frozenset[str] = frozenset()  # ... with at least one non-null value
    has_events: bool = False  # an events table exists
    has_responses: bool = False  # the responses table exists and has rows
    response_metrics: frozenset[str] = frozenset()  # its metrics, lower-cased
    has_tickets: bool = False  # the tickets table exists and has rows
    has_texts: bool = False  # some responses.comment or tickets.text is not blank
    forced: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FamilyDecision:
    """Whether one feature family is built for this data, and why (or why not)."""

    name: str  # "<domain>.<family>", e.g. "economic.fee"
    built: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"built": self.built, "reason": self.reason}


def decision(name: str, facts: DataFacts, missing: str | None, present: str) -> FamilyDecision:
    """Built when nothing is `missing` (the reason it is skipped), or when the family is forced."""
    if missing is None:
        return FamilyDecision(name, True, present)
    if name in facts.forced:
        return FamilyDecision(name, True, f"{missing}; built anyway: the model reads its columns")
    return FamilyDecision(name, False, missing)
