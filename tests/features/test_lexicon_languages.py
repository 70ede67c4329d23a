"""Languages are data: a language added only in a lexicon file matches, per-script rules."""

from __future__ import annotations

from pathlib import Path

import ibis
import pytest

from features.lexicon import load_lexicon, normalize_column, normalize_text, script_mode


@pytest.fixture(scope="module")
def lexicon():
    return load_lexicon()


def _lexicon(tmp_path: Path, body: str):
    path = tmp_path / "lexicon.yaml"
    path.write_text(body, encoding="utf-8")
    return load_lexicon(path)


# ------------------------------------------------------------ a language only in the file


def test_new_spaced_language_in_yaml_only(tmp_path):
    # Polish: no code knows "pl"; Latin script, so word boundaries and optional accents.
    lex = _lexicon(
        tmp_path,
        "categories:\n"
        "  price:\n"
        "    pl: [drogo, za drogie, opłat*]\n"
        "  cancel_intent:\n"
        "    pl-PL: [anulować, rezygnuję]\n",
    )
    assert lex.mentions("Za DROGIE!", "price")
    assert lex.mentions("Bardzo drogo.", "price")
    assert lex.mentions("Dodatkowe opłaty", "price")  # prefix term
    assert not lex.mentions("dodatkowe oplaty", "price")  # ł is a letter, not an accented l
    assert not lex.mentions("Sprawa drogowa", "price")  # drogo is a whole word
    assert lex.mentions("Chcę ANULOWAĆ", "cancel_intent")
    assert lex.mentions("chce anulowac", "cancel_intent")
    assert lex.mentions("Rezygnuje z usługi", "cancel_intent")
    (m,) = lex.find("Chcę ANULOWAĆ teraz", ["cancel_intent"])
    assert (m.language, m.term, m.text) == ("pl-PL", "anulować", "ANULOWAĆ")


def test_new_unspaced_language_in_yaml_only(tmp_path):
    # Thai is written without spaces: substring matching follows from the script.
    lex = _lexicon(tmp_path, "categories:\n  price:\n    th: [แพงมาก, ราคาสูง]\n")
    assert lex.category("price").terms[0].mode == "substring"
    assert lex.mentions("ของดีแต่แพงมากเลย", "price")
    assert lex.mentions("ราคาสูงเกินไป", "price")
    assert not lex.mentions("ของดีราคาถูก", "price")


def test_new_language_in_another_spaced_script(tmp_path):
    lex = _lexicon(tmp_path, "categories:\n  price:\n    el: [ακριβό]\n    ar: [غالي]\n")
    assert lex.mentions("Πολύ ΑΚΡΙΒΌ!", "price")  # Greek: case folding
    assert not lex.mentions("πολύ ακριβο", "price")  # only Latin letters lose their accents
    assert not lex.mentions("ακριβότερο", "price")  # whole words
    assert lex.mentions("السعر غالي جدا", "price")
    assert not lex.mentions("غاليات", "price")


def test_language_setting_overrides_the_script(tmp_path):
    body = "categories:\n  price:\n    tr: [pahalı]\n"
    word = _lexicon(tmp_path, body)
    assert word.mentions("çok pahalı", "price")
    assert not word.mentions("çok pahalıymış", "price")  # Latin script: whole words by default
    # Turkish suffixes attach to the word: a per-language setting makes plain terms substrings.
    substring = _lexicon(tmp_path, "languages:\n  tr: {match: substring}\n" + body)
    assert substring.category("price").terms[0].mode == "substring"
    assert substring.mentions("çok pahalıymış", "price")
    assert not substring.mentions("Çok PAHALI", "price")  # dotless ı is its own letter, not i


def test_script_mode_decides_from_the_script():
    assert script_mode("cancelar") == "word"
    assert script_mode("дорого") == "word"
    assert script_mode("解約") == script_mode("キャンセル") == script_mode("แพง") == "substring"
    assert script_mode("느려요") == "substring"  # Hangul: particles attach


def test_the_four_original_languages_need_no_setting(lexicon):
    modes = {
        (t.language, t.mode)
        for c in lexicon.categories
        for t in lexicon.category(c).terms
        if t.language in ("en", "ru", "zh", "ko")
    }
    assert modes == {("en", "word"), ("ru", "word"), ("zh", "substring"), ("ko", "substring")}


# ------------------------------------------------------------ normalisation per script


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("não funciona", "NAO FUNCIONA"),
        ("cancelación", "CANCELACION"),
        ("résilier", "Resilier"),
        ("kündigen", "KUNDIGEN"),
        ("Straße", "STRASSE"),  # case folding, not only lower case
        ("ｷｬﾝｾﾙ", "キャンセル"),  # half-width katakana
        ("ｺｽﾊﾟ", "コスパ"),  # half-width voiced mark composes
        ("Ｒｉｖａｌｉｘ", "rivalix"),  # full-width Latin
        ("n\u0303", "ñ"),  # decomposed and precomposed
    ],
)
def test_equal_after_normalisation(a, b):
    assert normalize_text(a) == normalize_text(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ё", "е"),  # Cyrillic: a different letter, not an accent
        ("й", "и"),
        ("が", "か"),  # kana voicing marks are kept
        ("キャンセル", "きゃんせる"),  # katakana is not hiragana
        ("ø", "o"),  # a letter of its own, not an accented o
    ],
)
def test_different_after_normalisation(a, b):
    assert normalize_text(a) != normalize_text(b)


def test_japanese_match_never_ends_inside_a_character(tmp_path):
    lex = _lexicon(tmp_path, "categories:\n  x:\n    ja: [かき]\n")
    assert lex.mentions("かきです", "x")
    assert not lex.mentions("かぎです", "x")  # ぎ = き + voicing mark
    assert not lex.mentions("ｶｷ", "x")  # katakana


def test_latin_term_inside_japanese_and_korean_text(lexicon):
    assert lexicon.mentions("Rivalixに乗り換えたい", "competitor")
    assert lexicon.mentions("RIVALIXのほうが安い", "competitor")


def test_find_reports_original_spans_with_accents(lexicon):
    text = "Entrega NÃO CHEGOU; péssimo atendimento, Überteuert!"
    found = lexicon.find(text)
    assert [(m.category, m.language, m.text) for m in found] == [
        ("speed", "pt", "NÃO CHEGOU"),
        ("service", "pt", "péssimo atendimento"),
        ("price", "de", "Überteuert"),
    ]
    assert all(text[m.start : m.end] == m.text for m in found)


def test_find_spans_when_case_folding_lengthens_the_text(tmp_path):
    lex = _lexicon(tmp_path, "categories:\n  x:\n    de: [strasse gesperrt]\n")
    text = "Die STRAẞE gesperrt, die Straße gesperrt"
    found = lex.find(text)
    assert [m.text for m in found] == ["STRAẞE gesperrt", "Straße gesperrt"]


# ------------------------------------------------------------ Python vs DuckDB


def test_python_and_duckdb_agree_on_new_languages(lexicon):
    texts = [
        "Está muito CARO, não chegou",
        "nao chegou, pessimo atendimento",
        "C'est trop chère — je veux RÉSILIER",
        "Viel zu teuer, ich möchte kündigen; STRASSE Straße",
        "ｷｬﾝｾﾙしたい、アプリが遅い",
        "Ｒｉｖａｌｉｘに乗り換え",
        "Die Steuer; A Carolina; Cher client",
        "İstanbul ΣΊΣΥΦΟΣ Ꭰ",
        None,
    ]
    t = ibis.memtable({"i": list(range(len(texts))), "text": texts})
    n = t.mutate(normalized=normalize_column(t.text))
    expr = n.select(
        "i",
        "normalized",
        **{c: lexicon.mentions_column(n.normalized, c) for c in lexicon.categories},
    ).order_by("i")
    rows = ibis.duckdb.connect().to_pyarrow(expr).to_pylist()
    for text, row in zip(texts, rows, strict=True):
        if text is None:
            assert row["normalized"] is None
            continue
        assert row["normalized"] == normalize_text(text), text
        for c in lexicon.categories:
            assert bool(row[c]) == lexicon.mentions(text, c), (text, c)
