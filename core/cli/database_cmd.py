"""`splits` and `build-db`: the audio split file and the inverse-mapping database."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError


def splits(
    audio_dir: Path = typer.Argument(..., help="Folder of audio clips (searched recursively)."),
    output: Path = typer.Option(..., "--output", "-o", help="Split file to write (JSON)."),
    manifest: Optional[Path] = typer.Option(
        None, "--manifest", help="CSV with columns file, track_id (file relative to AUDIO_DIR). "
        "Without it, tracks are inferred from file names."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Shuffle seed (default: config seed)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config YAML (splits ratios)."),
) -> None:
    """Split clips train/val/test by parent track (8:1:1 by default); no track spans two splits."""
    import warnings

    from ..atomic import claim
    from ..config import load_config
    from ..database.splits import make_splits, write_splits

    claim([output], audio_dir, manifest, config, fixed_names=False)
    cfg = load_config(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = make_splits(audio_dir, manifest, cfg.seed if seed is None else seed,
                             cfg.splits.model_dump())
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    write_splits(result, output)
    counts = result.counts()
    total = sum(c["clips"] for c in counts.values())
    for name, c in counts.items():
        share = 100.0 * c["clips"] / total if total else 0.0
        typer.echo(f"{name:<5} {c['clips']:>6} clips ({share:5.1f} %)  {c['tracks']:>5} tracks")
    typer.echo(f"tracks from {result.track_source}; wrote {output}")


def build_db(
    splits_file: Path = typer.Option(..., "--splits", help="Split file from `deltav2a splits`."),
    output: Path = typer.Option(..., "--output", "-o", help="Database folder (Parquet shards + db.json)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config YAML."),
    augmentations: Optional[int] = typer.Option(
        None, "--augmentations", "-n", min=1, help="Augmentations per clip (default: database.augmentations_per_clip)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", min=0, help="Worker processes (0 = one per CPU core; default: database.workers)."),
    limit_clips: Optional[int] = typer.Option(
        None, "--limit-clips", min=1, help="Use a seeded sample of N train clips (smoke runs)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0,
                                       help="Seed (default: the config's database.seed, else its seed)."),
    audio_root: Optional[Path] = typer.Option(
        None, "--audio-root", help="Folder the split file's paths are relative to (default: as recorded)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a database built with other settings."),
    split: str = typer.Option("train", "--split", help="Which split's clips: train, val or test."),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Where clips are rendered: local (process pool) or ray (default: executor.kind)."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster to connect to (default: executor.address, $RAY_ADDRESS, else local)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Render random effect chains on a split's clips and store (style label, E(A)) -> params records.

    Interrupted builds (Ctrl-C, kill) resume where they stopped when run again with the same
    arguments; the records depend on the seed only, not on --workers.
    """
    import warnings

    from ..config import load_config
    from ..database import DatabaseWarning, build_database

    cfg = load_config(config, overrides=executor_overrides(executor, ray_address))
    with warnings.catch_warnings():
        warnings.simplefilter("always", DatabaseWarning)
        warnings.showwarning = lambda message, *a, **k: typer.echo(f"warning: {message}", err=True)
        summary = build_database(cfg, splits_file, output, augmentations=augmentations,
                                 workers=workers, limit_clips=limit_clips, overwrite=overwrite,
                                 audio_root=audio_root, seed=seed, progress=not quiet, split=split)
    if summary.shards_written == 0:
        typer.echo(f"{output}: already complete ({summary.records} records, "
                   f"{summary.n_shards} shards); nothing to do")
    else:
        rate = summary.records_per_second
        typer.echo(f"built {summary.shards_written} shard(s) ({summary.new_records} records) in "
                   f"{summary.seconds:.1f} s with {summary.workers} worker(s), {rate:.1f} records/s"
                   + (f"; reused {summary.shards_reused}" if summary.shards_reused else ""))
    if summary.skipped:
        typer.echo(f"warning: skipped {len(summary.skipped)} of {summary.n_clips} clips "
                   "(listed in db.json)", err=True)
    typer.echo(f"{output}: {summary.records} records from {summary.n_clips - len(summary.skipped)} "
               f"clips, fingerprint {summary.fingerprint}")


def executor_overrides(kind: str | None, address: str | None) -> dict:
    """--executor / --ray-address as a config override (checked like the YAML key)."""
    if kind is not None and kind not in ("local", "ray"):
        raise DeltaV2AError(f"--executor must be 'local' or 'ray', got {kind!r}")
    section = {k: v for k, v in (("kind", kind), ("address", address)) if v is not None}
    return {"executor": section} if section else {}


def register(app: typer.Typer) -> None:
    app.command("splits")(splits)
    app.command("build-db")(build_db)
