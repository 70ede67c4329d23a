"""The simulated world: the business (plans, fees, segments, countries, channels, event types,
touchpoints, tickets), the hazard constants and the planted churn drivers (`DRIVERS`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- the business
HISTORY_DAYS = 730  # customers existing at start signed up within this many days before it
PLANS = ("basic", "standard", "premium", "enterprise")
LIST_FEE = np.array([9.99, 19.99, 39.99, 199.00])
SEGMENTS = ("consumer", "smb", "enterprise")
SEGMENT_P = np.array([0.6, 0.3, 0.1])
PLAN_P_BY_SEGMENT = np.array(
    [[0.50, 0.35, 0.15, 0.00], [0.20, 0.45, 0.35, 0.00], [0.00, 0.00, 0.30, 0.70]]
)
# Price sensitivity by (segment, plan at signup): the observable multiplier of a price increase.
PRICE_SENSITIVITY = np.array(
    [[1.00, 0.70, 0.40, 0.40], [0.60, 0.45, 0.30, 0.30], [0.30, 0.30, 0.20, 0.10]]
)
PRICE_CHANGE_RATE_BY_PLAN = np.array([0.036, 0.030, 0.027, 0.018])  # per month
COUNTRIES = ("US", "GB", "AU", "CN", "SG", "KR", "RU", "KZ")
COUNTRY_P = np.array([0.30, 0.10, 0.06, 0.18, 0.06, 0.14, 0.12, 0.04])
LANGUAGES = ("en", "zh", "ko", "ru")
COUNTRY_LANGUAGE = np.array([0, 0, 0, 1, 1, 2, 3, 3])
CHANNELS = ("organic", "paid_search", "social", "referral", "partner", "sales")
CHANNEL_P_BY_SEGMENT = np.array(
    [
        [0.35, 0.25, 0.20, 0.15, 0.05, 0.00],
        [0.30, 0.25, 0.10, 0.10, 0.15, 0.10],
        [0.10, 0.05, 0.00, 0.05, 0.30, 0.50],
    ]
)
CHANNEL_ENGAGEMENT = np.array([1.05, 0.90, 0.95, 1.10, 1.00, 1.05])
DEVICE_OS = ("ios", "android", "windows", "macos", "linux", "web")
DEVICE_OS_P = np.array([0.28, 0.30, 0.20, 0.12, 0.03, 0.07])

EVENT_TYPES = (
    "login",
    "feature_use",
    "purchase",
    "payment",
    "payment_failure",
    "plan_change",
    "price_change",
    "discount_request",
    "survey_sent",
)
EV = {name: code for code, name in enumerate(EVENT_TYPES)}
FEATURES = (
    "dashboard",
    "reports",
    "export",
    "search",
    "integrations",
    "api",
    "mobile_app",
    "collaboration",
)
FEATURE_P = np.array([0.26, 0.18, 0.10, 0.14, 0.08, 0.06, 0.10, 0.08])
TOUCHPOINTS = ("onboarding", "support", "after_sales", "billing", "renewal", "relationship")
TP = {name: code for code, name in enumerate(TOUCHPOINTS)}
# events.feature holds a feature name (feature_use) or a touchpoint (survey_sent)
EVENT_FEATURES = FEATURES + TOUCHPOINTS
METRICS = ("csat", "nps")
CSAT_MEAN = np.array([8.3, 7.6, 7.4, 7.0, 8.0, 0.0])  # by touchpoint (relationship is NPS)
RESPONSE_RATE = np.array([0.55, 0.45, 0.55, 0.45, 0.40, 0.35])
TICKET_CATEGORIES = ("billing", "technical", "account", "cancellation", "other")
TICKET_CATEGORY_P = np.array([0.22, 0.42, 0.16, 0.04, 0.16])
PRIORITIES = ("low", "medium", "high", "urgent")
PRIORITY_P = np.array([0.30, 0.45, 0.20, 0.05])
CHURN_TYPES = ("dissatisfaction", "economic", "situational")
DIS, ECO, SIT = 0, 1, 2
NOISE_COLUMNS = ("marketing_opt_in", "device_os", "birth_month", "referral_code")

# ----------------------------------------------------------------------------- the hazard
BASELINE_HAZARD = 0.022  # b0: monthly situational hazard of a customer without any driver
LIFE_EVENT_PROBABILITY = 0.004  # q: monthly probability of a churn-causing life event
LOW_ENGAGEMENT_LOGIN_DAYS = 6  # login days in 30 below which low_engagement grows


@dataclass(frozen=True)
class Driver:
    """A planted churn driver: a quantity observable before the month start, and its hazard."""

    name: str
    churn_type: str
    coefficient: float  # monthly hazard added per unit of the driver value x_j
    window_days: int | None  # look-back window [m - window_days, m), None = at the date
    observable: str
    feature_hint: str


DRIVERS: tuple[Driver, ...] = (
    Driver(
        "after_sales_csat_low",
        "dissatisfaction",
        0.10,
        90,
        "after-sales CSAT <= 5 in last 90 days (1/0)",
        "csat_after_sales_low_last_90d",
    ),
    Driver(
        "csat_low_other",
        "dissatisfaction",
        0.03,
        90,
        "CSAT <= 5 at onboarding, support, billing or renewal in last 90 days (1/0)",
        "csat_low_last_90d",
    ),
    Driver(
        "ticket_escalated",
        "dissatisfaction",
        0.06,
        90,
        "a support ticket opened in last 90 days was escalated (1/0)",
        "tickets_escalated_last_90d",
    ),
    Driver(
        "ticket_open",
        "dissatisfaction",
        0.06,
        None,
        "a support ticket still open at the date: opened before it, closed_at null or >= it (1/0)",
        "tickets_open_at_cutoff",
    ),
    Driver(
        "complaint_text",
        "dissatisfaction",
        0.03,
        90,
        "a survey comment or ticket text with a warning word in last 90 days (1/0)",
        "complaint_texts_last_90d",
    ),
    Driver(
        "low_engagement",
        "dissatisfaction",
        0.03,
        30,
        f"few login days in last 30 days: max(0, {LOW_ENGAGEMENT_LOGIN_DAYS} - login days) / "
        f"{LOW_ENGAGEMENT_LOGIN_DAYS}, when tenure >= 30 days (0..1)",
        "login_days_last_30d",
    ),
    Driver(
        "price_increase_sensitive",
        "economic",
        0.20,
        90,
        "price increase (price_change event) in last 90 days x price sensitivity of segment and "
        "plan at signup (0..1)",
        "price_changes_last_90d",
    ),
    Driver(
        "discount_request",
        "economic",
        0.07,
        30,
        "discount request in last 30 days (1/0)",
        "discount_requests_last_30d",
    ),
    Driver(
        "payment_failure",
        "economic",
        0.12,
        30,
        "payment failure in last 30 days (1/0)",
        "payment_failures_last_30d",
    ),
    Driver(
        "new_customer",
        "situational",
        0.015,
        None,
        "tenure < 90 days at the date (1/0)",
        "tenure_days",
    ),
    Driver(
        "basic_plan",
        "situational",
        0.006,
        None,
        "plan at signup is basic (1/0)",
        "plan",
    ),
)
DRIVER_INDEX = {d.name: i for i, d in enumerate(DRIVERS)}
DRIVER_TYPE = np.array([CHURN_TYPES.index(d.churn_type) for d in DRIVERS])
DRIVER_COEF = np.array([d.coefficient for d in DRIVERS])


# ============================================================================= realistic world
# Latent customer states drive churn; the tables only show noisy, biased traces of them
# (pipeline/simulator/latent.py). The simple world above is kept unchanged (`simulate.world`).
WORLDS = ("realistic", "simple")

# the regime shift: a competitor (Rivalix) enters one country from a known date
REGIME_SHIFT_DATE = "2025-04-01"
REGIME_SHIFT_COUNTRY = "KR"
REGIME_RAMP_MONTHS = 3  # its pull grows linearly to full strength over these months

# the hazard: H = frailty * (baseline(tenure) + sum of the latent drivers' terms)
REALISTIC_BASELINE_HAZARD = 0.010  # monthly, after the first months
NEW_CUSTOMER_EXTRA = 1.5  # baseline x (1 + this x exp(-tenure months / 3))
REALISTIC_LIFE_EVENT_PROBABILITY = 0.003
SATISFACTION_HAZARD = 0.09  # x g_sat: logistic in lagged satisfaction, saturating at both ends
SATISFACTION_MIDPOINT = 5.5  # latent satisfaction (0-10) where g_sat = 0.5
SATISFACTION_SCALE = 0.9
NEED_HAZARD = 0.06  # x g_need: logistic in the (latent, log-scale) need for the product
NEED_MIDPOINT = -1.0
NEED_SCALE = 0.5
PRICE_HAZARD = 0.10  # x sensitivity x price pressure (annual renewal window, recent increase)
INTERACTION_HAZARD = 0.08  # x g_sat x sensitivity: the unhappy AND price-sensitive leave at once
STRESS_HAZARD = 0.08  # x (1 - exp(-2 stress)) / (1 - exp(-2)): saturating
COMPETITOR_HAZARD = 0.05  # x (0.3 + sensitivity) x ramp, in the regime country after its date
# frailty ~ Gamma(shape, 1/shape): mean 1, variance 1/shape, never observed. Its size is argued,
# not fitted (FRAILTY_RATIONALE); it multiplies the whole hazard.
FRAILTY_SHAPE = 6.0
FRAILTY_RATIONALE = (
    f"Gamma({FRAILTY_SHAPE:g}, 1/{FRAILTY_SHAPE:g}): mean 1, variance {1 / FRAILTY_SHAPE:.3f}, "
    f"coefficient of variation {FRAILTY_SHAPE**-0.5:.2f}. The frailty is the residual "
    "heterogeneity that no trace reveals (life circumstances, outside options, temperament), on "
    "top of four latent states that are already unobserved and seen only through noisy, biased "
    "traces, so its spread should be smaller than theirs, not larger (a judgement, not a fit). "
    "A customer one standard deviation above the mean leaves "
    f"{1 + FRAILTY_SHAPE**-0.5:.1f} times as often for reasons nobody can see: as strong as one "
    "latent driver, not all of them together (shape 2, CV 0.71, made it the largest driver and "
    "the truth check mostly a measure of noise). Chosen once from this argument, not tuned."
)


@dataclass(frozen=True)
class LatentDriver:
    """A latent churn driver of the realistic world and the feature group that proxies it."""

    name: str
    churn_type: str
    state: str  # the latent state and how it enters the hazard
    observed_through: str  # its noisy traces in the tables
    proxy_group: tuple[str, ...]  # feature-name patterns (fnmatch) of its proxy group


LATENT_DRIVERS: tuple[LatentDriver, ...] = (
    LatentDriver(
        "satisfaction",
        "dissatisfaction",
        "satisfaction s (0-10, AR(1) around a customer mean, incidents and bad tickets lower it); "
        f"hazard {SATISFACTION_HAZARD} x logistic((midpoint - mean of s this and last month) / "
        "scale), plus half of the satisfaction x price-sensitivity interaction",
        "survey scores (answered by a biased minority, pulled to mid-scale by disengaged "
        "customers), ticket counts, escalations and ratings, complaint texts",
        (
            "csat_*",
            "nps_*",
            "ces_*",
            "survey_*",
            "ticket_*",
            "tickets_*",
            "days_since_last_ticket",
            "text_speed_*",
            "text_service_*",
            "text_cancel_*",
            "text_mentions_*",
            "text_feedback_*",
        ),
    ),
    LatentDriver(
        "need",
        "situational",
        "need for the product n (log scale; AR(1), a quarter of customers drift slowly down); "
        f"hazard {NEED_HAZARD} x logistic((midpoint - n) / scale)",
        "logins, minutes, feature use and purchases (with seasonality and noise)",
        (
            "login*",
            "logins*",
            "feature_use*",
            "feature_uses*",
            "days_since_last_login",
            "days_since_last_feature_use",
            "purchase*",
            "purchases*",
            "days_since_last_purchase",
        ),
    ),
    LatentDriver(
        "price_sensitivity",
        "economic",
        "price sensitivity (0-1, static) x price pressure (the annual renewal month and the one "
        "before it; a price increase in the last 90 days); hazard "
        f"{PRICE_HAZARD} x sensitivity x pressure, plus half of the interaction",
        "discount requests and billing questions near renewal, price texts, fee changes, plan",
        (
            "monthly_fee*",
            "current_monthly_fee",
            "plan",
            "plan_changes_*",
            "days_since_last_plan_change",
            "discount_requests_*",
            "days_since_last_discount_request",
            "text_price_*",
            "days_to_next_renewal",
            "days_to_next_anniversary",
        ),
    ),
    LatentDriver(
        "financial_stress",
        "economic",
        "financial stress f (0-1, AR(1) with shocks); hazard "
        f"{STRESS_HAZARD} x (1 - exp(-2 f)) / (1 - exp(-2))",
        "payment failures, payments, downgrades",
        ("payment*", "payments*", "days_since_last_payment*"),
    ),
    LatentDriver(
        "competitor",
        "economic",
        f"regime shift: Rivalix enters {REGIME_SHIFT_COUNTRY} on {REGIME_SHIFT_DATE}; hazard "
        f"{COMPETITOR_HAZARD} x (0.3 + sensitivity) x ramp over {REGIME_RAMP_MONTHS} months",
        "country, competitor mentions in texts",
        ("country", "text_competitor_*"),
    ),
    LatentDriver(
        "frailty",
        "situational",
        f"frailty ~ Gamma({FRAILTY_SHAPE:g}, 1/{FRAILTY_SHAPE:g}) (CV {FRAILTY_SHAPE**-0.5:.2f}) "
        "multiplies the whole hazard; contribution = (frailty - 1) x (baseline + the other terms)",
        "nothing: no table reveals it",
        (),
    ),
)
LATENT_INDEX = {d.name: i for i, d in enumerate(LATENT_DRIVERS)}
# survey warning comments (texts.COMMENT_TEXTS, same order in every language) by subject
COMMENT_WARNING_KIND = {"service": 0, "price": 1, "competitor": 2, "cancel": 3}
