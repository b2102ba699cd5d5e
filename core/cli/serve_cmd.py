"""`serve`: the local web demo (transfer page) or, with --study, the listening study."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DeltaV2AError


def serve(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model directory (default: the shipped model)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; only this machine by default."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
    study: Optional[Path] = typer.Option(None, "--study", help="Serve this study folder to raters instead."),
    max_upload_mb: float = typer.Option(32.0, "--max-upload-mb", help="Largest accepted upload (whole request)."),
    max_audio_seconds: float = typer.Option(60.0, "--max-audio-seconds", help="Longest accepted clip."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Study: derive each rater's order from this seed "
                                       "(reproducible pilots); default: fresh randomness per rater."),
) -> None:
    """Start the web app on http://HOST:PORT (Ctrl-C stops it)."""
    import socket

    if not (0 < max_upload_mb <= 1024) or not (0 < max_audio_seconds <= 600):
        raise DeltaV2AError("--max-upload-mb must be in (0, 1024] and --max-audio-seconds in (0, 600]")
    if model is not None and not (model / "controller.json").is_file():
        raise DeltaV2AError(f"no trained model in {model} (expected controller.json)")
    from ..web.app import Limits, create_app

    # the app starts loading the model in a thread before uvicorn is even imported
    app = create_app(model, study=study, seed=seed,
                     limits=Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_audio_seconds=max_audio_seconds))
    import uvicorn

    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise DeltaV2AError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    what = f"study {study}" if study else "transfer page"
    typer.echo(f"deltav2a: serving the {what} on http://{host}:{bound}/ (Ctrl-C stops)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo("deltav2a: warning: reachable from other machines; there is no authentication", err=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
