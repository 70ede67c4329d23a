"""params.yaml sections → frozen dataclasses, the one way every layer declares its settings.

A section is a frozen dataclass deriving from `Section`. `from_dict` builds it from YAML:
unknown keys are an error that lists the allowed ones, values are converted to the annotated
types, and allowed values are declared once with `typing.Literal` and checked in one place
(`Section.__post_init__`), whether the section comes from YAML or is built in code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from features.base.errors import BadInputError

T = TypeVar("T")


class ParamsError(BadInputError, ValueError):
    """params.yaml (or a settings object) does not match the typed config."""


@dataclass(frozen=True)
class Section:
    """Base of every settings dataclass: checks `Literal` choices, then `validate()`."""

    SECTION: ClassVar[str] = "params"  # its key in params.yaml, for messages

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_choices(hints[f.name], getattr(self, f.name), f"{self.SECTION}.{f.name}")
        self.validate()

    def validate(self) -> None:
        """Checks across fields; raise ParamsError naming the key, the value and the fix."""


def _check_choices(tp: Any, value: Any, where: str) -> None:
    """Raise ParamsError when `value` is not one of the Literal choices in annotation `tp`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{where}: expected one of {list(args)}, found {value!r}")
    elif origin in (typing.Union, types.UnionType):
        if value is not None:
            literals = [a for a in args if typing.get_origin(a) is typing.Literal]
            for a in literals:
                _check_choices(a, value, where)
    elif origin in (tuple, list) and isinstance(value, tuple | list) and args:
        for i, item in enumerate(value):
            _check_choices(args[0], item, f"{where}[{i}]")


def _build(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type `tp`, recursively; raise ParamsError if not."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, found {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _build(arg, value, where)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError("; ".join(errors))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, found {value!r}")
        key_t, val_t = args
        return {_build(key_t, k, where): _build(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{where}: expected a list, found {value!r}")
        item_t = args[0]
        items = [_build(item_t, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and not isinstance(value, str):
        # YAML turns 2024-01-01 into a date; dates are carried as ISO strings.
        if hasattr(value, "isoformat"):
            return value.isoformat()
        raise ParamsError(f"{where}: expected text, found {value!r}")
    if tp in (int, float, bool):
        if isinstance(value, bool) != (tp is bool) or not isinstance(value, tp):
            raise ParamsError(f"{where}: expected {tp.__name__}, found {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "params") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise ParamsError naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ParamsError(
            f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}. "
            "Fix the spelling in params.yaml or remove the key."
        )
    kwargs = {k: _build(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)
