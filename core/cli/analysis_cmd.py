"""`analysis extract|sensitivity|linearity|discover|decoder|all`: the pipeline note's experiment.

All steps share one folder (`--output`): extract writes the Parquet tables there and every
later step reads them from it and writes its results beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError

analysis_app = typer.Typer(
    help="The pipeline note's analysis: extract -> sensitivity -> linearity -> discover -> decoder.",
    no_args_is_help=True)

DEFAULT_OUT = Path("outputs/analysis")
_OUT_HELP = "Analysis folder: extract writes its tables here, later steps read them and write beside them."
_CFG_HELP = "Analysis config YAML (defaults: configs/analysis.yaml's values)."


def _cfg(config: Optional[Path], seed: Optional[int] = None, intensities: Optional[str] = None,
         block_size: Optional[int] = None, executor: Optional[str] = None, ray_address: Optional[str] = None):
    from ..analysis.settings import load_analysis_config, parse_intensities
    from .database_cmd import executor_overrides

    over: dict = executor_overrides(executor, ray_address)
    if seed is not None:
        over["seed"] = seed
    if intensities:
        over["intensities"] = parse_intensities(intensities)
    if block_size is not None:
        over["extract"] = {"block_size": block_size}
    return load_analysis_config(config, over)


def _items(cfg, images, audio, limit, categories, image_manifest, audio_manifest, category_column):
    from ..analysis.extract import list_items

    if images is None and audio is None:
        raise DeltaV2AError("give --images DIR and/or --audio DIR")
    if categories not in ("auto", "manifest", "folders"):
        raise DeltaV2AError(f"--categories must be auto, manifest or folders, got {categories!r}")
    column = category_column or cfg.extract.category_column
    sources, img, aud = {}, [], []
    if images is not None:
        img, sources["image"] = list_items(images, "image", categories, image_manifest, column,
                                           cfg.extract.group_column, limit, cfg.seed)
    if audio is not None:
        aud, sources["audio"] = list_items(audio, "audio", categories, audio_manifest, column,
                                           cfg.extract.group_column, limit, cfg.seed)
    for modality, info in sources.items():
        cats = ", ".join(f"{k} {v}" for k, v in info["categories"].items())
        typer.echo(f"{modality}: {info['used']} of {info['found']} files, categories from "
                   f"{info['categories_from']}: {cats}")
        for note in info["notes"]:
            typer.echo(f"warning: {note}", err=True)
    return img, aud, sources


def _echo_err(text: str) -> None:
    typer.echo(text, err=text.startswith("warning"))


def _print(report) -> None:
    for line in report.lines:
        typer.echo(line)
    for w in report.warnings:
        typer.echo(f"warning: {w}", err=True)


_images_opt = typer.Option(None, "--images", help="Folder of images.")
_audio_opt = typer.Option(None, "--audio", help="Folder of audio clips.")
_limit_opt = typer.Option(None, "--limit", min=1, help="At most N items per modality, round-robin over categories.")
_cat_opt = typer.Option("auto", "--categories", help="auto (manifest.csv if it has the column, else sub-folders), "
                        "manifest or folders.")
_imf_opt = typer.Option(None, "--image-manifest", help="CSV with 'file' + category columns (default: "
                        "manifest.csv in the image folder).")
_auf_opt = typer.Option(None, "--audio-manifest", help="Same for the audio folder.")
_col_opt = typer.Option(None, "--category-column", help="Manifest column holding the category (default collection).")
_int_opt = typer.Option(None, "--intensities", help="LABEL=X,... or a grid X,Y,... (default low/mid/high of the config).")


#: files each step writes into the analysis folder (what the output guard checks and locks)
_EXTRACT = ["image_deltas.parquet", "audio_deltas.parquet", "extract_manifest.json"]
_STEPS = {
    "sensitivity": ["sensitivity_results.json", "sensitivity.png"],
    "linearity": ["linearity_results.json", "cross_category_variance.json", "linearity.png"],
    "discover": ["discovery_matrix.npy", "discovery_labels.json", "discovery_results.json",
                 "discovery_heatmap.png"],
    "decoder": ["decoder/decoder.safetensors", "decoder/decoder.json", "decoder/training_log.json",
                "decoder/decoder_curves.png"],
}


def _claim(output: Path, names: list[str], *inputs) -> None:
    """The step's outputs in the analysis folder against its inputs (core/atomic.py); the
    folder's own tables are read by later steps, so they are the outputs of `extract` only."""
    from ..atomic import claim

    claim([output / n for n in names], *inputs)


@analysis_app.command("extract")
def extract(
    images: Optional[Path] = _images_opt,
    audio: Optional[Path] = _audio_opt,
    output: Path = typer.Option(DEFAULT_OUT, "--output", "-o", help=_OUT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CFG_HELP),
    limit: Optional[int] = _limit_opt,
    categories: str = _cat_opt,
    image_manifest: Optional[Path] = _imf_opt,
    audio_manifest: Optional[Path] = _auf_opt,
    category_column: Optional[str] = _col_opt,
    intensities: Optional[str] = _int_opt,
    block_size: Optional[int] = typer.Option(None, "--block-size", min=1, help="Items per resumable shard."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an extract of another setup in --output."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Where blocks are rendered: local or ray (default: executor.kind)."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster to connect to (default: executor.address, $RAY_ADDRESS, else local)."),
    workers: int = typer.Option(0, "--workers", "-w", min=0, help="Ray workers (0 = one per cluster CPU)."),
) -> None:
    """Original/augmented/delta embeddings per item x effect x intensity (Parquet, resumable)."""
    from tqdm import tqdm

    from ..analysis.extract import run_extract, total_cells

    _claim(output, _EXTRACT, images, audio, image_manifest, audio_manifest, config)
    cfg = _cfg(config, seed, intensities, block_size, executor, ray_address)
    img, aud, sources = _items(cfg, images, audio, limit, categories, image_manifest, audio_manifest,
                               category_column)
    with tqdm(total=total_cells(cfg, len(img), len(aud)), desc="extract", unit="render") as bar:
        records = run_extract(output, cfg, img, aud, sources, overwrite, bar.update, _echo_err,
                              workers=workers)
    for modality, rec in records.items():
        typer.echo(f"{modality}: {rec['rows']} rows -> {output / rec['table']} ({rec['seconds']:.1f} s)")


@analysis_app.command("sensitivity")
def sensitivity(
    output: Path = typer.Option(DEFAULT_OUT, "--output", "-o", help=_OUT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CFG_HELP),
) -> None:
    """Phase 0-a from the extract: ||delta|| statistics and the min_distance verdict."""
    from ..analysis.pipeline import Report, sensitivity_step

    _claim(output, _STEPS["sensitivity"], config)
    report = Report()
    sensitivity_step(output, _cfg(config), report)
    _print(report)
    typer.echo(f"wrote {output / 'sensitivity_results.json'} and {output / 'sensitivity.png'}")


@analysis_app.command("linearity")
def linearity(
    output: Path = typer.Option(DEFAULT_OUT, "--output", "-o", help=_OUT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CFG_HELP),
) -> None:
    """Phase 0-b: within-category direction/magnitude consistency and cross-category invariance."""
    from ..analysis.pipeline import Report, linearity_step

    _claim(output, _STEPS["linearity"], config)
    report = Report()
    linearity_step(output, _cfg(config), report)
    _print(report)
    typer.echo(f"wrote {output / 'linearity_results.json'}, {output / 'cross_category_variance.json'} "
               f"and {output / 'linearity.png'}")


@analysis_app.command("discover")
def discover(
    output: Path = typer.Option(DEFAULT_OUT, "--output", "-o", help=_OUT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CFG_HELP),
) -> None:
    """Phase 1: prototypes, text anchors and the image x audio discovery matrix."""
    from ..analysis.pipeline import Report, discover_step

    _claim(output, _STEPS["discover"], config)
    report = Report()
    discover_step(output, _cfg(config), report)
    _print(report)
    typer.echo(f"wrote {output / 'discovery_matrix.npy'}, discovery_labels.json, discovery_results.json "
               "and discovery_heatmap.png")


@analysis_app.command("decoder")
def decoder(
    output: Path = typer.Option(DEFAULT_OUT, "--output", "-o", help=_OUT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CFG_HELP),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override decoder.epochs."),
    seed: Optional[int] = typer.Option(None, "--seed"),
) -> None:
    """Phase 3: train the text-conditioned parameter decoder and validate it by re-rendering."""
    from ..analysis.pipeline import Report, decoder_step

    _claim(output, _STEPS["decoder"], config)
    cfg = _cfg(config, seed)
    if epochs is not None:
        cfg.decoder.epochs = epochs
    report = Report()
    decoder_step(output, cfg, report, _echo_err)
    _print(report)
    typer.echo(f"wrote {output / 'decoder'}")


@analysis_app.command("all")
def run_all(
    images: Optional[Path] = _images_opt,
    audio: Optional[Path] = _audio_opt,
    output: Path = typer.Option(DEFAULT_OUT, "--output", "-o", help=_OUT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CFG_HELP),
    limit: Optional[int] = _limit_opt,
    categories: str = _cat_opt,
    image_manifest: Optional[Path] = _imf_opt,
    audio_manifest: Optional[Path] = _auf_opt,
    category_column: Optional[str] = _col_opt,
    intensities: Optional[str] = _int_opt,
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override decoder.epochs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an extract of another setup in --output."),
    seed: Optional[int] = typer.Option(None, "--seed"),
) -> None:
    """extract -> sensitivity -> linearity -> discover -> decoder, then a summary and warnings."""
    from tqdm import tqdm

    from ..analysis.extract import total_cells
    from ..analysis.pipeline import run_all as pipeline

    if images is None or audio is None:
        raise DeltaV2AError("`analysis all` needs both --images DIR and --audio DIR")
    _claim(output, _EXTRACT + [n for names in _STEPS.values() for n in names] + ["summary.json"],
           images, audio, image_manifest, audio_manifest, config)
    cfg = _cfg(config, seed, intensities)
    if epochs is not None:
        cfg.decoder.epochs = epochs
    img, aud, sources = _items(cfg, images, audio, limit, categories, image_manifest, audio_manifest,
                               category_column)
    bar = tqdm(total=total_cells(cfg, len(img), len(aud)), desc="extract", unit="render")
    try:
        report = pipeline(output, cfg, img, aud, sources, overwrite, _echo_err, bar.update, bar.close)
    finally:
        bar.close()
    typer.echo("")
    typer.echo("summary")
    _print(report)
    n = len(report.warnings)
    typer.echo(f"{n} check{'s' if n != 1 else ''} failed; results in {output} (summary.json)")


def register(app: typer.Typer) -> None:
    app.add_typer(analysis_app, name="analysis")
