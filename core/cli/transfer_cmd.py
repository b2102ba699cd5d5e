"""`transfer`: the main job, image edit -> audio edit, for files or folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError


def parse_image_effect(spec: str) -> tuple[str, float]:
    """`motion_blur:0.7` -> ("motion_blur", 0.7); intensity defaults to 0.5."""
    name, _, value = spec.partition(":")
    if not name:
        raise DeltaV2AError(f"--image-effect needs NAME[:INTENSITY], got '{spec}'")
    try:
        intensity = float(value) if value else 0.5
    except ValueError:
        raise DeltaV2AError(f"--image-effect intensity must be a number, got '{value}'") from None
    return name, intensity


def _files(path: Path, extensions: tuple[str, ...]) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in extensions and p.is_file())
        if not files:
            raise DeltaV2AError(f"no matching files in {path}")
        return files
    return [path]


def transfer(
    image: Path = typer.Option(..., "--image", help="Original image, or a folder of images."),
    edited: Optional[Path] = typer.Option(None, "--edited", help="Edited image (or folder with the same file names)."),
    image_effect: Optional[str] = typer.Option(None, "--image-effect", help="Make I' with an image effect: NAME[:INTENSITY]."),
    audio: Path = typer.Option(..., "--audio", help="Audio clip, or a folder of clips."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .wav (or a folder when an input is a folder)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model directory (default: the shipped model)."),
    summary: bool = typer.Option(True, "--summary/--no-summary", help="Also write a PNG summary per output."),
    seed: int = typer.Option(0, "--seed", help="Seed for random image effects."),
) -> None:
    """Change the music in the direction the image changed: writes A', a JSON sidecar and a PNG."""
    from ..atomic import write_json
    from ..media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, load_audio, load_image, save_audio
    from ..transfer import TransferModel

    if (edited is None) == (image_effect is None):
        raise DeltaV2AError("give exactly one of --edited or --image-effect")
    if image.is_dir() and audio.is_dir():
        raise DeltaV2AError("a folder is allowed for --image or --audio, not both")
    many = image.is_dir() or audio.is_dir()
    if not many and output.suffix.lower() != ".wav":
        raise DeltaV2AError(f"output must be a .wav file: {output}")
    if many and output.suffix:
        raise DeltaV2AError(f"with a folder input, --output must be a folder, got {output}")
    images = _files(image, IMAGE_EXTENSIONS)
    clips = _files(audio, AUDIO_EXTENSIONS)
    fx = None
    if image_effect is not None:
        from ..plugins import get

        name, intensity = parse_image_effect(image_effect)
        fx = get("image_effect", name)()
        fx.param("intensity").validate(intensity, name)
    elif edited.is_dir() != image.is_dir():
        raise DeltaV2AError("--image and --edited must both be files or both be folders")
    pairs = [(i, c) for i in images for c in clips]
    _claim(pairs, output, many, summary, images, clips, edited, model)
    tm = TransferModel(model)
    from tqdm import tqdm

    emb_cache: dict[Path, tuple] = {}
    for img_path, clip_path in tqdm(pairs, desc="transfer", unit="pair", disable=len(pairs) < 2):
        before = load_image(img_path)
        if fx is not None:
            after = fx.apply(before, intensity, seed=seed)
        else:
            after = load_image(edited / img_path.name if edited.is_dir() else edited)
            if before.size != after.size:
                raise DeltaV2AError(f"image pair sizes differ: {img_path} is {before.size[0]}x{before.size[1]}, "
                                    f"the edited one {after.size[0]}x{after.size[1]}")
        if clip_path not in emb_cache:
            x, sr = load_audio(clip_path)
            try:
                emb = tm.audio_embedding(x, sr)
            except DeltaV2AError as exc:
                raise DeltaV2AError(f"{clip_path}: {exc}") from None
            emb_cache = {clip_path: (x, sr, emb)}  # only the current clip: bounded memory
        x, sr, emb = emb_cache[clip_path]
        result = tm.transfer(before, after, x, sr, audio_emb=emb)
        out = output / f"{img_path.stem}__{clip_path.stem}.wav" if many else output
        result.sidecar.update({"image": str(img_path), "audio": str(clip_path),
                               "edited": image_effect or str(edited), "output": str(out)})
        save_audio(result.audio, sr, out)
        write_json(out.with_suffix(".json"), result.sidecar)
        if summary:
            from ..plots import transfer_summary

            transfer_summary(before, after, result.sidecar, x, result.audio, sr, out.with_suffix(".png"))
        if not many:
            st = result.sidecar["style"]
            typer.echo(f"wrote {out} (+ .json{', .png' if summary else ''})")
            typer.echo("  style: " + ", ".join(f"{t['term']} {t['p']:.2f}" for t in st["top"])
                       + f"  (||d||={st['delta_norm']:.3f}, c={st['confidence']:.2f}, H={st['entropy_bits']:.2f} bits)")
            typer.echo("  effects: " + (", ".join(
                f"{e['effect']}(" + ", ".join(f"{k}={v:.3g}" for k, v in e["params"].items()) + ")"
                for e in result.sidecar["effects"]) or "none"))
    if many:
        typer.echo(f"wrote {len(pairs)} transfers to {output}")


def _claim(pairs, output: Path, many: bool, summary: bool, images, clips, edited, model) -> None:
    """Refuse outputs (WAV, sidecar, summary) that would replace an input or each other,
    and lock them against a concurrent transfer, before any work (core/atomic.py)."""
    from ..atomic import claim_outputs

    outs = []
    for img_path, clip_path in pairs:
        out = output / f"{img_path.stem}__{clip_path.stem}.wav" if many else output
        outs += [out, out.with_suffix(".json")] + ([out.with_suffix(".png")] if summary else [])
    ins = list(images) + list(clips)
    if edited is not None:
        ins += [edited / i.name for i in images] if edited.is_dir() else [edited]
    from ..transfer import DEFAULT_MODEL

    model_dir = model if model is not None else DEFAULT_MODEL  # `-o DIR/controller.wav` -> .json
    if model_dir.is_dir():
        ins += [p for p in model_dir.iterdir() if p.is_file()]
    claim_outputs(outs, inputs=ins)


def register(app: typer.Typer) -> None:
    app.command("transfer")(transfer)
