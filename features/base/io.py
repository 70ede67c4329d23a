"""Atomic file outputs: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.base.errors import BadInputError

# pyarrow is imported where it is used: it costs ~0.15 s, and `churn ingest` needs none
if TYPE_CHECKING:
    import pyarrow as pa


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success rename it over `target`, else remove it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(target: Path | str, obj: Any) -> None:
    """Write `obj` as pretty JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", "utf-8")


def write_text(target: Path | str, text: str) -> None:
    """Write text, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def parquet_schema(path: Path | str) -> pa.Schema:
    """The schema of a Parquet table, one file or a dataset directory of part files (what
    `engine: spark` writes); no rows are read."""
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet").schema


def write_parquet(target: Path | str, table: pa.Table) -> None:
    """Write an Arrow table as Parquet, atomically."""
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)


@contextlib.contextmanager
def atomic_directory(target: Path | str) -> Iterator[Path]:
    """Yield an empty staging directory beside `target`; when the block succeeds, swap it into
    place whole (the old directory is replaced), else remove it and leave `target` untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class BusyError(BadInputError):
    """Another process holds the lock of an output set (exit 2: wait and run again)."""


@contextlib.contextmanager
def exclusive_lock(lock_file: Path | str, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` for the block, or raise BusyError at once.

    An OS file lock (flock): the kernel releases it when the holder exits, killed or not, so a
    crashed run never leaves a stale lock behind.
    """
    import fcntl

    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BusyError(
                f"{what} is already running ({holder} holds {lock_file}); wait for it to finish "
                "and run again: its outputs are published together when it ends"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
