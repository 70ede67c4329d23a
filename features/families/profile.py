"""Profile and contract: static customer attributes (plan, country, segment, ...) as features.

Assumption: these attributes are known from signup on and do not change (the contract tables
carry no history for them). Date columns are left out: a date such as "cancelled_on" would
leak the future, and tenure is already a feature.
"""

from __future__ import annotations

import logging

import ibis

from features.catalog import DataFacts, FamilyDecision, FeatureInfo, FeatureSet
from features.settings import FeaturizeParams
from features.tables import KEYS, Tables, attach

log = logging.getLogger(__name__)

ID_AND_DATE_COLUMNS = ("customer_id", "signup_date", "cutoff")


def profile_columns(customers: ibis.Table, cfg: FeaturizeParams) -> dict[str, str]:
    """Extra customers columns to use, each mapped to 'string' or 'float64' (skips logged)."""
    schema = customers.schema()
    chosen: dict[str, str] = {}
    strings = []
    for name, dtype in schema.items():
        if name in ID_AND_DATE_COLUMNS or name in cfg.profile_exclude:
            continue
        if dtype.is_string():
            strings.append(name)
            chosen[name] = "string"
        elif dtype.is_boolean() or dtype.is_numeric():
            chosen[name] = "float64"
        else:
            log.info(
                "customers.%s (%s) is not a profile feature: only text, numbers, booleans",
                name,
                dtype,
            )
    if strings:
        counts = customers.aggregate(**{c: customers[c].nunique() for c in strings}).to_pyarrow()
        for c in strings:
            n = counts[c][0].as_py()
            if n > cfg.max_categories:
                log.warning(
                    "customers.%s has %d distinct values (> featurize.max_categories=%d): "
                    "not a feature",
                    c,
                    n,
                    cfg.max_categories,
                )
                del chosen[c]
    return chosen


def profile_families(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Profile attributes are always built: their columns are whatever customers has."""
    return (FamilyDecision("profile.attributes", True, "the customers table's extra columns"),)


def profile_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet:
    """Every extra customers column: text as category strings, numbers and booleans as floats."""
    customers = tables.customers
    chosen = profile_columns(customers, cfg)
    sp = spine.select(*KEYS).view()
    c = customers.select(
        "customer_id", **{name: customers[name].cast(t) for name, t in chosen.items()}
    )
    values = sp.join(c, "customer_id").select(*KEYS, *chosen)
    catalog = tuple(
        FeatureInfo(
            name,
            "contract" if name in cfg.contract_columns else "profile",
            f"customer attribute {name!r} ({'category' if t == 'string' else 'number'}), "
            "as recorded at ingest",
        )
        for name, t in chosen.items()
    )
    return FeatureSet(attach(spine, values), catalog)
