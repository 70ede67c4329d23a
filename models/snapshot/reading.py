"""Reading a snapshot table as it comes: CSV/TSV (plain, .gz, .zip with one CSV inside), Parquet
or an Excel workbook; text in any common encoding; `,` `;` tab or `|` delimited; decimal commas.

The rules, in order (each can be overridden by an option):

- encoding (`encoding`): a byte-order mark decides (UTF-8 or UTF-16); else UTF-8 if the bytes are
  valid UTF-8; else Windows-1252 (what Excel on Windows writes) if they are valid cp1252; else
  Latin-1, which reads any byte. A fallback is logged, naming the encoding used.
- delimiter: `.tsv` files are tab-delimited; otherwise, of `,` `;` tab `|`, the one that splits
  the header into the most columns with every sampled row as wide as the header.
- decimal (`decimal`): a decimal comma when the delimiter is `;` and, in the first rows, numbers
  written with a decimal comma (`4,05`) outnumber those written with a decimal point (`4.05`).
  Then a text column whose values all look like such numbers (`4,05`, `-1.234,5`, `12`) becomes
  float. `decimal="."` turns this off; `decimal=","` forces it for any delimiter.
- an empty file, a header without rows and an unreadable file are a SnapshotDataError naming the
  file and what to do.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from models.snapshot.schema import SnapshotDataError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_ROWS = 200  # rows read to choose the delimiter and the decimal mark

# 4,05  -4,05  1.234,5  1.234  12 (a whole column of these is numeric with a decimal comma)
DECIMAL_COMMA_NUMBER = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$")
_COMMA_DECIMAL = re.compile(r"^[+-]?\d+,\d+$")
_POINT_DECIMAL = re.compile(r"^[+-]?\d+\.\d+$")
_SUPPORTED = ".csv, .tsv, .txt (also .gz or .zip), .parquet or .xlsx"


@dataclass(frozen=True)
class ReadOptions:
    """How to read the file; None means detect (see the module docstring)."""

    encoding: str | None = None  # text files: e.g. utf-8, cp1252, latin-1
    decimal: Literal[",", "."] | None = None  # text files: the decimal mark
    sheet: str | None = None  # Excel: a sheet name, or its position (1 = the first sheet)


def read_table(path: Path, options: ReadOptions | None = None) -> pd.DataFrame:
    """The table in `path` (text, compressed text, Parquet or Excel by suffix); a
    SnapshotDataError naming the file when it is missing, unreadable or empty."""
    options = options or ReadOptions()
    if not path.exists():
        raise SnapshotDataError(f"{path}: file not found; pass a CSV, Parquet or Excel file.")
    if path.is_dir():
        raise SnapshotDataError(f"{path}: is a directory; pass a CSV, Parquet or Excel file.")
    suffix = path.suffix.lower()
    kind = "excel" if suffix in EXCEL_SUFFIXES else "parquet" if suffix in PARQUET_SUFFIXES else ""
    if suffix == ".xls":
        raise SnapshotDataError(
            f"{path}: old-style .xls workbooks are not read; save it as .xlsx or CSV in Excel."
        )
    _check_options(path, kind, options)
    if kind == "excel":
        frame = _read_excel(path, options.sheet)
    elif kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except (ValueError, OSError) as exc:
            raise SnapshotDataError(f"{path}: cannot be read as Parquet ({exc})") from exc
    else:
        name, data = _text_bytes(path)
        frame = _read_text(path, name, data, options)
    if frame.empty:
        header = ", ".join(map(str, frame.columns[:8])) or "none"
        raise SnapshotDataError(
            f"{path}: the table has no rows (columns: {header}); export it again with one row "
            "per customer below the header."
        )
    return frame


def _check_options(path: Path, kind: str, options: ReadOptions) -> None:
    if options.sheet is not None and kind != "excel":
        raise SnapshotDataError(f"{path}: --sheet applies to Excel workbooks (.xlsx) only")
    text_only = [
        flag
        for flag, value in (("--encoding", options.encoding), ("--decimal", options.decimal))
        if value is not None
    ]
    if text_only and kind:
        raise SnapshotDataError(
            f"{path}: {' and '.join(text_only)} apply to text files (CSV/TSV) only, not {kind}"
        )
    if options.decimal not in (None, ",", "."):
        raise SnapshotDataError(f"--decimal: expected ',' or '.', found {options.decimal!r}")
    if options.encoding is not None:
        try:
            codecs.lookup(options.encoding)
        except LookupError:
            raise SnapshotDataError(
                f"--encoding: unknown encoding {options.encoding!r}; use e.g. utf-8, cp1252 "
                "(Windows), latin-1 or utf-16"
            ) from None


# ------------------------------------------------------------------ containers


def _text_bytes(path: Path) -> tuple[str, bytes]:
    """The inner file name (it decides tab delimiting) and the decompressed bytes."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return path.stem, handle.read()
        if suffix == ".zip":
            return _zip_member(path)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SnapshotDataError(f"{path}: cannot be decompressed ({exc})") from exc
    if suffix not in TEXT_SUFFIXES:
        raise SnapshotDataError(f"{path}: unsupported file type {path.suffix!r}; use {_SUPPORTED}")
    return path.name, path.read_bytes()


def _zip_member(path: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir() and not m.filename.startswith("__MACOSX/")
        ]
        tables = [m for m in members if m.filename.lower().endswith(TEXT_SUFFIXES)]
        if len(tables) != 1:
            listed = ", ".join(m.filename for m in members) or "none"
            raise SnapshotDataError(
                f"{path}: expected exactly one CSV/TSV file inside the zip archive, found "
                f"{len(tables)} (members: {listed}); zip one table per archive, or unzip it and "
                "pass the file."
            )
        return tables[0].filename, archive.read(tables[0])


# ------------------------------------------------------------------ text


def decode(path: Path, data: bytes, encoding: str | None) -> str:
    """The file's text: `encoding` when given, else the module's detection rule."""
    if encoding is None and data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"  # the byte-order mark says what the file is
    elif encoding is None and data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    if encoding is not None:
        # a UTF-8 byte-order mark is not part of the first column's name
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        try:
            return data.decode(codec)
        except UnicodeDecodeError as exc:
            raise SnapshotDataError(
                f"{path}: not valid {encoding} (byte {data[exc.start : exc.start + 1]!r} at "
                f"offset {exc.start}); pass the file's encoding with --encoding (e.g. cp1252 "
                "or latin-1), or leave it out to detect it"
            ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start
    for fallback in ("cp1252", "latin-1"):
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        log.warning(
            "%s: not UTF-8 (byte %r at offset %d); read as %s. If accented letters look wrong, "
            "pass --encoding.",
            path,
            data[offset : offset + 1],
            offset,
            fallback,
        )
        return text
    raise AssertionError("latin-1 decodes any byte")  # pragma: no cover


def _sample_rows(text: str, delimiter: str) -> list[list[str]]:
    lines = list(itertools.islice(io.StringIO(text), SAMPLE_ROWS + 1))
    truncated = len(lines) > SAMPLE_ROWS
    try:
        rows = [r for r in csv.reader(io.StringIO("".join(lines)), delimiter=delimiter) if r]
    except csv.Error:
        return []
    return rows[:-1] if truncated and len(rows) > 2 else rows


def detect_delimiter(text: str) -> str:
    """Of `,` `;` tab `|`: the one splitting the header into the most columns with every
    sampled row as wide as the header (`,` when none splits it)."""
    best, best_key = ",", (False, 1)
    for delimiter in DELIMITERS:
        rows = _sample_rows(text, delimiter)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        key = (all(len(r) == width for r in rows[1:]), width)
        if key > best_key:
            best, best_key = delimiter, key
    return best


def _decimal_comma(text: str, delimiter: str) -> bool:
    """Whether sampled values with a decimal comma outnumber those with a decimal point."""
    values = [v.strip() for row in _sample_rows(text, delimiter)[1:] for v in row]
    comma = sum(bool(_COMMA_DECIMAL.match(v)) for v in values)
    point = sum(bool(_POINT_DECIMAL.match(v)) for v in values)
    return comma > point


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)


def decimal_comma_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with each text column whose values all look like decimal-comma numbers (blanks
    aside) as float64: `1.234,5` -> 1234.5."""
    out = frame.copy()
    converted = []
    for column in frame.columns:
        series = frame[column]
        if not _is_text(series):
            continue
        stripped = [v.strip() if isinstance(v, str) else "" for v in series.tolist()]
        present = [v for v in stripped if v]
        if not present or not all(DECIMAL_COMMA_NUMBER.match(v) for v in present):
            continue
        numbers = [float(v.replace(".", "").replace(",", ".")) if v else None for v in stripped]
        out[column] = pd.Series(numbers, index=frame.index, dtype="float64")
        converted.append(column)
    if converted:
        log.info("decimal comma: read %s as numbers", converted)
    return out


def _read_text(path: Path, name: str, data: bytes, options: ReadOptions) -> pd.DataFrame:
    text = decode(path, data, options.encoding)
    if not text.strip():
        raise SnapshotDataError(
            f"{path}: the file is empty; export the table again with a header row and one row "
            "per customer."
        )
    delimiter = "\t" if name.lower().endswith(".tsv") else detect_delimiter(text)
    if options.decimal is None:
        comma = delimiter == ";" and _decimal_comma(text, delimiter)
    else:
        comma = options.decimal == ","
    try:
        # With decimal="," pandas reads 4,05 itself; 1.234,5 and columns with blanks stay text
        # and are converted below.
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, decimal="," if comma else ".")
    except (ValueError, csv.Error) as exc:
        raise SnapshotDataError(f"{path}: cannot be read as a table ({exc})") from exc
    log.info(
        "%s: delimiter %r, decimal %r, %d rows x %d columns",
        name,
        delimiter,
        "," if comma else ".",
        len(frame),
        frame.shape[1],
    )
    return decimal_comma_columns(frame) if comma else frame


# ------------------------------------------------------------------ Excel


def _read_excel(path: Path, sheet: str | None) -> pd.DataFrame:
    try:
        with pd.ExcelFile(path, engine="openpyxl") as workbook:
            names = [str(n) for n in workbook.sheet_names]
            chosen = _sheet_name(path, names, sheet)
            return pd.read_excel(workbook, sheet_name=chosen)
    except ImportError as exc:
        raise SnapshotDataError(
            f"{path}: reading Excel needs openpyxl (pip install openpyxl), or save it as CSV"
        ) from exc
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        if isinstance(exc, SnapshotDataError):
            raise
        raise SnapshotDataError(
            f"{path}: cannot be read as an Excel workbook ({exc}); save it as .xlsx or CSV"
        ) from exc


def _sheet_name(path: Path, names: list[str], sheet: str | None) -> str:
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    if sheet.isdigit() and 1 <= int(sheet) <= len(names):
        return names[int(sheet) - 1]
    raise SnapshotDataError(
        f"{path}: no sheet {sheet!r}; --sheet takes a name or a position (1 = first) of {names}"
    )
