"""Experience: survey scores per touchpoint (CSAT), NPS level and change, CES, response rate."""

from __future__ import annotations

import logging

import ibis

from features.catalog import DataFacts, FamilyDecision, FeatureInfo, FeatureSet, decision
from features.families.engagement import events_daily_of, merge
from features.settings import FeaturizeParams
from features.tables import KEYS, Aggregates, Tables, attach, slug, with_cutoff_day

log = logging.getLogger(__name__)

SCORES = "experience.scores"
NPS = "experience.nps"
RESPONSE_RATE = "experience.response_rate"
NO_SURVEYS = "no survey responses (the responses table is missing or empty)"


def experience_families(facts: DataFacts, cfg: FeaturizeParams) -> tuple[FamilyDecision, ...]:
    """Survey scores, NPS, response rate: built or not, and why."""
    metrics = ", ".join(sorted(facts.response_metrics))
    nps = cfg.nps_metric.lower()
    survey = cfg.survey_event_type
    if not facts.has_responses:
        nps_missing: str | None = NO_SURVEYS
        rate_missing: str | None = NO_SURVEYS
    else:
        nps_missing = None if nps in facts.response_metrics else f"no {nps!r} responses"
        rate_missing = None
        if not survey:
            rate_missing = "no featurize.survey_event_type"
        elif survey not in facts.event_types:
            rate_missing = f"no {survey} events (surveys sent) in the events table"
    return (
        decision(
            SCORES, facts, None if facts.has_responses else NO_SURVEYS, f"responses: {metrics}"
        ),
        decision(NPS, facts, nps_missing, f"{nps} responses"),
        decision(RESPONSE_RATE, facts, rate_missing, f"responses and {survey} events"),
    )


def _responses_before(responses: ibis.Table, spine: ibis.Table) -> ibis.Table:
    """Every response strictly before its cutoff, with days_back (1 = the day before the cutoff)."""
    sp = with_cutoff_day(spine)
    r = responses.select(
        "customer_id",
        "ts",
        touchpoint=responses.touchpoint.cast("string"),
        metric=responses.metric.cast("string").lower(),
        score=responses.score.cast("float64"),
    )
    j = sp.join(r, [sp.customer_id == r.customer_id, r.ts < sp.cutoff])
    return j.select(
        *KEYS,
        "ts",
        "touchpoint",
        "metric",
        "score",
        within_days=(j.cutoff.epoch_seconds() - j.ts.epoch_seconds()) / 86_400,
    )


def score_features(responses: ibis.Table, spine: ibis.Table, cfg: FeaturizeParams) -> FeatureSet:
    """CSAT per touchpoint (last, min, mean, low counts), overall CSAT and CES per window."""
    j = _responses_before(responses, spine)
    csat = j.metric == cfg.csat_metric.lower()
    ces = j.metric == cfg.ces_metric.lower()
    low = j.score <= cfg.csat_low_threshold
    feats = Aggregates("experience")
    add = feats.add

    for tp in cfg.touchpoints:
        is_tp = csat & (j.touchpoint == tp)
        t = slug(tp)
        add(
            f"csat_{t}_last",
            j.score.argmax(j.ts, where=is_tp),
            f"latest CSAT score at the {tp} touchpoint before the cutoff",
        )
        for w in cfg.summary_windows:
            in_w = is_tp & (j.within_days <= w)
            add(
                f"csat_{t}_min_{w}d",
                j.score.min(where=in_w),
                f"lowest CSAT at {tp} in the {w} days before the cutoff",
            )
            add(
                f"csat_{t}_mean_{w}d",
                j.score.mean(where=in_w),
                f"mean CSAT at {tp} in the {w} days before the cutoff",
            )
            add(
                f"csat_{t}_low_{w}d",
                j.score.count(where=in_w & low),
                f"CSAT scores <= {cfg.csat_low_threshold} at {tp} in the {w} days "
                "before the cutoff",
                fill=True,
            )
        add(
            f"csat_{t}_low_ever",
            j.score.count(where=is_tp & low),
            f"CSAT scores <= {cfg.csat_low_threshold} at {tp} ever before the cutoff",
            fill=True,
        )
    for w in cfg.summary_windows:
        add(
            f"csat_mean_{w}d",
            j.score.mean(where=csat & (j.within_days <= w)),
            f"mean CSAT over all touchpoints in the {w} days before the cutoff",
        )
        add(
            f"ces_mean_{w}d",
            j.score.mean(where=ces & (j.within_days <= w)),
            f"mean customer effort score in the {w} days before the cutoff",
        )
        add(
            f"survey_responses_{w}d",
            j.score.count(where=j.within_days <= w),
            f"survey responses of any kind in the {w} days before the cutoff",
            fill=True,
        )
    return feats.feature_set(j, spine)


def nps_features(responses: ibis.Table, spine: ibis.Table, cfg: FeaturizeParams) -> FeatureSet:
    """Latest NPS, its category (promoter >= 9, passive 7-8, detractor <= 6) and change vs the
    one before."""
    j = _responses_before(responses, spine)
    j = j.filter(j.metric == cfg.nps_metric.lower())
    rank = ibis.row_number().over(
        group_by=list(KEYS), order_by=[ibis.desc(j.ts), ibis.desc(j.score)]
    )
    ranked = j.mutate(rank=rank)
    ranked = ranked.filter(ranked.rank < 2)
    g = ranked.group_by(list(KEYS)).aggregate(
        nps_last=ranked.score.max(where=ranked.rank == 0),
        nps_previous=ranked.score.max(where=ranked.rank == 1),
    )
    values = g.select(
        *KEYS,
        "nps_last",
        nps_category_last=ibis.cases(
            (g.nps_last.isnull(), ibis.null("string")),
            (g.nps_last >= 9, "promoter"),
            (g.nps_last >= 7, "passive"),
            else_="detractor",
        ),
        nps_change_vs_previous=g.nps_last - g.nps_previous,
    )
    catalog = (
        FeatureInfo("nps_last", "experience", "latest NPS score (0-10) before the cutoff"),
        FeatureInfo(
            "nps_category_last",
            "experience",
            "category of the latest NPS: promoter (>= 9), passive (7-8), detractor (<= 6)",
        ),
        FeatureInfo(
            "nps_change_vs_previous",
            "experience",
            "latest NPS minus the NPS before it; null with fewer than two",
        ),
    )
    return FeatureSet(attach(spine, values), catalog)


def response_rate(tables: Tables, spine: ibis.Table, cfg: FeaturizeParams) -> FeatureSet | None:
    """Survey responses / surveys sent in the longest summary window (null when none sent)."""
    if not cfg.survey_event_type or tables.responses is None:
        return None
    daily = events_daily_of(tables, [cfg.survey_event_type])
    if daily is None:
        return None
    w = max(cfg.summary_windows)
    sp = with_cutoff_day(spine)
    j = sp.join(
        daily,
        [
            sp.customer_id == daily.customer_id,
            daily.day < sp.cutoff_day,
            daily.day >= sp.cutoff_day - w,
        ],
    )
    sent = j.group_by(list(KEYS)).aggregate(sent=j.n.sum())
    r = _responses_before(tables.responses, spine)
    r = r.filter(r.within_days <= w)
    got = r.group_by(list(KEYS)).aggregate(got=r.count())
    base = attach(spine, sent, zero_fill=("sent",))
    both = base.left_join(got, list(KEYS))
    both = both.select(*KEYS, "sent", got=both.got.fill_null(0))
    name = f"survey_response_rate_{w}d"
    values = both.select(
        *KEYS,
        **{
            name: ibis.ifelse(
                both.sent > 0, both.got.cast("float64") / both.sent, ibis.null("float64")
            )
        },
    )
    info = FeatureInfo(
        name,
        "experience",
        f"survey responses / {cfg.survey_event_type} events in the {w} days before "
        "the cutoff; null if none sent",
    )
    return FeatureSet(values, (info,))


def experience_features(
    tables: Tables, spine: ibis.Table, cfg: FeaturizeParams, facts: DataFacts | None = None
) -> FeatureSet:
    """All experience features; empty when there is no responses table.

    With `facts`, only what the data has inputs for (`experience_families`); None: everything.
    """
    if tables.responses is None:
        log.warning("no responses table: experience features skipped")
        return merge(spine, [])
    built = {d.name for d in experience_families(facts, cfg) if d.built} if facts else None
    parts = []
    if built is None or SCORES in built:
        parts.append(score_features(tables.responses, spine, cfg))
    if built is None or NPS in built:
        parts.append(nps_features(tables.responses, spine, cfg))
    if built is None or RESPONSE_RATE in built:
        rate = response_rate(tables, spine, cfg)
        if rate is not None:
            parts.append(rate)
    return merge(spine, parts)
