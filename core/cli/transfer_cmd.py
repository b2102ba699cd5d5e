"""`transfer`: the main job, image edit -> audio edit, for files or folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError


def parse_image_effects(spec: str, configured: list[str]) -> list[tuple[str, float]]:
    """`all:0.3,0.9` -> every configured image effect at 0.3 and at 0.9; `sepia_tone:0.5` -> one."""
    name, _, value = spec.partition(":")
    if not name:
        raise DeltaV2AError(f"--image-effect needs NAME[:INTENSITY[,INTENSITY...]], got '{spec}'")
    values = [v for v in value.split(",")] if value else [""]
    out = []
    for v in values:
        n, t = parse_image_effect(f"{name}:{v}" if v else name)
        out.extend((e, t) for e in (configured if n == "all" else [n]))
    return out


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


def _tag(effect: str, intensity: float) -> str:
    return f"{effect}-{intensity:g}"


def write_index(output: Path, rows: list[dict]) -> None:
    """index.json (every sidecar's essentials) + index.md (a table to listen through)."""
    from ..atomic import write_json, write_text

    write_json(output / "index.json", {"transfers": rows})
    lines = ["# Transfer grid", "",
             "Each row: the image edit, its reading (top terms, strength in [0, 1]), the clip, and what "
             "was rendered. Listen to A (the clip) then A' (the output); the PNG shows I, I', both "
             "spectrograms and the controller's activity.", "",
             "| image | edit | top terms | strength | clip | effects rendered | A' | summary |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out = Path(r["output"])
        png = out.with_suffix(".png")
        lines.append(f"| {Path(r['image']).name} | {r['edit']} | {', '.join(r['top_terms'])} | "
                     f"{r['strength']:.2f} | [{Path(r['audio']).name}]({r['audio']}) | "
                     f"{', '.join(r['effects']) or 'none'} | [{out.name}]({out.name}) | "
                     + (f"[png]({png.name})" if png.exists() else "") + " |")
    write_text(output / "index.md", "\n".join(lines) + "\n")


def transfer(
    image: Path = typer.Option(..., "--image", help="Original image, or a folder of images."),
    edited: Optional[Path] = typer.Option(None, "--edited", help="Edited image (or folder with the same file names)."),
    image_effect: Optional[list[str]] = typer.Option(
        None, "--image-effect", help="Make I' with an image effect: NAME[:INTENSITY[,INTENSITY...]], repeatable; "
        "NAME 'all' = every configured image effect (e.g. all:0.3,0.9 for a listening grid)."),
    audio: Path = typer.Option(..., "--audio", help="Audio clip, or a folder of clips."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .wav (or a folder when an input is a folder "
                                "or several edits are asked for; it then gets index.md + index.json)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model directory (default: the shipped model)."),
    summary: bool = typer.Option(True, "--summary/--no-summary", help="Also write a PNG summary per output."),
    seed: int = typer.Option(0, "--seed", help="Seed for random image effects."),
    controller: Optional[str] = typer.Option(
        None, "--controller", help="'search': zero-shot CMA-ES search, no trained controller used "
        "(default: the model's own controller)."),
    refine: bool = typer.Option(False, "--refine", help="Refine the trained controller's plan with the search."),
    budget: Optional[str] = typer.Option(
        None, "--budget", help="Search budget in candidate renders (default: inference.search.budget_evals)."),
    budget_seconds: Optional[str] = typer.Option(
        None, "--budget-seconds", help="Search budget in seconds (default: inference.search.budget_seconds)."),
) -> None:
    """Change the music in the direction the image changed: writes A', a JSON sidecar and a PNG.

    Folders for --image and --audio (and several --image-effect values) make a grid: every
    image x edit x clip, with index.md / index.json to listen through."""
    from ..media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, load_audio, load_image
    from ..transfer import TransferModel

    if (edited is None) == (not image_effect):
        raise DeltaV2AError("give exactly one of --edited or --image-effect")
    images = _files(image, IMAGE_EXTENSIONS)
    clips = _files(audio, AUDIO_EXTENSIONS)
    if edited is not None and edited.is_dir() != image.is_dir():
        raise DeltaV2AError("--image and --edited must both be files or both be folders")
    if (budget is not None or budget_seconds is not None) and controller is None and not refine:
        raise DeltaV2AError("--budget / --budget-seconds apply to the search: add --controller search or --refine")
    tm = TransferModel(model, controller=controller, refine=refine,
                       budget_evals="config" if budget is None else budget,
                       budget_seconds="config" if budget_seconds is None else budget_seconds)
    edits: list[tuple[str, float]] = []
    if image_effect:
        from ..plugins import get

        configured = list(tm.cfg.effects.image)
        for spec in image_effect:
            edits.extend(parse_image_effects(spec, configured))
        for name, intensity in edits:
            get("image_effect", name)().param("intensity").validate(intensity, name)
    many = image.is_dir() or audio.is_dir() or len(edits) > 1
    if not many and output.suffix.lower() != ".wav":
        raise DeltaV2AError(f"output must be a .wav file: {output}")
    if many and output.suffix:
        raise DeltaV2AError(f"with several inputs or edits, --output must be a folder, got {output}")
    for p in images + clips:
        if many and p.resolve().parent == output.resolve():
            raise DeltaV2AError(f"--output {output} holds the inputs; choose another folder")
    plan = [(i, e, c) for i in images for e in (edits or [None]) for c in clips]
    _claim(plan, output, many, summary, len(edits) > 1, images, clips, edited, model)
    from tqdm import tqdm

    emb_cache: dict[Path, tuple] = {}
    rows = []
    for img_path, edit, clip_path in tqdm(plan, desc="transfer", unit="pair", disable=len(plan) < 2):
        before = load_image(img_path)
        if edit is not None:
            from ..plugins import get

            after = get("image_effect", edit[0])().apply(before, edit[1], seed=seed)
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
        out = _out_path(output, many, len(edits) > 1, img_path, edit, clip_path)
        result = tm.transfer(before, after, x, sr, audio_emb=emb, write_to=out)
        label = _tag(*edit) if edit is not None else str(edited)
        result.save(out, before=before, after=after, original=x, summary=summary,
                    extra={"image": str(img_path), "audio": str(clip_path),
                           "edited": label, "image_effect": None if edit is None else
                           {"name": edit[0], "intensity": edit[1], "seed": seed}})
        rows.append({"image": str(img_path), "edit": label, "audio": str(clip_path), "output": str(out),
                     "top_terms": [t["term"] for t in result.sidecar["style"]["top"][:3]],
                     "strength": float(result.label.strength if result.label else 0.0),
                     "confidence": float(result.label.confidence if result.label else 0.0),
                     "effects": [e["effect"] for e in result.sidecar["effects"]],
                     "unchanged": result.unchanged})
        if not many:
            st = result.sidecar["style"]
            typer.echo(f"wrote {out} (+ .json{', .png' if summary else ''})")
            typer.echo("  style: " + ", ".join(f"{t['term']} {t['p']:.2f}" for t in st["top"])
                       + f"  (||d||={st['delta_norm']:.3f}, c={st['confidence']:.2f}, strength={st['strength']:.2f}, "
                       f"H={st['entropy_bits']:.2f} bits)")
            typer.echo("  effects: " + (", ".join(
                f"{e['effect']}(" + ", ".join(f"{k}={v:.3g}" for k, v in e["params"].items()) + ")"
                for e in result.sidecar["effects"]) or ("none (the image pair is unchanged)"
                                                       if result.unchanged else "none")))
    if many:
        write_index(output, rows)
        typer.echo(f"wrote {len(plan)} transfers to {output} (index.md, index.json)")


def _out_path(output: Path, many: bool, several_edits: bool, img_path: Path, edit, clip_path: Path) -> Path:
    """Where one transfer of a grid (or the single transfer) is written."""
    if not many:
        return output
    mid = f"{_tag(*edit)}__" if several_edits else ""
    return output / f"{img_path.stem}__{mid}{clip_path.stem}.wav"


def _claim(plan, output: Path, many: bool, summary: bool, several_edits: bool, images, clips, edited,
           model) -> None:
    """Refuse outputs (WAV, sidecar, summary, grid index) that would replace an input or each
    other, and lock them against a concurrent transfer, before any work (core/atomic.py)."""
    from ..atomic import claim_outputs

    outs = [output / "index.md", output / "index.json"] if many else []
    for img_path, edit, clip_path in plan:
        out = _out_path(output, many, several_edits, img_path, edit, clip_path)
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
