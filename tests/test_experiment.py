"""`deltav2a run` on the quick config, then `transfer` with the model it trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, run_cli


def _model(run_dir: Path) -> Path:
    """The primary model of the latest setup (the run folder is a stage cache)."""
    return run_dir / json.loads((run_dir / "metrics.json").read_text())["model"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("quick") / "run"
    res = run_cli("run", str(ROOT / "configs" / "quick.yaml"), "-o", str(run_dir), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return run_dir


def test_quick_run_writes_everything(quick_run):
    for f in ("report.md", "metrics.json", "config.yaml"):
        assert (quick_run / f).is_file(), f
    for f in ("controller.json", "controller.safetensors", "config.yaml"):
        assert (_model(quick_run) / f).is_file(), f
    report = (quick_run / "report.md").read_text()
    for heading in ("Experiment 2", "Style F1 per effect", "Image-side probe", "Experiment 3",
                    "Controller results", "Calibration", "Cross-modal agreement", "Example transfers"):
        assert heading in report, heading
    metrics = json.loads((quick_run / "metrics.json").read_text())
    assert set(metrics["results"]["diagnostics_audio"]["style_f1"]) == {
        "lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "stutter", "playback_rate"}
    cal = json.loads((_model(quick_run) / "controller.json").read_text())["calibration"]
    assert cal["temperature"] > 0 and cal["s_c"] > 0
    examples = quick_run / metrics["examples"]
    assert list(examples.glob("*.png")) and list(examples.glob("*_A2.wav"))


def test_rerun_reuses_finished_stages(quick_run, tmp_path):
    res = run_cli("run", str(ROOT / "configs" / "quick.yaml"), "-o", str(quick_run))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "unchanged, reused" in res.stderr and " ..." not in res.stderr.replace("[run] report", "")
    cfg = tmp_path / "quick_more_epochs.yaml"
    cfg.write_text((ROOT / "configs" / "quick.yaml").read_text().replace("epochs: 3", "epochs: 4"))
    res = run_cli("run", str(cfg), "-o", str(quick_run))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[run] db_train: unchanged, reused" in res.stderr
    assert "[run] train_mlp ..." in res.stderr


@pytest.fixture(scope="module")
def media(tmp_path_factory, quick_run):
    from deltav2a.examples import groove, landscape_image

    d = tmp_path_factory.mktemp("tmedia")
    landscape_image(200, 150).save(d / "a.png")
    landscape_image(100, 75).save(d / "small.png")
    (d / "broken.png").write_bytes(b"not an image")
    sf.write(d / "clip.wav", groove(3.0, 44100).T, 44100)
    sf.write(d / "tiny.wav", groove(3.0, 44100)[:, :200].T, 44100)
    (d / "imgs").mkdir()
    for s in range(3):
        landscape_image(120, 90, seed=s).save(d / "imgs" / f"i{s}.png")
    return d


def test_transfer_file(media, quick_run, tmp_path):
    out = tmp_path / "a2.wav"
    res = run_cli("transfer", "--image", str(media / "a.png"), "--image-effect", "motion_blur:0.8",
                  "--audio", str(media / "clip.wav"), "--model", str(_model(quick_run)), "-o", str(out))
    assert res.returncode == 0, res.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert len(side["style"]["top"]) == 5 and side["style"]["delta_norm"] > 0
    assert set(side["controller"]["activity"]) == {"lowpass", "bitcrush", "reverb", "highpass", "distortion",
                                                   "delay", "stutter", "playback_rate"}
    for e in side["effects"]:
        assert e["effect"] in side["controller"]["active"]
    assert out.with_suffix(".png").stat().st_size > 20_000
    y, sr = sf.read(out)
    assert sr == 44100 and np.isfinite(y).all()


def test_transfer_folder_of_images(media, quick_run, tmp_path):
    out = tmp_path / "many"
    res = run_cli("transfer", "--image", str(media / "imgs"), "--image-effect", "sepia_tone", "--audio",
                  str(media / "clip.wav"), "--model", str(_model(quick_run)), "-o", str(out), "--no-summary")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.glob("*.wav")) == ["i0__clip.wav", "i1__clip.wav", "i2__clip.wav"]


def test_unchanged_image_leaves_audio_almost_untouched(media, quick_run, tmp_path):
    out = tmp_path / "same.wav"
    res = run_cli("transfer", "--image", str(media / "a.png"), "--edited", str(media / "a.png"), "--audio",
                  str(media / "clip.wav"), "--model", str(_model(quick_run)), "-o", str(out))
    assert res.returncode == 0, res.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["style"]["delta_norm"] == 0
    assert abs(side["style"]["entropy_bits"] - np.log2(24)) < 1e-3
    x, _ = sf.read(media / "clip.wav")
    y, _ = sf.read(out)
    n = min(len(x), len(y))
    assert np.sqrt(np.mean((y[:n] - x[:n]) ** 2)) < 0.05 * np.sqrt(np.mean(x ** 2))


@pytest.mark.parametrize("args,needle", [
    (["--image", "a.png", "--edited", "small.png", "--audio", "clip.wav"], "sizes differ"),
    (["--image", "broken.png", "--image-effect", "solarize", "--audio", "clip.wav"], "broken.png"),
    (["--image", "a.png", "--image-effect", "solarize", "--audio", "tiny.wav"], "tiny.wav"),
    (["--image", "a.png", "--image-effect", "nope:0.3", "--audio", "clip.wav"], "unknown image effect"),
])
def test_transfer_bad_input(media, quick_run, tmp_path, args, needle):
    full = [a if not a.endswith((".png", ".wav")) else str(media / a) for a in args]
    out = tmp_path / "o.wav"
    res = run_cli("transfer", *full, "--model", str(_model(quick_run)), "-o", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert needle in res.stderr
    assert not out.exists()


def test_model_for_other_encoders_is_refused(media, quick_run, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(_model(quick_run), model)
    meta = json.loads((model / "controller.json").read_text())
    meta["encoders"]["audio"]["fingerprint"] = "clap/HTSAT-base/sha256:0000"
    (model / "controller.json").write_text(json.dumps(meta))
    res = run_cli("transfer", "--image", str(media / "a.png"), "--image-effect", "solarize", "--audio",
                  str(media / "clip.wav"), "--model", str(model), "-o", str(tmp_path / "o.wav"))
    assert res.returncode == 2 and "audio encoder" in res.stderr and "Traceback" not in res.stderr
