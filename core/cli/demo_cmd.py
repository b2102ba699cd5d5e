"""`demo`: the README's main job on media the project generates itself."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    output: Path = typer.Option(Path("outputs"), "--output", "-o", help="Folder for the results."),
    image_effect: str = typer.Option("motion_blur", "--image-effect"),
    intensity: float = typer.Option(0.7, "--intensity"),
    audio_effect: list[str] = typer.Option(["lowpass:cutoff_hz=900", "reverb:wet_level=0.45,room_size=0.8"],
                                           "--audio-effect", help="NAME[:param=value,...], repeatable"),
    seed: int = typer.Option(0, "--seed"),
    refine: bool = typer.Option(False, "--refine/--no-refine",
                                help="Refine the shipped controller's plan with the search (inference.search budget). "
                                "Off by default: its higher agreement is measured by the encoder it optimises, and "
                                "it can pick degenerate chains (README, results)."),
) -> None:
    """Generate example media, apply an image effect and an audio chain, then transfer the image
    edit onto the music with the shipped model; everything goes to OUTPUT."""
    from ..atomic import write_json
    from ..render.chain import AudioChain, ChainSettings
    from ..media.examples import write_examples
    from ..media.io import load_audio, load_image, save_audio, save_image
    from ..api.registry import get

    from ..atomic import claim

    # everything it reads it wrote itself: the guard refuses links and locks the set
    claim([output / n for n in ("example_image.png", "example_photo.png", "example_audio.wav",
                                f"example_image_{image_effect}.png", "example_audio_processed.wav",
                                "transfer.wav", "transfer.json", "transfer.png", "demo_summary.json")])
    output.mkdir(parents=True, exist_ok=True)
    paths = write_examples(output, seed=seed)
    fx = get("image_effect", image_effect)()
    edited = fx.apply(load_image(paths["image"]), intensity, seed=seed)
    edited_path = save_image(edited, output / f"example_image_{image_effect}.png")
    chain = AudioChain(ChainSettings.parse(audio_effect))
    x, sr = load_audio(paths["audio"])
    result = chain.render(x, sr)
    processed_path = save_audio(result.audio, sr, output / "example_audio_processed.wav")
    summary = {
        "image": str(paths["image"]), "edited_image": str(edited_path),
        "image_effect": {"name": image_effect, "intensity": intensity, "seed": seed},
        "audio": str(paths["audio"]), "processed_audio": str(processed_path),
        "audio_chain": result.describe(),
    }
    from ..transfer.pipeline import DEFAULT_MODEL, TransferModel

    if (DEFAULT_MODEL / "controller.json").is_file():
        tm = TransferModel(DEFAULT_MODEL, refine=refine)
        before = load_image(paths["image"])
        res = tm.transfer(before, edited, x, sr)
        out = output / "transfer.wav"
        res.save(out, before=before, after=edited, original=x)
        summary.update({"transfer_audio": str(out), "transfer_sidecar": str(output / "transfer.json"),
                        "transfer_summary": str(output / "transfer.png")})
    else:
        typer.echo(f"note: no shipped model in {DEFAULT_MODEL}; skipped the transfer", err=True)
    write_json(output / "demo_summary.json", summary)
    for k, v in summary.items():
        if isinstance(v, str):
            typer.echo(f"{k:>16}: {v}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
