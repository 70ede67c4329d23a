"""params.yaml → typed config: defaults, types, and unknown keys as errors."""

from pathlib import Path

import pytest

from pipeline.config import ParamsError, load_params


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_project_params_load() -> None:
    params = load_params(Path(__file__).parents[2] / "params.yaml")
    assert params.simulate.customers > 0
    assert params.ingest.tables["events"].path == "data/raw/events.parquet"
    assert params.label.horizon_days == 30


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "simulate:\n  custmers: 10\n")
    with pytest.raises(ParamsError, match="custmers"):
        load_params(path)


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="trian"):
        load_params(write(tmp_path, "trian:\n  seed: 1\n"))


def test_wrong_type_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="simulate.customers"):
        load_params(write(tmp_path, "simulate:\n  customers: many\n"))


def test_dates_and_lists_are_typed(tmp_path: Path) -> None:
    params = load_params(
        write(tmp_path, "simulate:\n  start_date: 2023-02-01\nfeaturize:\n  windows: [14, 28]\n")
    )
    assert params.simulate.start_date == "2023-02-01"
    assert params.featurize.windows == (14, 28)
    assert params.simulate.seed == 42  # untouched keys keep their defaults


def test_params_are_frozen(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, "{}\n"))
    with pytest.raises(AttributeError):
        params.simulate.seed = 1  # type: ignore[misc]
