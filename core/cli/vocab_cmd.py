"""`vocab list`, `vocab show` and `vocab audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..atomic import json_text
from ..errors import DeltaV2AError

vocab_app = typer.Typer(help="Style vocabularies.", no_args_is_help=True)


@vocab_app.command("list")
def list_vocabularies() -> None:
    """Vocabularies available by name (built-in, plugins, user directory)."""
    from ..plugins import get_registry

    for rec in get_registry().all("vocabulary"):
        typer.echo(f"{rec.name}\t{rec.distribution}\t{rec.summary}")


@vocab_app.command("show")
def show(
    name: str = typer.Argument(..., help="Vocabulary name or path to a YAML file."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Terms, axes and prompt templates of a vocabulary."""
    from ..vocab import load_vocabulary

    v = load_vocabulary(name)
    if as_json:
        typer.echo(json_text(v.model_dump() | {"fingerprint": v.fingerprint()}))
        return
    typer.echo(f"{v.name} (version {v.version}, {v.size} terms, fingerprint {v.fingerprint()})")
    typer.echo(v.summary)
    if v.phases:
        for ph in v.phases:
            typer.echo(f"  {ph.name}:")
            for ax in ph.axes:
                typer.echo(f"    {ax.pole:>12} <-> {ax.antipole:<12} {ax.gloss}")
    else:
        typer.echo("  terms: " + ", ".join(v.terms))
    for modality in ("image", "audio"):
        typer.echo(f"  {modality} templates: " + " | ".join(getattr(v.templates, modality)))


@vocab_app.command("audit")
def audit(
    vocab: Optional[str] = typer.Option(None, "--vocab", help="Vocabulary name or YAML path (default: the config's)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of photos (default: generated ones)."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Folder of clips (default: generated ones)."),
    output: Path = typer.Option(Path("outputs/vocab_audit"), "--output", "-o", help="Folder for JSON + Markdown + PNG."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config YAML (encoders, effects, temperature)."),
    intensities: str = typer.Option("0.35,0.6,0.9", "--intensities"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N files per folder (seeded sample)."),
    pairs: int = typer.Option(30, "--oracle-pairs", min=1, help="Sampled image edit x clip pairs for the oracle."),
    chains: bool = typer.Option(False, "--chains", help="Also audit every two-effect chain for reach (slower)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Label temperature (default: database.temperature)."),
    top_k: int = typer.Option(2, "--top-k", min=1, help="Terms counted as an effect's reading."),
    sink_share: float = typer.Option(0.3, "--sink-share", help="A sink is in the top-k of more than this share of effects."),
    reach_mass: float = typer.Option(0.3, "--reach-mass", help="An image term is reachable if some audio edit gives it this mass."),
    min_mass: float = typer.Option(0.05, "--min-mass", help="A top-k term counts as a reading from this mass on."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default: the config's)."),
) -> None:
    """What a vocabulary means to the configured encoders: effect x term matrices per modality,
    term reach, sink terms and the single-effect oracle agreement."""
    from ..config import load_config
    from ..media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
    from ..sensitivity import list_media
    from ..vocab_audit import run_audit, write_outputs
    from .sensitivity_cmd import _floats

    if temperature is not None and not temperature > 0:
        raise DeltaV2AError(f"--temperature must be positive, got {temperature}")
    if not 0 <= sink_share < 1:
        raise DeltaV2AError(f"--sink-share must lie in [0, 1), got {sink_share}")
    if not 0 <= min_mass < 1:
        raise DeltaV2AError(f"--min-mass must lie in [0, 1), got {min_mass}")
    if not 0 < reach_mass <= 1:
        raise DeltaV2AError(f"--reach-mass must lie in (0, 1], got {reach_mass}")
    xs = _floats(intensities, "--intensities")
    if any(x == 0 for x in xs):
        raise DeltaV2AError("--intensities: 0 is no edit; use values in (0, 1]")
    from ..atomic import claim

    claim([output / n for n in ("vocab_audit.json", "vocab_audit.md", "vocab_audit.png")],
          config, images, audio, *([vocab] if vocab and vocab.endswith((".yaml", ".yml")) else []))
    cfg = load_config(config)
    s = cfg.seed if seed is None else seed
    img_files = list_media(images, IMAGE_EXTENSIONS, limit, s) if images else None
    aud_files = list_media(audio, AUDIO_EXTENSIONS, limit, s) if audio else None
    result = run_audit(cfg, vocabulary=vocab, image_files=img_files, audio_files=aud_files, intensities=xs,
                       temperature=temperature, top_k=top_k, sink_share=sink_share, reach_mass=reach_mass,
                       min_mass=min_mass, n_pairs=pairs, seed=s, chains=chains, progress=True)
    paths = write_outputs(result, output)
    for modality in ("audio", "image"):
        for name, row in result["matrix"][modality].items():
            typer.echo(f"{modality:<5} {name:<20} " + ", ".join(f"{t} {m:.2f}" for t, m in row["top"][:top_k]))
    for modality, sinks in result["sinks"].items():
        if sinks:
            typer.echo(f"warning: {modality} sink terms: {', '.join(sinks)}", err=True)
    if result["unreachable_on_audio"]:
        typer.echo(f"warning: image readings no audio edit reaches (mass < {reach_mass:g}): "
                   f"{', '.join(result['unreachable_on_audio'])}", err=True)
    o = result["oracle"]
    typer.echo(f"oracle single-effect agreement: centred cosine {o['mean_cosine']:.3f}, "
               f"top-1 {o['top1_agreement']:.3f} ({o['n_pairs']} pairs)")
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    app.add_typer(vocab_app, name="vocab")
