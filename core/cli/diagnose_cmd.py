"""`diagnose audio|image|agreement|quality`: Experiment 2, the image-side probe, cross-modal agreement,
transfer quality per controller."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..atomic import json_text

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
    from ..atomic import claim
    from ..config import load_config
    from ..media.plots import bars
    from ..experiment.stages import audio_diagnostics

    claim([output / "audio_diagnostics.json", output / "audio_style_f1.png"], db, config)
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
    from ..atomic import claim
    from ..transfer.pipeline import model_files
    from ..media.io import IMAGE_EXTENSIONS
    from ..media.plots import bars
    from ..analysis.sensitivity import list_media
    from ..experiment.stages import image_diagnostics

    claim([output / "image_diagnostics.json", output / "image_probe_f1.png"], *model_files(model), images)
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
    from ..atomic import claim
    from ..transfer.pipeline import model_files
    from ..media.io import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
    from ..analysis.sensitivity import list_media
    from ..experiment.stages import agreement_stage

    claim([output / "agreement.json"], *model_files(model), images, audio)
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
    typer.echo(json_text({"best_fixed_chain": res["best_fixed_chain"]["effect"]}, indent=None))


@diagnose_app.command("quality")
def quality(
    model: List[Path] = typer.Option(..., "--model", "-m", help="Model directory; repeat for more controllers "
                                     "(the first one's encoders and calibration are the metric's ruler)."),
    images: Path = typer.Option(..., "--images", help="Photos (a folder)."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Clips (a folder); with --splits, the audio root."),
    splits: Optional[Path] = typer.Option(None, "--splits", help="Split file: use its --split clips only."),
    split: str = typer.Option("test", "--split", help="Which split's clips, with --splits."),
    controllers: Optional[str] = typer.Option(None, "--controllers", help="Comma list: controller names of the "
                                              "models, search, NAME+refine (default: the models' controllers)."),
    photos: int = typer.Option(6, "--photos", min=2, help="Seeded sample of photos."),
    clips: int = typer.Option(5, "--clips", min=1, help="Seeded sample of clips (from --splits: at most one "
                              "per track until every track has one)."),
    all_photos: bool = typer.Option(False, "--all-photos", help="Sample from all photos, not only the half "
                                    "`run` did not calibrate on."),
    intensities: str = typer.Option("0.1,0.3,0.5,0.7,0.9", "--intensities", help="Image edit intensities."),
    budget_evals: Optional[int] = typer.Option(None, "--budget-evals", min=1, help="Search budget per transfer "
                                               "for search / NAME+refine (default: the model's config)."),
    seed: int = typer.Option(0, "--seed"),
    output: Path = typer.Option(Path("outputs/diagnostics"), "--output", "-o"),
) -> None:
    """Per controller: label agreement, top-1, effects per transfer, strength tracking; vs two baselines."""
    from ..atomic import claim, write_text
    from ..transfer.pipeline import model_files
    from ..media.io import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
    from ..experiment.quality import (parse_intensities, quality_markdown, quality_photos, quality_plot,
                                      run_quality)
    from ..analysis.sensitivity import list_media
    from ..transfer.pipeline import TransferModel

    claim([output / n for n in ("quality.json", "quality.md", "quality.png")],
          *[f for m in model for f in model_files(m)], images, audio, splits)
    levels = parse_intensities(intensities)
    clip_files = _clip_files(audio, splits, split, AUDIO_EXTENSIONS, clips, seed)
    photo_files = list_media(images, IMAGE_EXTENSIONS, None, seed)
    models = [TransferModel(m) for m in model]
    # the half `run` did not calibrate on is fixed by the model's own seed; --seed draws the sample (9.130)
    photo_sample = quality_photos(photo_files, photos, seed, int(models[0].cfg.seed), all_photos)
    wanted = [c.strip() for c in controllers.split(",") if c.strip()] if controllers else \
        list(dict.fromkeys(tm.controller.metadata.controller for tm in models))
    res = run_quality(models, photo_sample, clip_files,
                      wanted, levels, seed, progress=True, budget_evals=budget_evals)
    res["clip_source"] = f"split '{split}' of {splits}" if splits else str(audio)
    _write(output, "quality", res)
    write_text(output / "quality.md", quality_markdown(res))
    quality_plot(res, output / "quality.png")
    typer.echo(quality_markdown(res).split("\n\nBest fixed")[0])
    typer.echo(f"wrote {output / 'quality.json'}, quality.md, quality.png")


def _clip_files(audio: Optional[Path], splits: Optional[Path], split: str, extensions, limit: int,
                seed: int) -> list:
    """A seeded sample of `limit` clips; from a split file, spread over its tracks first."""
    from ..errors import DeltaV2AError
    from ..experiment.quality import one_clip_per_track, seeded_sample
    from ..analysis.sensitivity import list_media

    if splits is None:
        if audio is None:
            raise DeltaV2AError("give --audio (a folder of clips) or --splits")
        return seeded_sample(list_media(audio, extensions, None, 0), limit, seed)
    from ..database.splits import load_splits

    sp = load_splits(splits, audio)
    files = [sp.path_of(c) for c in one_clip_per_track(sp.clips_in(split), limit, seed)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DeltaV2AError(f"{len(missing)} clip(s) of split '{split}' are missing, e.g. {missing[0]}")
    if not files:
        raise DeltaV2AError(f"split '{split}' of {splits} has no clips")
    return files


def register(app: typer.Typer) -> None:
    app.add_typer(diagnose_app, name="diagnose")
