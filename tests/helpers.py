"""Helpers shared by the test packages (importable as `helpers`: pyproject puts tests/ on the
path)."""

from __future__ import annotations

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
