"""`run`: one command for a whole experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def run(
    config: Path = typer.Argument(..., help="Experiment config (e.g. configs/quick.yaml)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run directory (default: runs/<config name>)."),
) -> None:
    """splits → DB → train → thresholds → calibration → evaluation → diagnostics → examples → report."""
    from ..config import load_config
    from ..experiment import run_experiment

    cfg = load_config(config)
    run_dir = output or Path("runs") / config.stem
    summary = run_experiment(cfg, config, run_dir, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"report: {run_dir / 'report.md'}")
    typer.echo(f"model:  {summary['model']}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
