"""Helpers shared by the test packages (importable as `helpers`: pyproject puts tests/ on the
path)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app


def churn(*args: object) -> int:
    """Run `churn ARGS...` in this process, through the CLI's error boundary; the exit code.

    A bug (any exception that is not the project's own) is re-raised with its traceback.
    """
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code


@contextlib.contextmanager
def inside(directory: Path) -> Iterator[Path]:
    """Run the block in `directory` (as `churn` runs in a project), with MLflow's tracking URI
    from that project's params (MLFLOW_TRACKING_URI unset); both restored afterwards."""
    old = Path.cwd()
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(directory)
    try:
        yield directory
    finally:
        os.chdir(old)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
