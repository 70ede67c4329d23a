"""The CLI's one error boundary, in a real `churn` process: the project's own bad-input errors
exit 2 with a one-line message; a bug (any other exception, a ValueError included) exits 1 and
shows its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _process(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a real process in `cwd` with the project's venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"  # rich tracebacks: keep the exception line whole
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_missing_input_file_exits_2_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    result = _process([str(BIN / "churn"), "featurize"], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "data/processed/labels.parquet: not found. Run `churn label`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bug_inside_a_stage_exits_1_with_a_traceback(tmp_path: Path) -> None:
    """A ValueError raised by a bug in a stage (planted with a monkeypatch) is not bad input."""
    code = (
        "import sys\n"
        "import pipeline.label as stage\n"
        "def run(params):\n"
        "    raise ValueError('planted bug: cutoffs and labels out of step')\n"
        "stage.run = run\n"
        "from pipeline.cli import app\n"
        f"sys.argv = ['churn', 'label', '--params', {str(ROOT / 'params.yaml')!r}]\n"
        "app()\n"
    )
    result = _process([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" in result.stderr
    assert "ValueError: planted bug: cutoffs and labels out of step" in result.stderr
    assert "label: planted bug" not in result.stderr  # not logged as a user error
