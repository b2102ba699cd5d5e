"""`study build | export | analyze`: the notes' listening study (serve it with `serve --study`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError

study_app = typer.Typer(help="The notes' listening study: build cases, export and analyze answers.",
                        no_args_is_help=True)


@study_app.command("build")
def build(
    images: Path = typer.Option(..., "--images", help="Folder of images."),
    audio: Path = typer.Option(..., "--audio", help="Folder of audio clips."),
    output: Path = typer.Option(..., "--output", "-o", help="New study folder."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model directory (default: the shipped model)."),
    candidates: int = typer.Option(48, "--candidates", min=1, max=10_000, help="Random transfers to choose from."),
    n_high: int = typer.Option(4, "--n-high", min=0, help="Cases with a high ||delta||."),
    n_low: int = typer.Option(2, "--n-low", min=0, help="Cases with a low ||delta||."),
    n_one: int = typer.Option(3, "--n-one", min=0, help="Cases with one active effect."),
    n_two: int = typer.Option(3, "--n-two", min=0, help="Cases with two active effects."),
    high_quantile: float = typer.Option(0.75, "--high-quantile", min=0.0, max=1.0, help="High: ||delta|| at or above this quantile of the candidates."),
    low_quantile: float = typer.Option(0.25, "--low-quantile", min=0.0, max=1.0, help="Low: at or below this quantile."),
    high_norm: Optional[float] = typer.Option(None, "--high-norm", help="Absolute high threshold (overrides the quantile)."),
    low_norm: Optional[float] = typer.Option(None, "--low-norm", help="Absolute low threshold (overrides the quantile)."),
    seconds: float = typer.Option(10.0, "--seconds", min=0.5, max=60.0, help="Clips are cut to this length."),
    allow_short: bool = typer.Option(False, "--allow-short", help="Build even if a group has too few candidates."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Choose cases by the notes' groups, render them, write STUDY/study.json."""
    from tqdm import tqdm

    from ..atomic import claim
    from ..media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
    from ..study.build import Selection, build_study
    from ..transfer import DEFAULT_MODEL, model_files

    claim([output / "study.json"], images, audio, *model_files(model or DEFAULT_MODEL))

    def files(folder: Path, ext: tuple[str, ...], what: str) -> list[Path]:
        if not folder.is_dir():
            raise DeltaV2AError(f"--{what} must be a folder: {folder}")
        found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in ext)
        if not found:
            raise DeltaV2AError(f"no {what} files in {folder}")
        return found

    sel = Selection(counts={"high_delta": n_high, "low_delta": n_low, "one_effect": n_one, "two_effects": n_two},
                    high_quantile=high_quantile, low_quantile=low_quantile, high_norm=high_norm, low_norm=low_norm, allow_short=allow_short)
    if sum(sel.counts.values()) == 0:
        raise DeltaV2AError("every group count is 0: nothing to build")
    bar = tqdm(total=candidates, desc="candidates", unit="transfer")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        man = build_study(model, files(images, IMAGE_EXTENSIONS, "images"), files(audio, AUDIO_EXTENSIONS, "audio"),
                          output, selection=sel, candidates=candidates, seconds=seconds, seed=seed, progress=progress)
    finally:
        bar.close()
    s = man["selection"]
    short = [f"{g} {s['got'][g]}/{n}" for g, n in sel.counts.items() if s["got"].get(g, 0) < n]
    if short:
        typer.echo(f"deltav2a: warning: groups with fewer cases than wanted: {', '.join(short)}", err=True)
    if man["render_warnings"]:
        typer.echo(f"deltav2a: note: {man['render_warnings']} render warning(s) (e.g. cut effect tails) "
                   "among the candidates", err=True)
    typer.echo(f"wrote {len(man['cases'])} cases to {output} (high ||d|| >= {s['high_norm']:.4g}, "
               f"low <= {s['low_norm']:.4g}); serve with: deltav2a serve --study {output}")


@study_app.command("export")
def export(
    study: Path = typer.Argument(..., help="Study folder."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="CSV file (default: STUDY/answers.csv)."),
) -> None:
    """Write every answer, with its case's facts, as CSV."""
    from ..atomic import claim
    from ..study.store import export_csv

    out = output or study / "answers.csv"
    claim([out], study, fixed_names=output is None)
    n = export_csv(study, out)
    typer.echo(f"wrote {n} answers to {out}")


@study_app.command("analyze")
def analyze(
    study: Path = typer.Argument(..., help="Study folder."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for analysis.{json,md,png} (default: STUDY)."),
) -> None:
    """Q1 mean + CI, Q2 edited rate vs 50 % (exact binomial), per group, Spearman, agreement."""
    from ..atomic import claim, write_json, write_text
    from ..study.analyze import analyze as run, plot, table

    out = output or study
    claim([out / "analysis.json", out / "analysis.md", out / "analysis.png"], study)
    res = run(study)
    text = table(res)
    write_json(out / "analysis.json", res)
    write_text(out / "analysis.md", "# Listening study\n\n" + text)
    plot(res, out / "analysis.png")
    typer.echo(text.rstrip())
    typer.echo(f"wrote {out / 'analysis.json'}, analysis.md, analysis.png")


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
