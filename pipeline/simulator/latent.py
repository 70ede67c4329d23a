"""The realistic world: per-customer latent states evolving month by month drive churn; the
tables show only noisy, biased traces of them (``simulate.world: realistic``).

Latent states (never written to the input tables)
-------------------------------------------------
* satisfaction ``s`` (0-10): AR(1) around a customer mean; incidents, escalated and unresolved
  tickets lower it.
* need ``n`` (log scale): AR(1) around a customer mean; a quarter of the customers drift slowly
  down (usage that slowly falls).
* price sensitivity ``c`` (0-1): static, higher for consumers, basic plans and stressed customers.
* financial stress ``f`` (0-1): AR(1) with shocks.
* frailty ``v``: Gamma(FRAILTY_SHAPE, 1/FRAILTY_SHAPE) (mean 1, CV 1/sqrt(shape)), multiplies
  the whole hazard; nothing reveals it. Why that size: ``world.FRAILTY_RATIONALE`` (also in
  simulation.json).

Hazard of month ``m`` (terms in ``world``; lags: satisfaction enters as the mean of this and last
month's state, so the surveys before the cutoff are an early, partial view)::

    g_sat  = logistic((SAT_MID - (s_m + s_{m-1}) / 2) / SAT_SCALE)        saturating
    g_need = logistic((NEED_MID - n_m) / NEED_SCALE)
    press  = 1{annual renewal this month or next} + 1{price increase in last 90 days}
    terms  = satisfaction:      a_s g_sat + a_i g_sat c / 2        (interaction split in half)
             need:              a_n g_need
             price_sensitivity: a_p c press + a_i g_sat c / 2
             financial_stress:  a_f (1 - exp(-2 f)) / (1 - exp(-2))
             competitor:        a_c (0.3 + c) ramp(m)        (regime country, from its date)
    b(m)   = b0 (1 + NEW_EXTRA exp(-tenure months / 3))
    H      = v (b(m) + sum terms);  p_m = 1 - (1 - q) exp(-H)
    contrib_frailty = (v - 1)(b(m) + sum terms), so the contributions sum to H.

Observations (noisy): logins and feature use from need with seasonality (a summer dip) and a
slight satisfaction effect; purchases; surveys answered by a biased minority (response rises
with |s - 6.5|, falls with low need) whose scores are pulled to mid-scale by disengaged
customers; tickets from dissatisfaction, usage, payment failures and price questions near the
annual renewal; payment failures, discount requests and downgrades under financial stress;
competitor mentions in the regime country after its date.
"""

from __future__ import annotations

import numpy as np

from pipeline.simulator.calendar import DAY, HOUR, SECOND
from pipeline.simulator.month import (
    NEVER_CLOSED,
    ChunkSimulator,
    _uniform_ts,
)
from pipeline.simulator.texts import (
    COMMENT_NEUTRAL,
    COMMENT_POSITIVE,
    COMMENT_TEXT_COUNT,
    COMMENT_TEXT_OFFSET,
    COMMENT_WARNING,
    TEXTS,
    TICKET_TEXT_COUNT,
    TICKET_TEXT_GROUP,
    TICKET_TEXT_OFFSET,
)
from pipeline.simulator.world import (
    COMMENT_WARNING_KIND,
    COMPETITOR_HAZARD,
    COUNTRIES,
    CSAT_MEAN,
    DIS,
    ECO,
    FEATURES,
    FRAILTY_SHAPE,
    INTERACTION_HAZARD,
    LANGUAGES,
    LATENT_DRIVERS,
    LATENT_INDEX,
    NEED_HAZARD,
    NEED_MIDPOINT,
    NEED_SCALE,
    NEW_CUSTOMER_EXTRA,
    PRICE_HAZARD,
    PRIORITIES,
    PRIORITY_P,
    REALISTIC_BASELINE_HAZARD,
    REALISTIC_LIFE_EVENT_PROBABILITY,
    REGIME_RAMP_MONTHS,
    REGIME_SHIFT_COUNTRY,
    REGIME_SHIFT_DATE,
    RESPONSE_RATE,
    SATISFACTION_HAZARD,
    SATISFACTION_MIDPOINT,
    SATISFACTION_SCALE,
    SIT,
    STRESS_HAZARD,
    TICKET_CATEGORIES,
    TICKET_CATEGORY_P,
    TP,
)

DRIVER_TYPE = np.array(
    [("dissatisfaction", "economic", "situational").index(d.churn_type) for d in LATENT_DRIVERS]
)
CONTRIB_NAMES = ("baseline",) + tuple(d.name for d in LATENT_DRIVERS)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _rivalix_ticket_texts() -> np.ndarray:
    """Per language: a ticket text naming the competitor (its text id)."""
    ticket = np.zeros(len(LANGUAGES), np.int64)
    for li in range(len(LANGUAGES)):
        for group in (2, 1, 3, 0):  # account, billing, cancellation, technical
            off, cnt = TICKET_TEXT_OFFSET[li, group, 1], TICKET_TEXT_COUNT[li, group, 1]
            hits = [i for i in range(off, off + cnt) if "rivalix" in TEXTS[i].lower()]
            if hits:
                ticket[li] = hits[0]
                break
    return ticket


RIVALIX_TICKET_TEXT = _rivalix_ticket_texts()


class LatentChunkSimulator(ChunkSimulator):
    """The realistic world's chunk: latent states month by month, hazards from them, and the
    observable tables as their noisy traces (same buffers and table contract as the simple
    world)."""

    world = "realistic"
    contrib_names = CONTRIB_NAMES
    life_event_probability = REALISTIC_LIFE_EVENT_PROBABILITY

    def _init_customers(self, existing_fraction: float) -> None:
        super()._init_customers(existing_fraction)  # attributes, contract, noise columns
        rng, n = self.rng, self.n
        seg_consumer = self.segment == 0
        self.sat_mean = np.clip(rng.normal(7.4, 1.1, n), 2.0, 9.8)
        self.sat = np.clip(self.sat_mean + rng.normal(0, 0.8, n), 0.0, 10.0)
        self.sat_prev = self.sat.copy()
        self.need_mean = rng.normal(0.0, 0.8, n) + 0.15 * (self.plan0 >= 2)
        self.need = self.need_mean + rng.normal(0, 0.3, n)
        self.need_drift = np.where(rng.random(n) < 0.25, -rng.uniform(0.04, 0.15, n), 0.0)
        stress0 = rng.beta(0.8, 6.0, n) * np.array([1.3, 0.9, 0.3])[self.segment]
        self.fin = np.minimum(stress0, 1.0)
        self.price_sens = np.clip(
            rng.beta(2.0, 4.0, n)
            + 0.15 * seg_consumer
            + 0.12 * (self.plan0 == 0)
            + 0.3 * self.fin
            - 0.1 * (self.segment == 2),
            0.0,
            1.0,
        )
        self.frailty = rng.gamma(FRAILTY_SHAPE, 1.0 / FRAILTY_SHAPE, n)
        self.regime_country = self.country == COUNTRIES.index(REGIME_SHIFT_COUNTRY)
        self.regime_start = int(
            np.datetime64(REGIME_SHIFT_DATE, "D").astype("datetime64[us]").astype(np.int64)
        )
        self.signup_month = (
            self.signup.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
        )

    # -- the hazard
    def months_since_signup(self, k: int) -> np.ndarray:
        month = (
            np.datetime64(int(self.cal.bounds[k]), "us").astype("datetime64[M]").astype(np.int64)
        )
        return month - self.signup_month

    def renewal_window(self, k: int) -> np.ndarray:
        """1 when the annual contract renews this month or next (tenure months 11, 12 mod 12)."""
        since = self.months_since_signup(k)
        return (since >= 11) & (np.mod(since, 12) >= 11) | (since >= 12) & (np.mod(since, 12) == 0)

    def regime_ramp(self, m: int) -> float:
        """0 before the regime date, then rising linearly to 1 over REGIME_RAMP_MONTHS."""
        if m < self.regime_start:
            return 0.0
        months = (m - self.regime_start) / (30.44 * DAY)
        return float(min(1.0, (months + 1.0) / REGIME_RAMP_MONTHS))

    def latent_contributions(self, at: np.ndarray, k: int, m: int) -> np.ndarray:
        """Hazard contributions (baseline, then each latent driver) of customers `at` at m."""
        s_lag = 0.5 * (self.sat[at] + self.sat_prev[at])
        g_sat = _logistic((SATISFACTION_MIDPOINT - s_lag) / SATISFACTION_SCALE)
        g_need = _logistic((NEED_MIDPOINT - self.need[at]) / NEED_SCALE)
        c = self.price_sens[at]
        increase = self.last["price_increase"][at] >= m - 90 * DAY
        pressure = self.renewal_window(k)[at] + increase
        inter = INTERACTION_HAZARD * g_sat * c
        tenure_months = (m - self.signup[at]) / (30.44 * DAY)
        terms = np.zeros((len(at), len(CONTRIB_NAMES)))
        terms[:, 0] = REALISTIC_BASELINE_HAZARD * (
            1.0 + NEW_CUSTOMER_EXTRA * np.exp(-tenure_months / 3.0)
        )
        i = {name: 1 + j for name, j in LATENT_INDEX.items()}
        terms[:, i["satisfaction"]] = SATISFACTION_HAZARD * g_sat + 0.5 * inter
        terms[:, i["need"]] = NEED_HAZARD * g_need
        terms[:, i["price_sensitivity"]] = PRICE_HAZARD * c * pressure + 0.5 * inter
        terms[:, i["financial_stress"]] = (
            STRESS_HAZARD * -np.expm1(-2.0 * self.fin[at]) / -np.expm1(-2.0)
        )
        terms[:, i["competitor"]] = (
            COMPETITOR_HAZARD * (0.3 + c) * self.regime_ramp(m) * self.regime_country[at]
        )
        terms[:, i["frailty"]] = (self.frailty[at] - 1.0) * terms.sum(axis=1)
        return terms

    def hazards(self, at: np.ndarray, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Hazard by churn type from the latent contributions, scaled by frailty."""
        contrib = self.latent_contributions(at, k, m)
        v = self.frailty[at]
        h = np.zeros((len(at), 3))
        for t in (DIS, ECO, SIT):
            h[:, t] = v * contrib[:, 1:][:, DRIVER_TYPE == t].sum(axis=1)
        # frailty's own column is already the (v - 1) share: take it out of its type again
        h[:, SIT] -= v * contrib[:, 1 + LATENT_INDEX["frailty"]]
        h[:, SIT] += v * contrib[:, 0]
        return h, contrib

    # -- one month of behaviour
    def _month(self, k: int) -> None:
        cal, rng = self.cal, self.rng
        m, m_next = int(cal.bounds[k]), int(cal.bounds[k + 1])
        length = (m_next - m) // DAY
        alive = np.flatnonzero((self.signup < m_next) & (self.churn_ts >= m))
        if k >= cal.first_scored:
            self._churn_step(k, m, length)
        a = alive
        n = len(a)
        start = np.maximum(self.signup[a], m)
        stop = np.minimum(self.churn_ts[a], m_next)
        s = self.sat[a]
        g_sat = _logistic((SATISFACTION_MIDPOINT - s) / SATISFACTION_SCALE)
        need = self.need[a]
        f = self.fin[a]
        c = self.price_sens[a]
        first_month = self.signup[a] >= m
        leaving = self.churn_ts[a] < m_next
        renewal_window = self.renewal_window(k)[a] & ~first_month
        competitor = self.regime_country[a] * self.regime_ramp(m)

        # logins: need with a summer dip, a slight satisfaction effect and noise per day
        season = 1.0 - 0.15 * np.cos(2 * np.pi * (cal.month_of_year[k] - 1) / 12.0 - np.pi)
        base = 0.6 * _logistic(1.2 * need + 0.4) * season * (0.85 + 0.15 * (s / 10.0))
        decay = np.where(leaving, 0.4, 0.0)
        r, d, ts = self._login_days(a, m, length, start, stop, leaving, base, decay)
        minutes = np.round(rng.lognormal(2.5 + 0.15 * need[r], 0.7, len(r)), 1)
        self._event(a[r], ts, "login", minutes)
        self._feature_use(a, r, ts, minutes, stop, 0.3 * _logistic(need[r] + 0.5))

        surveys: list[tuple[np.ndarray, np.ndarray, int]] = []
        self._purchases(a, start, stop, 0.25 * np.exp(0.3 * need) * (0.7 + 0.03 * s), surveys)

        # monthly payment on the signup day of month; failures under financial stress
        fail = self._renewal_payments(
            a, k, m, start, stop, first_month, 0.01 + 0.25 * f, 0.85 - 0.3 * f,
            renewal_window, 0.3, surveys,
        )  # fmt: skip

        # price increases, plan changes; discount requests near renewal and under stress
        recent_increase = self.last["price_increase"][a] >= m - 60 * DAY
        raise_price = self._price_and_plan_changes(
            a, start, stop, first_month,
            0.004 + 0.01 * (need > 0.8),
            0.003 + 0.04 * f + 0.02 * c * renewal_window,
        )  # fmt: skip
        self._discount_requests(
            a, start, stop,
            0.004 + 0.06 * f + 0.15 * c * renewal_window + 0.08 * c * recent_increase
            + 0.05 * competitor * c,
        )  # fmt: skip

        # tickets: dissatisfaction, usage, payment failures, price questions near renewal
        base_rate = 0.02 + 0.15 * g_sat + 0.03 * _logistic(need) + 0.4 * fail
        price_q = 0.25 * c * renewal_window + 0.1 * c * recent_increase
        comp_q = 0.06 * competitor * (1.0 - s / 10.0 + 0.3)
        count_general = rng.poisson(base_rate)
        count_price = rng.poisson(price_q)
        count_comp = rng.poisson(comp_q)
        self._tickets_latent(
            a, start, stop, s, fail, surveys, count_general, count_price, count_comp
        )

        onb = self.onboarding_survey_ts[a]
        o = np.flatnonzero((onb >= m) & (onb < m_next))
        surveys.append((o, onb[o], TP["onboarding"]))
        if cal.month_of_year[k] in (1, 4, 7, 10):
            surveys.append((np.arange(n), _uniform_ts(rng, start, stop), TP["relationship"]))
        self._surveys_latent(a, surveys, stop, s, need, c, competitor)

        # the latent states of next month (billing recorded its own history)
        incident = (rng.random(n) < 0.06) * rng.exponential(1.8, n)
        self.sat_prev[a] = s
        self.sat[a] = np.clip(
            s + 0.2 * (self.sat_mean[a] - s) + rng.normal(0, 0.45, n) - incident
            - self._ticket_feedback - 0.4 * raise_price * c,
            0.0,
            10.0,
        )  # fmt: skip
        self.need[a] = (
            need + 0.1 * (self.need_mean[a] - need) + self.need_drift[a] + rng.normal(0, 0.2, n)
        )
        shock = (rng.random(n) < 0.025) * rng.uniform(0.3, 0.7, n)
        self.fin[a] = np.clip(0.88 * f + shock + rng.normal(0, 0.03, n), 0.0, 1.0)

    def _tickets_latent(
        self,
        a: np.ndarray,
        start: np.ndarray,
        stop: np.ndarray,
        s: np.ndarray,
        fail: np.ndarray,
        surveys: list[tuple[np.ndarray, np.ndarray, int]],
        count_general: np.ndarray,
        count_price: np.ndarray,
        count_comp: np.ndarray,
    ) -> None:
        rng = self.rng
        tr = np.concatenate(
            [np.repeat(np.arange(len(a)), c) for c in (count_general, count_price, count_comp)]
        )
        cause = np.repeat(
            np.arange(3), [count_general.sum(), count_price.sum(), count_comp.sum()]
        )  # 0 general, 1 price question, 2 competitor
        k = len(tr)
        opened = _uniform_ts(rng, start[tr], stop[tr])
        unhappy = np.clip((7.0 - s[tr]) / 5.0, 0.0, 1.0)
        category = rng.choice(len(TICKET_CATEGORIES), k, p=TICKET_CATEGORY_P)
        category = np.where(fail[tr] & (rng.random(k) < 0.6), 0, category)
        category = np.where(rng.random(k) < 0.12 * unhappy, 3, category)
        category = np.where(cause == 1, 0, np.where(cause == 2, 2, category))
        priority = rng.choice(len(PRIORITIES), k, p=PRIORITY_P)
        escalated = rng.random(k) < 0.03 + 0.2 * unhappy + 0.08 * (priority >= 2)
        resolution_days = rng.exponential(1.0 + 2.0 * unhappy) + 3.0 * escalated
        resolution = (resolution_days * 86_400).astype(np.int64) * SECOND + 600 * SECOND
        never = rng.random(k) < 0.02 + 0.08 * unhappy
        closed = np.where(never, NEVER_CLOSED, opened + resolution)
        rated = ~never & (rng.random(k) < 0.35 + 0.3 * unhappy)
        rating = np.clip(
            np.rint(0.7 * s[tr] + 2.0 - 0.2 * resolution_days + rng.normal(0, 1.5, k)), 1, 10
        )
        satisfaction = np.where(rated, rating, -1).astype(np.int64)
        warn = (
            (category == 3)
            | (cause > 0) & (rng.random(k) < 0.6)
            | (rng.random(k) < 0.03 + 0.3 * unhappy)
        )
        lang = self.language[a[tr]]
        group = TICKET_TEXT_GROUP[category]
        w = warn.astype(np.int64)
        nth = (rng.random(k) * TICKET_TEXT_COUNT[lang, group, w]).astype(np.int64)
        text = TICKET_TEXT_OFFSET[lang, group, w] + nth
        text = np.where((cause == 2) & warn, RIVALIX_TICKET_TEXT[lang], text)
        self.tickets.add(
            cust=a[tr],
            opened=opened,
            closed=closed,
            category=category,
            priority=priority,
            escalated=escalated,
            satisfaction=satisfaction,
            text=text,
        )
        np.maximum.at(self.max_ticket_close, a[tr], closed)
        support = ~never & (closed + HOUR < stop[tr])
        surveys.append((tr[support], closed[support] + HOUR, TP["support"]))
        bad = escalated | never | (resolution_days > 5)
        self._ticket_feedback = 0.6 * np.bincount(tr, bad, len(a))

    def _surveys_latent(
        self,
        a: np.ndarray,
        surveys: list[tuple[np.ndarray, np.ndarray, int]],
        stop: np.ndarray,
        s: np.ndarray,
        need: np.ndarray,
        c: np.ndarray,
        competitor: np.ndarray,
    ) -> None:
        rng = self.rng
        rows = np.concatenate([x[0] for x in surveys])
        sent = np.concatenate([x[1] for x in surveys])
        tp = np.concatenate([np.full(len(x[0]), x[2]) for x in surveys])
        ok = sent < stop[rows]
        rows, sent, tp = rows[ok], sent[ok], tp[ok]
        self._event(a[rows], sent, "survey_sent", None, len(FEATURES) + tp)
        k = len(rows)
        sr, nr = s[rows], need[rows]
        # a biased minority answers: the unhappy and the very happy, seldom the disengaged
        extremity = np.clip(0.25 + 0.3 * np.abs(sr - 6.5), 0.25, 1.6)
        engaged = _logistic(1.5 * (nr + 0.5))
        reply_ts = sent + (rng.exponential(0.7, k) * 86_400).astype(np.int64) * SECOND
        reply = (rng.random(k) < RESPONSE_RATE[tp] * 0.6 * extremity * (0.3 + 0.7 * engaged)) & (
            reply_ts < stop[rows]
        )
        # disengaged customers answer towards the middle of the scale
        felt = engaged * sr + (1.0 - engaged) * 6.0
        noise = rng.normal(0.0, 1.0, k)
        nps = tp == TP["relationship"]
        offset = CSAT_MEAN[tp] - 7.5
        csat = np.clip(np.rint(felt + np.where(nps, 0.0, offset) + 1.0 * noise), 1, 10)
        nps_score = np.clip(np.rint(felt + 0.6 + 1.3 * noise), 0, 10)
        score = np.where(nps, nps_score, csat).astype(np.int64)
        low = np.where(nps, score <= 6, score <= 5)
        high = np.where(nps, score >= 9, score >= 8)
        has_comment = rng.random(k) < 0.1 + 0.3 * low
        unhappy = np.clip((7.0 - sr) / 5.0, 0.0, 1.0)
        warn = np.where(low, rng.random(k) < 0.7, rng.random(k) < 0.02 + 0.2 * unhappy)
        kind = np.where(warn, COMMENT_WARNING, np.where(high, COMMENT_POSITIVE, COMMENT_NEUTRAL))
        lang = self.language[a[rows]]
        nth = (rng.random(k) * COMMENT_TEXT_COUNT[lang, kind]).astype(np.int64)
        # a warning comment's subject follows its cause: price, competitor, or the service
        subject = np.where(
            rng.random(k) < 0.6 * competitor[rows],
            COMMENT_WARNING_KIND["competitor"],
            np.where(
                rng.random(k) < 0.5 * c[rows],
                COMMENT_WARNING_KIND["price"],
                np.where(
                    rng.random(k) < 0.5,
                    COMMENT_WARNING_KIND["service"],
                    COMMENT_WARNING_KIND["cancel"],
                ),
            ),
        )
        nth = np.where(kind == COMMENT_WARNING, subject, nth)
        comment = COMMENT_TEXT_OFFSET[lang, kind] + nth
        comment = np.where(has_comment, comment, -1)
        self.responses.add(
            cust=a[rows[reply]],
            ts=reply_ts[reply],
            touchpoint=tp[reply],
            metric=nps[reply].astype(np.int64),
            score=score[reply],
            comment=comment[reply],
        )
