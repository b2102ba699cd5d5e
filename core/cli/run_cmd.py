"""`run` (with `--set` / `--sweep`) and `compare`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def with_controller_kind(sets: list[str]) -> list[str]:
    """`run` trains `experiment.controllers`; `--set controller.name=ar` alone means "train ar"
    (`controller.kind`, the key of older versions, too)."""
    from ..config import LEGACY_KEYS, parse_assignment

    keys = [LEGACY_KEYS.get(k, k) for k in (parse_assignment(a)[0] for a in sets)]
    if "controller.name" in keys and "experiment.controllers" not in keys:
        kind = parse_assignment(sets[len(keys) - 1 - keys[::-1].index("controller.name")])[2]
        return [*sets, f"experiment.controllers=[{kind}]"]
    return sets


def run(
    config: Path = typer.Argument(..., help="Experiment config (e.g. configs/quick.yaml)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run directory (default: runs/<config name>)."),
    sets: List[str] = typer.Option([], "--set", help="Override a config key: KEY=VALUE (dotted, e.g. "
                                   "vocabulary=v1, controller.name=ar, training.epochs=5) or KEY+=VALUE "
                                   "to append to a list (effects.audio+=phaser). Repeatable."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="KEY=A,B,C: run once per value (into the same "
                                        "run directory) and write sweep-KEY.md/.csv/.png comparing them."),
) -> None:
    """splits → DB → train → thresholds → calibration → evaluation → diagnostics → examples → report.

    The run directory caches every stage by what it depends on: rerunning with a setting
    switched back reuses the earlier outputs, and each setup keeps its own results/SETUP/.
    """
    from ..experiment.run import check_names
    from ..config import load_config_with, parse_assignment
    from ..errors import DeltaV2AError
    from ..experiment.run import run_experiment

    run_dir = output or Path("runs") / config.stem
    sets = with_controller_kind(list(sets))
    variants: list[list[str]] = [list(sets)]
    sweep_key = None
    if sweep is not None:
        sweep_key, op, _ = parse_assignment(sweep)
        values = [v.strip() for v in sweep.partition("=")[2].split(",") if v.strip()]
        if op != "=" or not values:
            raise DeltaV2AError(f"--sweep expects KEY=A,B,C, got {sweep!r}")
        variants = [[*sets, f"{sweep_key}={v}"] for v in values]
    cfgs = [load_config_with(config, v) for v in variants]
    for c in cfgs:  # every variant's names resolve before the first writes anything
        check_names(c)
    results = []
    for cfg, v in zip(cfgs, variants):
        if len(cfgs) > 1:
            typer.echo(f"[run] setup {v[-1]}", err=True)
        summary = run_experiment(cfg, config, run_dir, log=lambda m: typer.echo(m, err=True))
        results.append(Path(summary["result_dir"]))
        typer.echo(f"report: {Path(summary['result_dir']) / 'report.md'}")
        typer.echo(f"model:  {run_dir / summary['model']}")
    if sweep_key is not None:
        from ..experiment.compare import write_comparison

        paths = write_comparison(results, run_dir, stem=f"sweep-{sweep_key}")
        typer.echo(f"comparison: {paths['md']}")


def compare(
    inputs: List[Path] = typer.Argument(..., help="Run folders (each setup in it is a column), result folders "
                                        "(RUN/results/SETUP) or metrics.json files."),
    output: Path = typer.Option(Path("comparison"), "--output", "-o", help="Folder for compare.md/.csv/.png."),
) -> None:
    """Key metrics of several setups side by side, each column stating its setup."""
    from ..atomic import claim
    from ..experiment.compare import write_comparison

    claim([output / n for n in ("compare.md", "compare.csv", "compare.png")], *inputs)
    paths = write_comparison(list(inputs), output)
    typer.echo(paths["md"].read_text())
    typer.echo(f"wrote {paths['md']}, {paths['csv']}, {paths['png']}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("compare")(compare)
