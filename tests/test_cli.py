"""The CLI end to end: real commands, real files, one-line errors and no partial outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    from deltav2a.media.examples import groove, landscape_image

    d = tmp_path_factory.mktemp("media")
    landscape_image(200, 150).save(d / "img.png")
    sf.write(d / "clip.wav", groove(3.0).T, 44100)
    sf.write(d / "mono22k.flac", groove(2.0, 22050)[0], 22050)
    sf.write(d / "clip.ogg", groove(2.0).T, 44100, format="OGG", subtype="VORBIS")
    (d / "empty.wav").write_bytes(b"")
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    sf.write(d / "zero.wav", np.zeros((0, 2), np.float32), 44100)
    nan = groove(1.0).T.copy()
    nan[100, 0] = np.nan
    sf.write(d / "nan.wav", nan, 44100, subtype="FLOAT")
    return d


def assert_one_line_error(res, *needles: str) -> None:
    assert res.returncode != 0, res.stdout
    lines = [l for l in res.stderr.strip().splitlines() if l]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_help_lists_every_stage():
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("list-plugins", "plugin-info", "apply-image", "apply-audio", "demo", "vocab", "config"):
        assert cmd in res.stdout


def test_apply_image_writes_an_rgb_image(media, tmp_path):
    out = tmp_path / "blurred.png"
    res = run_cli("apply-image", str(media / "img.png"), "--effect", "motion_blur", "--intensity", "0.7", "-o", str(out))
    assert res.returncode == 0, res.stderr
    from PIL import Image

    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (200, 150)


@pytest.mark.parametrize("args,needles", [
    (["--effect", "no_such", "--intensity", "0.5"], ["unknown image effect 'no_such'"]),
    (["--effect", "motion_blur", "--intensity", "1.5"], ["intensity", "out of range"]),
    (["--effect", "motion_blur", "--intensity", "nan"], ["intensity"]),
])
def test_apply_image_bad_arguments(media, tmp_path, args, needles):
    out = tmp_path / "o.png"
    res = run_cli("apply-image", str(media / "img.png"), *args, "-o", str(out))
    assert_one_line_error(res, *needles)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,needle", [
    ("missing.png", "not found"), ("corrupt.png", "corrupt.png"), ("empty.wav", "empty"),
])
def test_apply_image_bad_files(media, tmp_path, name, needle):
    out = tmp_path / "o.png"
    res = run_cli("apply-image", str(media / name), "--effect", "sepia_tone", "-o", str(out))
    assert_one_line_error(res, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("src", ["clip.wav", "mono22k.flac", "clip.ogg"])
def test_apply_audio_formats(media, tmp_path, src):
    out = tmp_path / "out.wav"
    info = tmp_path / "chain.json"
    res = run_cli("apply-audio", str(media / src), "--effect", "lowpass:cutoff_hz=800",
                  "--effect", "reverb:wet_level=0.5", "-o", str(out), "--info", str(info))
    assert res.returncode == 0, res.stderr
    y, sr = sf.read(out, always_2d=True)
    x, sr_in = sf.read(media / src, always_2d=True)
    assert sr == sr_in and y.shape[1] == x.shape[1]
    assert y.shape[0] > x.shape[0]  # the reverb tail is kept by default
    described = json.loads(info.read_text())
    assert [e["effect"] for e in described["effects"]] == ["lowpass", "reverb"]


@pytest.mark.parametrize("spec,needles", [
    ("no_such", ["unknown audio effect 'no_such'"]),
    ("lowpass:frequency=800", ["lowpass", "frequency"]),
    ("lowpass:cutoff_hz=5", ["cutoff_hz", "out of range"]),
    ("reverb:wet_level=abc", ["wet_level"]),
    ("delay:mix=inf", ["mix"]),
])
def test_apply_audio_bad_specs(media, tmp_path, spec, needles):
    out = tmp_path / "o.wav"
    res = run_cli("apply-audio", str(media / "clip.wav"), "--effect", spec, "-o", str(out))
    assert_one_line_error(res, *needles)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,needle", [
    ("missing.wav", "not found"), ("empty.wav", "empty"), ("corrupt.wav", "corrupt.wav"),
    ("zero.wav", "zero length"), ("nan.wav", "NaN"), ("img.png", "img.png"),
])
def test_apply_audio_bad_files(media, tmp_path, name, needle):
    out = tmp_path / "o.wav"
    res = run_cli("apply-audio", str(media / name), "--effect", "lowpass", "-o", str(out))
    assert_one_line_error(res, needle)
    assert list(tmp_path.iterdir()) == []


def test_apply_audio_rejects_non_wav_output(media, tmp_path):
    res = run_cli("apply-audio", str(media / "clip.wav"), "--effect", "lowpass", "-o", str(tmp_path / "o.mp3"))
    assert_one_line_error(res, ".wav")


def test_config_show_and_bad_config(tmp_path):
    res = run_cli("config", "show", "--json")
    cfg = json.loads(res.stdout)
    assert cfg["inference"]["temperature"] == 0.015 and cfg["database"]["augmentations_per_clip"] == 60
    assert cfg["training"]["loss"]["effect_weights"]["delay"] == 3.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("database:\n  augmentations_per_clip: many\n")
    assert_one_line_error(run_cli("config", "show", "-c", str(bad)), "database.augmentations_per_clip")
    typo = tmp_path / "typo.yaml"
    typo.write_text("trainig: {epochs: 3}\n")
    assert_one_line_error(run_cli("config", "show", "-c", str(typo)), "trainig")
    good = tmp_path / "good.yaml"
    good.write_text("encoders: {image: clip, audio: clap}\ntraining: {epochs: 3}\n")
    cfg = json.loads(run_cli("config", "show", "-c", str(good), "--json").stdout)
    assert cfg["encoders"]["image"]["name"] == "clip" and cfg["training"]["epochs"] == 3


def test_demo_main_job(tmp_path):
    out = tmp_path / "outputs"
    res = run_cli("demo", "--output", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "demo_summary.json").read_text())
    for key in ("image", "edited_image", "audio", "processed_audio"):
        assert Path(summary[key]).is_file()
    x, _ = sf.read(summary["audio"])
    y, _ = sf.read(summary["processed_audio"])
    assert y.shape[0] >= x.shape[0]
    # the transfer with the shipped model: audio, sidecar and PNG summary
    side = json.loads(Path(summary["transfer_sidecar"]).read_text())
    assert side["encoders"] == {"image": "perceptual-image", "audio": "perceptual-audio"}
    assert len(side["style"]["top"]) == 5 and side["style"]["delta_norm"] > 0.06
    assert Path(summary["transfer_summary"]).stat().st_size > 20_000
    t, _ = sf.read(summary["transfer_audio"])
    assert np.isfinite(t).all() and t.shape[0] > 0
