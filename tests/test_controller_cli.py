"""splits -> build-db -> train -> tune-thresholds -> evaluate -> probes, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from conftest import run_cli

pytestmark = pytest.mark.slow  # end to end: databases built, controllers trained by the CLI


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> dict[str, Path]:
    from deltav2a.media.examples import groove

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
    assert len(tuned) == 8 and all(0.05 <= t <= 0.95 for t in tuned.values())

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
    from deltav2a.media.examples import landscape_image

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


def test_locked_thresholds_are_tuned_on_the_own_vote(dbs, tmp_path):
    """Decision 9.141: under `strength_match: locked` the thresholds are tuned on the controller's
    own vote (each record asked at its own strength), so they do not depend on the inference
    setting; the locked vote (every record asked at `lock_strength`) differs on these records,
    so tuning on it would give other cut-offs."""
    import shutil

    import yaml

    from deltav2a.evaluation import tune_thresholds
    from deltav2a.experiment.stages import load_db, load_model
    from deltav2a.model.strength import controller_prediction

    base = tmp_path / "knn"
    res = run_cli("train", "--db", str(dbs["train"]), "--val-db", str(dbs["val"]), "--controller", "knn",
                  "-o", str(base))
    assert res.returncode == 0, res.stderr
    tuned = {}
    for mode in ("off", "locked"):
        model = tmp_path / mode
        shutil.copytree(base, model)
        cfg = yaml.safe_load((model / "config.yaml").read_text())
        cfg.setdefault("inference", {}).update({"strength_match": mode, "lock_strength": 0.0})
        (model / "config.yaml").write_text(yaml.safe_dump(cfg))
        res = run_cli("tune-thresholds", "--model", str(model), "--val-db", str(dbs["val"]))
        assert res.returncode == 0, res.stderr
        tuned[mode] = json.loads((model / "controller.json").read_text())["thresholds"]
    assert tuned["locked"] == tuned["off"]
    cfg, loaded = load_model(tmp_path / "locked")
    val = load_db(cfg, dbs["val"]).data
    own = controller_prediction(cfg.model_copy(update={"inference": cfg.inference.model_copy(
        update={"strength_match": "off"})}), loaded, val.style, val.audio, val.strength)
    locked = controller_prediction(cfg, loaded, val.style, val.audio, val.strength)
    assert (own.activity != locked.activity).any()  # the case is one where the two votes differ
    on_locked = tune_thresholds(locked.activity, locked.params, val.active, val.params, loaded.layout, cfg.thresholds,
                                max_active=2, min_active=1).thresholds
    assert on_locked != tuned["locked"], on_locked


def test_calibrate_reads_the_shape_from_the_model_config(dbs, tmp_path):
    """Decision 16.79: with `inference.calibration_shape` in the model's config, `calibrate` fixes
    tau_c and s_c as that multiple of the pairs' median edit norm, fits T alone, and records the
    shape; without it the three-number fit is stored as before (no `shape` key)."""
    import shutil

    import yaml

    from deltav2a.media.examples import landscape_image

    images = tmp_path / "images"
    images.mkdir()
    for s in range(3):
        landscape_image(128, 96, seed=s).save(images / f"img{s}.png")
    base = tmp_path / "knn"
    res = run_cli("train", "--db", str(dbs["train"]), "--val-db", str(dbs["val"]), "--controller", "knn",
                  "-o", str(base))
    assert res.returncode == 0, res.stderr
    cal = {}
    for name, shape in (("free", None), ("shaped", [0.25, 1.0])):
        model = tmp_path / name
        shutil.copytree(base, model)
        if shape:
            cfg = yaml.safe_load((model / "config.yaml").read_text())
            cfg.setdefault("inference", {})["calibration_shape"] = shape
            (model / "config.yaml").write_text(yaml.safe_dump(cfg))
        res = run_cli("calibrate", "--model", str(model), "--images", str(images), "--db", str(dbs["train"]))
        assert res.returncode == 0, res.stderr
        cal[name] = json.loads((model / "controller.json").read_text())["calibration"]
    assert "shape" not in cal["free"]
    assert cal["shaped"]["shape"] == [0.25, 1.0]
    assert cal["shaped"]["tau_c"] == pytest.approx(0.25 * cal["shaped"]["s_c"], rel=1e-12)
    assert cal["shaped"]["target_top1"] == cal["free"]["target_top1"]


# ---------------------------------------------------------------- issue 9: the typed, sparse, strength-aware transfer


@pytest.fixture(scope="module")
def calibrated(dbs):
    """A small MLP with a strength input, F1 thresholds and both strength maps, via the CLI."""
    from deltav2a.media.examples import landscape_image

    root = dbs["root"]
    images = root / "images"
    images.mkdir(exist_ok=True)
    for s in range(2):
        landscape_image(128, 96, seed=s).save(images / f"img{s}.png")
    model = root / "model_q"
    for args in (("train", "--db", str(dbs["train"]), "--val-db", str(dbs["val"]), "--epochs", "3", "-o", str(model)),
                 ("tune-thresholds", "--model", str(model), "--val-db", str(dbs["val"])),
                 ("calibrate", "--model", str(model), "--images", str(images), "--db", str(dbs["train"]))):
        res = run_cli(*args)
        assert res.returncode == 0, res.stderr
    clips = root / "clips"
    clips.mkdir(exist_ok=True)
    for p in sorted((root / "audio").glob("*.wav"))[:2]:
        (clips / p.name).write_bytes(p.read_bytes())
    return {"model": model, "images": images, "clips": clips}


def test_model_carries_strength_input_and_maps(calibrated):
    from deltav2a.model.strength import StrengthMap

    meta = json.loads((calibrated["model"] / "controller.json").read_text())
    assert meta["strength_input"] is True and meta["style_dim"] == 24 + 1
    maps = meta["calibration"]["strength"]
    image_map = StrengthMap.from_dict(maps["image"])
    assert image_map(0.0) == 0.0 and image_map(1e9) > 0.5
    assert maps["image_fit"]["pairs"] == 2 * 7 * 10 and maps["image_fit"]["spearman"] > 0.3
    from deltav2a.model.strength import DirectionalStrength

    by_effect = DirectionalStrength.from_dict(maps["image_by_effect"])  # 9.100: fitted beside the pooled map
    assert len(by_effect.effects) == 7 and maps["image_by_effect_fit"]["pairs"] == 2 * 7 * 10
    assert maps["image_by_effect_fit"]["own_effect_top"] > 0.5
    assert meta["training"]["database_mean_active"] == pytest.approx(1.5, abs=0.5)


def test_unchanged_pair_returns_the_clip_bit_identical(calibrated, tmp_path):
    from deltav2a.media.io import load_audio

    img = calibrated["images"] / "img0.png"
    clip = next(calibrated["clips"].glob("*.wav"))
    out = tmp_path / "same.wav"
    res = run_cli("transfer", "--image", str(img), "--edited", str(img), "--audio", str(clip),
                  "-m", str(calibrated["model"]), "-o", str(out))
    assert res.returncode == 0, res.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["unchanged"] is True and side["n_effects"] == 0 and side["effects"] == []
    assert side["controller"]["source"] == "identity" and side["style"]["strength"] == 0.0
    x, _ = load_audio(clip)
    y, _ = load_audio(out)
    assert y.shape == x.shape and (y == x).all()


def test_grid_of_folders_with_index_and_at_most_two_effects(calibrated, tmp_path):
    out = tmp_path / "grid"
    res = run_cli("transfer", "--image", str(calibrated["images"]), "--audio", str(calibrated["clips"]),
                  "--image-effect", "motion_blur:0.3,0.9", "--image-effect", "add_noise:0.9",
                  "-m", str(calibrated["model"]), "-o", str(out), "--no-summary")
    assert res.returncode == 0, res.stderr
    rows = json.loads((out / "index.json").read_text())["transfers"]
    assert len(rows) == 2 * 3 * 2 == len(list(out.glob("*.wav")))
    assert {r["edit"] for r in rows} == {"motion_blur-0.3", "motion_blur-0.9", "add_noise-0.9"}
    md = (out / "index.md").read_text()
    assert md.count("\n| img") == len(rows)
    for r in rows:
        side = json.loads(Path(r["output"]).with_suffix(".json").read_text())
        assert 1 <= side["n_effects"] <= 2 == side["controller"]["max_active"]
        assert 0 <= side["style"]["strength"] <= 1
    weak = [r["strength"] for r in rows if r["edit"] == "motion_blur-0.3"]
    strong = [r["strength"] for r in rows if r["edit"] == "motion_blur-0.9"]
    assert min(strong) > max(weak)  # the stronger blur reads as the stronger edit on every image


@pytest.mark.parametrize("flags,needle", [
    (["--controller", "search", "--budget", "0"], "at least 1"),
    (["--controller", "search", "--budget", "-3"], "at least 1"),
    (["--refine", "--budget", "many"], "whole number"),
    (["--controller", "search", "--budget-seconds", "0"], "positive"),
    (["--budget", "10"], "apply to the search"),
    (["--controller", "ar"], "not 'ar'"),
])
def test_bad_search_budgets_are_one_line_errors(calibrated, tmp_path, flags, needle):
    out = tmp_path / "o.wav"
    res = run_cli("transfer", "--image", str(calibrated["images"] / "img0.png"), "--image-effect", "sepia_tone:0.6",
                  "--audio", str(next(calibrated["clips"].glob("*.wav"))), "-m", str(calibrated["model"]),
                  "-o", str(out), *flags)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize("flags,source", [(["--controller", "search"], "search"), (["--refine"], "mlp+refine")])
def test_search_and_refine_record_their_trajectory(calibrated, tmp_path, flags, source):
    out = tmp_path / "s.wav"
    res = run_cli("transfer", "--image", str(calibrated["images"] / "img1.png"), "--image-effect", "motion_blur:0.8",
                  "--audio", str(next(calibrated["clips"].glob("*.wav"))), "-m", str(calibrated["model"]),
                  "-o", str(out), "--no-summary", "--budget", "16", *flags)
    assert res.returncode == 0, res.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["controller"]["source"] == source and 1 <= side["n_effects"] <= 2
    traj = side["controller"]["trajectory"]
    assert traj and all(b >= a for a, b in zip(traj, traj[1:]))


def test_knn_parameter_head_fits_on_a_real_database_and_transfers(dbs, tmp_path):
    """`params_from: head` (decision 9.60) through the CLI on a database of real renders: the
    head is fitted with the records, saved, evaluated (the same vote as the plain k-NN, so the
    same F1) and used by a torch-free transfer."""
    from deltav2a.media.examples import landscape_image

    cfg = tmp_path / "head.yaml"
    cfg.write_text("controller: {name: knn, strength_input: true, "
                   "options: {params_from: head, head_hidden: 16, head_epochs: 20}}\n")
    out = {}
    for name, extra in (("head", ("-c", str(cfg))), ("plain", ())):
        model = tmp_path / f"model_{name}"
        res = run_cli("train", "--db", str(dbs["train"]), "--val-db", str(dbs["val"]), "--controller", "knn",
                      *extra, "-o", str(model))
        assert res.returncode == 0, res.stderr
        res = run_cli("evaluate", "--model", str(model), "--test-db", str(dbs["test"]), "--train-db",
                      str(dbs["train"]), "-o", str(tmp_path / f"eval_{name}"))
        assert res.returncode == 0, res.stderr
        out[name] = json.loads((tmp_path / f"eval_{name}" / "metrics.json").read_text())
    meta = json.loads((tmp_path / "model_head" / "controller.json").read_text())
    assert meta["config"]["options"]["params_from"] == "head"
    assert meta["training"]["best"]["fit_head_epochs"] == 20
    head, plain = out["head"]["tuned"], out["plain"]["tuned"]
    assert head["macro_f1"] == plain["macro_f1"]  # the vote is the neighbours' in both modes
    assert 0 < head["active_param_rmse"] < 1 and head["active_param_rmse"] != plain["active_param_rmse"]
    img = tmp_path / "i.png"
    landscape_image(160, 120, seed=1).save(img)
    clip = next((dbs["root"] / "audio").glob("*.wav"))
    res = run_cli("transfer", "--image", str(img), "--image-effect", "motion_blur:0.8", "--audio", str(clip),
                  "-m", str(tmp_path / "model_head"), "-o", str(tmp_path / "out.wav"), "--no-summary")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out.wav").stat().st_size > 1000
