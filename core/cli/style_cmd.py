"""`style` (the label of one edit) and `vocab embed` (the term embeddings V)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..atomic import json_text
from ..errors import DeltaV2AError


def style(
    image: Optional[Path] = typer.Option(None, "--image", help="Original image."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Original audio clip."),
    edited: Path = typer.Option(..., "--edited", help="The edited image or clip."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (encoders, vocabulary, temperatures)."),
    vocabulary: Optional[str] = typer.Option(None, "--vocab", help="Vocabulary name (default: config's)."),
    top_k: int = typer.Option(5, "--top-k", min=1),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Override T (image default: inference.temperature; audio: database.temperature)."),
    calibrated: Optional[bool] = typer.Option(None, "--calibrated/--raw", help="Norm-confidence mixing (default: on for images, off for audio)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything, including the full label, as JSON."),
) -> None:
    """Style label of an edit: top terms, entropy (bits) and the delta norm."""
    import math

    from ..config import load_config
    from ..encoding import load_encoder, term_embeddings
    from ..pairs import embed_pair
    from ..style import Calibration, entropy_bits, style_labels, top_terms
    from ..vocab import load_vocabulary

    if (image is None) == (audio is None):
        raise DeltaV2AError("give exactly one of --image or --audio, plus --edited")
    kind = "image" if image is not None else "audio"
    cfg = load_config(config)
    if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
        raise DeltaV2AError(f"--temperature must be a positive number, got {temperature}")
    vocab = load_vocabulary(vocabulary or cfg.vocabulary)
    e0, e1 = embed_pair(kind, image or audio, edited, cfg)
    choice = cfg.encoders.image if kind == "image" else cfg.encoders.audio
    V = term_embeddings(load_encoder(choice, kind), vocab)
    T = temperature or (cfg.inference.temperature if kind == "image" else cfg.database.temperature)
    use_cal = (kind == "image") if calibrated is None else calibrated
    cal = Calibration(cfg.inference.tau_c, cfg.inference.s_c) if use_cal else None
    labels, norms = style_labels(e0, e1, V, T, cal)
    label = labels[0]
    out = {
        "modality": kind, "encoder": choice.name, "vocabulary": vocab.name,
        "temperature": T, "calibrated": use_cal,
        "delta_norm": float(norms[0]),
        "entropy_bits": float(entropy_bits(label)), "max_entropy_bits": math.log2(vocab.size),
        "top": [{"term": t, "p": p} for t, p in top_terms(label, vocab.terms, top_k)],
    }
    if as_json:
        out["label"] = {t: float(p) for t, p in zip(vocab.terms, label)}
        typer.echo(json_text(out))
        return
    typer.echo(f"{kind} edit via {choice.name}, vocabulary {vocab.name}, T={T:g}"
               f"{', calibrated' if use_cal else ''}")
    typer.echo(f"||delta|| = {out['delta_norm']:.4f}   entropy = {out['entropy_bits']:.3f} bits "
               f"(max {out['max_entropy_bits']:.3f})")
    for row in out["top"]:
        bar = "#" * int(round(row["p"] * 60))
        typer.echo(f"  {row['term']:>12}  {row['p']:.3f}  {bar}")


def vocab_embed(
    name: Optional[str] = typer.Argument(None, help="Vocabulary (default: config's)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c"),
    modality: str = typer.Option("both", "--modality", help="image, audio or both"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also save V as .npy (image/audio suffixes added for both)."),
    refresh: bool = typer.Option(False, "--refresh", help="Ignore the on-disk cache."),
) -> None:
    """Build (or load from cache) the term embeddings V and show how distinct the terms are."""
    import numpy as np

    from ..atomic import atomic_path
    from ..config import load_config
    from ..encoding import load_encoder, term_embeddings
    from ..vocab import load_vocabulary

    if modality not in ("image", "audio", "both"):
        raise DeltaV2AError(f"--modality must be image, audio or both, got '{modality}'")
    from ..atomic import claim

    sides = ("image", "audio") if modality == "both" else (modality,)
    claim([None if output is None else _embed_target(output, m, modality) for m in sides], config, fixed_names=False)
    cfg = load_config(config)
    vocab = load_vocabulary(name or cfg.vocabulary)
    for m in (("image", "audio") if modality == "both" else (modality,)):
        enc = load_encoder(getattr(cfg.encoders, m), m)
        V = term_embeddings(enc, vocab, use_cache=not refresh)
        sims = V @ V.T
        off = sims[~np.eye(len(V), dtype=bool)]
        typer.echo(f"{m}: V is {V.shape[0]}x{V.shape[1]} via {enc.name}; mean pairwise cosine "
                   f"{off.mean():.3f} (max {off.max():.3f})")
        i, j = np.unravel_index(np.argmax(np.where(np.eye(len(V), dtype=bool), -9, sims)), sims.shape)
        typer.echo(f"  closest pair: {vocab.terms[i]} / {vocab.terms[j]} ({sims[i, j]:.3f})")
        if output is not None:
            target = _embed_target(output, m, modality)
            with atomic_path(target, suffix=".npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, V, allow_pickle=False)
            typer.echo(f"  wrote {target}")


def _embed_target(output: Path, side: str, modality: str) -> Path:
    """`-o V.npy` for one side; V_image.npy and V_audio.npy for both."""
    return output if modality != "both" else output.with_name(f"{output.stem}_{side}{output.suffix or '.npy'}")


def register(app: typer.Typer) -> None:
    app.command("style")(style)
    from .vocab_cmd import vocab_app

    vocab_app.command("embed")(vocab_embed)
