"""`drums assign|evaluate`: drum role assignment (research note 002) on files or folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError

drums_app = typer.Typer(help="Drum one-shots -> musical roles (CORE, ACCENT, MOTION, FILL, TEXTURE).",
                        no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", help="Drums config YAML (default: the note's values).")
_PRESET = typer.Option(None, "--preset", help="A shipped preset: note, tuned, acoustic or acoustic2 (see docs/drums.md).")
_ENCODER = typer.Option(None, "--encoder", help="Text-side audio encoder by name (overrides the config).")


def _files(inputs: list[Path]) -> tuple[list[Path], bool]:
    """Audio files of the inputs (folders are listed, sorted); True when a folder was given."""
    from ..media.io import AUDIO_EXTENSIONS

    files: list[Path] = []
    folder = False
    for p in inputs:
        if p.is_dir():
            folder = True
            files += sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                            and f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.exists():
            files.append(p)
        else:
            raise DeltaV2AError(f"not found: {p}")
    if not files:
        raise DeltaV2AError("no audio files in " + ", ".join(map(str, inputs)))
    return files, folder


def _assigner(config: Optional[Path], preset: Optional[str], encoder: Optional[str]):
    from ..drums.assigner import RoleAssigner
    from ..drums.config import load_drums_config

    cfg = load_drums_config(config, preset)
    if encoder:
        cfg.text.encoder = {"name": encoder, "options": {"lexicon_supplements": ["drums"]}
                            if encoder.startswith("perceptual") else {}}
    return RoleAssigner(cfg)


def _run(ra, files: list[Path], folder: bool):
    from tqdm import tqdm

    if not folder and len(files) == 1:  # a single named file: its problem is the command's error
        from ..drums.assigner import BatchResult

        return BatchResult(results=[ra.assign_file(files[0])])
    with tqdm(total=len(files), desc="drums", unit="hit", disable=len(files) < 8) as bar:
        batch = ra.assign_many(files, bar.update)
    for s in batch.skipped:
        typer.echo(f"skipped: {s['reason']}", err=True)
    if not batch.results:
        raise DeltaV2AError(f"none of the {len(files)} files could be scored")
    return batch


@drums_app.command("assign")
def assign(
    inputs: list[Path] = typer.Argument(..., help="Audio files and/or folders of one-shots."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for results.json, results.csv, pools.json."),
    config: Optional[Path] = _CONFIG, preset: Optional[str] = _PRESET, encoder: Optional[str] = _ENCODER,
) -> None:
    """Give each hit a role; write per-hit scores, features and guards (JSON + CSV) and the pools."""
    from ..atomic import claim
    from ..drums.evaluation import write_assignments

    claim([output / n for n in ("results.json", "results.csv", "pools.json")], *inputs, config)
    ra = _assigner(config, preset, encoder)
    files, folder = _files(inputs)
    batch = _run(ra, files, folder)
    paths = write_assignments(batch, output, ra.config)
    for s in batch.results:
        typer.echo(f"{s.role.value:<8} {s.scores.confidence:.3f}  {s.sample_id}")
    typer.echo(f"scored {len(batch.results)}, skipped {len(batch.skipped)}; wrote "
               + ", ".join(str(p) for p in paths.values()))


@drums_app.command("evaluate")
def evaluate_cmd(
    folder: Path = typer.Argument(..., help="Folder of labelled one-shots."),
    labels: Path = typer.Option(..., "--labels", help="CSV with columns file, role."),
    output: Path = typer.Option(Path("outputs/drums_eval"), "--output", "-o"),
    config: Optional[Path] = _CONFIG, preset: Optional[str] = _PRESET, encoder: Optional[str] = _ENCODER,
) -> None:
    """Accuracy, macro F1 and confusion matrices for rules, text, fused and fused + guards."""
    from ..atomic import write_json, write_text
    from ..drums.evaluation import evaluate, metrics_markdown, plot_confusions, read_labels, write_assignments

    if not folder.is_dir():
        raise DeltaV2AError(f"not a folder: {folder}")
    from ..atomic import claim

    claim([output / n for n in ("results.json", "results.csv", "pools.json", "metrics.json", "metrics.md",
                                "confusion.png")],
          folder, labels, config)
    truth = read_labels(labels)
    ra = _assigner(config, preset, encoder)
    files, _ = _files([folder])
    batch = _run(ra, files, True)
    m = evaluate(batch.results, truth)
    m["skipped"] = batch.skipped
    m["unlabelled"] = sorted(Path(s.filepath).name for s in batch.results if Path(s.filepath).name not in truth)
    write_assignments(batch, output, ra.config)
    write_json(output / "metrics.json", m)
    write_text(output / "metrics.md", metrics_markdown(m, batch.skipped))
    plot_confusions(m, output / "confusion.png")
    for name, v in m["variants"].items():
        typer.echo(f"{name:<13} accuracy {v['accuracy']:.3f}  macro F1 {v['macro_f1']:.3f}")
    typer.echo(f"{m['n']} labelled hits scored, {len(batch.skipped)} skipped; wrote {output}/metrics.json, "
               "metrics.md, confusion.png")


def register(app: typer.Typer) -> None:
    app.add_typer(drums_app, name="drums")
