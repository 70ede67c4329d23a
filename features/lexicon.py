"""The text lexicon: which phrases mean that a text mentions price, speed, service, cancelling.

One source of truth for two callers: the `text` feature family counts mentions in DuckDB (through
Ibis, `normalize_column` + `Lexicon.pattern`), and the early-warning alerts look at one record in
Python (`Lexicon.find` / `Lexicon.mentions`). Both run the same normalisation (Unicode
compatibility normalisation, then case folding; one implementation, pyarrow compute) and the same
regular expression per category, written in the syntax on which Python `re` and RE2 (DuckDB)
agree. Languages are data: any language tag may appear in the file; how a term matches (word
boundaries or anywhere, accents optional or not) follows from the script it is written in, or
from the file's `languages:` settings. The file format and the matching rules are documented in
the header of `lexicon.yaml`.
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
MATCH_MODES: tuple[MatchMode, ...] = ("word", "substring")

# A language key: a BCP-47-like tag (pt, pt-BR, zh-Hant, sr-Latn, yue).
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_LANGUAGE_SETTINGS = ("match",)
_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Scripts written without spaces between words (Unicode character-name prefixes). A term in one
# of them matches anywhere and cannot be a prefix term (there are no word starts). Hangul is
# spaced, but Korean particles and endings attach to words, so it also matches anywhere by default.
_UNSPACED_SCRIPTS = frozenset(
    {
        "CJK",
        "IDEOGRAPHIC",
        "HIRAGANA",
        "KATAKANA",
        "BOPOMOFO",
        "THAI",
        "LAO",
        "KHMER",
        "MYANMAR",
        "TIBETAN",
        "YI",
        "JAVANESE",
        "BALINESE",
        "TANGUT",
        "NUSHU",
    }
)
_HANGUL = "HANGUL"
_SCAN_LIMIT = 0x20000  # BMP and SMP: every script a lexicon could be written in

Script = Literal["latin", "hangul", "unspaced", "other"]


def _script(ch: str) -> Script:
    """The script class of one character, from its Unicode name (stdlib has no script property)."""
    words = [
        w
        for w in unicodedata.name(ch, "").replace("-", " ").split(" ")
        if w not in ("HALFWIDTH", "FULLWIDTH", "COMBINING")
    ]
    if any(w in _UNSPACED_SCRIPTS for w in words[:2]):
        return "unspaced"
    if words[:1] == [_HANGUL]:
        return "hangul"
    if words[:1] == ["LATIN"]:
        return "latin"
    return "other"


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("M")


# Combining diacritics that NFKD splits off Latin letters (acute, tilde, diaeresis, cedilla ...).
_LATIN_MARK_RANGES: tuple[tuple[int, int], ...] = (
    (0x300, 0x36F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
)


def _is_latin_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "L" and _script(ch) == "latin"


def _ranges(
    predicate: Any, within: Iterable[tuple[int, int]] = ((0, _SCAN_LIMIT - 1),)
) -> tuple[tuple[int, int], ...]:
    """The code points (in the blocks `within`) for which `predicate` holds, as closed ranges."""
    out: list[tuple[int, int]] = []
    for cp in (cp for lo, hi in within for cp in range(lo, hi + 1)):
        if 0xD800 <= cp <= 0xDFFF or not predicate(chr(cp)):
            continue
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return tuple(out)


def _class_body(ranges: Iterable[tuple[int, int]]) -> str:
    # Literal characters, not escapes: RE2 spells code points \x{...} and Python \u....
    return "".join(chr(lo) if lo == hi else f"{chr(lo)}-{chr(hi)}" for lo, hi in ranges)


# The Unicode blocks of the scripts written with spaces that word boundaries know: Latin, Greek,
# Cyrillic, Armenian, Hebrew, Arabic, the Indic scripts, Georgian, Ethiopic, and the combining
# marks. Han, kana, Thai ... and Hangul are deliberately NOT among them: Latin brand names sit
# inside Chinese or Japanese text without spaces, and Korean particles attach to them
# ("Rivalix로"). Blocks rather than every letter of Unicode keep the class short, and Python's
# `re` tests a class range by range.
_SPACED_SCRIPT_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x30, 0x7A),  # ASCII digits and letters (punctuation in between is filtered out below)
    (0xAA, 0x2FF),  # Latin-1 letters, Latin Extended-A/B, IPA, modifier letters
    (0x300, 0x36F),  # combining diacritical marks
    (0x370, 0x52F),  # Greek, Cyrillic, Cyrillic Supplement
    (0x530, 0x6FF),  # Armenian, Hebrew, Arabic
    (0x750, 0x77F),  # Arabic Supplement
    (0x900, 0xDFF),  # Devanagari ... Sinhala
    (0x10A0, 0x10FF),  # Georgian
    (0x1200, 0x137F),  # Ethiopic
    (0x1AB0, 0x1AFF),  # combining marks extended
    (0x1C80, 0x1C8F),  # Cyrillic Extended-C
    (0x1DC0, 0x1FFF),  # combining marks supplement, Latin Extended Additional, Greek Extended
    (0x2C60, 0x2C7F),  # Latin Extended-C
    (0x2DE0, 0x2DFF),  # Cyrillic Extended-A
    (0xA640, 0xA69F),  # Cyrillic Extended-B
    (0xA720, 0xA7FF),  # Latin Extended-D
    (0xAB30, 0xAB6F),  # Latin Extended-E
)


def _is_word_char(ch: str) -> bool:
    """A letter, combining mark or decimal digit (or unassigned) in a spaced script's block."""
    if not any(lo <= ord(ch) <= hi for lo, hi in _SPACED_SCRIPT_BLOCKS):
        return False
    category = unicodedata.category(ch)
    return category[0] in "LM" or category in ("Nd", "Cn")


_WORD_CLASS_BODY = _class_body(_ranges(_is_word_char, _SPACED_SCRIPT_BLOCKS))
WORD_CHAR = f"[{_WORD_CLASS_BODY}]"
NON_WORD_CHAR = f"[^{_WORD_CLASS_BODY}]"
_LEFT = f"(?:^|{NON_WORD_CHAR})"
_RIGHT = f"(?:{NON_WORD_CHAR}|$)"
# Prefix terms of substring-mode spaced languages (Korean) start a word: the character before is
# neither a word character nor Hangul.
_HANGUL_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x1100, 0x11FF),  # jamo (syllables are decomposed by normalisation)
    (0x3130, 0x318F),  # compatibility jamo
    (0xA960, 0xA97F),
    (0xAC00, 0xD7A3),  # syllables
    (0xD7B0, 0xD7FF),
)
_HANGUL_CLASS_BODY = _class_body(_HANGUL_BLOCKS)
_LEFT_SPACED = f"(?:^|[^{_WORD_CLASS_BODY}{_HANGUL_CLASS_BODY}])"
_SPACED_WORD_CHAR = f"[{_WORD_CLASS_BODY}{_HANGUL_CLASS_BODY}]"
_SPACE_RUN = r"[ \t\n\r\f\v]+"  # identical meaning in Python re and RE2 (unlike \s)
# A Latin letter and the accents after it, which normalisation drops ("ã" -> "a").
_LATIN_LETTER_CLASS_BODY = _class_body(_ranges(_is_latin_letter, _SPACED_SCRIPT_BLOCKS))
_LATIN_ACCENTS = f"([{_LATIN_LETTER_CLASS_BODY}])[{_class_body(_LATIN_MARK_RANGES)}]+"

# What may continue a character after NFKD: combining marks (accents, kana voicing marks, Thai
# and Indic vowel signs), and the vowels and final consonants of a decomposed Hangul syllable. A
# substring match must not stop before one of these, or 시 would match inside 식 and 가 inside 각.
_OTHER_MARK_BLOCKS: tuple[tuple[int, int], ...] = (  # besides those of the spaced scripts
    (0xE00, 0xFFF),  # Thai, Lao, Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x20D0, 0x20FF),  # combining marks for symbols
    (0x3000, 0x30FF),  # CJK punctuation, hiragana, katakana (voicing marks)
    (0xFE20, 0xFE2F),  # combining half marks
)
_CONTINUATION_RANGES = _ranges(
    lambda ch: _is_mark(ch) or 0x1160 <= ord(ch) <= 0x11FF or 0xD7B0 <= ord(ch) <= 0xD7FF,
    (*_SPACED_SCRIPT_BLOCKS, (0x1160, 0x11FF), *_OTHER_MARK_BLOCKS, (0xD7B0, 0xD7FF)),
)
_CHAR_END = f"(?:[^{_class_body(_CONTINUATION_RANGES)}]|$)"

# Characters whose case folding differs from their lower case (ß -> ss, ς -> σ ...), as a class.
_FOLDS_FURTHER = f"[{_class_body(_ranges(lambda ch: ch.casefold() != ch and ch.lower() == ch))}]"


class LexiconError(BadInputError, ValueError):
    """The lexicon file is missing or does not follow the documented format."""


def normalize_array(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Normalise an Arrow string array for matching (nulls stay null): NFKD, case folding, and
    no accents on Latin letters ("Não" -> "nao", "Kündigen" -> "kundigen", "Straße" -> "strasse").

    NFKD, not NFKC: two texts have the same NFKC form exactly when they have the same NFKD form,
    so the choice does not change what is equal; but pyarrow's NFKC kernel does not compose
    (apache/arrow#51225, still in pyarrow 25), while its NFKD kernel is correct and vectorised.
    Patterns keep the decomposition invisible: a match never ends inside a character (before a
    combining mark or a Korean vowel/final consonant), so 느려 does not match inside 느렸.
    Case folding is Arrow's vectorised lower case, plus Python's `str.casefold` for the rare texts
    holding a character that folds further (ß -> ss, final ς -> σ). Accents: the combining
    diacritics that follow a Latin letter are removed (one RE2 pass); other scripts keep their
    marks (Cyrillic й, kana が), since there the mark makes a different letter.
    """
    if isinstance(texts, pa.ChunkedArray):
        return pa.chunked_array(
            [_normalize_chunk(chunk) for chunk in texts.chunks], type=pa.string()
        )
    return _normalize_chunk(texts)


def _normalize_chunk(texts: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(pc.utf8_normalize(texts, "NFKD"))
    if pc.all(pc.string_is_ascii(lowered)).as_py() is not False:
        return lowered  # nothing to fold further, no accents
    further = pc.fill_null(pc.match_substring_regex(lowered, _FOLDS_FURTHER), False)
    if pc.any(further).as_py():
        rows = pc.filter(lowered, further).to_pylist()
        folded = pc.utf8_normalize(pa.array([_fold(s) for s in rows], pa.string()), "NFKD")
        lowered = pc.replace_with_mask(lowered, further, folded)
    return pc.replace_substring_regex(lowered, _LATIN_ACCENTS, r"\1")


def _fold(text: str) -> str:
    """Case folding to a fixed point (folding can yield characters that NFKD changes again)."""
    for _ in range(4):
        folded = unicodedata.normalize("NFKD", text.casefold())
        if folded == text:
            break
        text = folded
    return text


def normalize_text(text: str) -> str:
    """Normalise one text exactly as `normalize_column` does in the database (same kernels)."""
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
    # normalised (`normalize_text`), without the trailing `*`, whitespace runs collapsed
    normalized: str
    prefix: bool
    mode: MatchMode = "word"


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
    if not isinstance(data, Mapping) or not isinstance(data.get("categories"), Mapping):
        raise LexiconError(
            f"lexicon {source}: expected a mapping with a `categories:` mapping at the top, "
            f"found {type(data).__name__}: see the format in {DEFAULT_LEXICON.name}'s header"
        )
    unknown_top = sorted(str(k) for k in data if k not in ("categories", "languages"))
    if unknown_top:
        problems.append(
            f"unknown top-level key(s) {unknown_top}; only `categories` and `languages` are allowed"
        )
    modes = _parse_languages(data.get("languages"), problems)
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
        languages = [k for k in body if k != "description"]
        unknown = [k for k in languages if not _is_language_tag(k)]
        for key in unknown:
            problems.append(
                f"{where}: {key!r} is neither `description` nor a language tag such as en, pt, "
                "pt-BR or zh-Hant (letters, then optional -subtags)"
            )
        description = body.get("description", name.replace("_", " "))
        if not isinstance(description, str) or not description.strip():
            problems.append(f"{where}: description must be non-empty text, found {description!r}")
            description = name.replace("_", " ")
        terms: list[Term] = []
        for language in (k for k in languages if k not in unknown):
            terms.extend(_parse_terms(body[language], language, modes, where, problems))
        if not terms and not unknown:
            problems.append(f"{where}: no terms; list terms under at least one language")
        categories.append(Category(name, description.strip(), tuple(terms)))
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise LexiconError(f"lexicon {source}: {len(problems)} problem(s):\n{listed}")
    return Lexicon(categories, source=source)


def _is_language_tag(key: Any) -> bool:
    return isinstance(key, str) and _LANGUAGE_TAG.match(key) is not None


def _parse_languages(raw: Any, problems: list[str]) -> dict[str, MatchMode]:
    """The optional `languages:` section: per language, a `match` mode overriding the script's."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"`languages`: expected a mapping of language -> settings, found {raw!r}")
        return {}
    modes: dict[str, MatchMode] = {}
    for language, settings in raw.items():
        where = f"languages, {language!r}"
        if not _is_language_tag(language):
            problems.append(f"{where}: not a language tag such as en, pt, pt-BR or zh-Hant")
            continue
        if not isinstance(settings, Mapping):
            problems.append(
                f"{where}: expected a mapping such as {{match: word}}, found {settings!r}"
            )
            continue
        unknown = sorted(str(k) for k in settings if k not in _LANGUAGE_SETTINGS)
        if unknown:
            problems.append(
                f"{where}: unknown setting(s) {unknown}; allowed: {list(_LANGUAGE_SETTINGS)}"
            )
        if "match" in settings:
            mode = settings["match"]
            if mode not in MATCH_MODES:
                problems.append(
                    f"{where}: match must be one of {list(MATCH_MODES)}, found {mode!r}"
                )
            else:
                modes[language] = mode
    return modes


def script_mode(term: str) -> MatchMode:
    """How a term matches when its language has no `match` setting: from the script it uses.

    `substring` when it has a character of a script written without spaces (Han, kana, Thai ...)
    or Hangul (Korean particles and endings attach to words); `word` otherwise (Latin, Cyrillic,
    Greek, Arabic, Hebrew, Devanagari ...).
    """
    return "substring" if any(_script(ch) in ("unspaced", "hangul") for ch in term) else "word"


def _parse_terms(
    raw: Any, language: str, modes: Mapping[str, MatchMode], where: str, problems: list[str]
) -> list[Term]:
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
        normalized = _collapse_spaces(normalize_text(body))
        if not normalized:
            problems.append(f"{at}: empty term")
            continue
        if prefix and _script(normalized[0]) == "unspaced":
            problems.append(
                f"{at}: a trailing `*` (a word starting with the term) is not possible for "
                f"{language!r} here: the term starts in a script written without spaces "
                "(Han, kana, Thai ...), which has no word starts; remove it"
            )
            continue
        key = normalized + ("*" if prefix else "")
        if key in seen:
            problems.append(
                f"{at}: duplicate of {seen[key]!r} after normalisation (case, width and the "
                "accents of Latin letters do not count)"
            )
            continue
        seen[key] = written
        mode = modes.get(language) or script_mode(normalized)
        terms.append(Term(written.strip(), language, normalized, prefix, mode))
    return terms
