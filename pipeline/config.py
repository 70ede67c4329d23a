"""params.yaml → frozen dataclasses; unknown keys are an error, not silently ignored."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

PARAMS_FILE = Path("params.yaml")

T = TypeVar("T")


class ParamsError(ValueError):
    """params.yaml does not match the typed config."""


@dataclass(frozen=True)
class SimulateParams:
    seed: int = 42
    customers: int = 20_000
    start_date: str = "2024-01-01"
    end_date: str = "2025-12-31"
    out_dir: str = "data/raw"


@dataclass(frozen=True)
class TableSource:
    """One contract table: a file (CSV, Parquet, JSON lines) or a DuckDB SQL query over raw files."""

    path: str | None = None
    format: str = "auto"  # auto | csv | parquet | json
    sql: str | None = None
    required: bool = True


@dataclass(frozen=True)
class IngestParams:
    tables: dict[str, TableSource] = field(default_factory=dict)
    out_dir: str = "data/interim"
    quarantine_dir: str = "data/quarantine"
    report: str = "reports/ingest.json"
    max_quarantine_fraction: float = 0.01
    now: str | None = None  # timestamps after this are "future"; default: the wall clock


@dataclass(frozen=True)
class LabelParams:
    definition: str = "contractual"  # contractual | inactivity
    first_cutoff: str = "2024-07-01"
    lead_days: int = 0
    horizon_days: int = 30


@dataclass(frozen=True)
class FeaturizeParams:
    windows: tuple[int, ...] = (7, 30, 90, 180)
    csat_low_threshold: int = 5
    lexicon: str = "features/lexicon.yaml"


@dataclass(frozen=True)
class Params:
    simulate: SimulateParams = field(default_factory=SimulateParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    label: LabelParams = field(default_factory=LabelParams)
    featurize: FeaturizeParams = field(default_factory=FeaturizeParams)


def _build(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type `tp`, recursively; raise ParamsError on mismatch."""
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
        return {
            _build(key_t, k, where): _build(val_t, v, f"{where}.{k}") for k, v in value.items()
        }
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
    if tp is Any:
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


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read params.yaml into typed, frozen config."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found; run from the project root")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return from_dict(Params, data, where=str(path))
