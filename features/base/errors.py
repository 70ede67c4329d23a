"""The project's own errors. The CLI's one error boundary (pipeline/cli.py) turns a `ChurnError`
into its exit code and a one-line message; anything else is a bug and shows its traceback."""

from __future__ import annotations

from pathlib import Path


class ChurnError(Exception):
    """A known failure the user can act on; its message says what was found and how to fix it."""

    exit_code = 1


class BadInputError(ChurnError):
    """Bad input (data, params, rules, a missing input file): exit code 2."""

    exit_code = 2


class InputNotFoundError(BadInputError, FileNotFoundError):
    """An input file is missing: the message names it and the command that writes it."""


class ResourceLimitError(ChurnError):
    """The job ran out of a resource it is configured for (e.g. DuckDB memory): exit code 1."""


def require_inputs(*paths: str | Path, produced_by: str) -> None:
    """Raise InputNotFoundError naming every missing path and `produced_by`, the command that
    writes them (e.g. "churn train")."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InputNotFoundError(
            f"{', '.join(missing)}: not found. Run `{produced_by}` (or `dvc repro`) first."
        )
