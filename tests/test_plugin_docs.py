"""docs/plugins.md is executable: its `file=` code blocks are written out as a package,
pip-installed into a temporary target, and every plugin kind is exercised through the CLI,
ending with the documented path plugin -> `--set` -> `run` quick -> `transfer`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, run_cli

DOC = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w+) file=(\S+)\n(.*?)^```", re.S | re.M)


def doc_files() -> dict[str, str]:
    return {path: body for _lang, path, body in BLOCK.findall(DOC.read_text())}


def test_tutorial_has_one_example_per_kind():
    files = doc_files()
    hooks = "\n".join(files.values())
    for hook in ("register_audio_effects", "register_image_effects", "register_vocabularies",
                 "register_encoders", "register_controllers"):
        assert f"def {hook}(register)" in hooks, hook
    assert "pyproject.toml" in files


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict:
    pkg = tmp_path_factory.mktemp("fx-src")
    for path, body in doc_files().items():
        target = pkg / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    site = tmp_path_factory.mktemp("fx-site")
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(pkg)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return {"env": {"PYTHONPATH": str(site), "DELTAV2A_STRICT_PLUGINS": "1"}, "site": site}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    from deltav2a.media.examples import groove, landscape_image

    d = tmp_path_factory.mktemp("fx-media")
    landscape_image(160, 120).save(d / "photo.png")
    sf.write(d / "in.wav", groove(2.0, 44100).T, 44100)
    return d


def test_every_example_is_registered_from_the_package(fx):
    res = run_cli("list-plugins", "--json", env=fx["env"])
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    mine = {(p["kind"], p["name"]): p for p in data["plugins"] if p["distribution"] == "deltav2a-fx"}
    assert set(mine) == {("audio_effect", "phaser"), ("image_effect", "swirl"), ("vocabulary", "moods"),
                         ("encoder", "perceptual-image-grey"), ("controller", "linear")}
    assert data["errors"] == []
    assert [p["name"] for p in mine[("audio_effect", "phaser")]["params"]] == ["rate_hz", "depth", "mix", "centre_hz"]
    assert [p["name"] for p in mine[("image_effect", "swirl")]["params"]] == ["intensity", "max_degrees"]


def test_effect_examples_render(fx, media, tmp_path):
    out = tmp_path / "out.wav"
    res = run_cli("apply-audio", str(media / "in.wav"), "--effect", "phaser:mix=0.8", "--effect", "reverb",
                  "-o", str(out), env=fx["env"])
    assert res.returncode == 0, res.stderr
    assert "phaser -> reverb" in res.stdout
    x, _ = sf.read(media / "in.wav")
    y, _ = sf.read(out)
    assert np.abs(y[: len(x)] - x).mean() > 1e-3
    img = tmp_path / "sw.png"
    res = run_cli("apply-image", str(media / "photo.png"), "--effect", "swirl:max_degrees=300", "--intensity",
                  "0.7", "-o", str(img), env=fx["env"])
    assert res.returncode == 0, res.stderr
    from PIL import Image

    a = np.asarray(Image.open(media / "photo.png").convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(img).convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape and np.abs(a - b).mean() > 2
    res = run_cli("apply-image", str(media / "photo.png"), "--effect", "swirl:max_degrees=9000", "-o",
                  str(tmp_path / "bad.png"), env=fx["env"])
    assert res.returncode == 2 and "swirl.max_degrees=9000 is out of range" in res.stderr
    assert not (tmp_path / "bad.png").exists()


def test_plugin_info_of_vocabulary_encoder_controller(fx):
    res = run_cli("plugin-info", "moods", env=fx["env"])
    assert res.returncode == 0 and "terms (6): calm, agitated" in res.stdout and "{word}" in res.stdout
    res = run_cli("plugin-info", "perceptual-image-grey", env=fx["env"])
    assert res.returncode == 0 and "encoders.image.options" in res.stdout and "normalisation" in res.stdout
    res = run_cli("plugin-info", "mlp", env=fx["env"])
    assert res.returncode == 0 and "controller.options" in res.stdout and "hidden_dims" in res.stdout


def test_encoder_example_is_blind_to_colour(fx):
    code = ("from deltav2a.style.encoding import load_encoder\nfrom deltav2a.media.examples import landscape_image\n"
            "from PIL import Image\nimport numpy as np\n"
            "a = landscape_image(160, 120)\nb = Image.fromarray(np.asarray(a)[..., ::-1].copy())\n"
            "g = load_encoder('perceptual-image-grey', 'image')\nc = load_encoder('perceptual-image', 'image')\n"
            "dg = np.linalg.norm(g.encode_images([a]) - g.encode_images([b]))\n"
            "dc = np.linalg.norm(c.encode_images([a]) - c.encode_images([b]))\n"
            "print(dg, dc, g.fingerprint() != c.fingerprint())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, **fx["env"]})
    assert res.returncode == 0, res.stderr
    dg, dc, differ = res.stdout.split()
    assert float(dc) > 0.1 and float(dg) < 0.5 * float(dc) and differ == "True"


@pytest.mark.slow
def test_plugin_to_set_to_run_to_transfer(fx, media, tmp_path):
    """The tutorial's last section, every kind at once: phaser in the effect set, the moods
    vocabulary, the greyscale encoder and the linear controller, on configs/quick.yaml."""
    run_dir = tmp_path / "run"
    res = run_cli("run", str(ROOT / "configs" / "quick.yaml"), "-o", str(run_dir),
                  "--set", "effects.audio+=phaser", "--set", "vocabulary=moods",
                  "--set", "encoders.image=perceptual-image-grey", "--set", "experiment.controllers=[linear]",
                  "--set", "inference.activity_threshold_override=0", "--set", "inference.max_active=0",
                  env=fx["env"], timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    model = run_dir / json.loads((run_dir / "metrics.json").read_text())["model"]
    meta = json.loads((model / "controller.json").read_text())
    assert {"kind": "audio_effect", "name": "phaser", "distribution": "deltav2a-fx", "version": "0.1.0"} \
        in meta["plugins"]
    assert meta["controller"] == "linear" and meta["vocabulary"]["name"] == "moods"
    out = tmp_path / "a2.wav"
    res = run_cli("transfer", "--model", str(model), "--image", str(media / "photo.png"), "--image-effect",
                  "swirl:0.8", "--audio", str(media / "in.wav"), "-o", str(out), env=fx["env"])
    assert res.returncode == 0, res.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert "phaser" in side["controller"]["activity"]
    assert "phaser" in [e["effect"] for e in side["effects"]]  # threshold 0, no cap: every effect renders
    # without the package, the model names what is missing and where it came from
    res = run_cli("transfer", "--model", str(model), "--image", str(media / "photo.png"), "--image-effect",
                  "motion_blur:0.8", "--audio", str(media / "in.wav"), "-o", str(tmp_path / "x.wav"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "needs " in res.stderr and len(res.stderr.strip().splitlines()) == 1
    for missing in ("audio effect 'phaser'", "controller 'linear'", "vocabulary 'moods'",
                    "encoder 'perceptual-image-grey'"):
        assert f"{missing} from package 'deltav2a-fx' (not installed)" in res.stderr, missing
