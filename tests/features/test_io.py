"""Atomic outputs: a failure leaves the old file (or none), never half of one."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.base.io import atomic_directory, atomic_path, write_json, write_parquet


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("crash midway")
    assert target.read_text(encoding="utf-8").strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_parquet_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "t.parquet"
    write_parquet(target, pa.table({"a": [1, 2]}))
    assert pq.read_table(target).column("a").to_pylist() == [1, 2]


def test_atomic_directory_swaps_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "interim"
    target.mkdir()
    (target / "old.parquet").write_text("old", encoding="utf-8")
    with atomic_directory(target) as staging:
        (staging / "new.parquet").write_text("new", encoding="utf-8")
        assert (target / "old.parquet").exists()  # nothing visible before the block ends
    assert sorted(p.name for p in target.iterdir()) == ["new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interim"]


def test_atomic_directory_failure_leaves_target(tmp_path: Path) -> None:
    target = tmp_path / "interim"
    target.mkdir()
    (target / "keep.parquet").write_text("x", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "partial.parquet").write_text("y", encoding="utf-8")
        raise RuntimeError("crash midway")
    assert sorted(p.name for p in target.iterdir()) == ["keep.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interim"]
