"""The text lexicon: which phrases mean that a text mentions price, speed, service, cancelling.

One source of truth for two callers: the `text` feature family counts mentions in DuckDB (through
Ibis, `normalize_column` + `Lexicon.pattern`), and the early-warning alerts look at one record in
Python (`Lexicon.find` / `Lexicon.mentions`). Both run the same normalisation (Unicode
compatibility normalisation, then lower case; one implementation, pyarrow compute) and the same
regular expression per category, written in the syntax on which Python `re` and RE2 (DuckDB)
agree. The file format and the
matching rules are documented in the header of `lexicon.yaml`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from features.base.errors import BadInputError

DEFAULT_LEXICON = Path(__file__).with_name("lexicon.yaml")

MatchMode = Literal["word", "substring"]

# How plain terms of each language match (documented in lexicon.yaml). `word`: the term starts
# and ends at a word boundary; `substring`: anywhere (Chinese has no spaces; Korean particles and
# endings attach to words and spaces are often dropped). In every language written with spaces,
# `term*` means a word that starts with the term.
LANGUAGE_MODES: dict[str, MatchMode] = {
    "en": "word",
    "ru": "word",
    "ko": "substring",
    "zh": "substring",
}
UNSPACED_LANGUAGES = frozenset({"zh"})  # no word starts, so no `term*`

_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Word characters for boundaries: letters, digits and combining marks of Latin, Greek and Cyrillic.
# Explicit ranges instead of \p{L}, which Python's `re` lacks; written as literal characters, since
# RE2 spells code points \x{...} and Python \u.... Han, kana and Hangul are deliberately NOT word
# characters: Latin brand names sit inside Chinese text without spaces, and Korean particles attach
# to them ("Rivalix로").
_WORD_RANGES: tuple[tuple[int, int], ...] = (
    (0x30, 0x39),  # 0-9
    (0x41, 0x5A),  # A-Z (text is lower-cased; kept for safety)
    (0x61, 0x7A),  # a-z
    (0xAA, 0xAA),
    (0xB5, 0xB5),
    (0xBA, 0xBA),
    (0xC0, 0xD6),  # Latin-1 letters (without ×)
    (0xD8, 0xF6),  # (without ÷)
    (0xF8, 0x2AF),  # Latin Extended-A/B, IPA
    (0x300, 0x36F),  # combining diacritical marks
    (0x370, 0x3FF),  # Greek
    (0x400, 0x52F),  # Cyrillic, Cyrillic Supplement
    (0x1AB0, 0x1AFF),  # combining marks extended
    (0x1C80, 0x1C8F),  # Cyrillic Extended-C
    (0x1DC0, 0x1DFF),  # combining marks supplement
    (0x1E00, 0x1FFF),  # Latin Extended Additional, Greek Extended
    (0x2C60, 0x2C7F),  # Latin Extended-C
    (0x2DE0, 0x2DFF),  # Cyrillic Extended-A
    (0xA640, 0xA69F),  # Cyrillic Extended-B
    (0xA720, 0xA7FF),  # Latin Extended-D
    (0xAB30, 0xAB6F),  # Latin Extended-E
)
_WORD_CLASS_BODY = "".join(
    chr(lo) if lo == hi else f"{chr(lo)}-{chr(hi)}" for lo, hi in _WORD_RANGES
)
WORD_CHAR = f"[{_WORD_CLASS_BODY}]"
NON_WORD_CHAR = f"[^{_WORD_CLASS_BODY}]"
_LEFT = f"(?:^|{NON_WORD_CHAR})"
# Korean prefix terms start a word: the character before is neither a word character nor Hangul.
_HANGUL_RANGES: tuple[tuple[int, int], ...] = (
    (0x1100, 0x11FF),  # jamo (syllables are decomposed by normalisation)
    (0x3130, 0x318F),  # compatibility jamo
    (0xA960, 0xA97F),
    (0xAC00, 0xD7A3),  # syllables
    (0xD7B0, 0xD7FF),
)
_HANGUL_CLASS_BODY = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _HANGUL_RANGES)
_LEFT_SPACED = f"(?:^|[^{_WORD_CLASS_BODY}{_HANGUL_CLASS_BODY}])"
_SPACED_WORD_CHAR = f"[{_WORD_CLASS_BODY}{_HANGUL_CLASS_BODY}]"
_RIGHT = f"(?:{NON_WORD_CHAR}|$)"
_SPACE_RUN = r"[ \t\n\r\f\v]+"  # identical meaning in Python re and RE2 (unlike \s)

# What may continue a character after NFKD: combining marks, kana voicing marks, and the vowels
# and final consonants of a decomposed Hangul syllable. A substring match must not stop before
# one of these, or 시 would match inside 식 and 가 inside 각.
_CONTINUATION_RANGES: tuple[tuple[int, int], ...] = (
    (0x300, 0x36F),
    (0x1160, 0x11FF),  # Hangul jungseong and jongseong
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0x3099, 0x309A),
    (0xD7B0, 0xD7FF),  # Hangul jamo extended-B
    (0xFE20, 0xFE2F),
)
_CHAR_END = "(?:[^{}]|$)".format("".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CONTINUATION_RANGES))


class LexiconError(BadInputError, ValueError):
    """The lexicon file is missing or does not follow the documented format."""


def normalize_array(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Normalise an Arrow string array for matching: NFKD, then lower case (nulls stay null).

    NFKD, not NFKC: two texts have the same NFKC form exactly when they have the same NFKD form,
    so the choice does not change what is equal; but pyarrow's NFKC kernel does not compose
    (apache/arrow#51225, still in pyarrow 25), while its NFKD kernel is correct and vectorised.
    Patterns keep the decomposition invisible: a match never ends inside a character (before a
    combining mark or a Korean vowel/final consonant), so 느려 does not match inside 느렸.
    """
    return pc.utf8_lower(pc.utf8_normalize(texts, "NFKD"))


def normalize_text(text: str) -> str:
    """Normalise one text exactly as `normalize_column` does in the database (same Arrow kernels).

    Lower case (Unicode lowercase mapping, Arrow's `utf8_lower`), not casefold: "Straße" stays
    "straße" and does not equal "strasse"; no lexicon language needs casefold's extra foldings.
    """
    return normalize_array(pa.array([text], pa.string()))[0].as_py()


@ibis.udf.scalar.pyarrow
def _normalize_lexicon_text(text: str) -> str:
    return normalize_array(text)


def normalize_column(texts: ir.StringValue) -> ir.StringValue:
    """The Ibis expression for `normalize_text` over a column: a vectorised pyarrow UDF."""
    return _normalize_lexicon_text(texts)


@dataclass(frozen=True)
class Term:
    """One lexicon term: as written in the file, and what it matches after normalisation."""

    written: str
    language: str
    normalized: str  # without the trailing `*`, whitespace runs collapsed to one space
    prefix: bool

    @property
    def mode(self) -> MatchMode:
        return LANGUAGE_MODES[self.language]


@dataclass(frozen=True)
class Category:
    name: str
    description: str
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Mention:
    """One place where a text mentions a category.

    `start`/`end` index the ORIGINAL text and `text` is `original[start:end]` whenever the
    normalisation maps back character by character, which is the case for all text that does
    not put combining marks in non-canonical order across characters; otherwise `span_of` is
    "normalized" and the span and `text` refer to `normalize_text(original)`.
    For a prefix term the span covers the whole word ("медленный" for "медленн*").
    """

    category: str
    term: str
    language: str
    start: int
    end: int
    text: str
    span_of: Literal["original", "normalized"] = "original"


def _collapse_spaces(text: str) -> str:
    return " ".join(text.split())


def _alternation(terms: Iterable[Term]) -> str:
    """Terms as a regex alternation, longest first so that the most specific term wins."""
    ordered = sorted({t.normalized for t in terms}, key=lambda s: (-len(s), s))
    return "|".join(_SPACE_RUN.join(re.escape(word) for word in t.split(" ")) for t in ordered)


class Lexicon:
    """Categories of terms, compiled to one regular expression each (see `pattern`)."""

    def __init__(self, categories: Iterable[Category], source: str = "<memory>") -> None:
        self.source = source
        self._categories: dict[str, Category] = {c.name: c for c in categories}
        self._patterns: dict[str, str] = {}
        self._groups: dict[str, tuple[tuple[Term, ...], ...]] = {}
        for name, cat in self._categories.items():
            parts: list[str] = []
            groups: list[tuple[Term, ...]] = []
            whole = tuple(t for t in cat.terms if t.mode == "word" and not t.prefix)
            prefix = tuple(t for t in cat.terms if t.mode == "word" and t.prefix)
            spaced_prefix = tuple(t for t in cat.terms if t.mode == "substring" and t.prefix)
            anywhere = tuple(t for t in cat.terms if t.mode == "substring" and not t.prefix)
            if whole:
                parts.append(f"{_LEFT}({_alternation(whole)}){_RIGHT}")
                groups.append(whole)
            if prefix:
                parts.append(f"{_LEFT}((?:{_alternation(prefix)}){WORD_CHAR}*)")
                groups.append(prefix)
            if spaced_prefix:
                alternation = _alternation(spaced_prefix)
                parts.append(f"{_LEFT_SPACED}((?:{alternation}){_SPACED_WORD_CHAR}*)")
                groups.append(spaced_prefix)
            if anywhere:
                parts.append(f"({_alternation(anywhere)}){_CHAR_END}")
                groups.append(anywhere)
            self._patterns[name] = "|".join(parts)
            self._groups[name] = tuple(groups)
        self._compiled = {name: re.compile(p) for name, p in self._patterns.items()}

    def __repr__(self) -> str:
        return f"Lexicon({self.source!r}, categories={list(self.categories)})"

    @property
    def categories(self) -> tuple[str, ...]:
        """Category names, in file order."""
        return tuple(self._categories)

    def category(self, name: str) -> Category:
        try:
            return self._categories[name]
        except KeyError:
            raise KeyError(
                f"lexicon {self.source}: no category {name!r}; categories: {list(self.categories)}"
            ) from None

    def examples(self, name: str) -> list[str]:
        """One example term per language (first listed), for plain-language descriptions."""
        seen: dict[str, str] = {}
        for term in self.category(name).terms:
            seen.setdefault(term.language, term.written)
        return list(seen.values())

    def pattern(self, category: str) -> str:
        """The category's regex over NORMALISED text; same meaning in Python `re` and RE2/DuckDB."""
        self.category(category)
        return self._patterns[category]

    def mentions(self, text: str | None, category: str) -> bool:
        """Whether `text` mentions `category` (False for None)."""
        self.category(category)
        if text is None:
            return False
        return self._compiled[category].search(normalize_text(text)) is not None

    def mentions_column(self, normalized: ir.StringValue, category: str) -> ir.BooleanValue:
        """Ibis boolean: whether an already `normalize_column`-ed text mentions `category`."""
        return normalized.re_search(self.pattern(category))

    def find(self, text: str | None, categories: Iterable[str] | None = None) -> list[Mention]:
        """Every mention of the given (default: all) categories in `text`, in text order."""
        names = self.categories if categories is None else tuple(categories)
        for name in names:
            self.category(name)
        if not text:
            return []
        normalized, starts, ends = _normalize_with_offsets(text)
        mapped = starts is not None
        found: list[Mention] = []
        for name in names:
            regex, groups = self._compiled[name], self._groups[name]
            pos = 0
            while (m := regex.search(normalized, pos)) is not None:
                g = next(i for i in range(1, len(groups) + 1) if m.group(i) is not None)
                s, e = m.span(g)
                term = _which_term(groups[g - 1], _collapse_spaces(normalized[s:e]))
                if mapped:
                    assert starts is not None and ends is not None
                    s_out, e_out, span_of = starts[s], ends[e - 1], "original"
                    matched = text[s_out:e_out]
                else:
                    s_out, e_out, span_of, matched = s, e, "normalized", normalized[s:e]
                found.append(
                    Mention(name, term.written, term.language, s_out, e_out, matched, span_of)
                )
                pos = max(e, pos + 1)
        order = {name: i for i, name in enumerate(names)}
        return sorted(found, key=lambda m: (m.start, order[m.category]))


def _which_term(candidates: tuple[Term, ...], matched: str) -> Term:
    """The lexicon term behind a match (the longest, as the regex alternation prefers)."""
    hits = [
        t
        for t in candidates
        if (matched.startswith(t.normalized) if t.prefix else t.normalized == matched)
    ]
    return max(hits, key=lambda t: len(t.normalized))


def _is_starter(ch: str) -> bool:
    """Whether `ch` starts a new character (is not a mark or jamo of the one before)."""
    if unicodedata.combining(ch):
        return False
    # Hangul vowel/final jamo belong to the preceding syllable; half-width kana voicing marks
    # become combining marks under compatibility normalisation.
    return not ("\u1160" <= ch <= "\u11ff" or ch in "\uff9e\uff9f")


def _normalize_with_offsets(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """Normalised text plus, per normalised character, its [start, end) span in `text`.

    Normalises chunk by chunk (a character and the marks that attach to it); if that differs
    from normalising the whole text, returns the whole-text normalisation and no offsets.
    """
    bounds = [i for i, ch in enumerate(text) if i == 0 or _is_starter(ch)] + [len(text)]
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    pieces = normalize_array(pa.array(chunks, pa.string())).to_pylist()
    joined = "".join(pieces)
    whole = normalize_text(text)
    if joined != whole:
        return whole, None, None
    starts: list[int] = []
    ends: list[int] = []
    for a, b, piece in zip(bounds, bounds[1:], pieces, strict=False):
        starts.extend([a] * len(piece))
        ends.extend([b] * len(piece))
    return whole, starts, ends


# ---------------------------------------------------------------- loading and validation


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Read and validate a lexicon YAML file (default: the one shipped next to this module)."""
    path = Path(path) if path is not None else DEFAULT_LEXICON
    if not path.is_file():
        raise LexiconError(
            f"lexicon file not found: {path}. Point featurize.lexicon in params.yaml at a lexicon "
            f"YAML file (the default is {DEFAULT_LEXICON})."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LexiconError(f"lexicon {path}: not valid YAML: {exc}") from exc
    return parse_lexicon(data, source=str(path))


def parse_lexicon(data: Any, source: str = "<memory>") -> Lexicon:
    """Validate a parsed lexicon document; every problem is reported at once."""
    problems: list[str] = []
    categories: list[Category] = []
    allowed_keys = ["description", *sorted(LANGUAGE_MODES)]
    if not isinstance(data, Mapping) or not isinstance(data.get("categories"), Mapping):
        raise LexiconError(
            f"lexicon {source}: expected a mapping with a `categories:` mapping at the top, "
            f"found {type(data).__name__}: see the format in {DEFAULT_LEXICON.name}'s header"
        )
    unknown_top = sorted(str(k) for k in data if k != "categories")
    if unknown_top:
        problems.append(f"unknown top-level key(s) {unknown_top}; only `categories` is allowed")
    if not data["categories"]:
        problems.append("no categories defined")
    for name, body in data["categories"].items():
        where = f"category {name!r}"
        if not isinstance(name, str) or not _CATEGORY_NAME.match(name):
            problems.append(f"{where}: name must be lower_snake_case (it becomes a column name)")
            continue
        if not isinstance(body, Mapping):
            problems.append(f"{where}: expected a mapping of language -> terms, found {body!r}")
            continue
        unknown = sorted(str(k) for k in body if k not in allowed_keys)
        for key in unknown:
            problems.append(
                f"{where}: unknown language or key {key!r}; allowed: {allowed_keys} "
                "(supported languages are fixed in features/lexicon.py LANGUAGE_MODES)"
            )
        description = body.get("description", name.replace("_", " "))
        if not isinstance(description, str) or not description.strip():
            problems.append(f"{where}: description must be non-empty text, found {description!r}")
            description = name.replace("_", " ")
        terms: list[Term] = []
        for language in (k for k in body if k in LANGUAGE_MODES):
            terms.extend(_parse_terms(body[language], language, where, problems))
        if not terms and not unknown:
            problems.append(f"{where}: no terms; list terms under at least one language")
        categories.append(Category(name, description.strip(), tuple(terms)))
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise LexiconError(f"lexicon {source}: {len(problems)} problem(s):\n{listed}")
    return Lexicon(categories, source=source)


def _parse_terms(raw: Any, language: str, where: str, problems: list[str]) -> list[Term]:
    where = f"{where}, language {language!r}"
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: expected a non-empty list of terms, found {raw!r}")
        return []
    terms: list[Term] = []
    seen: dict[str, str] = {}
    for written in raw:
        at = f"{where}, term {written!r}"
        if not isinstance(written, str):
            problems.append(f"{at}: a term must be text (quote it in YAML)")
            continue
        body = written.strip()
        prefix = body.endswith("*")
        if prefix:
            body = body[:-1].rstrip()
        if "*" in body:
            problems.append(f"{at}: `*` is only allowed once, at the end (prefix term)")
            continue
        if prefix and language in UNSPACED_LANGUAGES:
            problems.append(
                f"{at}: a trailing `*` (a word starting with the term) is not possible for "
                f"{language!r}, which is written without spaces; remove it"
            )
            continue
        normalized = _collapse_spaces(normalize_text(body))
        if not normalized:
            problems.append(f"{at}: empty term")
            continue
        key = normalized + ("*" if prefix else "")
        if key in seen:
            problems.append(f"{at}: duplicate of {seen[key]!r} after normalisation")
            continue
        seen[key] = written
        terms.append(Term(written.strip(), language, normalized, prefix))
    return terms
