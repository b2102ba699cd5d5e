"""`sensitivity`: Experiment 1 over folders of images and audio."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DeltaV2AError(f"{what}: expected comma-separated numbers, got '{text}'") from None
    if not vals or any(not 0 <= v <= 1 for v in vals):
        raise DeltaV2AError(f"{what}: values must lie in [0, 1], got '{text}'")
    return vals


def sensitivity(
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of images."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Folder of audio clips."),
    output: Path = typer.Option(Path("outputs/sensitivity"), "--output", "-o", help="Folder for JSON + PNG."),
    config: Optional[Path] = typer.Option(None, "--config", "-c"),
    intensities: str = typer.Option("0.25,0.5,0.75,1.0", "--intensities"),
    threshold: float = typer.Option(0.01, "--threshold", help="Verdict: mean ||delta|| above this (min_distance)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use at most N files per folder (seeded sample)."),
    seed: int = typer.Option(0, "--seed"),
    from_extract: Optional[Path] = typer.Option(
        None, "--from-extract", help="Folder written by `deltav2a analysis extract`: use its deltas "
        "instead of encoding again (--images/--audio/--intensities/--limit do not apply)."),
) -> None:
    """Mean/std/min/max of ||E(x') - E(x)|| per encoder x effect x intensity, with a verdict."""
    from ..atomic import claim, write_json
    from ..config import load_config
    from ..media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
    from ..sensitivity import (audio_sensitivity, extract_sensitivity, image_sensitivity, list_media,
                               plot_sensitivity)

    claim([output / "sensitivity_results.json", output / "sensitivity.png"], images, audio, config, from_extract)
    if from_extract is not None:
        if images is not None or audio is not None:
            raise DeltaV2AError("--from-extract replaces --images/--audio: give one or the other")
        rows = extract_sensitivity(from_extract, threshold)
        xs = sorted({r["intensity"] for r in rows})
        counts = {m: max((r["n"] for r in rows if r["modality"] == m), default=0) for m in ("image", "audio")}
        n_images, n_audio = counts["image"], counts["audio"]
    else:
        if images is None and audio is None:
            raise DeltaV2AError("give --images DIR and/or --audio DIR (or --from-extract DIR)")
        cfg = load_config(config)
        xs = _floats(intensities, "--intensities")
        img_files = list_media(images, IMAGE_EXTENSIONS, limit, seed) if images else []
        aud_files = list_media(audio, AUDIO_EXTENSIONS, limit, seed) if audio else []
        n_images, n_audio = len(img_files), len(aud_files)
        from tqdm import tqdm

        total = len(xs) * ((len(cfg.effects.image) if images else 0) + (len(cfg.effects.audio) if audio else 0))
        rows = []
        with tqdm(total=total, desc="sensitivity", unit="cell") as bar:
            if images:
                rows += image_sensitivity(img_files, cfg, cfg.effects.image, xs, threshold, seed, bar.update)
            if audio:
                rows += audio_sensitivity(aud_files, cfg, cfg.effects.audio, xs, threshold, bar.update)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "sensitivity_results.json", {
        "threshold": threshold, "intensities": xs,
        "n_images": n_images, "n_audio": n_audio, "results": rows})
    plot_sensitivity(rows, threshold, output / "sensitivity.png")
    for r in rows:
        flag = "ok " if r["sensitive"] else "LOW"
        typer.echo(f"{flag} {r['modality']:<5} {r['encoder']:<18} {r['effect']:<16} {r['intensity']:.2f}  "
                   f"mean {r['mean']:.4f} ± {r['std']:.4f}  [{r['min']:.4f}, {r['max']:.4f}]")
    missed = [r for r in rows if not r["sensitive"]]
    if missed:
        typer.echo(f"warning: {len(missed)} effect/intensity cells fall below the threshold {threshold}", err=True)
    typer.echo(f"wrote {output / 'sensitivity_results.json'} and {output / 'sensitivity.png'}")


def register(app: typer.Typer) -> None:
    app.command("sensitivity")(sensitivity)
