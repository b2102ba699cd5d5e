"""`config show`: the effective configuration after defaults, file and overrides."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


@config_app.command("show")
def show(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file."),
    as_json: bool = typer.Option(False, "--json"),
    sets: List[str] = typer.Option([], "--set", help="KEY=VALUE or KEY+=VALUE, as for `run`."),
) -> None:
    """Print the effective config (defaults are the notes' Appendix C values), e.g. to see
    the keys `run --set` takes: `config show --set effects.audio+=phaser`. The encoders' and
    controllers' options are checked against their plugins (`plugin-info NAME` lists them)."""
    from ..api.options import check_config_options
    from ..config import dump_config, load_config_with

    cfg = load_config_with(config, sets)
    check_config_options(cfg, cfg.experiment.controllers)  # each plugin's Options
    if as_json:
        typer.echo(cfg.model_dump_json(indent=2))
    else:
        typer.echo(dump_config(cfg), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
