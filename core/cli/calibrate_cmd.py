"""`calibrate`: Appendix D's grid search, stored with the model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def calibrate(
    model: Path = typer.Option(..., "--model", "-m", help="Model directory."),
    images: Path = typer.Option(..., "--images", help="Folder of images (each x every image effect)."),
    db: Path = typer.Option(..., "--db", help="Training database: its mean top-1 mass is the target."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use at most N images (seeded sample)."),
    seed: int = typer.Option(0, "--seed"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for calibration.json + grid PNG."),
) -> None:
    """Fit the image-side temperature and norm confidence (T, tau_c, s_c); T alone when the model's
    config names `inference.calibration_shape`."""
    from ..atomic import claim, write_json
    from ..style.calibration import CalibrationResult, plot_grid
    from ..media.io import IMAGE_EXTENSIONS
    from ..analysis.sensitivity import list_media
    from ..experiment.stages import calibrate_stage

    from ..transfer.pipeline import model_files

    claim([output / "calibration.json", output / "calibration_grid.png"] if output else [],
          *model_files(model), images, db)
    files = list_media(images, IMAGE_EXTENSIONS, limit, seed)
    res = calibrate_stage(model, files, db, seed, progress=True)
    if output:
        output.mkdir(parents=True, exist_ok=True)
        write_json(output / "calibration.json", res)
        plot_grid(CalibrationResult(**{k: res[k] for k in ("temperature", "tau_c", "s_c", "target_top1",
                                                            "achieved_top1", "n_pairs", "grid")}),
                  output / "calibration_grid.png")
    typer.echo(f"T*={res['temperature']:.4g}  tau_c={res['tau_c']:.4g}  s_c={res['s_c']:.4g}  "
               f"top-1 mass {res['achieved_top1']:.4f} (target {res['target_top1']:.4f}, {res['n_pairs']} pairs, "
               f"{len(res['grid'])} grid points)")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
