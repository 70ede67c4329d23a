"""The `churn` command line: one command per pipeline stage, and the one error boundary.

Every command runs its stage through `_run`: the project's own errors (features/base/errors.py)
become their exit code (2 for bad input: data, params, rules, a missing input file) and a one-line
message naming what to fix; anything else is a bug and surfaces with its traceback (exit 1).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from features.base.errors import ChurnError

log = logging.getLogger("churn")

app = typer.Typer(
    help="Churn prediction pipeline. Each command is one DVC stage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read")]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="as-of date, e.g. 2025-12-01 (data strictly before it is read)"),
]


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _run(
    command: str,
    stage: Callable[[], Any],
    on_error: Callable[[ChurnError], None] | None = None,
) -> Any:
    """The error boundary: run `stage`; a ChurnError exits with its code and message."""
    try:
        return stage()
    except ChurnError as exc:
        log.error("%s: %s", command, exc)
        if on_error is not None:
            on_error(exc)
        raise typer.Exit(exc.exit_code) from None


def _params(path: Path) -> Any:
    from pipeline.config import load_params

    return load_params(path)


@app.command()
def simulate(
    params: ParamsOpt = Path("params.yaml"),
    customers: Annotated[int | None, typer.Option(help="override simulate.customers")] = None,
    seed: Annotated[int | None, typer.Option(help="override simulate.seed")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="instead of paths.raw")] = None,
) -> None:
    """Simulate a subscription business with known churn drivers (the default data)."""
    from pipeline import simulate as stage

    _run("simulate", lambda: stage.run(_params(params), customers, seed, out_dir))


@app.command()
def ingest(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate every source table into the interim tables, quarantining bad rows."""
    from pipeline import ingest as stage

    _run("ingest", lambda: stage.run(_params(params)))


@app.command()
def label(params: ParamsOpt = Path("params.yaml")) -> None:
    """Point-in-time churn labels per customer and monthly cutoff."""
    from pipeline import label as stage

    _run("label", lambda: stage.run(_params(params)))


@app.command()
def featurize(params: ParamsOpt = Path("params.yaml")) -> None:
    """Point-in-time features per customer and cutoff, joined with labels."""
    from pipeline import featurize as stage

    _run("featurize", lambda: stage.run(_params(params)))


@app.command()
def train(params: ParamsOpt = Path("params.yaml")) -> None:
    """LightGBM + calibration and baselines on an out-of-time split; MLflow run + version."""
    from pipeline import train as stage

    _run("train", lambda: stage.run(_params(params)))


@app.command()
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Test metrics, plots, truth check; champion/challenger promotion in the MLflow registry."""
    from pipeline import evaluate as stage

    _run("evaluate", lambda: stage.run(_params(params)))


@app.command()
def promote(
    params: ParamsOpt = Path("params.yaml"),
    force: Annotated[
        bool, typer.Option(help="promote the challenger even if it does not win on the same rows")
    ] = False,
) -> None:
    """Make the last trained challenger the champion if it wins on the same test rows."""
    from pipeline import promote as stage

    _run("promote", lambda: stage.run(_params(params), force))


@app.command()
def score(
    params: ParamsOpt = Path("params.yaml"),
    as_of: AsOfOpt = None,
    model: Annotated[
        str | None,
        typer.Option(help="models:/name@alias, models:/name/version or a model directory"),
    ] = None,
    csv: Annotated[str | None, typer.Option(help="also write the scores as CSV here")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="write this run's outputs (features, scores .parquet/.csv, priority list, "
            "score.json) into this directory instead of the configured paths"
        ),
    ] = None,
) -> None:
    """Churn probability, risk tier and reason codes for every active customer."""
    from features.base.time import as_of_date
    from pipeline import score as stage

    _run(
        "score",
        lambda: stage.run(
            _params(params),
            as_of_date(as_of) if as_of else None,
            model_uri=model,
            csv=csv,
            out=out,
        ),
    )


@app.command()
def kpis(params: ParamsOpt = Path("params.yaml")) -> None:
    """Monthly churn, MRR churn, NRR, cohort retention, NPS/CSAT, repeat purchases by segment."""
    from pipeline import kpis as stage

    _run("kpis", lambda: stage.run(_params(params)))


@app.command()
def alert(params: ParamsOpt = Path("params.yaml"), as_of: AsOfOpt = None) -> None:
    """Early-warning alerts (rules on experience data and scores) with owners and due dates;
    the as-of date defaults to the scores'."""
    from features.base.time import as_of_date
    from pipeline import alert as stage

    _run("alert", lambda: stage.run(_params(params), as_of_date(as_of) if as_of else None))


@app.command()
def monitor(params: ParamsOpt = Path("params.yaml")) -> None:
    """Drift of the scoring table vs the training rows, realised performance of past scores;
    report, page, MLflow metrics and alerts."""
    from pipeline import monitor as stage

    _run("monitor", lambda: stage.run(_params(params)))


@app.command()
def monthly(
    params: ParamsOpt = Path("params.yaml"),
    as_of: AsOfOpt = None,
    model: Annotated[
        str | None,
        typer.Option(help="instead of score.model: models:/name@alias or a model directory"),
    ] = None,
) -> None:
    """The monthly scoring job on new data: ingest, score with the champion, monitor (drift and
    the realised performance of past scores), alert. No simulator and no retraining (`dvc repro`
    does those); stops at the first stage that fails."""
    from features.base.time import as_of_date
    from pipeline import alert as alert_stage
    from pipeline import ingest as ingest_stage
    from pipeline import monitor as monitor_stage
    from pipeline import score as score_stage

    settings = _run("monthly", lambda: _params(params))
    day = as_of_date(as_of) if as_of else None
    _run("ingest", lambda: ingest_stage.run(settings))
    _run("score", lambda: score_stage.run(settings, day, model_uri=model))
    _run("monitor", lambda: monitor_stage.run(settings))
    _run("alert", lambda: alert_stage.run(settings, day))
    log.info("monthly job done: scores, monitoring report, priority list and alerts written")


@app.command("alert-backtest")
def alert_backtest(params: ParamsOpt = Path("params.yaml")) -> None:
    """Each alert rule at past label cutoffs: precision, recall and lift over the base rate."""
    from pipeline import alert as stage

    _run("alert-backtest", lambda: stage.run_backtest(_params(params)))


@app.command()
def explain(params: ParamsOpt = Path("params.yaml")) -> None:
    """SHAP driver report (index.html + CSV tables), logged to the model's MLflow run."""
    from pipeline import explain as stage

    _run("explain", lambda: stage.run(_params(params)))


@app.command()
def preset(
    file: Annotated[Path, typer.Argument(help="a params preset, e.g. configs/ravenstack.yaml")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Merge a params preset into params.yaml (each key it gives replaces that key)."""
    from pipeline import preset as command

    changed = _run("preset", lambda: command.apply_preset(file, params))
    typer.echo("\n".join(changed))


table_app = typer.Typer(
    help="Snapshot tables: one row per customer and a churn column (CSV, Parquet or Excel).",
    no_args_is_help=True,
)
app.add_typer(table_app, name="table")


@table_app.command("fit")
def table_fit(
    data: Annotated[
        Path,
        typer.Argument(
            help="one row per customer: .csv/.tsv (also .gz, or .zip with one CSV), .parquet, .xlsx"
        ),
    ],
    target: Annotated[str, typer.Option("--target", help="the churn column")],
    positive: Annotated[
        str, typer.Option("--positive", help="its churned value (text, any case): Yes, 1, true")
    ],
    id_column: Annotated[
        str | None, typer.Option("--id", help="identifier column (kept in the scores only)")
    ] = None,
    drop: Annotated[
        list[str] | None, typer.Option("--drop", help="columns to leave out (comma-separated)")
    ] = None,
    cv: Annotated[
        int | None, typer.Option("--cv", help="K-fold stratified CV (default: one holdout)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON object (logs go to stderr)")
    ] = False,
    allow_leaky: Annotated[
        bool, typer.Option("--allow-leaky", help="keep leakage suspects (still reported)")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="output directory (default reports/table/<file>)")
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            help="text encoding, e.g. cp1252 (default: UTF-8, else Windows-1252, else Latin-1)",
        ),
    ] = None,
    decimal: Annotated[
        str | None,
        typer.Option(
            "--decimal",
            help="decimal mark ',' or '.' (default: ',' for ';'-delimited files that use it)",
        ),
    ] = None,
    sheet: Annotated[
        str | None,
        typer.Option("--sheet", help="Excel sheet name or position, 1 = first (the default)"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Evaluate, fit, explain and score a snapshot table; tracked in MLflow."""
    import contextlib

    from models.snapshot.reading import ReadOptions
    from pipeline import table as stage
    from pipeline.config import Params

    reading = ReadOptions(encoding=encoding, decimal=decimal, sheet=sheet)  # type: ignore[arg-type]
    columns = tuple(c.strip() for item in drop or [] for c in item.split(",") if c.strip())

    def fit() -> dict[str, Any]:
        # Outside a project (no params.yaml at the default path) the defaults apply.
        settings = Params() if params == Path("params.yaml") and not params.exists() else None
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON
            return stage.fit_file(
                settings or _params(params),
                data,
                target,
                positive,
                id_column,
                columns,
                cv,
                allow_leaky,
                out,
                reading,
            )

    def json_error(exc: ChurnError) -> None:
        if as_json:
            sys.stdout.write(json.dumps({"error": str(exc)}) + "\n")

    summary = _run("table fit", fit, json_error)
    if as_json:
        result = {k: v for k, v in summary.items() if k not in ("folds", "schema")}
        sys.stdout.write(json.dumps(result, default=str) + "\n")


@table_app.command("run")
def table_run(
    name: Annotated[
        str | None, typer.Argument(help="a table of data.tables (default: every table)")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Fit the snapshot tables named in params (`data.shape: snapshot`): stage `table@<name>`."""
    from pipeline import table as stage

    _run("table", lambda: stage.run(_params(params), name))


if __name__ == "__main__":
    app()
