"""splits -> build-db -> train -> tune-thresholds -> evaluate -> probes, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from conftest import run_cli


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> dict[str, Path]:
    from deltav2a.examples import groove

    root = tmp_path_factory.mktemp("ctl")
    audio = root / "audio"
    audio.mkdir()
    for t in range(6):
        for c in range(2):
            sf.write(audio / f"song{t}__{c + 1}.wav", groove(2.0, 48000, seed=10 * t + c).T, 48000)
    res = run_cli("splits", str(audio), "-o", str(root / "splits.json"))
    assert res.returncode == 0, res.stderr
    out = {"root": root}
    for split in ("train", "val", "test"):
        res = run_cli("build-db", "--splits", str(root / "splits.json"), "--split", split, "-n", "12",
                      "--workers", "1", "-q", "-o", str(root / f"db_{split}"))
        assert res.returncode == 0, res.stderr
        out[split] = root / f"db_{split}"
    return out


def test_train_tune_evaluate_probe(dbs):
    model = dbs["root"] / "model"
    res = run_cli("train", "--db", str(dbs["train"]), "--val-db", str(dbs["val"]), "--epochs", "4", "-o", str(model))
    assert res.returncode == 0, res.stderr
    for f in ("controller.safetensors", "controller.json", "config.yaml"):
        assert (model / f).is_file()
    meta = json.loads((model / "controller.json").read_text())
    assert meta["controller"] == "mlp" and meta["encoders"]["audio"]["name"] == "perceptual-audio"
    assert meta["training"]["epochs"] == 4
    assert list((model / "training").glob("*.png")), "training curve PNG"

    res = run_cli("tune-thresholds", "--model", str(model), "--val-db", str(dbs["val"]))
    assert res.returncode == 0, res.stderr
    tuned = json.loads((model / "controller.json").read_text())["thresholds"]
    assert len(tuned) == 7 and all(0.05 <= t <= 0.95 for t in tuned.values())

    ev = dbs["root"] / "eval"
    res = run_cli("evaluate", "--model", str(model), "--test-db", str(dbs["test"]), "--train-db", str(dbs["train"]),
                  "-o", str(ev))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((ev / "metrics.json").read_text())
    assert 0 < metrics["tuned"]["active_param_rmse_gated"] < 1 and metrics["mean_baseline_active_param_rmse"] > 0
    assert set(metrics["tuned"]["per_effect_f1"]) == set(tuned)
    assert (ev / "per_param_rmse.png").is_file()

    res = run_cli("probes", "--db", str(dbs["train"]), "--test-db", str(dbs["test"]), "-o", str(dbs["root"] / "p.json"))
    assert res.returncode == 0, res.stderr
    rows = json.loads((dbs["root"] / "p.json").read_text())
    assert [r["name"] for r in rows] == ["Mean baseline", "Mean baseline (active records)",
                                         "Audio embedding only", "Style label only", "Style + Audio (gated)"]


def test_ar_controller_trains_and_evaluates(dbs):
    model = dbs["root"] / "model_ar"
    res = run_cli("train", "--db", str(dbs["train"]), "--val-db", str(dbs["val"]), "--controller", "ar",
                  "--epochs", "2", "-o", str(model))
    assert res.returncode == 0, res.stderr
    res = run_cli("evaluate", "--model", str(model), "--test-db", str(dbs["test"]), "--train-db", str(dbs["train"]),
                  "-o", str(dbs["root"] / "eval_ar"))
    assert res.returncode == 0, res.stderr
    assert json.loads((dbs["root"] / "eval_ar" / "metrics.json").read_text())["controller"] == "ar"


def test_mismatched_database_is_refused(dbs, tmp_path):
    cfg = tmp_path / "v2.yaml"
    cfg.write_text("vocabulary: v2\n")
    res = run_cli("train", "--db", str(dbs["train"]), "-c", str(cfg), "--epochs", "1", "-o", str(tmp_path / "m"))
    assert res.returncode == 2 and "vocabulary" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m" / "controller.json").exists()
    res = run_cli("evaluate", "--model", str(tmp_path / "nothing"), "--test-db", str(dbs["test"]),
                  "--train-db", str(dbs["train"]), "-o", str(tmp_path / "e"))
    assert res.returncode == 2 and "no trained controller" in res.stderr


def test_knn_controller_fits_evaluates_and_transfers(dbs, tmp_path):
    from deltav2a.examples import landscape_image

    model = dbs["root"] / "model_knn"
    res = run_cli("train", "--db", str(dbs["train"]), "--val-db", str(dbs["val"]), "--controller", "knn",
                  "-o", str(model))
    assert res.returncode == 0, res.stderr
    meta = json.loads((model / "controller.json").read_text())
    assert meta["controller"] == "knn" and meta["training"]["epochs"] == 1
    res = run_cli("evaluate", "--model", str(model), "--test-db", str(dbs["test"]), "--train-db", str(dbs["train"]),
                  "-o", str(tmp_path / "eval"))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["controller"] == "knn" and 0 < metrics["tuned"]["active_param_rmse_gated"] < 1
    img = tmp_path / "i.png"
    landscape_image(160, 120, seed=1).save(img)
    clip = next((dbs["root"] / "audio").glob("*.wav"))
    res = run_cli("transfer", "--image", str(img), "--image-effect", "motion_blur:0.8", "--audio", str(clip),
                  "-m", str(model), "-o", str(tmp_path / "out.wav"), "--no-summary")
    assert res.returncode == 0, res.stderr
    side = json.loads((tmp_path / "out.json").read_text())
    assert side["controller"]["name"] == "knn" and (tmp_path / "out.wav").stat().st_size > 1000
