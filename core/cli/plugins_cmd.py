"""`list-plugins` and `plugin-info`."""

from __future__ import annotations

from typing import Optional

import typer

from ..atomic import json_text
from ..api.registry import KINDS, get_registry


def _kind_option(kind: Optional[str]) -> Optional[str]:
    if kind is None:
        return None
    k = kind.replace("-", "_").rstrip("s")
    if k not in KINDS:
        from ..errors import DeltaV2AError

        raise DeltaV2AError(f"unknown plugin kind '{kind}' (known: {', '.join(KINDS)})")
    return k


def _params(rec) -> list[dict]:
    """An effect's typed parameters (range, scale, bypass, default); none for other kinds."""
    describe = getattr(rec.obj, "describe", None)
    if rec.kind in ("image_effect", "audio_effect") and callable(describe):
        try:
            return list(describe().get("params") or [])
        except Exception:  # a listing must not break on one plugin
            return []
    return []


def _options(rec) -> list[dict]:
    """An encoder's or controller's `Options` (type, default, meaning) and the key that sets each.

    Read from the plugin's pydantic model (api/options.py), the same for built-ins and
    third-party plugins; other kinds have none.
    """
    if rec.kind not in ("encoder", "controller"):
        return []
    from ..api.options import describe_options

    try:
        rows = describe_options(getattr(rec.obj, "Options", None))
    except Exception:  # a listing must not break on one plugin
        return []
    key = (f"encoders.{getattr(rec.obj, 'modality', 'image')}.options" if rec.kind == "encoder"
           else "controller.options")
    return [{**row, "set": f"{key}.{row['name']}"} for row in rows]


def details(rec) -> dict:
    """Everything `plugin-info` shows: describe() plus terms/templates or options by kind."""
    describe = getattr(rec.obj, "describe", None)
    info = describe() if callable(describe) else {"name": rec.name, "summary": rec.summary, "params": []}
    info.setdefault("params", [])
    info.update({"kind": rec.kind, "distribution": rec.distribution, "version": rec.version})
    if rec.kind == "vocabulary":
        from ..api.vocabulary import Vocabulary

        vocab = rec.obj if isinstance(rec.obj, Vocabulary) else rec.obj.load()
        info.update({"summary": vocab.summary, "doc": vocab.description.strip(), "terms": list(vocab.terms),
                     "templates": vocab.templates.model_dump(), "fingerprint": vocab.fingerprint()})
    elif rec.kind in ("encoder", "controller"):
        info["options"] = _options(rec)
    if rec.kind == "controller":
        info["set_name"] = f"controller.name={rec.name}"
    elif rec.kind == "encoder":
        info["set_name"] = f"encoders.{info.get('modality', 'image')}.name={rec.name}"
    return info


def list_plugins(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (with parameters and options)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind: " + ", ".join(KINDS)),
    wide: bool = typer.Option(False, "--wide", help="Use the terminal's full width instead of at most 80 columns."),
) -> None:
    """List installed plugins grouped by kind, and any plugin that failed to load."""
    reg = get_registry()
    k = _kind_option(kind)
    records = reg.all(k)
    if as_json:
        out = {"plugins": [{**r.as_dict(), "params": _params(r), "options": _options(r)} for r in records],
               "errors": [f.as_dict() for f in reg.failures]}
        typer.echo(json_text(out))
        return
    # plain text, not rich: the listing is the command people run most to see what is
    # installed, and rich's console and tables cost more start-up than the rest of it
    import shutil

    width = shutil.get_terminal_size((80, 24)).columns
    width = width if wide else min(width, 80)
    out: list[str] = []
    for kind_name, (_hook, label) in KINDS.items():
        rows = [r for r in records if r.kind == kind_name]
        if not rows:
            continue
        plural = label[:-1] + "ies" if label.endswith("y") else label + "s"
        cols = ("name", "distribution", "version")
        cells = [(r.name, r.distribution, r.version) for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        # three separators of 3 characters between four columns; the summary gets the rest
        room = max(20, width - sum(widths) - 9 - 1)
        head = "summary (more: plugin-info NAME)"
        out.append(plural)
        out.append(" ┃ ".join([*(c.ljust(w) for c, w in zip(cols, widths)), head[:room]]).rstrip())
        out.append("━╇━".join("━" * w for w in (*widths, min(room, len(head)))))
        for row, r in zip(cells, rows):
            summary = " ".join(r.summary.split())
            summary = summary if len(summary) <= room else summary[:room - 1] + "…"
            out.append(" │ ".join([*(c.ljust(w) for c, w in zip(row, widths)), summary]).rstrip())
        out.append("")
    if reg.failures:
        out.append("plugins with errors")
        out += [f"  {f.plugin} ({f.distribution} {f.version}): {f.error}" for f in reg.failures]
    typer.echo("\n".join(out))


def plugin_info(
    name: str = typer.Argument(..., help="Plugin name, e.g. reverb or motion_blur."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Disambiguate when a name is used by several kinds."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one plugin: parameters of effects, terms and templates of vocabularies, options of
    encoders and controllers (with the `--set` key for each)."""
    import inspect

    rec = get_registry().find(name, _kind_option(kind))
    info = details(rec)
    if as_json:
        typer.echo(json_text(info))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{rec.name}[/] ({rec.kind}) from {rec.distribution} {rec.version}")
    if info.get("summary") and rec.kind == "vocabulary":
        console.print(info["summary"], markup=False)
    if info.get("doc"):
        # a docstring is hard-wrapped for the source; rejoin each paragraph so the console
        # wraps it once at its own width (else every source line break shows up ragged)
        console.print(_unwrap(inspect.cleandoc(info["doc"])), markup=False)
    params = info.get("params") or []
    if params:
        table = Table(show_edge=False)
        for col in ("parameter", "range", "scale", "bypass", "default", "unit", "meaning"):
            table.add_column(col, overflow="fold")
        for p in params:
            meaning = p.get("doc", "")
            if p.get("max_fraction_of_nyquist"):
                meaning += f" (held below {p['max_fraction_of_nyquist']:g} x the Nyquist frequency)"
            table.add_row(p["name"], f"[{p['minimum']:g}, {p['maximum']:g}]", p["scale"],
                          f"{p['bypass']:g}", f"{p['default']:g}", p.get("unit", ""), meaning.strip())
        console.print(table)
    if info.get("terms"):
        console.print(f"terms ({len(info['terms'])}): " + ", ".join(info["terms"]), markup=False)
        for modality, templates in info["templates"].items():
            console.print(f"{modality} templates: " + " | ".join(templates), markup=False)
    if info.get("set_name"):
        console.print(f"choose it with --set {info['set_name']}", markup=False)
    if info.get("options"):
        key = info["options"][0]["set"].rsplit(".", 1)[0]
        console.print(f"options (set with --set {key}.NAME=VALUE):", markup=False)
        table = Table(show_edge=False)
        for col in ("option", "type", "default", "meaning"):
            table.add_column(col, overflow="fold")
        for o in info["options"]:
            bounds = ", ".join(f"{b} {o[b]:g}" if isinstance(o[b], (int, float)) else f"{b} {o[b]}"
                               for b in ("ge", "gt", "le", "lt") if b in o)
            table.add_row(o["name"], o["type"] + (f" ({bounds})" if bounds else ""),
                          json_text(o["default"], indent=None), o.get("doc", ""))
        console.print(table)
    elif rec.kind in ("encoder", "controller"):
        console.print("options: none")


plugin_app = typer.Typer(help="Write new plugins.", no_args_is_help=True)


@plugin_app.command("new")
def plugin_new(
    name: str = typer.Argument(..., help="The plugin's registered name, e.g. tremolo."),
    kind: str = typer.Option(..., "--kind", help="audio_effect, image_effect, vocabulary, encoder or controller."),
    into: Optional[str] = typer.Option(None, "--output", "-o", help="New folder (default: ./deltav2a-NAME)."),
) -> None:
    """Write a ready package skeleton (pyproject, the plugin, its own test) for one plugin.

    `pip install -e FOLDER` and the plugin appears in `list-plugins`; `python -m pytest
    FOLDER/tests` runs its test. docs/plugins.md explains each part.
    """
    from pathlib import Path

    from ..scaffold import names_for, scaffold

    out = Path(into) if into else Path(names_for(name)["dist"])
    files = scaffold(name, kind, out)
    for f in files:
        typer.echo(f"wrote {f}")
    typer.echo(f"next: pip install -e {out} && deltav2a plugin-info {name} && python -m pytest {out / 'tests'}")


def register(app: typer.Typer) -> None:
    app.command("list-plugins")(list_plugins)
    app.command("plugin-info")(plugin_info)
    app.add_typer(plugin_app, name="plugin")


def _unwrap(text: str) -> str:
    """Rejoin a hard-wrapped docstring's lines into one line per paragraph or list item."""
    out: list[str] = []
    for line in text.splitlines():
        item = line.lstrip().startswith(("- ", "* ", "• "))
        if out and line.strip() and out[-1].strip() and not item:
            out[-1] = out[-1].rstrip() + " " + line.strip()
        else:
            out.append(line)
    return "\n".join(out)
