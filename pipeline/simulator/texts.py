"""The texts customers write: warning words, ticket and survey-comment templates per language,
flattened into `TEXTS` with the offsets the month loop draws from."""

from __future__ import annotations

import numpy as np

from pipeline.simulator.world import LANGUAGES

# matched in lower-cased text; Rivalix is the competitor customers threaten to move to
WARNING_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("too slow", "takes too long", "too expensive", "cancel", "rivalix"),
    "zh": ("速度慢", "时间久", "太贵", "取消", "rivalix"),
    "ko": ("느려요", "오래 걸려요", "비싸요", "해지", "rivalix"),
    "ru": ("медленно", "долго", "дорого", "отменить", "rivalix"),
}

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


TEXTS, TICKET_TEXT_OFFSET, TICKET_TEXT_COUNT, COMMENT_TEXT_OFFSET, COMMENT_TEXT_COUNT = (
    _text_tables()
)
COMMENT_WARNING, COMMENT_NEUTRAL, COMMENT_POSITIVE = 0, 1, 2
