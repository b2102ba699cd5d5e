"""The example third-party plugin, installed for real with pip and used through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("example-plugin-site")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(ROOT / "examples" / "deltav2a-example-plugin")],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    return target


def test_example_plugin_is_listed(plugin_site):
    res = run_cli("list-plugins", "--json", env={"PYTHONPATH": str(plugin_site)})
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    mine = {(p["kind"], p["name"]): p for p in data["plugins"] if p["distribution"] == "deltav2a-example-plugin"}
    assert set(mine) == {("image_effect", "pixelate"), ("audio_effect", "chorus")}
    assert all(p["version"] == "0.1.0" for p in mine.values())
    assert data["errors"] == []
    # without the site folder the plugin is gone again
    res = run_cli("list-plugins", "--json")
    assert "pixelate" not in res.stdout


def test_example_plugin_effects_apply_through_the_cli(plugin_site, tmp_path):
    from deltav2a.media.examples import groove

    from PIL import Image

    img = tmp_path / "in.png"
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").save(img)
    out = tmp_path / "out.png"
    env = {"PYTHONPATH": str(plugin_site)}
    res = run_cli("apply-image", str(img), "--effect", "pixelate", "--intensity", "0.8", "-o", str(out), env=env)
    assert res.returncode == 0, res.stderr
    a = np.asarray(Image.open(img).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape
    # blocks: neighbouring pixels are equal far more often after pixelation
    same = lambda x: float((np.abs(np.diff(x, axis=1)).sum(-1) == 0).mean())
    assert same(a) < 0.05 and same(b) > 0.6

    wav = tmp_path / "in.wav"
    sf.write(wav, groove(2.0).T, 44100)
    out_wav = tmp_path / "out.wav"
    res = run_cli("apply-audio", str(wav), "--effect", "chorus:depth=0.9,mix=0.7", "-o", str(out_wav), env=env)
    assert res.returncode == 0, res.stderr
    x, _ = sf.read(wav)
    y, _ = sf.read(out_wav)
    assert y.shape[0] >= x.shape[0]
    assert np.abs(y[: x.shape[0]] - x).mean() > 1e-3
