"""Issue 11's CLI details: 80-column listing, plugin-info by kind, image-effect parameters,
`--effect` order, the term cache under DELTAV2A_HOME and unknown vocabulary words."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from deltav2a.media.examples import groove, landscape_image

    d = tmp_path_factory.mktemp("auth")
    landscape_image(160, 120).save(d / "photo.png")
    sf.write(d / "in.wav", groove(2.0, 44100).T, 44100)
    return d


def test_list_plugins_fits_80_columns_and_json_has_parameters():
    res = run_cli("list-plugins", env={"COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("motion_blur ") and line.rstrip().endswith("…") for line in lines)
    data = json.loads(run_cli("list-plugins", "--json").stdout)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert [p["name"] for p in by_name["motion_blur"]["params"]] == ["intensity", "angle"]
    assert "cutoff_hz" in [p["name"] for p in by_name["lowpass"]["params"]]
    assert "hidden_dims" in [o["name"] for o in by_name["mlp"]["options"]]


def test_plugin_info_by_kind():
    v = run_cli("plugin-info", "v3", "--json")
    info = json.loads(v.stdout)
    assert len(info["terms"]) == 24 and "{word}" in info["templates"]["audio"][0]
    text = run_cli("plugin-info", "v3").stdout
    assert "terms (24): granular, polished" in text and "audio templates:" in text
    enc = run_cli("plugin-info", "perceptual-audio").stdout
    assert "encoders.audio.options" in enc and "normalisation" in enc
    ctl = run_cli("plugin-info", "ar").stdout
    assert "controller.options" in ctl and "max_steps" in ctl


def test_image_effect_parameters(media, tmp_path):
    outs = {}
    for angle in ("0", "90"):
        out = tmp_path / f"mb{angle}.png"
        res = run_cli("apply-image", str(media / "photo.png"), "--effect", f"motion_blur:angle={angle},intensity=0.9",
                      "-o", str(out))
        assert res.returncode == 0, res.stderr
        outs[angle] = out
    from PIL import Image

    a, b = (np.asarray(Image.open(outs[k]).convert("L"), dtype=np.float64) for k in ("0", "90"))
    # horizontal streaks smooth along rows, vertical ones along columns
    assert np.abs(np.diff(a, axis=1)).mean() < np.abs(np.diff(b, axis=1)).mean()
    assert np.abs(np.diff(b, axis=0)).mean() < np.abs(np.diff(a, axis=0)).mean()
    res = run_cli("apply-image", str(media / "photo.png"), "--effect", "motion_blur:angel=9", "-o",
                  str(tmp_path / "bad.png"))
    assert res.returncode == 2 and "has no parameter 'angel'" in res.stderr and not (tmp_path / "bad.png").exists()


def test_effect_flags_set_the_chain_order(media, tmp_path):
    infos = {}
    for name, extra in (("given", []), ("explicit", ["--order", "lowpass,distortion"])):
        info = tmp_path / f"{name}.json"
        res = run_cli("apply-audio", str(media / "in.wav"), "--effect", "distortion:drive_db=30", "--effect",
                      "lowpass:cutoff_hz=500", *extra, "-o", str(tmp_path / f"{name}.wav"), "--info", str(info))
        assert res.returncode == 0, res.stderr
        infos[name] = [e["effect"] for e in json.loads(info.read_text())["effects"]]
    assert infos == {"given": ["distortion", "lowpass"], "explicit": ["lowpass", "distortion"]}
    a, _ = sf.read(tmp_path / "given.wav")
    b, _ = sf.read(tmp_path / "explicit.wav")
    n = min(len(a), len(b))
    assert np.abs(a[:n] - b[:n]).mean() > 1e-4  # distortion does not commute with a filter: the order is audible


def test_user_vocabulary_unknown_words_and_home_cache(tmp_path):
    home = tmp_path / "home"
    (home / "vocabularies").mkdir(parents=True)
    (home / "vocabularies" / "mine.yaml").write_text(
        "summary: test\nterms: [calm, agitatd, deep, thinn, crisp, zorblax]\n"
        "templates:\n  image: ['a {word} image']\n  audio: ['a {word} sound']\n")
    env = {"DELTAV2A_HOME": str(home), "DELTAV2A_CACHE": ""}
    res = run_cli("vocab", "embed", "mine", env=env)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    for word, near in (("agitatd", "agitated"), ("thinn", "thin")):
        assert f"'{word}' (nearest known: {near}" in res.stderr
    assert "'zorblax'" in res.stderr and "3 of 6 terms" in res.stderr
    (home / "vocabularies" / "mine.yaml").write_text(
        "summary: test\nterms: [calm, agitated, deep, thin]\n"
        "templates:\n  image: ['a {word} image']\n  audio: ['a {word} sound']\n")
    res = run_cli("vocab", "embed", "mine", env=env)
    assert res.returncode == 0, res.stderr
    # one file per modality, named by a hash of (encoder, vocabulary) fingerprints only
    assert sorted(p.name.split("-")[0] for p in (home / "cache" / "term_embeddings").glob("*.npy")) == ["audio", "image"]
