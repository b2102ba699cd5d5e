"""`train`, `tune-thresholds`, `evaluate` and `probes`: the controller stages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer



def train(
    db: Path = typer.Option(..., "--db", help="Training database (build-db)."),
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write."),
    val_db: Optional[Path] = typer.Option(None, "--val-db", help="Validation database (default: hold out clips of --db)."),
    controller: Optional[str] = typer.Option(None, "--controller", help="Controller plugin: mlp, ar, ... (default: config)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override training.epochs."),
    restart: bool = typer.Option(False, "--restart", help="Discard an earlier run in OUTPUT instead of resuming it."),
) -> None:
    """Train a controller; resumes an interrupted run in OUTPUT by default."""
    from ..atomic import claim
    from ..config import load_config
    from ..experiment.stages import train_stage

    claim([output / n for n in ("config.yaml", "controller.json", "controller.safetensors")], db, val_db, config)
    cfg = load_config(config, {"training": {"epochs": epochs}} if epochs else None)
    if controller:
        cfg.controller = cfg.controller_config(controller)
    from ..api.options import check_config_options

    check_config_options(cfg)  # a typo in an option fails before the database is read
    summary = train_stage(cfg, db, output, val_db, cfg.controller.name, resume=not restart, replace=restart)
    typer.echo(f"{summary['controller']}: best epoch {summary['best_epoch']}/{summary['epochs']}, "
               f"{summary['selection_metric']} = {summary['best_value']:.4f}; wrote {output}")


def tune_thresholds(
    model: Path = typer.Option(..., "--model", "-m", help="Model directory from `train`."),
    val_db: Path = typer.Option(..., "--val-db", help="Validation database."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the search as JSON."),
) -> None:
    """Per-effect activity thresholds on validation records, saved with the model."""
    from ..atomic import claim, write_json
    from ..experiment.stages import thresholds_stage
    from ..transfer.pipeline import model_files

    # the model's own files are updated in place (its purpose); -o must not be one of them
    claim([output], *model_files(model), val_db, fixed_names=False)
    res = thresholds_stage(model, val_db)
    if output:
        write_json(output, res)
    typer.echo(f"{res['objective_name']} objective {res['objective_at_start']:.4f} at 0.5 -> {res['objective']:.4f} "
               f"(at most {res['max_active'] or 'all'} effects rendered)")
    typer.echo("  " + ", ".join(f"{e} {t:.3f}" for e, t in res["thresholds"].items()))


def evaluate(
    model: Path = typer.Option(..., "--model", "-m"),
    test_db: Path = typer.Option(..., "--test-db", help="Held-out database (build-db --split test)."),
    train_db: Path = typer.Option(..., "--train-db", help="Training database (for the mean baseline)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for metrics.json and per-parameter PNG."),
) -> None:
    """The notes' metrics on held-out records, beside the mean baseline."""
    from ..atomic import claim, write_json
    from ..media.plots import per_param_bars
    from ..experiment.stages import evaluate_stage
    from ..transfer.pipeline import model_files

    claim([output / "metrics.json", output / "per_param_rmse.png"], *model_files(model), test_db, train_db)
    out = evaluate_stage(model, test_db, train_db)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "metrics.json", out)
    per_param_bars(out["tuned"]["per_param_active_rmse_gated"], out["mean_baseline_active_param_rmse"],
                   output / "per_param_rmse.png")
    t = out["tuned"]
    typer.echo(f"{out['controller']} on {out['records']} records: active_param_rmse_gated {t['active_param_rmse_gated']:.4f} "
               f"(mean baseline {out['mean_baseline_active_param_rmse']:.4f}, "
               f"{100 * out['reduction_vs_baseline']:.0f}% lower); macro F1 {t['macro_f1']:.3f}, micro F1 {t['micro_f1']:.3f}; "
               f"effects per record {t['mean_active_effects_predicted']:.2f} predicted vs {t['mean_active_effects_true']:.2f} true")


def probes(
    db: Path = typer.Option(..., "--db", help="Training database."),
    test_db: Path = typer.Option(..., "--test-db", help="Held-out database."),
    config: Optional[Path] = typer.Option(None, "--config", "-c"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the table as JSON."),
) -> None:
    """Experiment 3: linear probes (audio only, style only, style + audio gated) vs the mean baseline."""
    from ..atomic import claim, write_json
    from ..config import load_config
    from ..experiment.stages import probes_stage

    claim([output], db, test_db, config, fixed_names=False)
    rows = probes_stage(load_config(config), db, test_db)
    if output:
        write_json(output, rows)
    typer.echo(f"{'input':<28} active param RMSE")
    for r in rows:
        typer.echo(f"{r['name']:<28} {r['active_param_rmse']:.3f}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("tune-thresholds")(tune_thresholds)
    app.command("evaluate")(evaluate)
    app.command("probes")(probes)
