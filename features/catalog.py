"""The feature catalog: every feature's name, group and plain-language description."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
