"""`list-plugins` and `plugin-info`."""

from __future__ import annotations

from typing import Optional

import typer

from ..atomic import json_text
from ..plugins import KINDS, get_registry


def _kind_option(kind: Optional[str]) -> Optional[str]:
    if kind is None:
        return None
    k = kind.replace("-", "_").rstrip("s")
    if k not in KINDS:
        from ..errors import DeltaV2AError

        raise DeltaV2AError(f"unknown plugin kind '{kind}' (known: {', '.join(KINDS)})")
    return k


def list_plugins(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind: " + ", ".join(KINDS)),
) -> None:
    """List installed plugins grouped by kind, and any plugin that failed to load."""
    reg = get_registry()
    k = _kind_option(kind)
    records = reg.all(k)
    if as_json:
        out = {"plugins": [r.as_dict() for r in records],
               "errors": [f.as_dict() for f in reg.failures]}
        typer.echo(json_text(out))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kind_name, (_hook, label) in KINDS.items():
        rows = [r for r in records if r.kind == kind_name]
        if not rows:
            continue
        plural = label[:-1] + "ies" if label.endswith("y") else label + "s"
        table = Table(title=plural, title_justify="left", show_edge=False, pad_edge=False)
        for col in ("name", "kind", "distribution", "version", "summary"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r.name, r.kind, r.distribution, r.version, r.summary)
        console.print(table)
        console.print()
    if reg.failures:
        console.print("[bold red]plugins with errors[/]")
        for f in reg.failures:
            console.print(f"  {f.plugin} ({f.distribution} {f.version}): {f.error}", markup=False)


def plugin_info(
    name: str = typer.Argument(..., help="Plugin name, e.g. reverb or motion_blur."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Disambiguate when a name is used by several kinds."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one plugin: where it comes from and its parameters (range, scale, bypass, default)."""
    rec = get_registry().find(name, _kind_option(kind))
    describe = getattr(rec.obj, "describe", None)
    info = describe() if callable(describe) else {"name": rec.name, "summary": rec.summary, "params": []}
    info.update({"kind": rec.kind, "distribution": rec.distribution, "version": rec.version})
    if as_json:
        typer.echo(json_text(info))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{rec.name}[/] ({rec.kind}) from {rec.distribution} {rec.version}")
    if info.get("doc"):
        console.print(info["doc"], markup=False)
    params = info.get("params") or []
    if params:
        table = Table(show_edge=False)
        for col in ("parameter", "range", "scale", "bypass", "default", "unit", "meaning"):
            table.add_column(col, overflow="fold")
        for p in params:
            table.add_row(p["name"], f"[{p['minimum']:g}, {p['maximum']:g}]", p["scale"],
                          f"{p['bypass']:g}", f"{p['default']:g}", p.get("unit", ""), p.get("doc", ""))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("list-plugins")(list_plugins)
    app.command("plugin-info")(plugin_info)
