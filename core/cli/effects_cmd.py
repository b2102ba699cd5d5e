"""`apply-image` and `apply-audio`: one effect on an image, a chain on a clip."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import DeltaV2AError


def _check_output(out: Path, suffixes: tuple[str, ...], what: str) -> None:
    if out.suffix.lower() not in suffixes:
        raise DeltaV2AError(f"{what} output must end in {' or '.join(suffixes)}: {out}")
    if out.exists() and out.is_dir():
        raise DeltaV2AError(f"output is a directory: {out}")


def apply_image(
    image: Path = typer.Argument(..., help="Input image (anything Pillow reads)."),
    effect: str = typer.Option(..., "--effect", "-e", help="NAME[:param=value,...], e.g. motion_blur:angle=90; "
                               "see `plugin-info NAME` for an effect's parameters."),
    intensity: Optional[float] = typer.Option(None, "--intensity", "-i",
                                              help="0 = unchanged, 1 = strongest (default 0.5, or the spec's)."),
    seed: int = typer.Option(0, "--seed", help="Seed for random effects (noise, spread)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output image (.png, .jpg, ...)."),
) -> None:
    """Apply one image effect at an intensity in [0, 1], with any parameters it declares."""
    from ..atomic import output_set
    from ..api.effects import parse_image_effect_spec
    from ..media.io import IMAGE_EXTENSIONS, load_image, save_image

    _check_output(output, IMAGE_EXTENSIONS, "image")
    cls, values = parse_image_effect_spec(effect)
    if intensity is not None and "intensity" in values and values["intensity"] != intensity:
        raise DeltaV2AError(f"--intensity {intensity:g} and {effect!r} disagree: give the intensity once")
    amount = values.pop("intensity", intensity if intensity is not None else 0.5)
    fx = cls()
    fx.param("intensity").validate(amount, fx.name)
    with output_set([output], inputs=[image]):
        result = fx.apply(load_image(image), amount, seed=seed, **values)
        save_image(result, output)
    extra = "".join(f", {k}={v:g}" for k, v in values.items())
    typer.echo(f"wrote {output} ({cls.name} at {amount:g}{extra})")


def apply_audio(
    audio: Path = typer.Argument(..., help="Input audio: wav, flac, ogg or mp3; mono or stereo; any rate."),
    effect: List[str] = typer.Option(..., "--effect", "-e", help="NAME[:param=value,...], repeatable, e.g. reverb:wet_level=0.5"),
    order: Optional[str] = typer.Option(None, "--order", help="Comma-separated chain order (default: the order of "
                                        "the --effect flags; effects outside Pedalboard, e.g. playback_rate, "
                                        "render after the rest)."),
    tail: str = typer.Option("keep", "--tail", help="keep: let reverb/delay ring out; cut: keep the input length."),
    max_tail: float = typer.Option(5.0, "--max-tail", help="Longest tail kept, seconds."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help="Resample the input first (default: keep its rate)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .wav file."),
    info: Optional[Path] = typer.Option(None, "--info", help="Also write the rendered chain as JSON."),
) -> None:
    """Render a chain of audio effects onto a clip."""
    from ..atomic import output_set
    from ..render.chain import AudioChain, ChainSettings
    from ..media.io import check_sample_rate, load_audio

    _check_output(output, (".wav",), "audio")
    if info is not None:
        _check_output(info, (".json",), "--info")
    if sample_rate is not None:
        check_sample_rate(sample_rate, "--sample-rate")
    if tail not in ("keep", "cut"):
        raise DeltaV2AError(f"--tail must be 'keep' or 'cut', got '{tail}'")
    settings = ChainSettings.parse(effect)
    chain_order = order.split(",") if order else list(dict.fromkeys(settings.effects))
    chain = AudioChain(settings, order=chain_order, tail=tail,
                       max_tail_seconds=max_tail)
    with output_set([output] + ([info] if info is not None else []), inputs=[audio]):
        x, sr = load_audio(audio, sample_rate=sample_rate)
        result = chain.render_to_file(x, sr, output)  # long clips: streamed into the file
        del x
        if info is not None:
            from ..atomic import write_json

            write_json(info, result.describe())
    typer.echo(f"wrote {output} ({result.audio.shape[1] / sr:.2f} s; "
               f"{' -> '.join(s['effect'] for s in result.describe()['effects'])})")


def register(app: typer.Typer) -> None:
    app.command("apply-image")(apply_image)
    app.command("apply-audio")(apply_audio)
