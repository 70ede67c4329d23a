"""Early-warning rules: a small, safe condition language and the rules file (`alerts.yaml`).

A condition such as ``touchpoint == "after_sales" and score <= 5`` is tokenised and parsed by a
recursive-descent parser into an AST, type-checked against the fields a rule can see, and
evaluated as vectorised pandas/pyarrow operations over a frame of records. Nothing the user
writes is ever passed to Python `eval`/`exec` or pasted into SQL: the only functions are the ones
this module implements (`mentions`).

Grammar (keywords are lower case; `true`/`false` also accept `True`/`False`)::

    condition  := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                           | ["not"] "in" list]
    operand    := number | "-" number | string | "true" | "false" | list | field
                  | "mentions" "(" category ")" | "(" or_expr ")"
    list       := "[" [literal ("," literal)* [","]] "]"

Types: number, string, bool, timestamp. `==`/`!=` compare equal types; `<`... only numbers; `in`
needs a list of literals of the field's type; `and`/`or`/`not` need booleans. A comparison with a
missing value is false (so `not (score <= 5)` is true when the score is missing).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from features.base.errors import BadInputError
from features.lexicon import Lexicon, normalize_array

log = logging.getLogger(__name__)

LEVELS: tuple[str, ...] = ("critical", "high", "medium", "low")
SOURCES: tuple[str, ...] = ("responses", "tickets", "events", "scores")
OWNER_TEAMS: tuple[str, ...] = ("sales", "account_manager", "call_centre", "support")
ROUTE_KEYS: tuple[str, ...] = ("segment", "value_tier", "country", "level", "rule", "plan")
DEFAULT_DUE_HOURS: dict[str, int] = {"critical": 24, "high": 72, "medium": 168, "low": 336}

FieldType = Literal["number", "string", "bool", "timestamp", "other"]


# ---------------------------------------------------------------- errors


class ConditionError(BadInputError, ValueError):
    """A condition does not parse or does not type-check; `column` is 1-based."""

    def __init__(self, message: str, column: int, kind: str = "type error") -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.kind = kind


class RuleError(BadInputError, ValueError):
    """A rules file entry is invalid; the message names the file, rule and how to fix it."""


def _fields_hint(fields: Mapping[str, FieldType] | None) -> str:
    if not fields:
        return ""
    listed = ", ".join(f"{n} ({t})" for n, t in sorted(fields.items()))
    return f"\n  fields available: {listed}"


def condition_error_message(
    where: str, rule: str, text: str, exc: ConditionError, fields: Mapping[str, FieldType] | None
) -> str:
    """The user-facing message: file, rule, position with a caret, the fields available."""
    caret = " " * (exc.column - 1) + "^"
    return (
        f"{where}: rule {rule!r}: {exc.kind} at column {exc.column}: {exc.message}\n"
        f"  condition: {text}\n"
        f"             {caret}"
        f"{_fields_hint(fields)}"
    )


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, ident, op, lparen, rparen, lbracket, rbracket, comma, end
    value: Any
    column: int  # 1-based


_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_PUNCT = {
    "(": "lparen",
    ")": "rparen",
    "[": "lbracket",
    "]": "rbracket",
    ",": "comma",
    "-": "minus",
}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}


def tokenize(text: str) -> list[Token]:
    """Split a condition into tokens; raise ConditionError at the first character that fits none."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        col = i + 1
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, col))
            i += len(op)
        elif ch == "=":
            raise ConditionError(
                "'=' is not an operator; write '==' to compare", col, "syntax error"
            )
        elif ch in _PUNCT:
            tokens.append(Token(_PUNCT[ch], ch, col))
            i += 1
        elif ch in "\"'":
            value, i = _read_string(text, i)
            tokens.append(Token("string", value, col))
        elif (m := _NUMBER.match(text, i)) is not None:
            raw = m.group()
            number = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", number, col))
            i = m.end()
        elif (m := _IDENT.match(text, i)) is not None:
            tokens.append(Token("ident", m.group(), col))
            i = m.end()
        else:
            raise ConditionError(f"unexpected character {ch!r}", col, "syntax error")
    tokens.append(Token("end", None, len(text) + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote, i, out = text[start], start + 1, []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise ConditionError(f"string not closed (missing {quote})", start + 1, "syntax error")


# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal_:
    value: Any  # int | float | str | bool
    column: int


@dataclass(frozen=True)
class ListLiteral:
    items: tuple[Literal_, ...]
    column: int


@dataclass(frozen=True)
class FieldRef:
    name: str
    column: int


@dataclass(frozen=True)
class Mentions:
    category: str
    column: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node
    column: int


@dataclass(frozen=True)
class InList:
    left: Node
    items: ListLiteral
    negated: bool
    column: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    left: Node
    right: Node
    column: int


@dataclass(frozen=True)
class Not:
    operand: Node
    column: int


Node = Literal_ | ListLiteral | FieldRef | Mentions | Compare | InList | BoolOp | Not

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "True", "False"}
FUNCTIONS = ("mentions",)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _is_kw(self, word: str) -> bool:
        return self.tok.kind == "ident" and self.tok.value == word

    def _advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def _expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise ConditionError(
                f"expected {what}, found {_describe(self.tok)}", self.tok.column, "syntax error"
            )
        return self._advance()

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ConditionError("empty condition", 1, "syntax error")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise ConditionError(
                f"unexpected {_describe(self.tok)} after a complete condition "
                "(missing 'and'/'or'?)",
                self.tok.column,
                "syntax error",
            )
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self._is_kw("or"):
            col = self._advance().column
            node = BoolOp("or", node, self.and_expr(), col)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self._is_kw("and"):
            col = self._advance().column
            node = BoolOp("and", node, self.not_expr(), col)
        return node

    def not_expr(self) -> Node:
        if self._is_kw("not"):
            col = self._advance().column
            return Not(self.not_expr(), col)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        if self.tok.kind == "op":
            op = self._advance()
            return Compare(op.value, left, self.operand(), op.column)
        if self._is_kw("in") or (
            self._is_kw("not")
            and self.tokens[self.i + 1].kind == "ident"
            and self.tokens[self.i + 1].value == "in"
        ):
            col = self.tok.column
            negated = self._is_kw("not")
            if negated:
                self._advance()
            self._advance()
            if self.tok.kind != "lbracket":
                raise ConditionError(
                    f'\'in\' needs a list such as ["a", "b"], found {_describe(self.tok)}',
                    self.tok.column,
                    "syntax error",
                )
            return InList(left, self.list_literal(), negated, col)
        return left

    def operand(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self._advance()
            return Literal_(tok.value, tok.column)
        if tok.kind == "minus":
            self._advance()
            num = self._expect("number", "a number after '-'")
            return Literal_(-num.value, tok.column)
        if tok.kind == "string":
            self._advance()
            return Literal_(tok.value, tok.column)
        if tok.kind == "lbracket":
            return self.list_literal()
        if tok.kind == "lparen":
            self._advance()
            node = self.or_expr()
            self._expect("rparen", "')'")
            return node
        if tok.kind == "ident":
            if tok.value in ("true", "True", "false", "False"):
                self._advance()
                return Literal_(tok.value in ("true", "True"), tok.column)
            if tok.value in _KEYWORDS:
                raise ConditionError(
                    f"expected a field or value, found keyword {tok.value!r}",
                    tok.column,
                    "syntax error",
                )
            self._advance()
            if self.tok.kind == "lparen":
                return self.call(tok)
            return FieldRef(tok.value, tok.column)
        raise ConditionError(
            f"expected a field or value, found {_describe(tok)}", tok.column, "syntax error"
        )

    def call(self, name: Token) -> Node:
        if name.value not in FUNCTIONS:
            raise ConditionError(
                f"unknown function {name.value!r}; the only function is "
                "mentions(<lexicon category>)",
                name.column,
                "syntax error",
            )
        self._expect("lparen", "'('")
        arg = self.tok
        if arg.kind not in ("ident", "string"):
            raise ConditionError(
                f"mentions() takes one lexicon category name, found {_describe(arg)}",
                arg.column,
                "syntax error",
            )
        self._advance()
        self._expect("rparen", "')' (mentions takes one category)")
        return Mentions(str(arg.value), arg.column)

    def list_literal(self) -> ListLiteral:
        start = self._expect("lbracket", "'['")
        items: list[Literal_] = []
        while self.tok.kind != "rbracket":
            node = self.operand()
            if not isinstance(node, Literal_):
                raise ConditionError(
                    "a list holds literal values only (numbers, strings, true/false)",
                    _column(node),
                    "syntax error",
                )
            items.append(node)
            if self.tok.kind == "comma":
                self._advance()
            elif self.tok.kind != "rbracket":
                raise ConditionError(
                    f"expected ',' or ']', found {_describe(self.tok)}",
                    self.tok.column,
                    "syntax error",
                )
        self._advance()
        return ListLiteral(tuple(items), start.column)


def _describe(tok: Token) -> str:
    if tok.kind == "end":
        return "the end of the condition"
    if tok.kind == "string":
        return f"string {tok.value!r}"
    return f"{tok.value!r}"


def _column(node: Node) -> int:
    return node.column


def parse_condition(text: str) -> Node:
    """Parse a condition into its AST; raise ConditionError (a syntax error) if it is not valid."""
    if not isinstance(text, str):
        raise ConditionError(f"a condition is text, found {text!r}", 1, "syntax error")
    return _Parser(text).parse()


# ---------------------------------------------------------------- type checking


def field_type_of_arrow(dtype: pa.DataType) -> FieldType:
    """The condition-language type of an Arrow column type."""
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_dictionary(dtype):
        return field_type_of_arrow(dtype.value_type)
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "timestamp"
    if pa.types.is_null(dtype):
        return "other"
    return "other"


def field_types_of_schema(schema: pa.Schema) -> dict[str, FieldType]:
    return {f.name: field_type_of_arrow(f.type) for f in schema}


def field_types_of_frame(frame: pd.DataFrame) -> dict[str, FieldType]:
    """Field types of a pandas frame (object columns are text)."""
    out: dict[str, FieldType] = {}
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            out[str(name)] = "bool"
        elif pd.api.types.is_numeric_dtype(dtype):
            out[str(name)] = "number"
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            out[str(name)] = "timestamp"
        else:
            out[str(name)] = "string"
    return out


def _literal_type(value: Any) -> FieldType:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def check_condition(
    node: Node,
    fields: Mapping[str, FieldType],
    categories: Iterable[str] = (),
    text_field: str | None = None,
) -> FieldType:
    """Type-check `node`; return its type. The whole condition must be bool (see check_rule)."""
    categories = tuple(categories)
    return _Checker(fields, categories, text_field).visit(node)


class _Checker:
    def __init__(
        self, fields: Mapping[str, FieldType], categories: tuple[str, ...], text_field: str | None
    ) -> None:
        self.fields = fields
        self.categories = categories
        self.text_field = text_field

    def visit(self, node: Node) -> FieldType:
        if isinstance(node, Literal_):
            return _literal_type(node.value)
        if isinstance(node, ListLiteral):
            raise ConditionError("a list can only follow 'in'", node.column)
        if isinstance(node, FieldRef):
            if node.name not in self.fields:
                close = _close_matches(node.name, self.fields)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConditionError(f"unknown field {node.name!r}{hint}", node.column)
            return self.fields[node.name]
        if isinstance(node, Mentions):
            if self.text_field is None:
                raise ConditionError(
                    "mentions() needs a text field; this rule's source has none "
                    "(responses.comment and tickets.text have one)",
                    node.column,
                )
            if node.category not in self.categories:
                raise ConditionError(
                    f"unknown lexicon category {node.category!r}; categories: "
                    f"{list(self.categories)} (edit features/lexicon.yaml to add one)",
                    node.column,
                )
            return "bool"
        if isinstance(node, Not):
            self._need_bool(node.operand, "not")
            return "bool"
        if isinstance(node, BoolOp):
            self._need_bool(node.left, node.op)
            self._need_bool(node.right, node.op)
            return "bool"
        if isinstance(node, InList):
            return self._in_list(node)
        if isinstance(node, Compare):
            return self._compare(node)
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover

    def _need_bool(self, node: Node, op: str) -> None:
        found = self.visit(node)
        if found != "bool":
            raise ConditionError(
                f"'{op}' needs a true/false condition, found a {found} value", _column(node)
            )

    def _compare(self, node: Compare) -> FieldType:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.left, Literal_) and isinstance(node.right, Literal_):
            raise ConditionError("a comparison needs at least one field", node.column)
        for side, kind in ((node.left, left), (node.right, right)):
            if kind in ("timestamp", "other"):
                raise ConditionError(
                    f"{_name(side)} is a {kind} and cannot be compared; use a day count such as "
                    "days_to_renewal or a days_since_* feature",
                    _column(side),
                )
        if left != right:
            raise ConditionError(
                f"cannot compare {_name(node.left)} ({left}) with {_name(node.right)} ({right})",
                node.column,
            )
        if node.op not in ("==", "!=") and left != "number":
            raise ConditionError(
                f"'{node.op}' compares numbers only; {_name(node.left)} is a {left}", node.column
            )
        return "bool"

    def _in_list(self, node: InList) -> FieldType:
        left = self.visit(node.left)
        if not isinstance(node.left, FieldRef):
            raise ConditionError("'in' needs a field on its left", _column(node.left))
        if not node.items.items:
            raise ConditionError("'in' needs a non-empty list", node.items.column)
        for item in node.items.items:
            kind = _literal_type(item.value)
            if kind != left:
                raise ConditionError(
                    f"list value {item.value!r} ({kind}) does not match {_name(node.left)} "
                    f"({left})",
                    item.column,
                )
        return "bool"


def _name(node: Node) -> str:
    if isinstance(node, FieldRef):
        return f"field {node.name!r}"
    if isinstance(node, Literal_):
        return f"value {node.value!r}"
    return "expression"


def _close_matches(name: str, fields: Iterable[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, list(fields), n=3, cutoff=0.75)


def referenced_fields(node: Node) -> set[str]:
    """Field names the condition reads."""
    if isinstance(node, FieldRef):
        return {node.name}
    if isinstance(node, Compare | BoolOp):
        return referenced_fields(node.left) | referenced_fields(node.right)
    if isinstance(node, InList):
        return referenced_fields(node.left)
    if isinstance(node, Not):
        return referenced_fields(node.operand)
    return set()


def allowed_values(node: Node, name: str) -> frozenset | None:
    """The values of field `name` a record must have for the condition to hold, or None when
    the condition does not restrict it (e.g. `event_type == "x" and value > 3` → {"x"}).

    Lets the caller read only those records (a filter pushed down to DuckDB) without changing
    any result: a record outside the set can never satisfy the condition.
    """
    if isinstance(node, Compare) and node.op == "==":
        for a, b in ((node.left, node.right), (node.right, node.left)):
            if isinstance(a, FieldRef) and a.name == name and isinstance(b, Literal_):
                return frozenset([b.value])
    if isinstance(node, InList) and not node.negated:
        if isinstance(node.left, FieldRef) and node.left.name == name:
            return frozenset(i.value for i in node.items.items)
    if isinstance(node, BoolOp):
        left, right = allowed_values(node.left, name), allowed_values(node.right, name)
        if node.op == "and":
            return left if right is None else right if left is None else left & right
        return None if left is None or right is None else left | right
    return None


def referenced_categories(node: Node) -> list[str]:
    """Lexicon categories named by mentions(), in condition order."""
    if isinstance(node, Mentions):
        return [node.category]
    if isinstance(node, Compare | BoolOp):
        return referenced_categories(node.left) + referenced_categories(node.right)
    if isinstance(node, Not):
        return referenced_categories(node.operand)
    return []


# ---------------------------------------------------------------- evaluation


def evaluate(
    node: Node, frame: pd.DataFrame, lexicon: Lexicon | None = None, text_field: str | None = None
) -> pd.Series:
    """The condition over every row of `frame` as a boolean Series (never missing)."""
    result = _Evaluator(frame, lexicon, text_field).visit(node)
    if not isinstance(result, pd.Series):  # a bare literal (`true`)
        return pd.Series(bool(result), index=frame.index)
    return _as_bool(result)


def _as_bool(values: pd.Series) -> pd.Series:
    return values.astype("boolean").fillna(False).astype(bool)


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _Evaluator:
    def __init__(
        self, frame: pd.DataFrame, lexicon: Lexicon | None, text_field: str | None
    ) -> None:
        self.frame = frame
        self.lexicon = lexicon
        self.text_field = text_field
        self._normalized: pa.Array | None = None

    def visit(self, node: Node) -> Any:
        if isinstance(node, Literal_):
            return node.value
        if isinstance(node, FieldRef):
            return self.frame[node.name]
        if isinstance(node, Mentions):
            return self._mentions(node.category)
        if isinstance(node, Not):
            return ~_as_bool(self._series(self.visit(node.operand)))
        if isinstance(node, BoolOp):
            left = _as_bool(self._series(self.visit(node.left)))
            right = _as_bool(self._series(self.visit(node.right)))
            return (left & right) if node.op == "and" else (left | right)
        if isinstance(node, InList):
            values = self.visit(node.left)
            hit = _as_bool(values.isin([item.value for item in node.items.items]))
            hit = hit & values.notna()
            return ~hit & values.notna() if node.negated else hit
        if isinstance(node, Compare):
            left, right = self.visit(node.left), self.visit(node.right)
            result = _COMPARE[node.op](left, right)
            missing = self._missing(left) | self._missing(right)
            return _as_bool(self._series(result)) & ~missing
        raise TypeError(f"cannot evaluate {node!r}")  # pragma: no cover

    def _series(self, value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            return value
        return pd.Series(value, index=self.frame.index)

    def _missing(self, value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            return value.isna()
        return pd.Series(False, index=self.frame.index)

    def _mentions(self, category: str) -> pd.Series:
        if self.lexicon is None or self.text_field is None:
            raise ValueError("mentions() needs a lexicon and a text field")
        if self._normalized is None:
            texts = self.frame[self.text_field]
            arr = pa.array(texts.astype(object).where(texts.notna(), None).tolist(), pa.string())
            self._normalized = normalize_array(arr)
        hit = pc.match_substring_regex(self._normalized, self.lexicon.pattern(category))
        values = np.asarray(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        return pd.Series(values, index=self.frame.index)


# ---------------------------------------------------------------- the rules file


@dataclass(frozen=True)
class Trigger:
    """`immediate`, or `delayed`: fire `days` after the record if it still holds then and no
    follow-up record (`follow_up_condition` on `follow_up_source`) came in between."""

    kind: Literal["immediate", "delayed"] = "immediate"
    days: int = 0
    follow_up_source: str | None = None
    follow_up_condition: str | None = None
    follow_up_ast: Node | None = None


@dataclass(frozen=True)
class Route:
    """Owner team for alerts whose fields match every `when` entry (value or list of values)."""

    owner: str
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def matches(self, values: Mapping[str, Any]) -> bool:
        return all(str(values.get(key)) in allowed for key, allowed in self.when)


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    source: str
    condition: str
    ast: Node
    level: str
    trigger: Trigger = field(default_factory=Trigger)
    window_days: int = 30
    cooldown_days: int = 30
    routes: tuple[Route, ...] = ()
    due_hours: int | None = None
    action: str = ""  # what the owner team should do; the description when not given

    @property
    def fields(self) -> set[str]:
        out = referenced_fields(self.ast)
        if self.trigger.follow_up_ast is not None:
            out |= referenced_fields(self.trigger.follow_up_ast)
        return out

    @property
    def lookback_days(self) -> int:
        """How far before the as-of date records can matter: window + delay + cool-down."""
        return self.window_days + self.trigger.days + self.cooldown_days


@dataclass(frozen=True)
class RulesFile:
    path: str
    rules: tuple[Rule, ...]
    routes: tuple[Route, ...] = ()
    default_owner: str = "support"
    due_hours: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_DUE_HOURS))
    # `teams:` as written, team -> settings: the delivery reads the channels from it
    teams: dict[str, Any] = field(default_factory=dict)
    # customer columns copied onto each alert so the owner can act (e.g. email, phone)
    contact_columns: tuple[str, ...] = ()

    @property
    def team_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*OWNER_TEAMS, *self.teams]))

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"{self.path}: no rule {name!r}; rules: {[r.name for r in self.rules]}")

    def owner(self, rule: Rule, values: Mapping[str, Any]) -> str:
        """The owner team: the rule's own routes, then the file's, first match wins."""
        for route in (*rule.routes, *self.routes):
            if route.matches({**values, "level": rule.level, "rule": rule.name}):
                return route.owner
        return self.default_owner

    def due(self, rule: Rule) -> int:
        return rule.due_hours if rule.due_hours is not None else self.due_hours[rule.level]


_RULE_KEYS = {
    "name",
    "description",
    "source",
    "condition",
    "level",
    "trigger",
    "window_days",
    "cooldown_days",
    "routing",
    "due_hours",
    "action",
}
_FILE_KEYS = {"rules", "routing", "default_owner", "levels", "teams", "contact_columns"}


def need(cond: bool, where: str, message: str) -> None:
    """Raise RuleError `where: message` unless `cond` holds."""
    if not cond:
        raise RuleError(f"{where}: {message}")


def unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Raise RuleError naming the keys of `data` that are not `allowed`."""
    unknown = sorted(set(data) - allowed)
    need(not unknown, where, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def whole_number(value: Any, where: str, minimum: int = 0) -> int:
    """`value` as a whole number >= `minimum`; RuleError otherwise."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    need(ok, where, f"expected a whole number >= {minimum}, found {value!r}")
    return int(value)


def parse_routes(data: Any, where: str, teams: Iterable[str]) -> tuple[Route, ...]:
    """`routing:` — a list of {when: {key: value or [values]}, owner: team}, first match wins."""
    if data is None:
        return ()
    need(isinstance(data, list), where, f"expected a list of routes, found {data!r}")
    teams = tuple(teams)
    routes = []
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        need(isinstance(item, dict), at, f"expected a mapping with when/owner, found {item!r}")
        unknown_keys(item, {"when", "owner"}, at)
        owner = item.get("owner")
        need(owner in teams, at, f"owner {owner!r} is not a team; teams: {list(teams)}")
        when = item.get("when") or {}
        need(isinstance(when, dict), at, f"'when' must be a mapping, found {when!r}")
        bad = sorted(set(when) - set(ROUTE_KEYS))
        need(not bad, at, f"cannot route on {bad}; route keys: {list(ROUTE_KEYS)}")
        pairs = []
        for key, value in when.items():
            values = value if isinstance(value, list) else [value]
            pairs.append((key, tuple(str(v) for v in values)))
            if key == "level":
                bad_levels = [v for v in values if v not in LEVELS]
                need(not bad_levels, at, f"unknown level(s) {bad_levels}; levels: {list(LEVELS)}")
        routes.append(Route(owner, tuple(pairs)))
    return tuple(routes)


def _parse_trigger(data: Any, where: str) -> Trigger:
    if data is None or data == "immediate":
        return Trigger()
    need(
        isinstance(data, dict),
        where,
        f"expected 'immediate' or {{delayed_days: N, follow_up: ...}}, found {data!r}",
    )
    unknown_keys(data, {"delayed_days", "follow_up"}, where)
    days = whole_number(data.get("delayed_days"), f"{where}.delayed_days", 1)
    follow = data.get("follow_up")
    if follow is None:
        return Trigger("delayed", days)
    need(isinstance(follow, dict), f"{where}.follow_up", "expected {source: ..., condition: ...}")
    unknown_keys(follow, {"source", "condition"}, f"{where}.follow_up")
    source = follow.get("source")
    need(
        source in SOURCES[:3],
        f"{where}.follow_up",
        f"source must be one of {list(SOURCES[:3])}, found {source!r}",
    )
    text = follow.get("condition", "true")
    return Trigger("delayed", days, source, str(text), None)


def parse_rules(
    data: Any,
    source: str = "<memory>",
    fields_by_source: Mapping[str, Mapping[str, FieldType]] | None = None,
) -> RulesFile:
    """Validate the rules file's structure and parse every condition (syntax only).

    `fields_by_source`, when known, is listed in syntax error messages.
    """
    need(
        isinstance(data, dict) and isinstance(data.get("rules"), list),
        source,
        "expected a mapping with a 'rules:' list (see the header of alerts.yaml)",
    )
    unknown_keys(data, _FILE_KEYS, source)
    teams_data = data.get("teams") or {}
    need(isinstance(teams_data, dict), f"{source}: teams", "expected a mapping team -> settings")
    teams = tuple(dict.fromkeys([*OWNER_TEAMS, *teams_data]))
    due_hours = dict(DEFAULT_DUE_HOURS)
    levels = data.get("levels") or {}
    need(isinstance(levels, dict), f"{source}: levels", "expected level -> {due_hours: N}")
    for level, settings in levels.items():
        at = f"{source}: levels.{level}"
        need(level in LEVELS, at, f"unknown level; levels: {list(LEVELS)}")
        need(isinstance(settings, dict), at, "expected {due_hours: N}")
        unknown_keys(settings, {"due_hours"}, at)
        due_hours[level] = whole_number(settings.get("due_hours"), f"{at}.due_hours", 1)
    default_owner = data.get("default_owner", "support")
    need(
        default_owner in teams,
        f"{source}: default_owner",
        f"{default_owner!r} is not a team; teams: {list(teams)}",
    )
    routes = parse_routes(data.get("routing"), f"{source}: routing", teams)
    rules, seen = [], set()
    for i, item in enumerate(data["rules"]):
        rule = _parse_rule(item, f"{source}: rules[{i}]", teams, fields_by_source or {})
        need(rule.name not in seen, f"{source}: rules[{i}]", f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)
        rules.append(rule)
    contacts = data.get("contact_columns") or []
    need(
        isinstance(contacts, list) and all(isinstance(c, str) for c in contacts),
        f"{source}: contact_columns",
        f"expected a list of customer column names, found {contacts!r}",
    )
    return RulesFile(
        source, tuple(rules), routes, default_owner, due_hours, dict(teams_data), tuple(contacts)
    )


def _parse_rule(
    item: Any,
    where: str,
    teams: tuple[str, ...],
    fields_by_source: Mapping[str, Mapping[str, FieldType]],
) -> Rule:
    need(isinstance(item, dict), where, f"expected a rule mapping, found {item!r}")
    name = item.get("name")
    need(
        isinstance(name, str) and re.fullmatch(r"[a-z][a-z0-9_]*", name or "") is not None,
        where,
        f"name must be lower_snake_case text, found {name!r}",
    )
    where = f"{where.split(': ')[0]}: rule {name!r}"
    unknown_keys(item, _RULE_KEYS, where)
    source = item.get("source")
    need(source in SOURCES, where, f"source must be one of {list(SOURCES)}, found {source!r}")
    level = item.get("level")
    need(level in LEVELS, where, f"level must be one of {list(LEVELS)}, found {level!r}")
    text = item.get("condition")
    need(isinstance(text, str) and text.strip() != "", where, "needs a condition (text)")
    trigger = _parse_trigger(item.get("trigger"), f"{where}.trigger")
    need(
        not (source == "scores" and trigger.kind == "delayed"),
        where,
        "a scores rule can only be immediate (scores have one date, the as-of)",
    )
    ast = _parse_or_raise(where.split(":")[0], name, text, fields_by_source.get(source))
    if trigger.follow_up_condition is not None:
        follow_ast = _parse_or_raise(
            where.split(":")[0],
            f"{name}.follow_up",
            trigger.follow_up_condition,
            fields_by_source.get(trigger.follow_up_source or ""),
        )
        trigger = Trigger(
            "delayed",
            trigger.days,
            trigger.follow_up_source,
            trigger.follow_up_condition,
            follow_ast,
        )
    due = item.get("due_hours")
    return Rule(
        name=name,
        description=str(item.get("description", "")),
        source=source,
        condition=text,
        ast=ast,
        level=level,
        trigger=trigger,
        window_days=whole_number(item.get("window_days", 30), f"{where}.window_days", 1),
        cooldown_days=whole_number(item.get("cooldown_days", 30), f"{where}.cooldown_days", 0),
        routes=parse_routes(item.get("routing"), f"{where}.routing", teams),
        due_hours=None if due is None else whole_number(due, f"{where}.due_hours", 1),
        action=str(item.get("action") or item.get("description") or ""),
    )


def _parse_or_raise(
    where: str, rule: str, text: str, fields: Mapping[str, FieldType] | None
) -> Node:
    try:
        return parse_condition(text)
    except ConditionError as exc:
        raise RuleError(condition_error_message(where, rule, text, exc, fields)) from None


TEXT_FIELDS: dict[str, str] = {"responses": "comment", "tickets": "text"}


def check_rules(
    rules_file: RulesFile, fields_by_source: Mapping[str, Mapping[str, FieldType]], lexicon: Lexicon
) -> None:
    """Type-check every rule against its source's fields; raise RuleError on the first bad one."""
    for rule in rules_file.rules:
        _check_one(
            rules_file.path,
            rule.name,
            rule.condition,
            rule.ast,
            rule.source,
            fields_by_source,
            lexicon,
        )
        trig = rule.trigger
        if trig.follow_up_ast is not None and trig.follow_up_source is not None:
            _check_one(
                rules_file.path,
                f"{rule.name}.follow_up",
                trig.follow_up_condition or "",
                trig.follow_up_ast,
                trig.follow_up_source,
                fields_by_source,
                lexicon,
            )


def _check_one(
    where: str,
    name: str,
    text: str,
    ast: Node,
    source: str,
    fields_by_source: Mapping[str, Mapping[str, FieldType]],
    lexicon: Lexicon,
) -> None:
    fields = fields_by_source[source]
    text_field = TEXT_FIELDS.get(source) if TEXT_FIELDS.get(source) in fields else None
    try:
        kind = check_condition(ast, fields, lexicon.categories, text_field)
        if kind != "bool":
            raise ConditionError(
                f"a condition must be true/false, found a {kind} value", _column(ast)
            )
    except ConditionError as exc:
        raise RuleError(condition_error_message(where, name, text, exc, fields)) from None


def load_rules(
    path: str | Path, fields_by_source: Mapping[str, Mapping[str, FieldType]] | None = None
) -> RulesFile:
    """Read and structurally validate a rules file (conditions parsed; types checked later)."""
    path = Path(path)
    if not path.is_file():
        raise RuleError(
            f"rules file not found: {path}. Set alert.rules in params.yaml to the path "
            "of a rules file such as alerts.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not valid YAML: {exc}") from exc
    return parse_rules(data, str(path), fields_by_source)
