"""Simulate a subscription business with known churn drivers: the pipeline's default dataset.

The simulator writes the five input-contract tables (customers, churn_events, events,
responses, tickets) plus `truth.parquet` (the exact churn probability of every active
customer at every month start) and `simulation.json` (params, row counts, planted drivers).

Mechanics
---------
Time runs in calendar months. A warm-up of ``WARMUP_MONTHS`` months before ``start_date``
generates behaviour but no churn, so that every 90-day window at ``start_date`` is observable.
At each month start ``m`` (from ``start_date`` on), for every customer active at ``m``
(signed up before ``m``, not churned), the driver values ``x_j(m)`` are computed from the
data already written, strictly before ``m`` (windows are ``[m - w days, m)``):

=========================  ===============  ====================================================
driver (column contrib_*)  churn type       x_j(m), observable in the raw tables
=========================  ===============  ====================================================
after_sales_csat_low       dissatisfaction  1 if an after-sales CSAT <= 5 in the last 90 days
csat_low_other             dissatisfaction  1 if a CSAT <= 5 at another touchpoint, last 90 days
ticket_escalated           dissatisfaction  1 if a ticket opened in the last 90 days is escalated
ticket_open                dissatisfaction  1 if a ticket has opened_at < m and
                                            (closed_at is null or closed_at >= m)
complaint_text             dissatisfaction  1 if a survey comment or ticket text of the last 90
                                            days holds a warning word (``WARNING_WORDS``)
low_engagement             dissatisfaction  max(0, 6 - login days in last 30 days) / 6,
                                            only when tenure >= 30 days
price_increase_sensitive   economic         1{price_change in last 90 days} x sensitivity(
                                            segment, plan at signup) (``PRICE_SENSITIVITY``)
discount_request           economic         1 if a discount_request in the last 30 days
payment_failure            economic         1 if a payment_failure in the last 30 days
new_customer               situational      1 if tenure < 90 days
basic_plan                 situational      1 if the plan at signup is basic
=========================  ===============  ====================================================

Cause-specific monthly hazards are additive in the drivers (``a_j`` = ``Driver.coefficient``)::

    h_dis = sum_{j in dissatisfaction} a_j x_j(m)
    h_eco = sum_{j in economic}        a_j x_j(m)
    h_sit = b0 + sum_{j in situational} a_j x_j(m)          (b0 = BASELINE_HAZARD)
    H     = h_dis + h_eco + h_sit
    p_m   = 1 - (1 - q) * exp(-H)                           (q = LIFE_EVENT_PROBABILITY)

``q`` is the monthly probability of a random life event that ends the subscription (purely
random, situational). The customer churns during month ``m`` with probability ``p_m``, at a
time drawn uniformly in ``(m, m_next)``. The churn type is situational with probability
``q / p_m`` (the life event) and otherwise drawn in proportion to ``h_dis : h_eco : h_sit``.
Contributions are in hazard units: ``contrib_<driver> = a_j x_j(m)``, ``contrib_baseline = b0``,
so the contributions sum to ``H`` exactly.

No latent variable enters the hazard. Latent state drives what is observed: dissatisfaction
``D`` (AR(1) with random incidents, fed by escalated and unresolved tickets) lowers CSAT / NPS,
raises tickets, escalations, complaint texts and lowers logins; financial stress ``S`` raises
payment failures, discount requests and downgrades. After a dissatisfied customer decides to
leave, logins decay towards the churn date.

Truth
-----
``true_probability`` = P(churn time in ``(m, m + horizon_days]``) given the state at ``m``.
Within month ``m`` it is exact: ``p_m * min(horizon, L_m) / L_m`` (``L_m`` = days in the
month). Where the horizon runs past the month, the state is assumed frozen at ``m``: each
later month has the same ``p_m``, so ``P = sum_k S_k p_m min(rest_k, L_k) / L_k`` with
``S_k = (1 - p_m)^k``. Cause-specific probabilities split ``true_probability`` in the ratio
``q + (1-q)(1-e^-H) h_sit/H : (1-q)(1-e^-H) h_dis/H : (1-q)(1-e^-H) h_eco/H`` (their sum is p_m).

Data details worth knowing
--------------------------
* Survey responses whose reply would fall after the month end (or the churn time) are
  dropped (non-response); a support CSAT survey is sent only when its ticket closes in the
  month it was opened. Every event of month ``m`` has ``ts < m_next`` except ``closed_at``.
* ``closed_at`` is null for tickets never closed, closed after the churn time, or after
  ``end_date``; ``satisfaction`` is null then too.
* ``customers.plan`` / ``monthly_fee`` are at signup; changes are ``plan_change`` /
  ``price_change`` events (a new fee applies from the next renewal). Every price change is an
  increase. ``survey_sent`` carries its touchpoint in ``feature``.
* Noise columns (marketing_opt_in, device_os, birth_month, referral_code) affect nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.base.io import atomic_directory, write_json
from pipeline.config import Params
from pipeline.settings import SimulateParams

log = logging.getLogger(__name__)

US = 1_000_000  # timestamps are int64 microseconds since the epoch, UTC
SECOND = US
HOUR = 3_600 * US
DAY = 86_400 * US
NO_CHURN = np.iinfo(np.int64).max  # churn_ts of a customer who has not churned
NEVER_CLOSED = np.iinfo(np.int64).max  # closed_at of a ticket that is never closed
LONG_AGO = np.iinfo(np.int64).min // 4  # "last time" of something that never happened

WARMUP_MONTHS = 3
HISTORY_DAYS = 730  # customers existing at start signed up within this many days before it
TS_TYPE = pa.timestamp("us", tz="UTC")

# ----------------------------------------------------------------------------- the business
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

# ----------------------------------------------------------------------------- texts
WARNING_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("too slow", "takes too long", "too expensive", "cancel", "rivalix"),
    "zh": ("速度慢", "时间久", "太贵", "取消", "rivalix"),
    "ko": ("느려요", "오래 걸려요", "비싸요", "해지", "rivalix"),
    "ru": ("медленно", "долго", "дорого", "отменить", "rivalix"),
}
COMPETITOR = "Rivalix"

# ticket templates: language -> text group -> (warning templates, neutral templates)
TICKET_TEXTS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "en": {
        "technical": (
            (
                "The app is too slow, every page takes too long to load.",
                "Sync takes too long and the dashboard is too slow today.",
                "Too slow again after the update. Rivalix does not have this problem.",
            ),
            (
                "How do I connect the integration with our CRM?",
                "The export button shows an error, can you check?",
                "Please help me set up two-factor login.",
            ),
        ),
        "billing": (
            (
                "This plan is too expensive for what we get.",
                "You charged us again at a higher price, too expensive. Thinking about Rivalix.",
                "The new price is too expensive, please explain the invoice.",
            ),
            (
                "Please send me a copy of last month's invoice.",
                "I need to update the credit card on file.",
                "Can you add our VAT number to the invoices?",
            ),
        ),
        "account": (
            (
                "Nobody answers, support takes too long.",
                "Rivalix offered us a better deal, we are considering it.",
                "Your onboarding takes too long, we are unhappy.",
            ),
            (
                "Please change the account owner to my colleague.",
                "How can I add a new user to our workspace?",
                "Question about the data retention policy.",
            ),
        ),
        "cancellation": (
            (
                "I want to cancel my subscription.",
                "Please cancel our account at the end of the month.",
                "How do I cancel? We are moving to Rivalix.",
            ),
            (),
        ),
    },
    "zh": {
        "technical": (
            (
                "应用速度慢，页面加载时间久。",
                "同步速度慢，每次都要等很久。",
                "更新后速度慢，考虑换成Rivalix。",
            ),
            ("请问如何连接我们的CRM？", "导出按钮报错，请帮忙检查。", "请帮我设置两步验证。"),
        ),
        "billing": (
            ("这个套餐太贵了。", "涨价以后太贵了，Rivalix更便宜。", "价格太贵，请解释一下账单。"),
            ("请发给我上个月的发票。", "我需要更新绑定的信用卡。", "请在发票上添加我们的税号。"),
        ),
        "account": (
            (
                "客服回复时间久，没人处理。",
                "Rivalix给了我们更好的价格。",
                "开通账户的时间久，我们很不满意。",
            ),
            ("请把账户管理员改成我的同事。", "如何添加新用户？", "想了解数据保存政策。"),
        ),
        "cancellation": (
            ("我想取消订阅。", "请在月底取消我们的账户。", "怎么取消？我们要换成Rivalix。"),
            (),
        ),
    },
    "ko": {
        "technical": (
            (
                "앱이 너무 느려요. 페이지 로딩이 오래 걸려요.",
                "동기화가 느려요.",
                "업데이트 후 너무 느려요. Rivalix로 바꿀까 해요.",
            ),
            (
                "CRM 연동은 어떻게 하나요?",
                "내보내기 버튼에 오류가 있어요. 확인 부탁드립니다.",
                "2단계 인증 설정을 도와주세요.",
            ),
        ),
        "billing": (
            (
                "요금제가 너무 비싸요.",
                "가격이 올라서 비싸요. Rivalix가 더 저렴해요.",
                "새 가격이 비싸요. 청구서를 설명해 주세요.",
            ),
            (
                "지난달 청구서 사본을 보내 주세요.",
                "등록된 카드를 변경하고 싶어요.",
                "청구서에 사업자 번호를 추가해 주세요.",
            ),
        ),
        "account": (
            (
                "상담 답변이 오래 걸려요.",
                "Rivalix에서 더 좋은 조건을 제안받았어요.",
                "계정 개설이 오래 걸려요. 불만입니다.",
            ),
            (
                "계정 관리자를 동료로 바꿔 주세요.",
                "새 사용자는 어떻게 추가하나요?",
                "데이터 보관 정책이 궁금해요.",
            ),
        ),
        "cancellation": (
            (
                "구독을 해지하고 싶어요.",
                "이번 달 말에 계정을 해지해 주세요.",
                "해지 방법을 알려 주세요. Rivalix로 옮깁니다.",
            ),
            (),
        ),
    },
    "ru": {
        "technical": (
            (
                "Приложение работает медленно, страницы грузятся долго.",
                "Синхронизация идёт медленно.",
                "После обновления всё медленно, думаем перейти на Rivalix.",
            ),
            (
                "Как подключить интеграцию с CRM?",
                "Кнопка экспорта выдаёт ошибку, проверьте, пожалуйста.",
                "Помогите настроить двухфакторный вход.",
            ),
        ),
        "billing": (
            (
                "Этот тариф слишком дорого стоит.",
                "После повышения цены стало дорого, Rivalix дешевле.",
                "Новая цена — это дорого, объясните счёт.",
            ),
            (
                "Пришлите копию счёта за прошлый месяц.",
                "Нужно обновить данные банковской карты.",
                "Добавьте наш ИНН в счета.",
            ),
        ),
        "account": (
            (
                "Поддержка отвечает слишком долго.",
                "Rivalix предложил нам условия лучше.",
                "Подключение аккаунта заняло слишком долго, мы недовольны.",
            ),
            (
                "Смените владельца аккаунта на моего коллегу.",
                "Как добавить нового пользователя?",
                "Вопрос о политике хранения данных.",
            ),
        ),
        "cancellation": (
            (
                "Хочу отменить подписку.",
                "Прошу отменить наш аккаунт в конце месяца.",
                "Как отменить подписку? Мы переходим на Rivalix.",
            ),
            (),
        ),
    },
}
# survey comments: language -> (warning, neutral, positive)
COMMENT_TEXTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        (
            "Too slow and support takes too long.",
            "Too expensive for what it does.",
            "Rivalix does this better and cheaper.",
            "If this does not improve I will cancel.",
        ),
        (
            "It is okay, does the job.",
            "Average experience, nothing special.",
            "Some features are hard to find.",
        ),
        ("Great service, thank you!", "Very helpful support team.", "Easy to use and reliable."),
    ),
    "zh": (
        (
            "速度慢，客服处理时间久。",
            "太贵了，不值这个价。",
            "Rivalix更好更便宜。",
            "再不改进我就取消。",
        ),
        ("还可以，能用。", "体验一般。", "有些功能不好找。"),
        ("服务很好，谢谢！", "客服非常有帮助。", "简单好用，很稳定。"),
    ),
    "ko": (
        (
            "느려요. 상담도 오래 걸려요.",
            "기능에 비해 비싸요.",
            "Rivalix가 더 좋고 저렴해요.",
            "개선되지 않으면 해지할게요.",
        ),
        ("그럭저럭 쓸 만해요.", "보통이에요.", "일부 기능은 찾기 어려워요."),
        (
            "서비스가 훌륭해요, 감사합니다!",
            "상담원이 정말 친절해요.",
            "사용하기 쉽고 안정적이에요.",
        ),
    ),
    "ru": (
        (
            "Медленно, и поддержка отвечает долго.",
            "Слишком дорого для такого функционала.",
            "Rivalix лучше и дешевле.",
            "Если не исправите, я хочу отменить подписку.",
        ),
        (
            "Нормально, свою задачу выполняет.",
            "Обычный опыт, ничего особенного.",
            "Некоторые функции трудно найти.",
        ),
        ("Отличный сервис, спасибо!", "Очень отзывчивая поддержка.", "Удобно и надёжно."),
    ),
}
TICKET_TEXT_GROUP = np.array([1, 0, 2, 3, 2])  # category -> technical/billing/account/cancellation
_TEXT_GROUPS = ("technical", "billing", "account", "cancellation")


def _text_tables() -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flatten the templates: texts, ticket offset/count [lang, group, warn], comment ones."""
    texts: list[str] = []
    t_off = np.zeros((len(LANGUAGES), len(_TEXT_GROUPS), 2), np.int64)
    t_cnt = np.zeros_like(t_off)
    c_off = np.zeros((len(LANGUAGES), 3), np.int64)
    c_cnt = np.zeros_like(c_off)
    for li, lang in enumerate(LANGUAGES):
        for gi, group in enumerate(_TEXT_GROUPS):
            warning, neutral = TICKET_TEXTS[lang][group]
            for wi, items in ((1, warning), (0, neutral or warning)):
                t_off[li, gi, wi], t_cnt[li, gi, wi] = len(texts), len(items)
                texts.extend(items)
        for ki, items in enumerate(COMMENT_TEXTS[lang]):
            c_off[li, ki], c_cnt[li, ki] = len(texts), len(items)
            texts.extend(items)
    return tuple(texts), t_off, t_cnt, c_off, c_cnt


TEXTS, _TICKET_OFF, _TICKET_CNT, _COMMENT_OFF, _COMMENT_CNT = _text_tables()
COMMENT_WARNING, COMMENT_NEUTRAL, COMMENT_POSITIVE = 0, 1, 2

# ----------------------------------------------------------------------------- output schemas
SCHEMAS: dict[str, pa.Schema] = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("signup_date", TS_TYPE),
            ("plan", pa.string()),
            ("monthly_fee", pa.float64()),
            ("country", pa.string()),
            ("language", pa.string()),
            ("segment", pa.string()),
            ("channel", pa.string()),
            ("marketing_opt_in", pa.bool_()),
            ("device_os", pa.string()),
            ("birth_month", pa.int16()),
            ("referral_code", pa.string()),
        ]
    ),
    "churn_events": pa.schema(
        [("customer_id", pa.string()), ("churn_date", TS_TYPE), ("churn_reason", pa.string())]
    ),
    "events": pa.schema(
        [
            ("customer_id", pa.string()),
            ("ts", TS_TYPE),
            ("event_type", pa.string()),
            ("value", pa.float64()),
            ("feature", pa.string()),
        ]
    ),
    "responses": pa.schema(
        [
            ("customer_id", pa.string()),
            ("ts", TS_TYPE),
            ("touchpoint", pa.string()),
            ("metric", pa.string()),
            ("score", pa.int16()),
            ("comment", pa.string()),
        ]
    ),
    "tickets": pa.schema(
        [
            ("customer_id", pa.string()),
            ("opened_at", TS_TYPE),
            ("closed_at", TS_TYPE),
            ("category", pa.string()),
            ("priority", pa.string()),
            ("escalated", pa.bool_()),
            ("satisfaction", pa.int16()),
            ("text", pa.string()),
        ]
    ),
    "truth": pa.schema(
        [
            ("customer_id", pa.string()),
            ("month_start", TS_TYPE),
            ("true_probability", pa.float64()),
            ("probability_this_month", pa.float64()),
            ("hazard_dissatisfaction", pa.float64()),
            ("hazard_economic", pa.float64()),
            ("hazard_situational", pa.float64()),
            ("contrib_baseline", pa.float64()),
            *[(f"contrib_{d.name}", pa.float64()) for d in DRIVERS],
            ("prob_dissatisfaction", pa.float64()),
            ("prob_economic", pa.float64()),
            ("prob_situational", pa.float64()),
            ("dominant_churn_type", pa.string()),
            ("true_churn_type", pa.string()),
        ]
    ),
}
TABLES = tuple(SCHEMAS)


# ----------------------------------------------------------------------------- calendar
@dataclass(frozen=True)
class Calendar:
    """Month boundaries (int64 µs, UTC) of the simulated period, warm-up months first."""

    bounds: np.ndarray  # len = months + 1; the last entry is the exclusive data end
    calendar_days: np.ndarray  # days in each month's calendar month (for renewal days)
    month_of_year: np.ndarray  # 1..12 per month
    first_scored: int  # index of the month at start_date; earlier months are warm-up
    start: int
    end: int  # exclusive: end_date + 1 day
    horizon_lengths: np.ndarray  # days of month k, k+1, ... continuing past the data end

    @property
    def months(self) -> int:
        return len(self.bounds) - 1


def build_calendar(start_date: str, end_date: str, warmup_months: int = WARMUP_MONTHS) -> Calendar:
    """Monthly boundaries from `warmup_months` before start_date to end_date (inclusive)."""
    start = np.datetime64(start_date, "D")
    end = np.datetime64(end_date, "D") + 1
    if start >= end:
        raise ValueError(
            f"simulate.start_date {start_date} must be before simulate.end_date {end_date}"
        )
    first_month = start.astype("datetime64[M]")
    if first_month.astype("datetime64[D]") != start:
        raise ValueError(
            f"simulate.start_date must be the first day of a month, found {start_date}; "
            f"use e.g. {first_month.astype('datetime64[D]')}"
        )
    month_starts = np.arange(first_month - warmup_months, (end - 1).astype("datetime64[M]") + 1)
    bounds_d = np.append(month_starts.astype("datetime64[D]"), end)
    next_starts = (month_starts + 1).astype("datetime64[D]")
    calendar_days = (next_starts - month_starts.astype("datetime64[D]")).astype(np.int64)
    # Month lengths for frozen-state horizons: the data months, then calendar months after.
    after = np.arange(end.astype("datetime64[M]") + 1, end.astype("datetime64[M]") + 14)
    ext = np.concatenate([bounds_d, after.astype("datetime64[D]")])
    ext = ext[np.concatenate([[True], np.diff(ext).astype(np.int64) > 0])]
    return Calendar(
        bounds=bounds_d.astype("datetime64[us]").astype(np.int64),
        calendar_days=calendar_days,
        month_of_year=(month_starts.astype(np.int64) % 12) + 1,
        first_scored=warmup_months,
        start=int(start.astype("datetime64[us]").astype(np.int64)),
        end=int(end.astype("datetime64[us]").astype(np.int64)),
        horizon_lengths=np.diff(ext).astype(np.int64),
    )


def horizon_probability(
    p_month: np.ndarray, k: int, cal: Calendar, horizon_days: int
) -> np.ndarray:
    """P(churn in (m_k, m_k + horizon_days]) when every month from m_k on has probability p."""
    total = np.zeros_like(p_month)
    survive = np.ones_like(p_month)
    remaining = float(horizon_days)
    j = k
    while remaining > 0:
        if j >= len(cal.horizon_lengths):
            raise ValueError(
                f"label.horizon_days {horizon_days} runs more than a year past end_date"
            )
        length = float(cal.horizon_lengths[j])
        total += survive * p_month * min(remaining, length) / length
        survive *= 1.0 - p_month
        remaining -= length
        j += 1
    return total


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


def _ids(prefix: str, first: int, n: int) -> pa.Array:
    """Zero-padded string ids like C0000001, vectorised."""
    numbers = pa.array(np.arange(first, first + n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, 7, "0"), "")


def _codes(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """int codes (negative = null) -> string array through a dictionary."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string())).cast(
        pa.string()
    )


def _ts(values: np.ndarray, null: int | None = None) -> pa.Array:
    mask = None if null is None else values == null
    return pa.array(values, type=pa.int64(), mask=mask).cast(TS_TYPE)


def _int16(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int16), mask=values < 0)


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

    def run(self) -> dict[str, pa.Table]:
        """Simulate every month; return the chunk's output tables."""
        for k in range(self.cal.months):
            self._month(k)
        return self._tables()

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

    def _churn_step(self, k: int, m: int, length_days: int) -> None:
        rng = self.rng
        at = np.flatnonzero((self.signup < m) & (self.churn_ts == NO_CHURN))
        contrib = self.driver_values(at, m) * DRIVER_COEF
        h = np.stack([contrib[:, DRIVER_TYPE == t].sum(axis=1) for t in (DIS, ECO, SIT)], axis=1)
        h[:, SIT] += BASELINE_HAZARD
        total = h.sum(axis=1)
        q = LIFE_EVENT_PROBABILITY
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
        day_starts = m + np.arange(length) * DAY
        to_churn = np.where(leaving, self.churn_ts[a] - m, 1).astype(np.float64)
        frac = np.clip((day_starts[None, :] - m) / to_churn[:, None], 0.0, 1.0)
        p_day = (self.login_rate[a] * np.exp(-0.7 * D))[:, None] * (
            1.0 - decay_strength[:, None] * frac
        )
        r, d = np.nonzero(rng.random((n, length)) < p_day)
        ts = m + d * DAY + rng.integers(0, 86_400, len(r)) * SECOND
        keep = (ts >= start[r]) & (ts < stop[r])
        r, d, ts = r[keep], d[keep], ts[keep]
        minutes = np.round(rng.lognormal(2.7, 0.6, len(r)) * (1.0 - 0.3 * d1[r]), 1)
        self._event(a[r], ts, "login", minutes)
        flags = np.zeros((self.n, length), bool)
        flags[a[r], d] = True
        self.recent_logins = np.concatenate([self.recent_logins, flags], axis=1)[:, -30:]

        # feature use during some sessions
        use = rng.random(len(r)) < 0.25
        fr, fts = (
            r[use],
            ts[use] + (rng.random(use.sum()) * minutes[use] * 60).astype(np.int64) * SECOND,
        )
        keep = fts < stop[fr]
        fr, fts = fr[keep], fts[keep]
        self._event(
            a[fr],
            fts,
            "feature_use",
            1.0 + rng.poisson(2.0, len(fr)),
            rng.choice(len(FEATURES), len(fr), p=FEATURE_P),
        )

        surveys: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, sent_ts, touchpoint)

        # purchases and after-sales follow-ups
        count = rng.poisson(0.28 * (0.5 + self.login_rate[a]) * np.exp(-0.3 * D))
        pr = np.repeat(np.arange(n), count)
        pts = _uniform_ts(rng, start[pr], stop[pr])
        self._event(a[pr], pts, "purchase", np.round(rng.lognormal(3.0, 0.6, len(pr)), 2))
        follow = rng.random(len(pr)) < 0.75
        surveys.append(
            (pr[follow], pts[follow] + _days(rng, follow.sum(), 0.5, 3), TP["after_sales"])
        )
        count = rng.poisson(0.20, n)
        sr = np.repeat(np.arange(n), count)
        surveys.append((sr, _uniform_ts(rng, start[sr], stop[sr]), TP["after_sales"]))

        # renewal: payment on the signup day of month; failures and retries
        day = np.minimum(self.renewal_dom[a], cal.calendar_days[k] - 1)
        renewal = m + day * DAY + self.signup_time_of_day[a]
        due = (renewal >= start) & (renewal < stop)
        fail = due & ~first_month & (rng.random(n) < 0.02 + 0.2 * S)
        retry_ts = renewal + _days(rng, n, 1, 4)
        retried = fail & (rng.random(n) < 0.85) & (retry_ts < stop)
        paid = due & ~fail
        self._event(a[paid], renewal[paid], "payment", self.fee[a][paid])
        self._event(a[fail], renewal[fail], "payment_failure", self.fee[a][fail])
        self._event(a[retried], retry_ts[retried], "payment", self.fee[a][retried])
        billing = fail & (rng.random(n) < 0.5)
        surveys.append(
            (
                np.flatnonzero(billing),
                renewal[billing] + _days(rng, billing.sum(), 0.1, 1.5),
                TP["billing"],
            )
        )
        renewal_survey = due & ~first_month & (rng.random(n) < 0.10)
        surveys.append(
            (
                np.flatnonzero(renewal_survey),
                renewal[renewal_survey] + _days(rng, renewal_survey.sum(), 0.05, 1),
                TP["renewal"],
            )
        )

        # price increases (new fee from the next renewal), plan changes, discount requests
        plan = self.plan[a]
        change_ts = _uniform_ts(rng, start, stop)
        raise_price = ~first_month & (rng.random(n) < PRICE_CHANGE_RATE_BY_PLAN[plan])
        new_fee = np.round(self.fee[a] * rng.uniform(1.08, 1.25, n), 2)
        self._event(a[raise_price], change_ts[raise_price], "price_change", new_fee[raise_price])
        u_up, u_down = rng.random(n), rng.random(n)
        up = ~first_month & ~raise_price & (plan < 3) & (u_up < 0.008)
        down = ~first_month & ~raise_price & ~up & (plan > 0) & (u_down < 0.004 + 0.05 * S)
        new_plan = np.where(up, plan + 1, np.where(down, plan - 1, plan))
        moved = up | down
        plan_fee = np.round(LIST_FEE[new_plan] * self.fee[a] / LIST_FEE[plan], 2)
        self._event(a[moved], change_ts[moved], "plan_change", plan_fee[moved])
        recent_increase = self.last["price_increase"][a] >= m - 60 * DAY
        ask = rng.random(n) < 0.008 + 0.12 * S + 0.10 * recent_increase
        ask_ts = _uniform_ts(rng, start, stop)
        self._event(a[ask], ask_ts[ask], "discount_request")

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

        # bookkeeping after the month: observable state, then latent state
        for name, rows, when in (
            ("payment_failure", fail, renewal),
            ("price_increase", raise_price, change_ts),
            ("discount_request", ask, ask_ts),
        ):
            np.maximum.at(self.last[name], a[rows], when[rows])
        self.fee[a[raise_price]] = new_fee[raise_price]
        self.fee[a[moved]] = plan_fee[moved]
        self.plan[a] = new_plan
        incident = (rng.random(n) < 0.07) * rng.exponential(0.7, n)
        self.dissat[a] = 0.8 * D + incident + self._ticket_feedback

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
        text = _TICKET_OFF[lang, group, w] + (rng.random(k) * _TICKET_CNT[lang, group, w]).astype(
            np.int64
        )
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
        comment = _COMMENT_OFF[lang, kind] + (rng.random(k) * _COMMENT_CNT[lang, kind]).astype(
            np.int64
        )
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

    # -- output
    def _tables(self) -> dict[str, pa.Table]:
        ids = _ids("C", self.first_id, self.n)
        cal = self.cal
        out: dict[str, pa.Table] = {}

        def table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
            return pa.Table.from_arrays(list(columns.values()), schema=SCHEMAS[name])

        referral = pa.array(self.referral_code, pa.binary(), mask=~self.referred).cast(pa.string())
        out["customers"] = table(
            "customers",
            {
                "customer_id": ids,
                "signup_date": _ts(self.signup),
                "plan": _codes(self.plan0, PLANS),
                "monthly_fee": pa.array(LIST_FEE[self.plan0]),
                "country": _codes(self.country, COUNTRIES),
                "language": _codes(self.language, LANGUAGES),
                "segment": _codes(self.segment, SEGMENTS),
                "channel": _codes(self.channel, CHANNELS),
                "marketing_opt_in": pa.array(self.marketing_opt_in),
                "device_os": _codes(self.device_os, DEVICE_OS),
                "birth_month": pa.array(self.birth_month.astype(np.int16)),
                "referral_code": referral,
            },
        )
        churned = np.flatnonzero(self.churn_ts != NO_CHURN)
        out["churn_events"] = table(
            "churn_events",
            {
                "customer_id": ids.take(churned),
                "churn_date": _ts(self.churn_ts[churned]),
                "churn_reason": _codes(self.churn_type[churned], CHURN_TYPES),
            },
        )

        ev = self.events.arrays()
        order = np.lexsort((ev["type"], ev["ts"], ev["cust"]))
        out["events"] = table(
            "events",
            {
                "customer_id": ids.take(ev["cust"][order]),
                "ts": _ts(ev["ts"][order]),
                "event_type": _codes(ev["type"][order], EVENT_TYPES),
                "value": pa.array(ev["value"][order], mask=np.isnan(ev["value"][order])),
                "feature": _codes(ev["feature"][order], EVENT_FEATURES),
            },
        )
        del ev

        rs = self.responses.arrays()
        order = np.lexsort((rs["touchpoint"], rs["ts"], rs["cust"]))
        out["responses"] = table(
            "responses",
            {
                "customer_id": ids.take(rs["cust"][order]),
                "ts": _ts(rs["ts"][order]),
                "touchpoint": _codes(rs["touchpoint"][order], TOUCHPOINTS),
                "metric": _codes(rs["metric"][order], METRICS),
                "score": _int16(rs["score"][order]),
                "comment": _codes(rs["comment"][order], TEXTS),
            },
        )

        tk = self.tickets.arrays()
        order = np.lexsort((tk["opened"], tk["cust"]))
        cust = tk["cust"][order]
        closed = tk["closed"][order]
        unknown = (closed >= np.minimum(self.churn_ts[cust], cal.end)) | (closed == NEVER_CLOSED)
        closed = np.where(unknown, NEVER_CLOSED, closed)
        out["tickets"] = table(
            "tickets",
            {
                "customer_id": ids.take(cust),
                "opened_at": _ts(tk["opened"][order]),
                "closed_at": _ts(closed, null=NEVER_CLOSED),
                "category": _codes(tk["category"][order], TICKET_CATEGORIES),
                "priority": _codes(tk["priority"][order], PRIORITIES),
                "escalated": pa.array(tk["escalated"][order].astype(bool)),
                "satisfaction": _int16(np.where(unknown, -1, tk["satisfaction"][order])),
                "text": _codes(tk["text"][order], TEXTS),
            },
        )

        tr = self.truth.parts
        cust = np.concatenate(tr["cust"]) if tr["cust"] else np.zeros(0, np.int64)
        month = np.concatenate(tr["month"]) if tr["month"] else np.zeros(0, np.int64)
        order = np.lexsort((month, cust))

        def col(name: str, width: int | None = None) -> np.ndarray:
            if not tr[name]:
                return np.zeros((0, width)) if width else np.zeros(0)
            return np.concatenate(tr[name])[order]

        h, contrib, prob = col("h", 3), col("contrib", len(DRIVERS)), col("prob", 3)
        columns: dict[str, pa.Array] = {
            "customer_id": ids.take(cust[order]),
            "month_start": _ts(cal.bounds[month[order]]),
            "true_probability": pa.array(col("true_probability")),
            "probability_this_month": pa.array(col("p_month")),
            "hazard_dissatisfaction": pa.array(h[:, DIS]),
            "hazard_economic": pa.array(h[:, ECO]),
            "hazard_situational": pa.array(h[:, SIT]),
            "contrib_baseline": pa.array(np.full(len(order), BASELINE_HAZARD)),
        }
        for j, driver in enumerate(DRIVERS):
            columns[f"contrib_{driver.name}"] = pa.array(contrib[:, j])
        columns["prob_dissatisfaction"] = pa.array(prob[:, DIS])
        columns["prob_economic"] = pa.array(prob[:, ECO])
        columns["prob_situational"] = pa.array(prob[:, SIT])
        columns["dominant_churn_type"] = _codes(np.argmax(prob, axis=1), CHURN_TYPES)
        columns["true_churn_type"] = _codes(col("churn_type").astype(np.int64), CHURN_TYPES)
        out["truth"] = table("truth", columns)
        return out


# ----------------------------------------------------------------------------- summary
class _Summary:
    """Row counts and realised driver lifts, accumulated over chunks."""

    def __init__(self) -> None:
        self.rows = dict.fromkeys(TABLES, 0)
        self.customer_months = 0
        self.churned = 0
        self.true_probability_sum = 0.0
        self.by_type = dict.fromkeys(CHURN_TYPES, 0)
        j = len(DRIVERS)
        self.pos, self.pos_churn = np.zeros(j), np.zeros(j)
        self.contrib_sum = np.zeros(j)

    def add(self, tables: dict[str, pa.Table]) -> None:
        for name, t in tables.items():
            self.rows[name] += t.num_rows
        truth = tables["truth"]
        churned = truth["true_churn_type"].is_valid().to_numpy(zero_copy_only=False)
        self.customer_months += truth.num_rows
        self.churned += int(churned.sum())
        self.true_probability_sum += float(np.sum(truth["true_probability"].to_numpy()))
        kinds = truth["true_churn_type"].to_numpy(zero_copy_only=False)
        for name in CHURN_TYPES:
            self.by_type[name] += int(np.sum(kinds == name))
        for j, driver in enumerate(DRIVERS):
            c = truth[f"contrib_{driver.name}"].to_numpy()
            self.pos[j] += np.sum(c > 0)
            self.pos_churn[j] += np.sum(churned & (c > 0))
            self.contrib_sum[j] += c.sum()

    def drivers(self) -> list[dict[str, Any]]:
        n = max(self.customer_months, 1)
        mean_contrib = self.contrib_sum / n
        rank = np.argsort(np.argsort(-mean_contrib, kind="stable"), kind="stable") + 1
        out = []
        for j, driver in enumerate(DRIVERS):
            neg = n - self.pos[j]
            rate_pos = self.pos_churn[j] / self.pos[j] if self.pos[j] else None
            rate_neg = (self.churned - self.pos_churn[j]) / neg if neg else None
            lift = rate_pos / rate_neg if rate_pos is not None and rate_neg else None
            out.append(
                {
                    "name": driver.name,
                    "contrib_column": f"contrib_{driver.name}",
                    "churn_type": driver.churn_type,
                    "observable": driver.observable,
                    "window_days": driver.window_days,
                    "feature_hint": driver.feature_hint,
                    "coefficient": driver.coefficient,
                    "strength": round(float(mean_contrib[j]), 6),
                    "strength_rank": int(rank[j]),
                    "prevalence": round(float(self.pos[j] / n), 6),
                    "realised_monthly_churn_rate_with": _round(rate_pos),
                    "realised_monthly_churn_rate_without": _round(rate_neg),
                    "realised_lift": _round(lift),
                }
            )
        return out


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# ----------------------------------------------------------------------------- the stage
def simulate(params: SimulateParams, horizon_days: int, out_dir: Path | str) -> dict[str, Any]:
    """Simulate `params.customers` customers into `out_dir` atomically; return the summary."""
    if horizon_days <= 0:
        raise ValueError(f"label.horizon_days must be > 0, found {horizon_days}")
    cal = build_calendar(params.start_date, params.end_date)
    n_chunks = math.ceil(params.customers / params.chunk_size)
    seeds = np.random.SeedSequence(params.seed).spawn(n_chunks)
    writers: dict[str, pq.ParquetWriter] = {}
    summary = _Summary()
    with atomic_directory(out_dir) as staging:
        try:
            for name in TABLES:
                writers[name] = pq.ParquetWriter(staging / f"{name}.parquet", SCHEMAS[name])
            for i, seed in enumerate(seeds):
                began = time.perf_counter()
                first = i * params.chunk_size
                n = min(params.chunk_size, params.customers - first)
                tables = simulate_chunk(
                    first + 1, n, seed, cal, horizon_days, params.existing_fraction
                )
                for name, t in tables.items():
                    writers[name].write_table(t)
                summary.add(tables)
                log.info(
                    "chunk %d/%d: %d customers, %d events, %d customer-months (%.1f s)",
                    i + 1,
                    n_chunks,
                    n,
                    tables["events"].num_rows,
                    tables["truth"].num_rows,
                    time.perf_counter() - began,
                )
                del tables
            for w in writers.values():
                w.close()
            writers.clear()
            result = _describe(params, horizon_days, cal, summary)
            write_json(staging / "simulation.json", result)
        finally:
            for w in writers.values():
                w.close()
    return result


def simulate_chunk(
    first_id: int,
    n: int,
    seed: np.random.SeedSequence,
    cal: Calendar,
    horizon_days: int,
    existing_fraction: float = 0.5,
) -> dict[str, pa.Table]:
    """Simulate customers first_id .. first_id + n - 1 with their own seed; return their tables."""
    return ChunkSimulator(first_id, n, seed, cal, horizon_days, existing_fraction).run()


def _describe(
    params: SimulateParams, horizon_days: int, cal: Calendar, summary: _Summary
) -> dict[str, Any]:
    """The content of simulation.json (deterministic: no wall-clock values)."""
    settings = dataclasses.asdict(params)
    months = max(summary.customer_months, 1)
    drivers = summary.drivers()
    return {
        "generator": "pipeline.simulate",
        "params": settings,
        "horizon_days": horizon_days,
        "warmup_start": str(np.datetime64(int(cal.bounds[0]), "us").astype("datetime64[D]")),
        "rows": summary.rows,
        "customer_months": summary.customer_months,
        "realised": {
            "monthly_churn_rate": round(summary.churned / months, 6),
            "mean_true_probability": round(summary.true_probability_sum / months, 6),
            "churns_by_type": summary.by_type,
        },
        "hazard": {
            "formula": (
                "h_k = sum_{j of type k} coefficient_j * x_j(m) (+ baseline for situational); "
                "p_month = 1 - (1 - life_event_probability) * exp(-(h_dis + h_eco + h_sit))"
            ),
            "unit": "monthly hazard",
            "baseline": BASELINE_HAZARD,
            "life_event_probability": LIFE_EVENT_PROBABILITY,
            "truth_horizon": "state frozen at month_start for horizons past the month end",
        },
        "drivers": drivers,
        "strongest_drivers": [
            d["name"] for d in sorted(drivers, key=lambda d: d["strength_rank"])[:3]
        ],
        "price_sensitivity": {
            seg: {plan: float(PRICE_SENSITIVITY[s, p]) for p, plan in enumerate(PLANS)}
            for s, seg in enumerate(SEGMENTS)
        },
        "warning_words": {lang: list(words) for lang, words in WARNING_WORDS.items()},
        "noise_columns": list(NOISE_COLUMNS),
        "windows": "[date - window_days, date), timestamps UTC",
    }


def run(
    params: Params,
    customers: int | None = None,
    seed: int | None = None,
    out_dir: Path | str | None = None,
) -> dict[str, Any]:
    """`churn simulate`: the `simulate` params with the command line's overrides, into
    `paths.raw` (or `out_dir`)."""
    overrides: dict[str, Any] = {}
    if customers is not None:
        overrides["customers"] = customers
    if seed is not None:
        overrides["seed"] = seed
    sim = dataclasses.replace(params.simulate, **overrides)
    target = str(out_dir) if out_dir is not None else params.paths.raw
    log.info("simulating %d customers (seed %d) into %s", sim.customers, sim.seed, target)
    began = time.perf_counter()
    result = simulate(sim, params.label.horizon_days, target)
    log.info(
        "wrote %s in %.1f s; monthly churn rate %.4f",
        ", ".join(f"{k}={v:,}" for k, v in result["rows"].items()),
        time.perf_counter() - began,
        result["realised"]["monthly_churn_rate"],
    )
    return result
