"""Suite-wide test order: the longest test files first.

`make test` runs `pytest -n 2 --dist loadfile`, and pyproject's addopts add
`--no-loadscope-reorder`: each file goes whole to one worker, in collection order (xdist's default
reorder would hand out the files with the most tests first, leaving the few-test `dvc repro`
files for the end). Handing out the few long files (real `dvc repro` runs, trained
worlds) before the many short ones lets the short ones fill the gaps, so the two workers finish
together instead of one of them starting a 90 s `dvc repro` when the other is already done.
Only the order changes; every test still runs, in its own file's order.
"""

from __future__ import annotations

import pytest

# The files that take longest (a real `dvc repro`, a trained world in a module fixture, many
# model fits), longest first as measured by `--durations` (issue 16); the rest keep their place
# after them. A file missing from the list only runs later, never not at all.
LONG_FILES = (
    "tests/pipeline/test_score_stage.py",
    "tests/test_end_to_end.py",
    "tests/features/test_point_in_time.py",
    "tests/pipeline/test_table_fit.py",
    "tests/pipeline/test_shapes.py",
    "tests/pipeline/test_score_model_errors.py",
    "tests/test_ravenstack.py",
    "tests/test_marketplace.py",
    "tests/models/test_train.py",
    "tests/pipeline/test_monthly.py",
    "tests/pipeline/test_train_stage.py",
    "tests/models/test_explain.py",
    "tests/pipeline/test_monitor_stage.py",
    "tests/pipeline/test_table_reading.py",
)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONG_FILES.index(path) if path in LONG_FILES else len(LONG_FILES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: a file's tests keep their order
