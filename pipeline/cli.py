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


if __name__ == "__main__":
    app()
