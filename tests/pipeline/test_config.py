"""params.yaml → typed config: defaults, types, and unknown keys as errors."""

import dataclasses
from pathlib import Path

import pytest

from features.base.params import ParamsError
from features.settings import LabelParams
from pipeline.config import load_params


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


def test_a_moved_key_names_its_new_home(tmp_path: Path) -> None:
    """Old keys (paths that lived in several sections, shadowing params) say where they went."""
    text = (
        "featurize:\n  out: x.parquet\nexplain:\n  kpis_report: k.json\nalert:\n  max_attempts: 2\n"
    )
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, text))
    message = str(err.value)
    assert "`featurize.out` is now `paths.features`" in message
    assert "`explain.kpis_report` is now `paths.kpis_report`" in message
    assert "`alert.max_attempts` is now `alert.delivery.max_attempts`" in message


def test_every_path_has_one_home(tmp_path: Path) -> None:
    """No section but `paths` holds an output path, so no key can shadow another."""
    params = load_params(write(tmp_path, "{}\n"))
    paths = set(dataclasses.asdict(params.paths).values())
    for section in dataclasses.fields(params):
        if section.name == "paths":
            continue
        values = _leaves(dataclasses.asdict(getattr(params, section.name)))
        assert not paths & values, (section.name, paths & values)


def _leaves(obj: object) -> set:
    if isinstance(obj, dict):
        return set().union(*(_leaves(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list | tuple):
        return set().union(*(_leaves(v) for v in obj)) if obj else set()
    return {obj}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label:\n  definition: weekly\n", r"label.definition: expected one of \['contractual'"),
        ("data:\n  shape: wide\n", r"data.shape: expected one of \['temporal', 'snapshot'\]"),
        (
            "train:\n  calibration:\n    methods: [platt]\n",
            r"train.calibration.methods\[0\]: expected one of \['none', 'sigmoid', 'isotonic'\]",
        ),
    ],
)
def test_allowed_values_are_declared_once_and_checked(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ParamsError, match=message):
        load_params(write(tmp_path, text))


def test_allowed_values_hold_for_settings_built_in_code() -> None:
    with pytest.raises(ParamsError, match="label.definition"):
        LabelParams(definition="weekly")  # type: ignore[arg-type]


def test_params_holds_tunables_and_settings_the_rest() -> None:
    """The shipped files split cleanly: no settings key in params.yaml, no tunable in
    settings.yaml, and together they give the same config as the one-file layout did."""
    import yaml

    from pipeline.config import SETTINGS_KEYS, _leaves, is_setting

    root = Path(__file__).parents[2]
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    settings = yaml.safe_load((root / "settings.yaml").read_text(encoding="utf-8"))
    assert not [k for k in _leaves(params) if is_setting(k)]
    assert all(is_setting(k) for k in _leaves(settings))
    assert {k.split(".")[0] for k in SETTINGS_KEYS} >= {"paths", "mlflow"}


def test_settings_beside_params_are_merged(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text(
        "paths:\n  raw: elsewhere/raw\nscore:\n  model: artifacts/model\n", encoding="utf-8"
    )
    params = load_params(write(tmp_path, "score:\n  reasons: 5\n"))
    assert params.paths.raw == "elsewhere/raw"
    assert params.score.model == "artifacts/model"
    assert params.score.reasons == 5


def test_a_key_in_both_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text("paths:\n  raw: a\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="both set `paths.raw`"):
        load_params(write(tmp_path, "paths:\n  raw: b\n"))


def test_a_tunable_in_settings_is_an_error_naming_its_home(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text("train:\n  learning_rate: 0.1\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="`train.learning_rate` is a tunable; move it to"):
        load_params(write(tmp_path, "{}\n"))


def test_a_settings_key_in_params_still_works_with_a_warning(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    """An older project's params.yaml (paths inside) keeps working and is told where they go."""
    params = load_params(write(tmp_path, "paths:\n  raw: old/raw\nmlflow:\n  experiment: x\n"))
    assert params.paths.raw == "old/raw"
    assert "belong(s) in" in caplog.text and "mlflow.experiment" in caplog.text


def test_dvc_exp_run_set_param_changes_one_line_of_params_yaml(tmp_path: Path) -> None:
    """params.yaml is kept in the style DVC writes back, so `dvc exp run -S key=value` (which
    rewrites the file) shows as a one-line diff, not a reformatted file."""
    import shutil

    from dvc.utils.serialize import modify_yaml

    root = Path(__file__).parents[2]
    copy = tmp_path / "params.yaml"
    shutil.copy(root / "params.yaml", copy)
    with modify_yaml(str(copy)) as data:
        data["train"]["learning_rate"] = 0.05
    before = (root / "params.yaml").read_text(encoding="utf-8").splitlines()
    after = copy.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(before) == len(after) and changed == [
        ("  learning_rate: 0.03", "  learning_rate: 0.05")
    ]
