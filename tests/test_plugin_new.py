"""`deltav2a plugin new`: each kind's skeleton installs with pip and passes its own test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import run_cli

KINDS = ("audio_effect", "image_effect", "vocabulary", "encoder", "controller")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow
def test_generated_package_installs_and_its_test_passes(kind, tmp_path):
    name = f"my-{kind.replace('_', '-')}"
    pkg = tmp_path / "pkg"
    res = run_cli("plugin", "new", name, "--kind", kind, "-o", str(pkg))
    assert res.returncode == 0, res.stderr
    assert (pkg / "pyproject.toml").is_file() and list((pkg / "tests").glob("test_*.py"))
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(pkg)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "DELTAV2A_STRICT_PLUGINS": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "passed" in res.stdout and "failed" not in res.stdout
    res = run_cli("plugin-info", name, env={"PYTHONPATH": str(site)})
    assert res.returncode == 0 and f"from deltav2a-{name}" in res.stdout, res.stderr


def test_refuses_to_overwrite_and_bad_names(tmp_path):
    (tmp_path / "taken").mkdir()
    res = run_cli("plugin", "new", "fx", "--kind", "audio_effect", "-o", str(tmp_path / "taken"))
    assert res.returncode == 2 and "already exists" in res.stderr and not list((tmp_path / "taken").iterdir())
    res = run_cli("plugin", "new", "Bad Name", "--kind", "audio_effect", "-o", str(tmp_path / "x"))
    assert res.returncode == 2 and "must be lower case" in res.stderr and not (tmp_path / "x").exists()
    res = run_cli("plugin", "new", "fx", "--kind", "shader", "-o", str(tmp_path / "y"))
    assert res.returncode == 2 and "unknown plugin kind" in res.stderr
