"""One chunk of customers simulated month by month: their attributes, latent state, behaviour
(events, survey responses, tickets) and churn draws, kept as numpy column buffers."""

from __future__ import annotations

import numpy as np

from pipeline.simulator.calendar import DAY, HOUR, SECOND, Calendar, horizon_probability
from pipeline.simulator.texts import (
    COMMENT_NEUTRAL,
    COMMENT_POSITIVE,
    COMMENT_TEXT_COUNT,
    COMMENT_TEXT_OFFSET,
    COMMENT_WARNING,
    TICKET_TEXT_COUNT,
    TICKET_TEXT_GROUP,
    TICKET_TEXT_OFFSET,
)
from pipeline.simulator.world import (
    BASELINE_HAZARD,
    CHANNEL_ENGAGEMENT,
    CHANNEL_P_BY_SEGMENT,
    COUNTRIES,
    COUNTRY_LANGUAGE,
    COUNTRY_P,
    CSAT_MEAN,
    DEVICE_OS,
    DEVICE_OS_P,
    DIS,
    DRIVER_COEF,
    DRIVER_INDEX,
    DRIVER_TYPE,
    DRIVERS,
    ECO,
    EV,
    FEATURE_P,
    FEATURES,
    HISTORY_DAYS,
    LIFE_EVENT_PROBABILITY,
    LIST_FEE,
    LOW_ENGAGEMENT_LOGIN_DAYS,
    PLAN_P_BY_SEGMENT,
    PRICE_CHANGE_RATE_BY_PLAN,
    PRICE_SENSITIVITY,
    PRIORITIES,
    PRIORITY_P,
    RESPONSE_RATE,
    SEGMENT_P,
    SEGMENTS,
    SIT,
    TICKET_CATEGORIES,
    TICKET_CATEGORY_P,
    TP,
)

NO_CHURN = np.iinfo(np.int64).max  # churn_ts of a customer who has not churned
NEVER_CLOSED = np.iinfo(np.int64).max  # closed_at of a ticket that is never closed
LONG_AGO = np.iinfo(np.int64).min // 4  # "last time" of something that never happened


# ----------------------------------------------------------------------------- helpers
def _choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Categorical draw per row of `probs` (n, k) (rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1)


def _uniform_ts(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whole-second timestamps uniform in [lo, hi) (both whole seconds, hi > lo)."""
    seconds = (hi - lo) // SECOND
    return lo + (rng.random(len(lo)) * seconds).astype(np.int64) * SECOND


def _days(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Whole-second durations uniform in [lo, hi) days."""
    return (rng.uniform(lo, hi, n) * 86_400).astype(np.int64) * SECOND


class _Rows:
    """Column buffers of one output table, appended month by month."""

    def __init__(self, *names: str) -> None:
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in names}

    def add(self, **columns: np.ndarray) -> None:
        lengths = {len(v) for v in columns.values()}
        assert len(lengths) == 1 and set(columns) == set(self.parts), columns.keys()
        for name, values in columns.items():
            self.parts[name].append(values)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.array([]) for k, v in self.parts.items()}


# ----------------------------------------------------------------------------- one chunk
class ChunkSimulator:
    """Customers [first_id, first_id + n) simulated month by month, vectorised over customers."""

    def __init__(
        self,
        first_id: int,
        n: int,
        seed: np.random.SeedSequence,
        cal: Calendar,
        horizon_days: int,
        existing_fraction: float,
    ) -> None:
        self.first_id, self.n, self.cal, self.horizon_days = first_id, n, cal, horizon_days
        self.rng = np.random.default_rng(seed)
        self.events = _Rows("cust", "ts", "type", "value", "feature")
        self.responses = _Rows("cust", "ts", "touchpoint", "metric", "score", "comment")
        self.tickets = _Rows(
            "cust", "opened", "closed", "category", "priority", "escalated", "satisfaction", "text"
        )
        self.truth = _Rows(
            "cust", "month", "true_probability", "p_month", "h", "contrib", "prob", "churn_type"
        )
        self._init_customers(existing_fraction)

    # -- customers and latent state
    def _init_customers(self, existing_fraction: float) -> None:
        rng, n, cal = self.rng, self.n, self.cal
        existing = rng.random(n) < existing_fraction
        hist_lo = cal.start - HISTORY_DAYS * DAY
        lo = np.where(existing, hist_lo, cal.start)
        hi = np.where(existing, cal.start, cal.end - DAY)
        self.signup = _uniform_ts(rng, lo, hi)
        self.segment = rng.choice(len(SEGMENTS), n, p=SEGMENT_P)
        self.plan0 = _choice(rng, PLAN_P_BY_SEGMENT[self.segment])
        self.country = rng.choice(len(COUNTRIES), n, p=COUNTRY_P)
        self.language = COUNTRY_LANGUAGE[self.country]
        self.channel = _choice(rng, CHANNEL_P_BY_SEGMENT[self.segment])
        self.sensitivity = PRICE_SENSITIVITY[self.segment, self.plan0]
        # noise: drawn here, used nowhere else
        self.marketing_opt_in = rng.random(n) < 0.42
        self.device_os = rng.choice(len(DEVICE_OS), n, p=DEVICE_OS_P)
        self.birth_month = rng.integers(1, 13, n)
        alphabet = np.frombuffer(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", np.uint8)
        code = alphabet[rng.integers(0, len(alphabet), (n, 8))]
        self.referral_code = np.ascontiguousarray(code).view("S8").ravel()
        self.referred = rng.random(n) < 0.35
        # latent state (never read by the hazard)
        self.login_rate = (0.10 + 0.75 * rng.beta(2.5, 2.0, n)) * CHANNEL_ENGAGEMENT[self.channel]
        self.login_rate *= np.where(self.plan0 >= 2, 1.1, 1.0)
        stress = rng.beta(0.8, 6.0, n) * np.array([1.3, 0.9, 0.3])[self.segment]
        self.stress = np.minimum(stress, 1.0)
        self.dissat = rng.exponential(0.15, n) + (rng.random(n) < 0.15) * rng.exponential(0.8, n)
        # contract state
        self.plan = self.plan0.copy()
        self.fee = LIST_FEE[self.plan0].copy()
        signup_day = self.signup // DAY * DAY
        self.signup_time_of_day = self.signup - signup_day
        self.renewal_dom = (
            self.signup.astype("datetime64[us]").astype("datetime64[D]")
            - self.signup.astype("datetime64[us]").astype("datetime64[M]").astype("datetime64[D]")
        ).astype(np.int64)  # 0-based day of month
        self.onboarding_survey_ts = self.signup + _days(rng, n, 3, 10)
        self.churn_ts = np.full(n, NO_CHURN, np.int64)
        self.churn_type = np.full(n, -1, np.int64)
        # observable history needed by the hazard: last times, open tickets, recent login days
        self.last = {
            name: np.full(n, LONG_AGO, np.int64)
            for name in (
                "after_sales_csat_low",
                "csat_low_other",
                "ticket_escalated",
                "complaint_text",
                "price_increase",
                "discount_request",
                "payment_failure",
            )
        }
        self.max_ticket_close = np.full(n, LONG_AGO, np.int64)
        self.recent_logins = np.zeros((n, 30), bool)  # the 30 days before the current month
        self._ticket_feedback = np.zeros(0)  # latent dissatisfaction added by this month's tickets

    def run(self) -> None:
        """Simulate every month into the chunk's buffers."""
        for k in range(self.cal.months):
            self._month(k)

    # -- the hazard
    def driver_values(self, at: np.ndarray, m: int) -> np.ndarray:
        """x_j(m) for customers `at`, from their observable history strictly before m."""
        x = np.zeros((len(at), len(DRIVERS)))

        def recent(name: str) -> np.ndarray:
            window = DRIVERS[DRIVER_INDEX[name]].window_days
            return self.last[name][at] >= m - window * DAY

        tenure = m - self.signup[at]
        login_days = self.recent_logins[at].sum(axis=1)
        low = np.clip((LOW_ENGAGEMENT_LOGIN_DAYS - login_days) / LOW_ENGAGEMENT_LOGIN_DAYS, 0, 1)
        values = {
            "after_sales_csat_low": recent("after_sales_csat_low"),
            "csat_low_other": recent("csat_low_other"),
            "ticket_escalated": recent("ticket_escalated"),
            "ticket_open": self.max_ticket_close[at] >= m,
            "complaint_text": recent("complaint_text"),
            "low_engagement": np.where(tenure >= 30 * DAY, low, 0.0),
            "price_increase_sensitive": (
                (self.last["price_increase"][at] >= m - 90 * DAY) * self.sensitivity[at]
            ),
            "discount_request": recent("discount_request"),
            "payment_failure": recent("payment_failure"),
            "new_customer": tenure < 90 * DAY,
            "basic_plan": self.plan0[at] == 0,
        }
        for name, value in values.items():
            x[:, DRIVER_INDEX[name]] = value
        return x

    life_event_probability = LIFE_EVENT_PROBABILITY  # monthly, on top of the hazards

    def hazards(self, at: np.ndarray, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Customers `at`'s monthly hazard by churn type (dissatisfaction, economic,
        situational) and the per-driver contributions the truth file keeps."""
        contrib = self.driver_values(at, m) * DRIVER_COEF
        h = np.stack([contrib[:, DRIVER_TYPE == t].sum(axis=1) for t in (DIS, ECO, SIT)], axis=1)
        h[:, SIT] += BASELINE_HAZARD
        return h, contrib

    def _churn_step(self, k: int, m: int, length_days: int) -> None:
        rng = self.rng
        at = np.flatnonzero((self.signup < m) & (self.churn_ts == NO_CHURN))
        h, contrib = self.hazards(at, k, m)
        total = h.sum(axis=1)
        q = self.life_event_probability
        p = 1.0 - (1.0 - q) * np.exp(-total)
        by_cause = (1.0 - q) * (-np.expm1(-total))[:, None] * h / total[:, None]
        by_cause[:, SIT] += q
        p_h = horizon_probability(p, k, self.cal, self.horizon_days)
        prob = by_cause * (p_h / p)[:, None]
        # draws (for every customer at risk, so the stream does not depend on outcomes)
        churn = rng.random(len(at)) < p
        w = rng.random(len(at)) * p
        f = np.clip((w - q) / (p - q), 0.0, 1.0) * total
        kind = np.where(f < h[:, DIS], DIS, np.where(f < h[:, DIS] + h[:, ECO], ECO, SIT))
        kind = np.where(w < q, SIT, kind)
        offset = 1 + (rng.random(len(at)) * (length_days * 86_400 - 1)).astype(np.int64)
        self.churn_ts[at[churn]] = m + offset[churn] * SECOND
        self.churn_type[at[churn]] = kind[churn]
        self.truth.add(
            cust=at,
            month=np.full(len(at), k),
            true_probability=p_h,
            p_month=p,
            h=h,
            contrib=contrib,
            prob=prob,
            churn_type=np.where(churn, kind, -1),
        )

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
        D = self.dissat[a]
        d1 = np.minimum(D, 1.0)
        S = self.stress[a]
        first_month = self.signup[a] >= m
        leaving = self.churn_ts[a] < m_next

        # logins: one per active day; decay towards the churn date for dissatisfied leavers
        decay_strength = np.where(leaving, np.array([0.75, 0.3, 0.0])[self.churn_type[a]], 0.0)
        rate = self.login_rate[a] * np.exp(-0.7 * D)
        r, d, ts = self._login_days(a, m, length, start, stop, leaving, rate, decay_strength)
        minutes = np.round(rng.lognormal(2.7, 0.6, len(r)) * (1.0 - 0.3 * d1[r]), 1)
        self._event(a[r], ts, "login", minutes)
        flags = np.zeros((self.n, length), bool)
        flags[a[r], d] = True
        self.recent_logins = np.concatenate([self.recent_logins, flags], axis=1)[:, -30:]

        # feature use during some sessions
        self._feature_use(a, r, ts, minutes, stop, 0.25)

        surveys: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, sent_ts, touchpoint)

        # purchases and after-sales follow-ups
        rate = 0.28 * (0.5 + self.login_rate[a]) * np.exp(-0.3 * D)
        self._purchases(a, start, stop, rate, surveys)

        # renewal: payment on the signup day of month; failures and retries
        fail = self._renewal_payments(
            a, k, m, start, stop, first_month, 0.02 + 0.2 * S, 0.85, ~first_month, 0.10, surveys
        )

        # price increases (new fee from the next renewal), plan changes, discount requests
        recent_increase = self.last["price_increase"][a] >= m - 60 * DAY
        self._price_and_plan_changes(a, start, stop, first_month, 0.008, 0.004 + 0.05 * S)
        self._discount_requests(a, start, stop, 0.008 + 0.12 * S + 0.10 * recent_increase)

        # support tickets
        count = rng.poisson(0.04 + 0.2 * np.minimum(D, 2.0) + 0.5 * fail)
        tr = np.repeat(np.arange(n), count)
        self._tickets(a, tr, start, stop, D, fail, surveys)

        # onboarding survey; quarterly NPS
        onb = self.onboarding_survey_ts[a]
        o = np.flatnonzero((onb >= m) & (onb < m_next))
        surveys.append((o, onb[o], TP["onboarding"]))
        if cal.month_of_year[k] in (1, 4, 7, 10):
            surveys.append((np.arange(n), _uniform_ts(rng, start, stop), TP["relationship"]))
        self._surveys(a, surveys, stop, D)

        # latent state after the month (billing recorded its own history)
        incident = (rng.random(n) < 0.07) * rng.exponential(0.7, n)
        self.dissat[a] = 0.8 * D + incident + self._ticket_feedback

    # -- pieces of a month that both worlds share (the same draws in the same order)
    def _login_days(
        self,
        a: np.ndarray,
        m: int,
        length: int,
        start: np.ndarray,
        stop: np.ndarray,
        leaving: np.ndarray,
        rate: np.ndarray,
        decay: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Login days of customers `a` this month: each day with probability `rate`, falling by
        up to `decay` towards a leaver's churn date; (row in a, day, timestamp) inside
        [start, stop)."""
        day_starts = m + np.arange(length) * DAY
        to_churn = np.where(leaving, self.churn_ts[a] - m, 1).astype(np.float64)
        frac = np.clip((day_starts[None, :] - m) / to_churn[:, None], 0.0, 1.0)
        p_day = rate[:, None] * (1.0 - decay[:, None] * frac)
        r, d = np.nonzero(self.rng.random((len(a), length)) < p_day)
        ts = m + d * DAY + self.rng.integers(0, 86_400, len(r)) * SECOND
        keep = (ts >= start[r]) & (ts < stop[r])
        return r[keep], d[keep], ts[keep]

    def _feature_use(
        self,
        a: np.ndarray,
        r: np.ndarray,
        ts: np.ndarray,
        minutes: np.ndarray,
        stop: np.ndarray,
        p_use: float | np.ndarray,
    ) -> None:
        """A feature used during a share `p_use` of the login sessions (r, ts, minutes)."""
        rng = self.rng
        use = rng.random(len(r)) < p_use
        fr = r[use]
        fts = ts[use] + (rng.random(use.sum()) * minutes[use] * 60).astype(np.int64) * SECOND
        keep = fts < stop[fr]
        fr, fts = fr[keep], fts[keep]
        self._event(
            a[fr],
            fts,
            "feature_use",
            1.0 + rng.poisson(2.0, len(fr)),
            rng.choice(len(FEATURES), len(fr), p=FEATURE_P),
        )

    def _purchases(
        self,
        a: np.ndarray,
        start: np.ndarray,
        stop: np.ndarray,
        rate: np.ndarray,
        surveys: list,
    ) -> None:
        """Poisson(`rate`) purchases per customer, 75 % followed by an after-sales survey, plus
        after-sales surveys from other contacts."""
        rng, n = self.rng, len(a)
        pr = np.repeat(np.arange(n), rng.poisson(rate))
        pts = _uniform_ts(rng, start[pr], stop[pr])
        self._event(a[pr], pts, "purchase", np.round(rng.lognormal(3.0, 0.6, len(pr)), 2))
        follow = rng.random(len(pr)) < 0.75
        surveys.append(
            (pr[follow], pts[follow] + _days(rng, follow.sum(), 0.5, 3), TP["after_sales"])
        )
        sr = np.repeat(np.arange(n), rng.poisson(0.20, n))
        surveys.append((sr, _uniform_ts(rng, start[sr], stop[sr]), TP["after_sales"]))

    def _renewal_payments(
        self,
        a: np.ndarray,
        k: int,
        m: int,
        start: np.ndarray,
        stop: np.ndarray,
        first_month: np.ndarray,
        p_fail: np.ndarray,
        p_retry: float | np.ndarray,
        survey_when: np.ndarray,
        p_survey: float,
        surveys: list,
    ) -> np.ndarray:
        """The monthly payment on the signup day of month: failures (`p_fail`, not in the first
        month), retries, a billing survey after half the failures and a renewal survey
        (`p_survey` of the payments due where `survey_when`). Returns who failed (also recorded
        in `last["payment_failure"]`)."""
        rng, n = self.rng, len(a)
        day = np.minimum(self.renewal_dom[a], self.cal.calendar_days[k] - 1)
        renewal = m + day * DAY + self.signup_time_of_day[a]
        due = (renewal >= start) & (renewal < stop)
        fail = due & ~first_month & (rng.random(n) < p_fail)
        retry_ts = renewal + _days(rng, n, 1, 4)
        retried = fail & (rng.random(n) < p_retry) & (retry_ts < stop)
        paid = due & ~fail
        self._event(a[paid], renewal[paid], "payment", self.fee[a][paid])
        self._event(a[fail], renewal[fail], "payment_failure", self.fee[a][fail])
        self._event(a[retried], retry_ts[retried], "payment", self.fee[a][retried])
        np.maximum.at(self.last["payment_failure"], a[fail], renewal[fail])
        billing = fail & (rng.random(n) < 0.5)
        surveys.append(
            (
                np.flatnonzero(billing),
                renewal[billing] + _days(rng, billing.sum(), 0.1, 1.5),
                TP["billing"],
            )
        )
        renewal_survey = due & survey_when & (rng.random(n) < p_survey)
        surveys.append(
            (
                np.flatnonzero(renewal_survey),
                renewal[renewal_survey] + _days(rng, renewal_survey.sum(), 0.05, 1),
                TP["renewal"],
            )
        )
        return fail

    def _price_and_plan_changes(
        self,
        a: np.ndarray,
        start: np.ndarray,
        stop: np.ndarray,
        first_month: np.ndarray,
        p_up: float | np.ndarray,
        p_down: np.ndarray,
    ) -> np.ndarray:
        """Price increases by plan, then upgrades (`p_up`) and downgrades (`p_down`) among the
        others, recorded in the customers' fee, plan and history; returns who got a price
        increase. Read `last["price_increase"]` for this month before calling."""
        rng, n = self.rng, len(a)
        plan = self.plan[a]
        change_ts = _uniform_ts(rng, start, stop)
        raise_price = ~first_month & (rng.random(n) < PRICE_CHANGE_RATE_BY_PLAN[plan])
        new_fee = np.round(self.fee[a] * rng.uniform(1.08, 1.25, n), 2)
        self._event(a[raise_price], change_ts[raise_price], "price_change", new_fee[raise_price])
        u_up, u_down = rng.random(n), rng.random(n)
        up = ~first_month & ~raise_price & (plan < 3) & (u_up < p_up)
        down = ~first_month & ~raise_price & ~up & (plan > 0) & (u_down < p_down)
        new_plan = np.where(up, plan + 1, np.where(down, plan - 1, plan))
        moved = up | down
        plan_fee = np.round(LIST_FEE[new_plan] * self.fee[a] / LIST_FEE[plan], 2)
        self._event(a[moved], change_ts[moved], "plan_change", plan_fee[moved])
        np.maximum.at(self.last["price_increase"], a[raise_price], change_ts[raise_price])
        self.fee[a[raise_price]] = new_fee[raise_price]
        self.fee[a[moved]] = plan_fee[moved]
        self.plan[a] = new_plan
        return raise_price

    def _discount_requests(
        self, a: np.ndarray, start: np.ndarray, stop: np.ndarray, p_ask: np.ndarray
    ) -> None:
        ask = self.rng.random(len(a)) < p_ask
        ask_ts = _uniform_ts(self.rng, start, stop)
        self._event(a[ask], ask_ts[ask], "discount_request")
        np.maximum.at(self.last["discount_request"], a[ask], ask_ts[ask])

    def _tickets(
        self,
        a: np.ndarray,
        tr: np.ndarray,
        start: np.ndarray,
        stop: np.ndarray,
        D: np.ndarray,
        fail: np.ndarray,
        surveys: list[tuple[np.ndarray, np.ndarray, int]],
    ) -> None:
        rng = self.rng
        k = len(tr)
        opened = _uniform_ts(rng, start[tr], stop[tr])
        dt = D[tr]
        category = rng.choice(len(TICKET_CATEGORIES), k, p=TICKET_CATEGORY_P)
        category = np.where(fail[tr] & (rng.random(k) < 0.6), 0, category)
        category = np.where(rng.random(k) < 0.10 * np.minimum(dt, 1.0), 3, category)
        priority = rng.choice(len(PRIORITIES), k, p=PRIORITY_P)
        escalated = rng.random(k) < 0.04 + 0.12 * np.minimum(dt, 1.5) + 0.10 * (priority >= 2)
        resolution_days = rng.exponential(1.0 + 2.5 * dt) + 3.0 * escalated
        resolution = (resolution_days * 86_400).astype(np.int64) * SECOND + 600 * SECOND
        never = rng.random(k) < 0.02 + 0.08 * np.minimum(dt, 1.0)
        closed = np.where(never, NEVER_CLOSED, opened + resolution)
        rated = ~never & (rng.random(k) < 0.55)
        rating = np.clip(
            np.rint(8.2 - 2.2 * dt - 0.25 * resolution_days + rng.normal(0, 1.4, k)), 1, 10
        )
        satisfaction = np.where(rated, rating, -1).astype(np.int64)
        warn = (category == 3) | (
            rng.random(k) < 0.03 + 0.35 * np.minimum(dt, 1.0) + 0.10 * escalated
        )
        lang = self.language[a[tr]]
        group = TICKET_TEXT_GROUP[category]
        w = warn.astype(np.int64)
        nth = (rng.random(k) * TICKET_TEXT_COUNT[lang, group, w]).astype(np.int64)
        text = TICKET_TEXT_OFFSET[lang, group, w] + nth
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
        np.maximum.at(self.last["ticket_escalated"], a[tr[escalated]], opened[escalated])
        np.maximum.at(self.last["complaint_text"], a[tr[warn]], opened[warn])
        np.maximum.at(self.max_ticket_close, a[tr], closed)
        support = ~never & (closed + HOUR < stop[tr])
        surveys.append((tr[support], closed[support] + HOUR, TP["support"]))
        self._ticket_feedback = 0.25 * np.bincount(tr, escalated, len(a)) + 0.3 * np.bincount(
            tr, never, len(a)
        )

    def _surveys(
        self,
        a: np.ndarray,
        surveys: list[tuple[np.ndarray, np.ndarray, int]],
        stop: np.ndarray,
        D: np.ndarray,
    ) -> None:
        rng = self.rng
        rows = np.concatenate([s[0] for s in surveys])
        sent = np.concatenate([s[1] for s in surveys])
        tp = np.concatenate([np.full(len(s[0]), s[2]) for s in surveys])
        ok = sent < stop[rows]
        rows, sent, tp = rows[ok], sent[ok], tp[ok]
        self._event(a[rows], sent, "survey_sent", None, len(FEATURES) + tp)
        k = len(rows)
        dr = D[rows]
        d1 = np.minimum(dr, 1.0)
        reply_ts = sent + (rng.exponential(0.7, k) * 86_400).astype(np.int64) * SECOND
        reply = (rng.random(k) < RESPONSE_RATE[tp] * (1.0 - 0.3 * d1)) & (reply_ts < stop[rows])
        nps = tp == TP["relationship"]
        noise = rng.normal(0.0, 1.0, k)
        csat = np.clip(np.rint(CSAT_MEAN[tp] - 2.4 * dr + 1.3 * noise), 1, 10)
        nps_score = np.clip(np.rint(8.6 - 2.8 * dr + 1.6 * noise), 0, 10)
        score = np.where(nps, nps_score, csat).astype(np.int64)
        low = np.where(nps, score <= 6, score <= 5)
        high = np.where(nps, score >= 9, score >= 8)
        has_comment = rng.random(k) < 0.12 + 0.3 * low
        warn = np.where(low, rng.random(k) < 0.75, rng.random(k) < 0.02 + 0.2 * d1)
        kind = np.where(warn, COMMENT_WARNING, np.where(high, COMMENT_POSITIVE, COMMENT_NEUTRAL))
        lang = self.language[a[rows]]
        nth = (rng.random(k) * COMMENT_TEXT_COUNT[lang, kind]).astype(np.int64)
        comment = COMMENT_TEXT_OFFSET[lang, kind] + nth
        comment = np.where(has_comment, comment, -1)
        rows, reply_ts, tp, nps, score, low = (
            rows[reply],
            reply_ts[reply],
            tp[reply],
            nps[reply],
            score[reply],
            low[reply],
        )
        comment, warn = comment[reply], (warn & has_comment)[reply]
        self.responses.add(
            cust=a[rows],
            ts=reply_ts,
            touchpoint=tp,
            metric=nps.astype(np.int64),
            score=score,
            comment=comment,
        )
        after_sales = low & ~nps & (tp == TP["after_sales"])
        other = low & ~nps & (tp != TP["after_sales"])
        np.maximum.at(
            self.last["after_sales_csat_low"], a[rows[after_sales]], reply_ts[after_sales]
        )
        np.maximum.at(self.last["csat_low_other"], a[rows[other]], reply_ts[other])
        np.maximum.at(self.last["complaint_text"], a[rows[warn]], reply_ts[warn])

    def _event(
        self,
        cust: np.ndarray,
        ts: np.ndarray,
        event_type: str,
        value: np.ndarray | None = None,
        feature: np.ndarray | None = None,
    ) -> None:
        k = len(cust)
        self.events.add(
            cust=cust,
            ts=ts,
            type=np.full(k, EV[event_type], np.int8),
            value=np.full(k, np.nan) if value is None else np.asarray(value, np.float64),
            feature=np.full(k, -1, np.int8) if feature is None else feature.astype(np.int8),
        )
