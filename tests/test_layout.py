"""The house rules that keep the layout honest: dvc.yaml lists every module a stage runs, and the
layers contract (import-linter) really fails on an upward import."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = ("pipeline", "models", "features")


def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def _imports(module: str) -> set[str]:
    """The project modules `module` imports anywhere in its code (functions included)."""
    tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))  # type: ignore[union-attr]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from models import tracking` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _module_file(sub) else node.module)
    return {m for m in found if m.split(".")[0] in PACKAGES and _module_file(m)}


def _closure(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_imports(current))
    return seen


def _stage_modules() -> dict[str, str]:
    """dvc.yaml stage -> the pipeline module its `churn <command>` runs."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    modules = {}
    for name, stage in stages.items():
        cmd = (stage.get("do") or stage)["cmd"].split()
        modules[name] = {"alert-backtest": "alert", "table": "table"}.get(cmd[1], cmd[1])
    return modules


@pytest.mark.parametrize("stage", sorted(_stage_modules()))
def test_dvc_yaml_lists_every_module_the_stage_runs(stage: str) -> None:
    entry = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
    deps = [d for d in (entry.get("do") or entry)["deps"] if not d.startswith("$")]
    module = f"pipeline.{_stage_modules()[stage]}"
    files = sorted(
        str(_module_file(m).relative_to(ROOT))  # type: ignore[union-attr]
        for m in _closure(module)
    )
    missing = [
        f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
    ]
    # a package's __init__.py is covered by its directory or by a module listed inside it
    missing = [
        f
        for f in missing
        if not (f.endswith("__init__.py") and any(d.startswith(str(Path(f).parent)) for d in deps))
    ]
    assert missing == [], f"dvc.yaml stage {stage!r} runs modules it does not list: {missing}"


def test_lint_imports_fails_on_an_upward_import(tmp_path: Path) -> None:
    """The layers contract is checked, not hoped for: features importing models breaks it."""
    for item in (*PACKAGES, "pyproject.toml"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, tmp_path / item)
    run = [str(BIN / "lint-imports"), "--no-cache"]
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(BIN)}
    kept = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert kept.returncode == 0, kept.stdout[-2000:]
    labels = tmp_path / "features" / "labels.py"
    labels.write_text(
        labels.read_text(encoding="utf-8") + "\nfrom models.value import clv  # noqa: E402\n",
        encoding="utf-8",
    )
    broken = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert broken.returncode == 1, broken.stdout[-2000:]
    assert "BROKEN" in broken.stdout and "features.labels -> models.value" in broken.stdout


@pytest.mark.parametrize(
    ("module", "name", "home"),
    [
        ("models.tracking", "ChurnPyfunc", "models.tracking"),
        ("models.snapshot", "SnapshotPyfunc", "models.snapshot.model"),
    ],
)
def test_models_saved_before_the_restructure_still_unpickle(
    module: str, name: str, home: str
) -> None:
    """MLflow pickles a pyfunc wrapper by its import path; registered models name these."""
    import importlib
    import pickle

    found = pickle.loads(f"c{module}\n{name}\n.".encode())  # protocol 0: a global by name
    assert found is getattr(importlib.import_module(home), name)
