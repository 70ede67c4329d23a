"""The text lexicon: matching per language, normalisation, Python vs DuckDB, file checks."""

from __future__ import annotations

import re
from pathlib import Path

import ibis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.lexicon import (
    DEFAULT_LEXICON,
    LexiconError,
    load_lexicon,
    normalize_column,
    normalize_text,
)


@pytest.fixture(scope="module")
def lexicon():
    return load_lexicon()


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


CASES = [
    # English: word boundaries
    ("en", "The app is too slow!!", "speed", True),
    ("en", "It takes too long to load", "speed", True),
    ("en", "Way too expensive for what it is", "price", True),
    ("en", "Please cancel my plan", "cancel_intent", True),
    ("en", "Thinking of a switch to Rivalix", "competitor", True),
    ("en", "Churnly does this better", "competitor", True),
    ("en", "Nobody answered, the agent was rude", "service", True),
    ("en", "Great app, love it", "price", False),
    ("en", "slowness aside, fine", "speed", False),  # "slow" is a whole-word term
    ("en", "The inexpensive plan is fine", "price", False),
    ("en", "I was charged for an uncancelled order", "cancel_intent", False),
    ("en", "cancellous bone", "cancel_intent", False),
    ("en", "What is your cancellation policy?", "cancel_intent", True),
    # Chinese: substring
    ("zh", "速度慢，而且太贵了", "speed", True),
    ("zh", "速度慢，而且太贵了", "price", True),
    ("zh", "等了半天，时间久", "speed", True),
    ("zh", "我要取消订阅", "cancel_intent", True),
    ("zh", "我想退订", "cancel_intent", True),
    ("zh", "服务差，没人回复", "service", True),
    ("zh", "我要换成Rivalix", "competitor", True),
    ("zh", "产品很好用", "price", False),
    ("zh", "贵公司的产品很好", "price", False),  # 贵 alone ("your") is not a term
    ("zh", "产品很好用", "cancel_intent", False),
    # Korean: substring, particles and dropped spaces
    ("ko", "너무 느려요", "speed", True),
    ("ko", "너무느려요", "speed", True),
    ("ko", "가격이비싸요", "price", True),
    ("ko", "해지하고 싶어요", "cancel_intent", True),
    ("ko", "해지 방법을 알려 주세요", "cancel_intent", True),  # prefix term 해지*
    ("ko", "구독을해지하고 싶어요", "cancel_intent", True),  # dropped space: 해지하
    ("ko", "계약해지 문의드립니다", "cancel_intent", True),
    ("ko", "주문 취소해 주세요", "cancel_intent", True),
    ("ko", "상담원이 불친절해요", "service", True),
    ("ko", "Rivalix로 갈아탈래요", "competitor", True),
    ("ko", "다른 서비스로 갈아탔어요", "competitor", True),
    ("ko", "사용이 편해지고 좋아요", "cancel_intent", False),  # -해지다 "to become"
    ("ko", "그 사람 무식해요", "service", False),  # 무시 must not match the first part of 무식
    ("ko", "아주 만족합니다", "price", False),
    ("ko", "아주 만족합니다", "speed", False),
    # Russian: word boundaries on Cyrillic letters
    ("ru", "Очень дорого", "price", True),
    ("ru", "Работает медленно", "speed", True),
    ("ru", "Очень медленный сайт", "speed", True),  # prefix term медленн*
    ("ru", "Хочу отменить подписку", "cancel_intent", True),
    ("ru", "Как отписаться?", "cancel_intent", True),
    ("ru", "Оператор ответил грубо", "service", True),
    ("ru", "Слишком дорогая подписка", "price", True),  # prefix term "слишком дорог*"
    ("ru", "Дорогой клиент, спасибо", "price", False),  # дорогой ("dear") is not дорого
    ("ru", "Отменный сервис", "cancel_intent", False),  # отменный ("excellent")
    ("ru", "Всё нормально", "speed", False),
    # Portuguese: word boundaries; accents, case and width do not matter
    ("pt", "Está muito CARO", "price", True),
    ("pt", "o preco subiu de novo", "price", True),  # preço written without the cedilla
    ("pt", "A Carolina me indicou o app", "price", False),  # caro is a whole word
    ("pt", "Descaro total", "price", False),
    ("pt", "A entrega NAO CHEGOU", "speed", True),  # não chegou without the tilde
    ("pt", "Pedido atrasadíssimo", "speed", True),  # prefix term atrasad*
    ("pt", "Sou cliente há muito tempo", "speed", False),
    ("pt", "Péssimo atendimento!", "service", True),
    ("pt", "pessimo atendimento", "service", True),
    ("pt", "Quero CANCELAR a assinatura", "cancel_intent", True),
    ("pt", "Vou mudar para a Rivalix", "competitor", True),
    # Spanish
    ("es", "Es demasiado caro", "price", True),
    ("es", "Quiero la cancelación", "cancel_intent", True),
    ("es", "quiero la cancelacion", "cancel_intent", True),
    ("es", "El pedido NO LLEGÓ", "speed", True),
    ("es", "el pedido no llego", "speed", True),
    ("es", "Pésima atención al cliente", "service", True),
    ("es", "Me voy a la competencia", "competitor", True),
    ("es", "Soy cliente desde hace mucho tiempo", "speed", False),
    ("es", "Qué descaro", "price", False),
    # French
    ("fr", "C'est trop cher", "price", True),
    ("fr", "TROP CHERE pour ce que c'est", "price", True),
    ("fr", "Cher service client, merci", "price", False),  # "cher" opening a letter
    ("fr", "Je veux résilier", "cancel_intent", True),
    ("fr", "je veux resilier", "cancel_intent", True),
    ("fr", "RÉSILIATION immédiate", "cancel_intent", True),
    ("fr", "a resilient system", "cancel_intent", False),
    ("fr", "Application très lente", "speed", True),
    ("fr", "Dans l'attente de votre réponse", "speed", False),  # letter formula
    ("fr", "Personne ne repond", "service", True),
    # German: whole words; compounds only through prefix terms or when listed
    ("de", "Viel zu teuer!", "price", True),
    ("de", "TEUER", "price", True),
    ("de", "Die Steuer ist gestiegen", "price", False),  # Steuer (tax) ends in "teuer"
    ("de", "Total überteuert", "price", True),
    ("de", "total ueberteuert", "price", True),
    ("de", "Ich möchte KÜNDIGEN", "cancel_intent", True),
    ("de", "ich moechte kundigen", "cancel_intent", True),
    ("de", "Wie lang ist die Kündigungsfrist?", "cancel_intent", True),  # Kündigung*
    ("de", "Sehr kundige Beratung", "cancel_intent", False),
    ("de", "Die Lieferung ist verspätet", "speed", True),
    ("de", "App ist sehr langsam", "speed", True),
    ("de", "Wechsel zur Konkurrenz", "competitor", True),
    # Japanese: no spaces, substring; half-width katakana and full-width Latin by NFKC
    ("ja", "解約したいです", "cancel_intent", True),
    ("ja", "ｷｬﾝｾﾙしたい", "cancel_intent", True),  # half-width katakana
    ("ja", "アプリが遅いです", "speed", True),
    ("ja", "対応が悪いと思います", "service", True),
    ("ja", "値段が高すぎる", "price", True),
    ("ja", "ｺｽﾊﾟが悪い", "price", True),
    ("ja", "Ｒｉｖａｌｉｘに乗り換えます", "competitor", True),  # full-width Latin
    ("ja", "評価が高いです", "price", False),  # bare 高い is praise as often as price
    ("ja", "失礼します", "service", False),  # polite formula
    ("ja", "とても満足しています", "speed", False),
]


@pytest.mark.parametrize(("language", "text", "category", "expected"), CASES)
def test_mentions_per_language(lexicon, language, text, category, expected):
    assert lexicon.mentions(text, category) is expected, (language, text, category)


def test_every_language_has_positive_and_negative_cases():
    for language in ("en", "zh", "ko", "ru", "pt", "es", "fr", "de", "ja"):
        outcomes = [c[3] for c in CASES if c[0] == language]
        assert outcomes.count(True) >= 3 and outcomes.count(False) >= 2, language


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("ＴＯＯ ＳＬＯＷ", "speed"),  # full-width, NFKC
        ("TOO SLOW", "speed"),
        ("Too\n  slow", "speed"),  # any whitespace run inside a phrase
        ("too slow!!", "speed"),
        ("(дорого)", "price"),
        ("«ДОРОГО»", "price"),
        ("дорого.", "price"),
        ("太贵了！", "price"),
        ("cancel,", "cancel_intent"),
        ("-cancel-", "cancel_intent"),
    ],
)
def test_normalisation_and_punctuation(lexicon, text, category):
    assert lexicon.mentions(text, category)


def test_digits_are_word_characters(lexicon):
    assert not lexicon.mentions("cancel2", "cancel_intent")


def test_none_and_empty_text_mention_nothing(lexicon):
    assert lexicon.mentions(None, "price") is False
    assert lexicon.find(None) == [] and lexicon.find("") == []


def test_case_folding_not_only_lower_case():
    assert normalize_text("Straße") == normalize_text("STRASSE") == "strasse"
    assert normalize_text("ΣΊΣΥΦΟΣ") == normalize_text("σίσυφος")  # final sigma folds to σ
    assert normalize_text("ＤＯＲＯＧＯ Дорого") == "dorogo дорого"
    assert normalize_text("ﬁne") == "fine"


def test_normal_form_is_compatibility_decomposition_without_latin_accents():
    # NFKD (pyarrow's NFKC does not compose, apache/arrow#51225): equal exactly when NFKC is equal;
    # the accents of Latin letters are dropped, the marks of other scripts are kept.
    import unicodedata

    assert normalize_text("é") == normalize_text("e\u0301") == normalize_text("Ｅ\u0301") == "e"
    for text in ["느려요", "й", "ё", "ｶﾞ", "が"]:
        assert normalize_text(text) == unicodedata.normalize("NFKD", text).lower()
    assert normalize_text("ｶﾞ") == normalize_text("ガ") != normalize_text("カ")
    assert normalize_text("느려요") == normalize_text("\u1102\u1173\u1105\u1167\u110b\u116d")


def test_decomposed_letters_keep_word_and_character_boundaries(lexicon):
    assert not lexicon.mentions("slowé", "speed")  # é is a word character, accent or not
    assert lexicon.mentions("café cancel", "cancel_intent")
    assert lexicon.mentions("\u1102\u1173\u1105\u1167\u110b\u116d", "speed")  # jamo 느려요
    (m,) = lexicon.find("너무느려요!", ["speed"])
    assert m.text == "느려요" and m.span_of == "original"


def test_find_reports_original_spans_in_text_order(lexicon):
    text = "ＴＯＯ ＳＬＯＷ and Rivalix is cheaper; 我要取消"
    found = lexicon.find(text)
    assert [(m.category, m.term, m.language) for m in found] == [
        ("speed", "too slow", "en"),
        ("competitor", "Rivalix", "en"),
        ("cancel_intent", "取消", "zh"),
    ]
    for m in found:
        assert m.span_of == "original"
        assert text[m.start : m.end] == m.text
    assert found[0].text == "ＴＯＯ ＳＬＯＷ"


def test_find_prefix_term_spans_whole_word(lexicon):
    (m,) = lexicon.find("Очень медленный сайт", ["speed"])
    assert (m.term, m.text) == ("медленн*", "медленный")
    (m,) = lexicon.find("해지를 원합니다", ["cancel_intent"])
    assert (m.term, m.language, m.text) == ("해지*", "ko", "해지를")


def test_find_prefers_longest_term_and_every_occurrence(lexicon):
    found = lexicon.find("too slow, too slow", ["speed"])
    assert [(m.term, m.start, m.end) for m in found] == [("too slow", 0, 8), ("too slow", 10, 18)]


def test_find_agrees_with_mentions(lexicon):
    text = "Дорогой клиент... но дорого! 느려요"
    for category in lexicon.categories:
        assert bool(lexicon.find(text, [category])) == lexicon.mentions(text, category)


def test_find_falls_back_to_normalised_spans_when_characters_reorder(lexicon, monkeypatch):
    import features.lexicon as mod

    monkeypatch.setattr(mod, "_is_starter", lambda ch: True)  # split marks from their letter
    text = "a\u0301\u0323 too slow"  # normalisation reorders the two marks across the split
    (m,) = lexicon.find(text, ["speed"])
    assert m.span_of == "normalized"
    assert normalize_text(text)[m.start : m.end] == m.text == "too slow"


def test_unknown_category_is_named(lexicon):
    with pytest.raises(KeyError, match="pricing"):
        lexicon.mentions("x", "pricing")


def test_pattern_is_portable(lexicon):
    for category in lexicon.categories:
        p = lexicon.pattern(category)
        re.compile(p)
        assert "(?<" not in p and "(?=" not in p and "(?!" not in p and "\\b" not in p


# ------------------------------------------------------------------ Python vs DuckDB


def _python_vs_duckdb(con, lexicon, texts):
    t = ibis.memtable(
        {"i": list(range(len(texts))), "text": texts}, schema={"i": "int64", "text": "string"}
    )
    n = t.mutate(normalized=normalize_column(t.text))
    expr = n.select(
        "i",
        "normalized",
        **{c: lexicon.mentions_column(n.normalized, c) for c in lexicon.categories},
    ).order_by("i")
    rows = con.to_pyarrow(expr).to_pylist()
    for text, row in zip(texts, rows, strict=True):
        assert row["normalized"] == normalize_text(text), text
        for c in lexicon.categories:
            assert row[c] == lexicon.mentions(text, c), (text, c)


CORPUS = [
    "ＴＯＯ ＳＬＯＷ",
    "Straße STRASSE",
    "İstanbul",
    "ﬁne print, too expensive",
    "ｶﾞ太贵",
    "\u1100\u1161\u11a8 느려요",  # decomposed Hangul jamo
    "Дорогой клиент, дорого",
    "uncancelled cancellation",
    "너무느려요 해지하고 싶어요",
    "cafe\u0301 cancel",  # combining accent
    "",
    "  ",
]


def test_python_and_duckdb_agree_on_corpus(con, lexicon):
    _python_vs_duckdb(con, lexicon, CORPUS)


def _pieces():
    lex = load_lexicon()
    terms = sorted({t.written.rstrip("*") for c in lex.categories for t in lex.category(c).terms})
    near_misses = [t[:-1] for t in terms if len(t) > 2] + [t[1:] for t in terms if len(t) > 2]
    letters = list("azZéßдыЁЖйЙ가요지렸식각中贵ｶﾞ") + ["\u0301", "\u11a8", "ﬁ", "Ｓ", "7"]
    separators = [" ", "  ", "\n", "\t", ",", "!", "(", ")", "«", "»", "。", "，", "'", "-", "_"]
    return st.sampled_from(terms), st.sampled_from(near_misses), letters, separators


_TERMS, _NEAR, _LETTERS, _SEPARATORS = _pieces()
_piece = st.one_of(
    _TERMS,
    _TERMS.map(str.upper),
    _NEAR,
    st.sampled_from(_LETTERS),
    st.sampled_from(_SEPARATORS),
)
_texts = st.lists(st.lists(_piece, max_size=8).map("".join), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=_texts)
def test_python_and_duckdb_agree_property(con, lexicon, texts):
    _python_vs_duckdb(con, lexicon, texts)


# ------------------------------------------------------------------ file validation


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lexicon.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_default_lexicon_loads():
    lex = load_lexicon()
    assert lex.source == str(DEFAULT_LEXICON)
    assert lex.categories == ("price", "speed", "service", "competitor", "cancel_intent")


def test_custom_lexicon(tmp_path):
    lex = load_lexicon(
        _write(tmp_path, "categories:\n  bugs:\n    en: [crash*, bug]\n    zh: [崩溃]\n")
    )
    assert lex.categories == ("bugs",)
    assert lex.mentions("It crashes", "bugs") and lex.mentions("一直崩溃", "bugs")
    assert not lex.mentions("debug", "bugs")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "categories:\n  price:\n    french: [cher]\n",
            r"category 'price': 'french' is neither `description` nor a language tag",
        ),
        (
            "categories:\n  price:\n    en: ['', ok]\n",
            r"category 'price', language 'en', term '': empty",
        ),
        ("categories:\n  price:\n    en: ['  * ']\n", r"term '  \* ': empty"),
        ("categories:\n  price:\n    en: []\n", r"category 'price', language 'en'.*non-empty list"),
        ("categories:\n  price:\n    en: [a*b]\n", r"term 'a\*b'.*only allowed once, at the end"),
        ("categories:\n  price:\n    zh: [太贵*]\n", r"term '太贵\*'.*not possible for 'zh'"),
        ("categories:\n  price:\n    ja: [高すぎ*]\n", r"term '高すぎ\*'.*not possible for 'ja'"),
        (
            "categories:\n  price:\n    pt: [preço, preco]\n",
            r"term 'preco': duplicate of 'preço' after normalisation",
        ),
        (
            "languages:\n  tr: {match: fuzzy}\ncategories:\n  price:\n    tr: [pahalı]\n",
            r"languages, 'tr': match must be one of \['word', 'substring'\], found 'fuzzy'",
        ),
        (
            "languages:\n  tr: {mode: word}\ncategories:\n  price:\n    tr: [pahalı]\n",
            r"languages, 'tr': unknown setting\(s\) \['mode'\]",
        ),
        ("categories:\n  price:\n    en: [Cheap, cheap]\n", r"term 'cheap': duplicate of 'Cheap'"),
        ("categories:\n  price:\n    en: [1]\n", r"term 1: a term must be text"),
        (
            "categories:\n  Price-Tag:\n    en: [x]\n",
            r"category 'Price-Tag': name must be lower_snake",
        ),
        ("categories:\n  price:\n    description: cost\n", r"category 'price': no terms"),
        (
            "version: 2\ncategories:\n  price:\n    en: [x]\n",
            r"unknown top-level key\(s\) \['version'\]",
        ),
        ("terms: [x]\n", r"expected a mapping with a `categories:`"),
        ("categories: [\n", r"not valid YAML"),
    ],
)
def test_validation_errors_name_file_category_and_term(tmp_path, body, expected):
    path = _write(tmp_path, body)
    with pytest.raises(LexiconError, match=expected) as info:
        load_lexicon(path)
    assert str(path) in str(info.value)


def test_validation_reports_every_problem_at_once(tmp_path):
    path = _write(tmp_path, "categories:\n  price:\n    en: ['']\n    german: [teuer]\n")
    with pytest.raises(LexiconError, match=r"2 problem\(s\)"):
        load_lexicon(path)


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(LexiconError, match=r"not found.*featurize\.lexicon"):
        load_lexicon(tmp_path / "nope.yaml")
