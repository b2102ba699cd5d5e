"""The `deltav2a` command line.

Start-up stays light: this module imports typer and the plugin registry only; each command
imports numpy, Wand, pedalboard or torch inside its body. Errors a user can cause
(`DeltaV2AError`) and usage errors print as one line and exit 2; OS errors (unreadable or
unwritable files, a full disk) exit 2 too; anything else is a bug and exits 1 with one line
naming the plugin whose code raised, if any. `--debug` or DELTAV2A_DEBUG=1 adds the
traceback. Ctrl-C exits 130, SIGTERM 143 (temporary files are removed on both).
"""

from __future__ import annotations

import os
import sys

import typer

from ..errors import DeltaV2AError

app = typer.Typer(
    name="deltav2a",
    help="DeltaV2A: when an image changes, change the music in the same direction.",
    epilog="Errors are one line; add --debug (or set DELTAV2A_DEBUG=1) for the traceback.",
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
    from ..api.registry import _warn, get_registry

    for plugin, hook in get_registry().extra_hooks:
        try:
            hook(cli=app)
        except (Exception, SystemExit) as exc:  # one broken plugin must not take the CLI down
            _warn(f"plugin '{plugin}' failed to add commands: {type(exc).__name__}: {exc}")


def _one_line_warnings() -> None:
    """Library warnings (e.g. a reverb tail that had to be cut) as one line, not source code."""
    import warnings

    warnings.formatwarning = lambda message, category, *a, **k: f"deltav2a: warning: {message}\n"


DEBUG_ENV = "DELTAV2A_DEBUG"


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so `atomic_path` removes its temporary file."""


def _on_sigterm() -> None:
    import signal

    def handler(signum, frame):  # noqa: ARG001
        raise Terminated()

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # pragma: no cover - not the main thread (embedded use)
        pass


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """`--debug` anywhere before `--` shows tracebacks; so does DELTAV2A_DEBUG=1."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    end = argv.index("--") if "--" in argv else len(argv)
    flag = "--debug" in argv[:end]
    return [a for i, a in enumerate(argv) if not (a == "--debug" and i < end)], env or flag


def _plugin_in_traceback(tb) -> str | None:
    """The plugin whose code raised (innermost frame from a plugin module), as 'NAME (DIST VER)'."""
    import traceback

    try:
        from ..api.registry import plugin_for_module
    except Exception:  # pragma: no cover - the registry itself is broken
        return None
    for frame, _ in reversed(list(traceback.walk_tb(tb))):
        owner = plugin_for_module(frame.f_globals.get("__name__", ""))
        if owner:
            return owner
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_error(exc: OSError) -> str:
    import errno

    what = exc.strerror or _one_line(exc)
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    where = " -> ".join(str(n) for n in names)
    if exc.errno == errno.ENOSPC:
        what = "no space left on device (nothing was replaced)"
    return f"{where}: {what}" if where else what


def _report(exc: BaseException, debug: bool) -> int:
    """Print an unexpected exception as one line; return the exit status.

    OS errors are about the user's files or machine (exit 2); anything else is a bug in
    DeltaV2A or in a plugin (exit 1), and names the plugin when its code raised.
    """
    if debug:
        import traceback

        traceback.print_exception(exc)
    hint = "" if debug else f" (rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
    if isinstance(exc, OSError):
        print(f"error: {_os_error(exc)}", file=sys.stderr)
        return 2
    if isinstance(exc, MemoryError):
        print(f"error: out of memory{hint}", file=sys.stderr)
        return 1
    plugin = _plugin_in_traceback(exc.__traceback__)
    if plugin:
        if isinstance(exc, SystemExit):
            print(f"error: plugin {plugin} called sys.exit({exc.code!r})", file=sys.stderr)
        else:
            print(f"error: plugin {plugin} failed: {_one_line(exc)}{hint}", file=sys.stderr)
        return 1
    print(f"error: internal error: {_one_line(exc)}{hint}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    import click

    try:  # typer >= 0.29 parses with its own copy of click and raises these instead
        from typer._click import exceptions as tclick
    except ImportError:  # pragma: no cover - older typer uses click itself
        tclick = click.exceptions
    import typer

    args, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    _one_line_warnings()
    _on_sigterm()
    try:
        build_app()
        rv = app(args=args, prog_name="deltav2a", standalone_mode=False)
    except DeltaV2AError as exc:
        if debug:
            import traceback

            traceback.print_exception(exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except (click.UsageError, tclick.UsageError) as exc:
        exc.show()
        sys.exit(2)
    except (click.ClickException, tclick.ClickException) as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("terminated", file=sys.stderr)
        sys.exit(143)
    except BrokenPipeError:
        sys.exit(1)
    except SystemExit as exc:
        if _plugin_in_traceback(exc.__traceback__) is None:
            raise
        sys.exit(_report(exc, debug))
    except Exception as exc:  # noqa: BLE001 - the one place every other failure is reported
        sys.exit(_report(exc, debug))
    if rv == 130:  # typer turns Ctrl-C into an exit status, silently
        print("interrupted", file=sys.stderr)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
