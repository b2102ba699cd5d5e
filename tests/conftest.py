"""Shared fixtures. Tests use ../shared/data when it exists and skip those parts otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DELTAV2A_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_data_path() -> Path | None:
    return SHARED_DATA if (SHARED_DATA / "music" / "manifest.csv").is_file() else None


@pytest.fixture
def shared_data() -> Path:
    p = shared_data_path()
    if p is None:
        pytest.skip("../shared/data is not present")
    return p


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path_factory, monkeypatch):
    """Keep the real ~/.config/deltav2a out of tests."""
    home = tmp_path_factory.mktemp("deltav2a-home")
    monkeypatch.setenv("DELTAV2A_HOME", str(home))
    monkeypatch.delenv("DELTAV2A_PLUGINS", raising=False)
    monkeypatch.delenv("DELTAV2A_STRICT_PLUGINS", raising=False)
    from deltav2a.api import registry as plugins

    plugins.reset_registry()
    yield
    plugins.reset_registry()


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300):
    """Run the real `deltav2a` entry point in a subprocess."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    exe = Path(sys.executable).with_name("deltav2a")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "deltav2a.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)
