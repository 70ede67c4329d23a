"""The `churn` command line: one command per pipeline stage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Churn prediction pipeline. Each command is one DVC stage.", no_args_is_help=True
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read")]


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def simulate(
    params: ParamsOpt = Path("params.yaml"),
    customers: Annotated[int | None, typer.Option(help="override simulate.customers")] = None,
    seed: Annotated[int | None, typer.Option(help="override simulate.seed")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="override simulate.out_dir")] = None,
) -> None:
    """Simulate a subscription business with known churn drivers into data/raw/."""
    from pipeline import simulate as stage

    stage.main(params, customers=customers, seed=seed, out_dir=out_dir)


@app.command()
def ingest(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate every source table into data/interim/, quarantining bad rows."""
    from pipeline import ingest as stage

    raise typer.Exit(stage.main(params))


@app.command()
def label(params: ParamsOpt = Path("params.yaml")) -> None:
    """Point-in-time churn labels per customer and monthly cutoff."""
    from pipeline import label as stage

    stage.main(params)


@app.command()
def featurize(params: ParamsOpt = Path("params.yaml")) -> None:
    """Point-in-time features per customer and cutoff, joined with labels."""
    from pipeline import featurize as stage

    stage.main(params)


@app.command()
def train(params: ParamsOpt = Path("params.yaml")) -> None:
    """LightGBM + calibration and baselines on an out-of-time split; MLflow run + version."""
    from pipeline import train as stage

    raise typer.Exit(stage.main(params))


@app.command()
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Test metrics, plots, truth check; champion/challenger promotion in the MLflow registry."""
    from pipeline import evaluate as stage

    raise typer.Exit(stage.main(params))


@app.command()
def score(
    params: ParamsOpt = Path("params.yaml"),
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="score date (default: after the latest data)")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="models:/name@alias, models:/name/version or a model directory"),
    ] = None,
    csv: Annotated[str | None, typer.Option(help="also write the scores as CSV here")] = None,
) -> None:
    """Churn probability, risk tier and reason codes for every active customer."""
    from pipeline import score as stage

    raise typer.Exit(stage.main(params, as_of=as_of, model_uri=model, csv=csv))


@app.command()
def kpis(params: ParamsOpt = Path("params.yaml")) -> None:
    """Monthly churn, MRR churn, NRR, cohort retention, NPS/CSAT, repeat purchases by segment."""
    from pipeline import kpis as stage

    raise typer.Exit(stage.main(params))


@app.command()
def alert(
    params: ParamsOpt = Path("params.yaml"),
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="date (default: the scores' as-of date)")
    ] = None,
) -> None:
    """Early-warning alerts (rules on experience data and scores) with owners and due dates."""
    from pipeline import alert as stage

    raise typer.Exit(stage.main(params, as_of=as_of))


@app.command("alert-backtest")
def alert_backtest(params: ParamsOpt = Path("params.yaml")) -> None:
    """Each alert rule at past label cutoffs: precision, recall and lift over the base rate."""
    from pipeline import alert as stage

    raise typer.Exit(stage.main_backtest(params))


@app.command()
def explain(params: ParamsOpt = Path("params.yaml")) -> None:
    """SHAP driver report (reports/drivers/index.html + CSV tables), logged to the MLflow run."""
    from pipeline import explain as stage

    raise typer.Exit(stage.main(params))


@app.command()
def preset(
    file: Annotated[Path, typer.Argument(help="a params preset, e.g. configs/ravenstack.yaml")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Merge a params preset into params.yaml (each key it gives replaces that key)."""
    from pipeline import preset as command

    raise typer.Exit(command.main(file, params))


table_app = typer.Typer(
    help="Snapshot tables: one row per customer and a churn column (CSV or Parquet).",
    no_args_is_help=True,
)
app.add_typer(table_app, name="table")


@table_app.command("fit")
def table_fit(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file, one row per customer")],
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
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Evaluate, fit, explain and score a snapshot table; tracked in MLflow."""
    from pipeline import table as stage

    columns = tuple(c.strip() for item in drop or [] for c in item.split(",") if c.strip())
    raise typer.Exit(
        stage.main_fit(
            data, target, positive, id_column, columns, cv, as_json, allow_leaky, out, params
        )
    )


@table_app.command("run")
def table_run(
    name: Annotated[
        str | None, typer.Argument(help="a table of data.tables (default: every table)")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Fit the snapshot tables named in params (`data.shape: snapshot`): stage `table@<name>`."""
    from pipeline import table as stage

    raise typer.Exit(stage.main(params, name))


if __name__ == "__main__":
    app()
