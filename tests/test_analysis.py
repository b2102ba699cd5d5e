"""The pipeline note's analysis: note effects, synonyms, extract, sensitivity, linearity, discover, decoder.

Media are generated (procedural landscapes and grooves from deltav2a.media.examples); the
acceptance check on ../shared/data runs when it is present. Encoders are the perceptual
pair, and, in the last test, randomly initialised CLIP and CLAP built by the fixtures of
tests/test_clip_clap.py.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from deltav2a.errors import DeltaV2AError  # noqa: E402

SR = 48000
FAST_DECODER = {"epochs": 3, "samples_per_clip": 6, "val_render_limit": 3, "batch_size": 16}


# ------------------------------------------------------------------ fixtures


def _make_media(root: Path) -> dict[str, Path]:
    """3 image categories x 2 (sub-folders), 3 audio categories x 2 clips (manifest + track ids)."""
    from deltav2a.media.examples import groove, landscape_image

    img_dir, aud_dir = root / "images", root / "audio"
    for c, cat in enumerate(("coast", "forest", "city")):
        (img_dir / cat).mkdir(parents=True)
        for k in range(2):
            landscape_image(96, 72, seed=10 * c + k).save(img_dir / cat / f"{cat}{k}.png")
    aud_dir.mkdir(parents=True)
    rows = []
    for c, cat in enumerate(("jazz", "rock", "folk")):
        for k in range(2):
            name = f"{cat}_{k}.wav"
            sf.write(aud_dir / name, groove(1.0, SR, seed=10 * c + k).T, SR)
            rows.append({"file": name, "collection": cat, "track_id": f"{cat}-{k}"})
    with (aud_dir / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "collection", "track_id"])
        w.writeheader()
        w.writerows(rows)
    return {"images": img_dir, "audio": aud_dir}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return _make_media(tmp_path_factory.mktemp("analysis-media"))


def _cfg(**over):
    from deltav2a.analysis.settings import load_analysis_config

    base = {"decoder": dict(FAST_DECODER), "audio": {"max_duration": 5.0}}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return load_analysis_config(None, base)


def _extract(media, out, cfg, **kw):
    from deltav2a.analysis.extract import list_items, run_extract

    img, ii = list_items(media["images"], "image")
    aud, ai = list_items(media["audio"], "audio")
    return run_extract(out, cfg, img, aud, sources={"image": ii, "audio": ai}, **kw)


@pytest.fixture(scope="module")
def extracted(media, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis-out")
    _extract(media, out, _cfg())
    return out


# ------------------------------------------------------------------ note effects


def test_note_effects_are_registered_under_the_notes_names():
    from deltav2a.api.registry import get_registry

    reg = get_registry()
    assert {"blur", "brightness", "saturation", "contrast"} <= set(reg.names("image_effect"))
    assert {"lpf", "highshelf", "saturation", "reverb"} <= set(reg.names("audio_effect"))
    assert not reg.failures


@pytest.mark.parametrize("name", ["blur", "brightness", "saturation", "contrast"])
def test_image_note_effects_grow_with_intensity(name):
    from deltav2a.media.examples import landscape_image
    from deltav2a.api.registry import get

    im = landscape_image(96, 72)
    fx = get("image_effect", name)()
    base = np.asarray(im, dtype=np.float64)
    change = [np.abs(np.asarray(fx.apply(im, x), dtype=np.float64) - base).mean() for x in (0.0, 0.25, 0.5, 0.9)]
    assert change[0] == 0.0
    assert all(b > a for a, b in zip(change, change[1:])), change
    assert fx.apply(im, 0.9).size == im.size


def _tone(freq: float, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None, :]


def _gain_db(effect: str, params: dict, freq: float) -> float:
    from deltav2a.render.chain import AudioChain, ChainSettings

    x = _tone(freq)
    y = AudioChain(ChainSettings.from_dict({effect: params}), tail="cut").render(x, SR).audio
    tail = slice(SR // 10, None)  # after the filters settle
    return 20 * np.log10(np.sqrt(np.mean(y[:, tail] ** 2)) / np.sqrt(np.mean(x[:, tail] ** 2)))


def test_lpf_is_twice_as_steep_as_the_builtin_lowpass():
    lpf = _gain_db("lpf", {"cutoff_hz": 500.0}, 4000.0)
    lowpass = _gain_db("lowpass", {"cutoff_hz": 500.0}, 4000.0)
    assert lpf == pytest.approx(2 * lowpass, abs=0.3)  # two first-order stages in series
    assert lpf < -30
    assert _gain_db("lpf", {"cutoff_hz": 20000.0}, 1000.0) > -0.05


def test_highshelf_boosts_highs_and_its_bypass_is_exact():
    from deltav2a.render.chain import AudioChain, ChainSettings
    from deltav2a.api.registry import get

    cls = get("audio_effect", "highshelf")
    p = cls.params_at_intensity(0.5)
    assert p["gain_db"] == pytest.approx(9.0) and p["cutoff_hz"] == 4000.0  # shelf frequency held
    assert _gain_db("highshelf", p, 12000.0) > 8.0
    assert abs(_gain_db("highshelf", p, 200.0)) < 0.5
    x = _tone(3000.0)
    assert np.array_equal(AudioChain(ChainSettings.from_dict({"highshelf": cls.params_at_intensity(0.0)})).render(x, SR).audio, x)


def test_audio_saturation_is_the_normalised_tanh_with_an_exact_bypass():
    from deltav2a.render.chain import AudioChain, ChainSettings

    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0, 0.3, (2, 4000)), -1, 1).astype(np.float32)
    x[0, 10], x[1, 20] = 1.0, -1.0
    y = AudioChain(ChainSettings.from_dict({"saturation": {"drive_db": 18.0}}), tail="cut").render(x, SR).audio
    g = 10 ** (18 / 20) - 1
    np.testing.assert_allclose(y, np.tanh(g * x) / np.tanh(g), atol=2e-6)
    assert y[0, 10] == pytest.approx(1.0, abs=1e-6) and y[1, 20] == pytest.approx(-1.0, abs=1e-6)
    same = AudioChain(ChainSettings.from_dict({"saturation": {"drive_db": 0.0}}), tail="cut").render(x, SR).audio
    assert np.array_equal(same, x)
    tiny = AudioChain(ChainSettings.from_dict({"saturation": {"drive_db": 0.01}}), tail="cut").render(x, SR).audio
    assert np.abs(tiny - x).max() < 1e-5  # continuous at the bypass


# ------------------------------------------------------------------ synonyms


def test_synonyms_merge_class_data_and_user_files(monkeypatch, tmp_path):
    from deltav2a.analysis.synonyms import load_synonyms

    t = load_synonyms({"image": ["blur", "motion_blur"], "audio": ["lpf", "reverb"]})
    assert t.get("image", "blur")[0] == "blurry"            # class attribute
    assert "motion blur" in t.get("image", "motion_blur")   # shipped table
    assert "reverberant" in t.get("audio", "reverb")
    home = Path(os.environ["DELTAV2A_HOME"])
    (home / "synonyms").mkdir(parents=True, exist_ok=True)
    (home / "synonyms" / "mine.yaml").write_text("image:\n  blur: [smeary, blurry]\n")
    t = load_synonyms({"image": ["blur"]})
    words = t.get("image", "blur")
    assert words[-1] == "smeary" and words.count("blurry") == 1
    extra = tmp_path / "replace.yaml"
    extra.write_text("replace: true\naudio:\n  lpf: [murky]\n")
    assert load_synonyms({"audio": ["lpf"]}, [extra]).get("audio", "lpf") == ["murky"]


def test_synonym_problems_are_one_line_errors(tmp_path):
    from deltav2a.analysis.synonyms import SynonymTable, load_synonyms

    with pytest.raises(DeltaV2AError, match="no synonyms for audio effect 'x'"):
        SynonymTable().get("audio", "x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("video:\n  blur: [a]\n")
    with pytest.raises(DeltaV2AError, match="unknown section 'video'"):
        load_synonyms({"image": ["blur"]}, [bad])
    bad.write_text("image:\n  blur: blurry\n")
    with pytest.raises(DeltaV2AError, match="must be a list of words"):
        load_synonyms({"image": ["blur"]}, [bad])


# ------------------------------------------------------------------ items and extract


def test_items_come_from_folders_or_a_manifest_and_limit_covers_every_category(media, tmp_path):
    from deltav2a.analysis.extract import list_items

    img, info = list_items(media["images"], "image")
    assert info["categories_from"] == "sub-folders" and info["categories"] == {"city": 2, "coast": 2, "forest": 2}
    aud, info = list_items(media["audio"], "audio")
    assert "manifest" in info["categories_from"] and {a.group for a in aud} == {f"{c}-{k}" for c in ("jazz", "rock", "folk") for k in (0, 1)}
    few, info = list_items(media["images"], "image", limit=3, seed=5)
    assert sorted(i.category for i in few) == ["city", "coast", "forest"]
    assert few == list_items(media["images"], "image", limit=3, seed=5)[0]
    with pytest.raises(DeltaV2AError, match="no category column 'genre'"):
        list_items(media["audio"], "audio", categories="manifest", category_column="genre")
    with pytest.raises(DeltaV2AError, match="not a folder"):
        list_items(tmp_path / "nope", "image")


def test_extract_writes_one_row_per_item_effect_intensity(extracted):
    from deltav2a.analysis.extract import load_extract

    d = load_extract(extracted)
    img, aud = d["image"], d["audio"]
    assert len(img) == 6 * 4 * 3 and len(aud) == 6 * 4 * 3
    assert img.effects == ["blur", "brightness", "saturation", "contrast"]
    assert aud.effects == ["lpf", "highshelf", "saturation", "reverb"]
    assert img.labels == ["low", "mid", "high"] and img.intensity_of("mid") == 0.5
    np.testing.assert_allclose(img.delta, img.augmented - img.original, atol=1e-6)
    # every item has one original embedding, whatever the effect
    for item in set(img.item.tolist()):
        rows = img.original[img.item == item]
        assert np.array_equal(rows, np.repeat(rows[:1], len(rows), axis=0))
    assert img.delta.shape[1] == 19 and aud.delta.shape[1] == 24
    assert np.linalg.norm(aud.delta, axis=1).min() > 0


def test_extract_resumes_refuses_another_setup_and_is_deterministic(media, tmp_path):
    import pyarrow.parquet as pq

    from deltav2a.analysis.extract import SHARDS, deltas_path

    cfg = _cfg(extract={"block_size": 2}, effects={"image": ["blur", "contrast"], "audio": ["lpf"]})
    _extract(media, tmp_path, cfg)
    first = pq.read_table(deltas_path(tmp_path, "image"))
    shards = sorted((tmp_path / SHARDS / "image").glob("block-*.parquet"))
    assert len(shards) == 3
    stamp = shards[0].stat().st_mtime_ns
    shards[1].unlink()
    logs = []
    _extract(media, tmp_path, cfg, log=logs.append)
    assert any("resumed, 2 of 3 blocks" in line for line in logs)
    assert shards[0].stat().st_mtime_ns == stamp and shards[1].is_file()
    assert pq.read_table(deltas_path(tmp_path, "image")).equals(first)
    other = _cfg(extract={"block_size": 2}, effects={"image": ["blur"], "audio": ["lpf"]})
    with pytest.raises(DeltaV2AError, match="another setup.*--overwrite"):
        _extract(media, tmp_path, other)
    _extract(media, tmp_path, other, overwrite=True)
    assert pq.read_table(deltas_path(tmp_path, "image")).num_rows == 6 * 3
    fresh = tmp_path / "again"
    _extract(media, fresh, cfg)
    assert pq.read_table(deltas_path(fresh, "image")).equals(first)


def test_extract_skips_unreadable_files_with_a_record(media, tmp_path):
    import shutil

    from deltav2a.analysis.extract import list_items, read_manifest, run_extract

    folder = tmp_path / "imgs"
    shutil.copytree(media["images"], folder)
    (folder / "city" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    items, _ = list_items(folder, "image")
    cfg = _cfg(effects={"image": ["blur"], "audio": ["lpf"]}, intensities={"x": 0.5})
    run_extract(tmp_path / "out", cfg, items)
    rec = read_manifest(tmp_path / "out")["image"]
    assert rec["rows"] == 6 and [s["item"] for s in rec["skipped"]] == ["city/broken.png"]


# ------------------------------------------------------------------ sensitivity


def test_sensitivity_from_the_extract_matches_the_deltas(extracted):
    from deltav2a.analysis.extract import load_extract
    from deltav2a.analysis.sensitivity import extract_sensitivity

    rows = extract_sensitivity(extracted, 0.01)
    assert len(rows) == 2 * 4 * 3
    d = load_extract(extracted)["audio"]
    r = next(r for r in rows if r["modality"] == "audio" and r["effect"] == "reverb" and r["intensity_label"] == "high")
    norms = np.linalg.norm(d.delta[d.select("reverb", "high")].astype(np.float64), axis=1)
    assert r["n"] == 6 and r["mean"] == pytest.approx(norms.mean()) and r["max"] == pytest.approx(norms.max())
    assert r["intensity"] == pytest.approx(0.9) and r["sensitive"] == (norms.mean() > 0.01)


def test_sensitivity_command_reads_an_extract(extracted, tmp_path):
    from conftest import run_cli

    res = run_cli("sensitivity", "--from-extract", str(extracted), "-o", str(tmp_path))
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "sensitivity_results.json").read_text())
    assert len(data["results"]) == 24 and data["n_images"] == 6 and (tmp_path / "sensitivity.png").is_file()
    res = run_cli("sensitivity", "--from-extract", str(extracted), "--images", str(tmp_path))
    assert res.returncode == 2 and "give one or the other" in res.stderr


# ------------------------------------------------------------------ linearity


def _deltaset(delta, effect, label, category):
    from deltav2a.analysis.extract import DeltaSet

    n = len(delta)
    arr = lambda v: np.asarray(v if isinstance(v, list) else [v] * n, dtype=object)  # noqa: E731
    return DeltaSet("image", "test", arr(effect), arr(label), np.full(n, 0.5), arr(category), arr("g"),
                    arr([f"i{k}" for k in range(n)]), np.zeros_like(delta), delta, delta, {})


def test_pairwise_cosine_and_linearity_verdicts():
    from deltav2a.analysis.linearity import cross_category, mean_pairwise_cosine, unit_rows, within_category
    from deltav2a.analysis.settings import Thresholds

    rng = np.random.default_rng(0)
    u, _ = unit_rows(rng.normal(size=(7, 5)))
    brute = np.mean([u[i] @ u[j] for i in range(7) for j in range(i + 1, 7)])
    assert mean_pairwise_cosine(u) == pytest.approx(brute)
    d = np.array([1.0, 2.0, 0.0])
    same = np.stack([d * s for s in (1.0, 1.05, 0.95)])          # one direction, CV 0.05
    spread = rng.normal(size=(3, 3))                               # random directions
    near = np.stack([d + [0, 0, 0.3], d - [0, 0, 0.3], d * 1.1])   # close to d
    delta = np.concatenate([same, spread, near, np.zeros((1, 3))])
    ds = _deltaset(delta, "fx", "mid", ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"])
    th = Thresholds()
    rows = within_category(ds, th)
    cats = {c["category"]: c for c in rows[0]["categories"]}
    assert cats["a"]["mean_cosine"] == pytest.approx(1.0) and cats["a"]["consistent"]
    assert cats["a"]["cv"] == pytest.approx(0.05)
    assert not cats["b"]["direction_consistent"]
    assert rows[0]["skipped_categories"] == [{"category": "d", "usable": 0, "zero_deltas": 1}]
    cross = {r["intensity_label"]: r for r in cross_category(ds, th)}["mid"]
    assert cross["categories"] == ["a", "b", "c"] and cross["n_pairs"] == 3
    C = np.asarray(cross["cosine_matrix"])
    assert cross["variance"] == pytest.approx(np.var([C[0, 1], C[0, 2], C[1, 2]]), abs=1e-5)
    two = _deltaset(np.concatenate([same, near]), "fx", "mid", ["a"] * 3 + ["c"] * 3)
    r2 = cross_category(two, th)[0]
    assert r2["invariant"] is None and "at least 3" in r2["note"]


def test_linearity_files(extracted, tmp_path):
    from deltav2a.analysis.extract import load_extract
    from deltav2a.analysis.linearity import run_linearity
    from deltav2a.analysis.settings import Thresholds

    run_linearity(load_extract(extracted), Thresholds(), tmp_path)
    res = json.loads((tmp_path / "linearity_results.json").read_text())
    assert len(res["results"]) == 24 and res["thresholds"]["min_cosine"] == 0.8
    cross = json.loads((tmp_path / "cross_category_variance.json").read_text())
    assert len(cross["results"]) == 2 * 4 * 4  # three intensities + pooled
    assert all(r["n_pairs"] == 3 for r in cross["results"])
    assert (tmp_path / "linearity.png").stat().st_size > 1000


# ------------------------------------------------------------------ discover


def test_text_reader_places_neutral_prompts_at_zero_and_reports_unknown_words():
    from deltav2a.analysis.discover import TextReader, base_template, text_anchor
    from deltav2a.style.encoding import load_encoder

    assert base_template("A {synonym} photo of {category}") == "A photo of {category}"
    enc = load_encoder("perceptual-image", "image")
    r = TextReader(enc)
    vec, rep = text_anchor(r, ["blurry", "zorgly"], ["A {synonym} photo of {category}"], ["sea", "qwxq"])
    assert not np.any(r["A photo of sea"]) and "A photo of sea" in r.zero
    assert rep["used"] == {"blurry": 2} and rep["without_direction"] == ["zorgly"]
    assert {"zorgly", "qwxq"} <= {w for ws in r.unknown.values() for w in ws}
    np.testing.assert_allclose(vec, enc.encode_text(["blurry"])[0], atol=1e-6)


def test_cell_report_defines_chance():
    from deltav2a.analysis.discover import cell_report

    M = np.array([[0.5, 0.1, -0.2], [0.3, 0.4, 0.0]])
    r = cell_report(M, ["blur", "brightness"], ["lpf", "highshelf", "reverb"], "blur", "lpf")
    assert r["row_rank"] == 1 and r["col_rank"] == 1 and r["above_chance"]
    assert r["z"] == pytest.approx((0.5 - M.mean()) / M.std())
    r = cell_report(M, ["blur", "brightness"], ["lpf", "highshelf", "reverb"], "brightness", "lpf")
    assert r["row_rank"] == 2 and r["above_matrix_mean"] and not r["above_chance"]


def test_discover_writes_the_matrix_and_its_components(extracted, tmp_path):
    import shutil

    from deltav2a.analysis.discover import run_discover
    from deltav2a.analysis.extract import load_extract

    folder = tmp_path / "d"
    shutil.copytree(extracted, folder)
    res = run_discover(load_extract(folder), _cfg(), folder)
    M = np.load(folder / "discovery_matrix.npy")
    labels = json.loads((folder / "discovery_labels.json").read_text())
    assert M.shape == (4, 4) and labels["image_effects"][0] == "blur" and labels["audio_effects"][0] == "lpf"
    np.testing.assert_allclose(M, res["sim1"][:, None] * res["sim2"][None, :] * res["sim3"])
    assert np.all(np.abs(M) <= 1) and (folder / "discovery_heatmap.png").stat().st_size > 1000
    full = json.loads((folder / "discovery_results.json").read_text())
    assert set(full["by_intensity"]) == {"low", "mid", "high"}
    assert "contrasty" in full["text"]["image"]["unknown_words"]  # reported, not fatal
    assert [p["image_effect"] for p in full["note_pairs"]] == ["blur", "brightness"]


def test_discover_refuses_deltas_of_another_encoder(extracted):
    from deltav2a.analysis.discover import run_discover
    from deltav2a.analysis.extract import load_extract

    d = load_extract(extracted)
    d["image"].plan["encoder"]["fingerprint"] = "something-else"
    with pytest.raises(DeltaV2AError, match="extracted with encoder 'perceptual-image'"):
        run_discover(d, _cfg(), extracted / "never")


# ------------------------------------------------------------------ decoder


def test_mel_distance_and_target_parameters():
    from deltav2a.analysis.decoder import log_mel, mel_distance, split_groups, target_params
    from deltav2a.model.layout import ParamLayout

    x = _tone(440.0, 1.0)
    a = log_mel(x, SR)
    assert a.shape[1] == 64 and mel_distance(a, a) == 0.0
    assert mel_distance(a, log_mel(_tone(3000.0, 1.0), SR)) > 5
    noise = np.random.default_rng(0).normal(0, 0.1, (1, SR)).astype(np.float32)
    # every band of white noise is above the floor: half the amplitude is 6.02 dB everywhere
    assert mel_distance(log_mel(noise, SR), log_mel(0.5 * noise, SR)) == pytest.approx(6.02, abs=0.01)
    layout = ParamLayout.from_names(["lpf", "highshelf", "saturation", "reverb"])
    rng = np.random.default_rng(0)
    t = target_params(layout, "lpf", 1.0, rng, 0.0)
    assert t[layout.param_index("lpf.cutoff_hz")] == pytest.approx(0.0)          # far end: 100 Hz
    others = [j for j in range(layout.n_params) if j not in layout.effect_params("lpf")]
    np.testing.assert_allclose(t[others], layout.bypass_array()[others])
    assert len(split_groups(list("abcdefghij"), 0.2, 0)) == 2
    with pytest.raises(DeltaV2AError, match="at least 2 groups"):
        split_groups(["a", "a"], 0.2, 0)


def test_decoder_learns_the_strength_from_its_condition():
    """On data whose target is a function of the condition, the decoder beats the mean."""
    from deltav2a.analysis.decoder import DecoderData, _predict, train
    from deltav2a.analysis.settings import DecoderSettings

    rng = np.random.default_rng(0)
    n = 256
    x = rng.uniform(0, 1, n).astype(np.float32)
    text = np.tile(np.float32([1, 0, 0, 0]), (n, 1))
    text[n // 2:] = [0, 1, 0, 0]
    target = np.stack([np.where(text[:, 0] > 0, x, 0.5), np.where(text[:, 1] > 0, 1 - x, 0.5)], 1).astype(np.float32)
    val = np.arange(n) % 5 == 0
    data = DecoderData(rng.normal(size=(n, 6)).astype(np.float32), np.concatenate([text, x[:, None]], 1), target,
                       np.arange(n), x, [("a", "b")] * n, ["s"] * n, val, [], [])
    s = DecoderSettings(epochs=40, lr=3e-3, batch_size=32, d_model=16, heads=2, hidden=[32], dropout=0.0)
    model, log, best = train(data, 2, s, seed=1)
    mse = float(np.mean((_predict(model, data.audio[val], data.condition[val]) - target[val]) ** 2))
    base = float(np.mean((target[~val].mean(0) - target[val]) ** 2))
    assert mse < 0.25 * base, (mse, base)
    assert log[best - 1]["val_mse"] == min(r["val_mse"] for r in log)
    again, _, _ = train(data, 2, s, seed=1)
    for (k, v), w in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k


def test_decoder_step_trains_saves_and_reloads(extracted, tmp_path):
    import shutil

    from deltav2a.analysis.decoder import load_decoder, run_decoder
    from deltav2a.analysis.discover import run_discover
    from deltav2a.analysis.extract import load_extract, read_deltas
    from deltav2a.render.settings import ChainSettings
    from deltav2a.style.encoding import load_encoder

    folder = tmp_path / "d"
    shutil.copytree(extracted, folder)
    cfg = _cfg()
    run_discover(load_extract(folder), cfg, folder)
    summary = run_decoder(folder, cfg)
    out = folder / "decoder"
    log = json.loads((out / "training_log.json").read_text())
    assert len(log["epochs"]) == 3 and summary["n_train"] + summary["n_val"] == 6 * 6
    preds = json.loads((out / "parameter_predictions" / "predictions.json").read_text())
    assert len(preds) == 3 and set(preds[0]["distance_db"]) == {"predicted", "mean_baseline", "unprocessed"}
    assert set(preds[0]["predicted"]) == {"lpf", "highshelf", "saturation", "reverb"}
    enc = load_encoder("perceptual-audio", "audio")
    dec = load_decoder(out, enc)
    meta = json.loads((out / "decoder.json").read_text())
    assert meta["encoder"]["name"] == "perceptual-audio" and meta["condition_dim"] == 24 + 1
    aud = read_deltas(folder / "audio_deltas.parquet")
    raw = dec.predict(aud.original[0], enc.encode_text(["a blurry photo"])[0], 0.7)
    assert isinstance(raw, ChainSettings)  # the decoder answers in the one chain-settings type
    assert raw.effects == ["lpf", "highshelf", "saturation", "reverb"]
    assert 100 <= raw.to_dict()["lpf"]["cutoff_hz"] <= 20000
    assert ChainSettings.parse(raw.specs()) == raw
    # the report's "predicted" is the same type's mapping form, values in range
    assert ChainSettings.from_dict(preds[0]["predicted"]).effects == raw.effects
    with pytest.raises(DeltaV2AError, match="strength input"):
        dec.predict(aud.original[0], enc.encode_text(["a blurry photo"])[0])
    with pytest.raises(DeltaV2AError, match="trained with audio encoder"):
        load_decoder(out, load_encoder("perceptual-image", "image"))
    (out / "decoder.safetensors").write_bytes(b"junk")
    with pytest.raises(DeltaV2AError, match="not the weights file"):
        load_decoder(out)


def test_text_only_decoder_of_the_note(extracted, tmp_path):
    import shutil

    from deltav2a.analysis.decoder import load_decoder, run_decoder
    from deltav2a.analysis.discover import run_discover
    from deltav2a.analysis.extract import load_extract, read_deltas
    from deltav2a.style.encoding import load_encoder

    folder = tmp_path / "d"
    shutil.copytree(extracted, folder)
    cfg = _cfg(decoder={"use_strength": False})
    run_discover(load_extract(folder), cfg, folder)
    run_decoder(folder, cfg)
    dec = load_decoder(folder / "decoder")
    assert dec.meta["condition_dim"] == 24 and "strength" not in dec.meta["condition"]
    enc = load_encoder("perceptual-audio", "audio")
    aud = read_deltas(folder / "audio_deltas.parquet")
    assert set(dec.predict(aud.original[0], enc.encode_text(["muffled"])[0]).effects) == {"lpf", "highshelf",
                                                                                           "saturation", "reverb"}


# ------------------------------------------------------------------ CLI and the whole pipeline


def _app():
    import typer

    from deltav2a.cli.analysis_cmd import register

    app = typer.Typer()
    register(app)
    return app


def test_all_command_runs_every_step_and_reports(media, tmp_path):
    from typer.testing import CliRunner

    cfg = tmp_path / "analysis.yaml"
    cfg.write_text("decoder: {epochs: 2, samples_per_clip: 4, val_render_limit: 2}\naudio: {max_duration: 5}\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(_app(), ["analysis", "all", "--images", str(media["images"]), "--audio",
                                      str(media["audio"]), "-o", str(out), "-c", str(cfg), "--limit", "4"])
    assert res.exit_code == 0, res.output
    for name in ("image_deltas.parquet", "audio_deltas.parquet", "sensitivity_results.json",
                 "linearity_results.json", "cross_category_variance.json", "discovery_matrix.npy",
                 "discovery_labels.json", "discovery_heatmap.png", "decoder/decoder.safetensors",
                 "decoder/training_log.json", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert "summary" in res.output and "checks failed" in res.output
    assert all(f"warning: {w}" in res.output for w in summary["warnings"])
    assert summary["numbers"]["sensitivity"]["cells"] == 24
    res = CliRunner().invoke(_app(), ["analysis", "linearity", "-o", str(out)])
    assert res.exit_code == 0 and "linearity:" in res.output
    res = CliRunner().invoke(_app(), ["analysis", "all", "--images", str(media["images"])])
    assert isinstance(res.exception, DeltaV2AError) and "--audio" in str(res.exception)
    res = CliRunner().invoke(_app(), ["analysis", "discover", "-o", str(tmp_path / "empty")])
    assert isinstance(res.exception, DeltaV2AError) and "run `deltav2a analysis extract` first" in str(res.exception)


def test_config_file_matches_the_defaults():
    from deltav2a.analysis.settings import AnalysisConfig, load_analysis_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_analysis_config(root / "configs" / "analysis.yaml")
    default = AnalysisConfig()
    assert cfg.model_dump(exclude={"discover"}) == default.model_dump(exclude={"discover"})
    assert cfg.discover.image_templates == default.discover.image_templates
    assert cfg.thresholds.min_distance == 0.01 and cfg.intensities == {"low": 0.25, "mid": 0.5, "high": 0.9}
    with pytest.raises(DeltaV2AError, match="has no {synonym} slot"):
        load_analysis_config(None, {"discover": {"image_templates": ["A photo"]}})


@pytest.mark.shared_data
def test_blur_meets_lowpass_on_the_dev_corpus(shared_data, tmp_path):
    """Acceptance: on real photos and music the discovery matrix ranks lpf first for blur."""
    from deltav2a.analysis.discover import run_discover
    from deltav2a.analysis.extract import list_items, load_extract, run_extract
    from deltav2a.analysis.settings import load_analysis_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_analysis_config(root / "configs" / "analysis.yaml", {"audio": {"max_duration": 5.0}})
    img, _ = list_items(shared_data / "images", "image", limit=8, seed=0)
    aud, _ = list_items(shared_data / "music", "audio", limit=8, seed=0)
    run_extract(tmp_path, cfg, img, aud)
    res = run_discover(load_extract(tmp_path), cfg, tmp_path)
    blur_lpf = next(p for p in res["note_pairs"] if p["image_effect"] == "blur")
    assert blur_lpf["above_chance"], blur_lpf
    assert res["best_audio_for_image"]["blur"] == "lpf"


# ------------------------------------------------------------------ randomly initialised CLIP / CLAP


try:  # the random-weight checkpoints are built by the CLIP/CLAP tests' own fixtures
    from test_clip_clap import TINY_CLIP, clap_files, clip_files  # noqa: F401
except (ImportError, pytest.skip.Exception):  # pragma: no cover - open_clip/laion_clap missing
    TINY_CLIP = None


@pytest.fixture(scope="module")
def clip_clap(request):
    if TINY_CLIP is None:
        pytest.skip("open_clip / laion_clap are not installed")
    clip = request.getfixturevalue("clip_files")
    clap = request.getfixturevalue("clap_files")
    return {"image": {"name": "clip", "options": {"model": TINY_CLIP, "pretrained": "",
                                                  "checkpoint": str(clip["pt"]), "device": "cpu"}},
            "audio": {"name": "clap", "options": {"amodel": "HTSAT-tiny", "checkpoint": str(clap["pt"]),
                                                  "text_model_dir": str(clap["text_dir"]), "device": "cpu"}}}


@pytest.mark.slow
def test_all_steps_run_with_random_clip_and_clap(media, clip_clap, tmp_path):
    from deltav2a.analysis.extract import list_items, load_extract
    from deltav2a.analysis.pipeline import run_all

    cfg = _cfg(encoders=clip_clap, effects={"image": ["blur", "brightness"], "audio": ["lpf", "reverb"]},
               intensities={"low": 0.25, "high": 0.9}, decoder={"epochs": 2, "samples_per_clip": 4})
    img, ii = list_items(media["images"], "image")
    aud, ai = list_items(media["audio"], "audio", limit=4)
    report = run_all(tmp_path, cfg, img, aud, {"image": ii, "audio": ai}, echo=lambda s: None)
    d = load_extract(tmp_path)
    assert d["image"].delta.shape == (6 * 2 * 2, 32) and d["audio"].delta.shape == (4 * 2 * 2, 512)
    norms = np.linalg.norm(d["image"].original, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)  # CLIP vectors are unit length
    M = np.load(tmp_path / "discovery_matrix.npy")
    assert M.shape == (2, 2) and np.isfinite(M).all()
    meta = json.loads((tmp_path / "decoder" / "decoder.json").read_text())
    assert meta["encoder"]["name"] == "clap" and meta["condition_dim"] == 512 + 1
    assert any(line.startswith("decoder:") for line in report.lines)
