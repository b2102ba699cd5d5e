"""`diagnose audio|image|agreement`: Experiment 2, the image-side probe, cross-modal agreement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

diagnose_app = typer.Typer(help="Style-label diagnostics (JSON + PNG).", no_args_is_help=True)


def _write(output: Path, name: str, data: dict) -> None:
    from ..atomic import write_json

    output.mkdir(parents=True, exist_ok=True)
    write_json(output / f"{name}.json", data)


@diagnose_app.command("audio")
def audio(
    db: Path = typer.Option(..., "--db", help="Training database."),
    config: Optional[Path] = typer.Option(None, "--config", "-c"),
    output: Path = typer.Option(Path("outputs/diagnostics"), "--output", "-o"),
) -> None:
    """Entropy, effective dims, top-1 mass, style F1 per audio effect, consistency separation."""
    from ..config import load_config
    from ..plots import bars
    from ..stages import audio_diagnostics

    res = audio_diagnostics(load_config(config), db)
    _write(output, "audio_diagnostics", res)
    bars(res["style_f1"], "style F1 (logistic probe, 80/20)", output / "audio_style_f1.png")
    st = res["label_statistics"]
    typer.echo(f"entropy {st['entropy_bits_mean']:.2f} bits (max {st['entropy_bits_max']:.2f}), effective dims "
               f"{st['effective_dims_mean']:.1f}/{st['K']}, top-1 mass {st['top1_mass_mean']:.3f}")
    typer.echo("style F1: " + ", ".join(f"{k} {v:.3f}" for k, v in res["style_f1"].items())
               + f"; mean {res['style_f1_mean']:.3f}")
    typer.echo(f"consistency separation {res['consistency']['separation']:.3f}")


@diagnose_app.command("image")
def image(
    model: Path = typer.Option(..., "--model", "-m"),
    images: Path = typer.Option(..., "--images"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
    seed: int = typer.Option(0, "--seed"),
    output: Path = typer.Option(Path("outputs/diagnostics"), "--output", "-o"),
) -> None:
    """Which image effect made this label? F1 per effect from calibrated image labels."""
    from ..media import IMAGE_EXTENSIONS
    from ..plots import bars
    from ..sensitivity import list_media
    from ..stages import image_diagnostics

    res = image_diagnostics(model, list_media(images, IMAGE_EXTENSIONS, limit, seed), seed, progress=True)
    _write(output, "image_diagnostics", res)
    bars(res["probe"]["f1"], "image-side probe F1", output / "image_probe_f1.png")
    typer.echo("image probe F1: " + ", ".join(f"{k} {v:.3f}" for k, v in res["probe"]["f1"].items())
               + f"; mean {res['probe']['mean_f1']:.3f} (chance {res['probe']['chance']:.3f})")


@diagnose_app.command("agreement")
def agreement(
    model: Path = typer.Option(..., "--model", "-m"),
    images: Path = typer.Option(..., "--images", help="Held-out images."),
    audio: Path = typer.Option(..., "--audio", help="Held-out clips (a folder)."),
    pairs: int = typer.Option(40, "--pairs", min=2),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
    seed: int = typer.Option(0, "--seed"),
    output: Path = typer.Option(Path("outputs/diagnostics"), "--output", "-o"),
) -> None:
    """Image label vs the label the audio encoder reads off (A, A'): transfer vs two baselines."""
    from ..media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
    from ..sensitivity import list_media
    from ..stages import agreement_stage

    res = agreement_stage(model, list_media(images, IMAGE_EXTENSIONS, limit, seed),
                          list_media(audio, AUDIO_EXTENSIONS, limit, seed), pairs, seed, progress=True)
    _write(output, "agreement", res)
    for key in ("transfer", "random_chain", "best_fixed_chain"):
        r = res[key]
        typer.echo(f"{key:<17} cosine {r['mean_cosine']:+.3f}  top-1 {r['top1_agreement']:.3f}")
    db_mean = res.get("database_mean_active")
    typer.echo(f"effects rendered per transfer {res['mean_effects_rendered']:.2f} "
               f"(training database: {db_mean:.2f} per record)" if db_mean is not None else
               f"effects rendered per transfer {res['mean_effects_rendered']:.2f}")
    typer.echo(json.dumps({"best_fixed_chain": res["best_fixed_chain"]["effect"]}))


def register(app: typer.Typer) -> None:
    app.add_typer(diagnose_app, name="diagnose")
