"""Text features: how often a customer's comments and ticket texts mention price, speed ..."""

from __future__ import annotations

import logging
from typing import Any

import ibis
import ibis.expr.types as ir

from features.catalog import DataFacts, FamilyDecision, FeatureInfo, FeatureSet, decision
from features.lexicon import Lexicon, load_lexicon, normalize_column
from features.settings import FeaturizeParams
from features.tables import KEYS, Tables, attach

log = logging.getLogger(__name__)

MIN_WINDOW_DAYS = 30  # shorter windows hold too few texts per customer to be worth a column
FEEDBACK_WINDOW_DAYS = 90  # window of the text count and mean length

# (table attribute, timestamp column, text column) of each free-text source (DESIGN.md contract)
TEXT_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("responses", "ts", "comment"),
    ("tickets", "opened_at", "text"),
)


def mention_windows(windows: tuple[int, ...] | list[int]) -> list[int]:
    """The windows (days) for mention counts: those of `featurize.windows` of 30 days or more."""
    chosen = sorted({int(w) for w in windows if w >= MIN_WINDOW_DAYS})
    if not chosen:
        raise ValueError(
            f"text features need at least one window of {MIN_WINDOW_DAYS} days or more; "
            f"featurize.windows is {list(windows)}. Add e.g. 90 to featurize.windows in "
            "params.yaml."
        )
    return chosen


def mentions_feature(category: str, window: int) -> str:
    return f"text_{category}_mentions_{window}d"


def total_mentions_feature(window: int) -> str:
    return f"text_mentions_total_{window}d"


# A text counts when it has a character other than white space (much cheaper than strip()).
_NOT_BLANK = "[^ \t\n\r\f\v\u00a0\u2000-\u200b\u3000\ufeff]"

FEEDBACK_COUNT = f"text_feedback_count_{FEEDBACK_WINDOW_DAYS}d"
FEEDBACK_MEAN_LENGTH = f"text_feedback_mean_length_{FEEDBACK_WINDOW_DAYS}d"


TEXT = "text.feedback"


def text_families(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Text features: built when some comment or ticket text is not blank."""
    sources = ", ".join(f"{t}.{c}" for t, _, c in TEXT_SOURCES)
    missing = None if facts.has_texts else f"no text: {sources} missing or blank"
    return (decision(TEXT, facts, missing, sources),)


def has_feedback_text(tables: Tables) -> bool:
    """Whether any source holds a non-blank text (a scan of the text columns)."""
    feedback = _feedback_texts(tables, "timestamp('UTC')")
    return feedback is not None and bool(feedback.count().to_pyarrow().as_py())


def text_features(
    tables: Tables, spine: ir.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet:
    """Lexicon mention counts and feedback volume per (customer_id, cutoff), from earlier texts.

    Reads `tables.responses` and `tables.tickets` (either may be None or lack its text column)
    and `cfg.windows`, `cfg.lexicon`. A text counts in a window of
    w days when cutoff - w days <= its timestamp < cutoff (responses.ts, tickets.opened_at).
    Counts are 0 for customers without texts; the mean length is NULL when there is no text.
    With `facts`, nothing when the data has no text at all (`text_families`).
    """
    if facts is not None and not text_families(facts, cfg)[0].built:
        return FeatureSet(spine.select(*KEYS), ())
    lexicon = load_lexicon(cfg.lexicon)
    windows = mention_windows(tuple(cfg.windows))
    catalog = _catalog(lexicon, windows)
    keys = spine.select(*KEYS).view()
    feedback = _feedback_texts(tables, keys.cutoff.type())
    count_cols = [f.name for f in catalog if f.name != FEEDBACK_MEAN_LENGTH]

    if feedback is None:
        log.info("text features: no responses.comment or tickets.text; all counts are 0")
        table = keys.mutate(
            **{name: ibis.literal(0, "int64") for name in count_cols},
            **{FEEDBACK_MEAN_LENGTH: ibis.null("float64")},
        )
        return FeatureSet(table.select(*KEYS, *(f.name for f in catalog)), catalog)

    longest = max(*windows, FEEDBACK_WINDOW_DAYS)
    # Only texts that can fall in some window; each is normalised once, before the join to cutoffs.
    feedback = feedback.filter(
        feedback.ts < keys.cutoff.max(),
        feedback.ts >= keys.cutoff.min() - ibis.interval(days=longest),
    )
    normalized = feedback.mutate(normalized=normalize_column(feedback.text))
    flags = normalized.select(
        "customer_id",
        "ts",
        text_length=normalized.text.length(),
        **{
            f"_mentions_{cat}": lexicon.mentions_column(normalized.normalized, cat)
            for cat in lexicon.categories
        },
    )

    # Window starts are computed once per cutoff: timestamptz - interval is costly per joined row.
    starts = {w: f"_since_{w}d" for w in sorted({*windows, FEEDBACK_WINDOW_DAYS})}
    cutoffs = keys.distinct().mutate(
        **{name: keys.cutoff - ibis.interval(days=w) for w, name in starts.items()}
    )
    joined = cutoffs.join(
        flags,
        [
            "customer_id",
            flags.ts < cutoffs.cutoff,
            flags.ts >= cutoffs[starts[longest]],
        ],
    )

    def since(days: int) -> ir.BooleanValue:
        return joined.ts >= joined[starts[days]]

    aggs: dict[str, ir.Value] = {}
    for w in windows:
        for cat in lexicon.categories:
            aggs[mentions_feature(cat, w)] = (
                (since(w) & joined[f"_mentions_{cat}"]).cast("int32").sum()
            )
    recent = since(FEEDBACK_WINDOW_DAYS)
    aggs[FEEDBACK_COUNT] = recent.cast("int32").sum()
    aggs[FEEDBACK_MEAN_LENGTH] = joined.text_length.mean(where=recent)
    per_cutoff = joined.group_by(*KEYS).aggregate(**aggs)

    counts = tuple(name for name in aggs if name != FEEDBACK_MEAN_LENGTH)
    out = attach(keys, per_cutoff, zero_fill=counts)
    columns: dict[str, ir.Value] = {name: out[name].cast("int64") for name in counts}
    for w in windows:
        columns[total_mentions_feature(w)] = sum(
            (columns[mentions_feature(cat, w)] for cat in lexicon.categories),
            ibis.literal(0, "int64"),
        )
    columns[FEEDBACK_MEAN_LENGTH] = out[FEEDBACK_MEAN_LENGTH].cast("float64")
    table = out.select(*KEYS, **{f.name: columns[f.name] for f in catalog})
    return FeatureSet(table, catalog)


def _feedback_texts(tables: Any, ts_type: Any) -> ir.Table | None:
    """All non-empty free texts as (customer_id, ts, text); None when no source has any."""
    parts: list[ir.Table] = []
    for attr, ts_col, text_col in TEXT_SOURCES:
        table = getattr(tables, attr, None)
        if table is None:
            continue
        if text_col not in table.columns:
            log.info("text features: %s has no %r column; skipped", attr, text_col)
            continue
        part = table.select(
            customer_id=table.customer_id.cast("string"),
            ts=table[ts_col].cast(ts_type),
            text=table[text_col].cast("string"),
        )
        parts.append(part.filter(part.text.notnull(), part.text.re_search(_NOT_BLANK)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)


def _examples(lexicon: Lexicon, category: str) -> str:
    shown = []
    for term in lexicon.examples(category):
        plain = term.rstrip("*").strip() + ("…" if term.endswith("*") else "")
        shown.append(f"'{plain}'" if plain.isascii() else plain)
    return ", ".join(shown)


def _catalog(lexicon: Lexicon, windows: list[int]) -> tuple[FeatureInfo, ...]:
    infos: list[FeatureInfo] = []
    for w in windows:
        for cat in lexicon.categories:
            about = lexicon.category(cat).description
            infos.append(
                FeatureInfo(
                    mentions_feature(cat, w),
                    "text",
                    f"comments and ticket texts in the last {w} days that mention {about} "
                    f"(e.g. {_examples(lexicon, cat)})",
                )
            )
        infos.append(
            FeatureInfo(
                total_mentions_feature(w),
                "text",
                f"topic mentions in comments and ticket texts in the last {w} days, summed over "
                f"the topics {', '.join(lexicon.categories)} "
                "(a text about two topics counts twice)",
            )
        )
    infos.append(
        FeatureInfo(
            FEEDBACK_COUNT,
            "text",
            f"comments and ticket texts written in the last {FEEDBACK_WINDOW_DAYS} days",
        )
    )
    infos.append(
        FeatureInfo(
            FEEDBACK_MEAN_LENGTH,
            "text",
            f"average length in characters of the comments and ticket texts written in the last "
            f"{FEEDBACK_WINDOW_DAYS} days (empty when there are none)",
        )
    )
    return tuple(infos)
