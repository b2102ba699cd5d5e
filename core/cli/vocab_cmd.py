"""`vocab list` and `vocab show`."""

from __future__ import annotations

import typer

from ..atomic import json_text

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


def register(app: typer.Typer) -> None:
    app.add_typer(vocab_app, name="vocab")
