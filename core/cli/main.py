"""The `deltav2a` command line.

Start-up stays light: this module imports typer and the plugin registry only; each command
imports numpy, Wand, pedalboard or torch inside its body. Errors a user can cause
(`DeltaV2AError`) print as one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import sys

import typer

from ..errors import DeltaV2AError

app = typer.Typer(
    name="deltav2a",
    help="DeltaV2A: when an image changes, change the music in the same direction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_MODULES = ("plugins_cmd", "effects_cmd", "vocab_cmd", "config_cmd", "demo_cmd", "style_cmd",
            "sensitivity_cmd", "transfer_cmd",
            "database_cmd", "train_cmd", "calibrate_cmd", "diagnose_cmd",
            "run_cmd", "analysis_cmd", "serve_cmd", "study_cmd", "drums_cmd")
_registered = False


def build_app() -> typer.Typer:
    """Attach the built-in command groups and any plugin commands (once)."""
    global _registered
    if _registered:
        return app
    _registered = True
    import importlib

    for mod in _MODULES:
        importlib.import_module(f"{__package__}.{mod}").register(app)
    _register_plugin_commands()
    return app


def _register_plugin_commands() -> None:
    from ..plugins import _warn, get_registry

    for plugin, hook in get_registry().extra_hooks:
        try:
            hook(cli=app)
        except Exception as exc:  # one broken plugin must not take the CLI down
            _warn(f"plugin '{plugin}' failed to add commands: {type(exc).__name__}: {exc}")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit; for checks inside commands."""
    raise DeltaV2AError(message)


def _one_line_warnings() -> None:
    """Library warnings (e.g. a reverb tail that had to be cut) as one line, not source code."""
    import warnings

    warnings.formatwarning = lambda message, category, *a, **k: f"deltav2a: warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    import click

    _one_line_warnings()
    try:
        build_app()
        rv = app(args=argv, prog_name="deltav2a", standalone_mode=False)
    except DeltaV2AError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
