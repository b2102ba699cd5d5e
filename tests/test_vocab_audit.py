"""`deltav2a vocab audit`: effect x term matrices, reach, sinks and the oracle (issue 16)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from deltav2a import vocab_audit as va

try:  # the random-weight CLIP/CLAP fixtures, where torch and open_clip are installed
    from test_clip_clap import clap_files, clip_files  # noqa: F401
except pytest.skip.Exception:
    clap_files = clip_files = None


def _emb(modality: str, effects: list[str], moves: dict[str, np.ndarray], n: int = 4, seed: int = 0):
    """Embeddings whose every edit moves by a known direction (plus a little noise)."""
    rng = np.random.default_rng(seed)
    D = len(next(iter(moves.values())))
    before = rng.normal(size=(n, D)).astype(np.float32)
    xs = [0.35, 0.9]
    after = np.empty((len(effects), len(xs), n, D), np.float32)
    for e, name in enumerate(effects):
        for i, x in enumerate(xs):
            after[e, i] = before + x * moves[name] + 0.01 * rng.normal(size=(n, D))
    return va.EffectEmbeddings(modality, {"name": f"toy-{modality}", "fingerprint": "toy"}, effects, xs,
                               before, after)


def test_audit_finds_readings_sinks_unreachable_terms_and_the_oracle():
    terms = ["a", "b", "c", "d"]
    V = np.eye(4, dtype=np.float32)
    e = np.eye(4, dtype=np.float32)
    img = _emb("image", ["blur", "streak"], {"blur": e[0], "streak": e[1]})
    # three audio effects all read "a" first: a sink; nothing gives "b" any mass: unreachable
    aud = _emb("audio", ["lp", "lp2", "crush", "hp"],
               {"lp": e[0], "lp2": e[0] + 0.3 * e[2], "crush": e[0] + 0.3 * e[3], "hp": e[3] - e[1]})
    r = va.audit_from_embeddings(img, aud, V, V, terms, 0.1, n_pairs=40, seed=3)
    assert r["matrix"]["image"]["blur"]["top"][0][0] == "a"
    assert r["matrix"]["image"]["streak"]["top"][0][0] == "b"
    assert r["matrix"]["audio"]["hp"]["top"][0][0] == "d"
    for m in ("image", "audio"):
        for row in r["matrix"][m].values():
            assert sum(row["label"]) == pytest.approx(1.0, abs=1e-4)
            assert 0 <= row["entropy_bits"] <= 2.0 + 1e-9
            assert set(row["intensities"]) == {"0.35", "0.9"}
    assert set(r["sinks"]["audio"]) == {"a"} and set(r["sinks"]["audio"]["a"]) == {"lp", "lp2", "crush"}
    assert r["checks"]["no_audio_sink"] is False
    assert r["reach"]["audio"]["b"]["max_mass"] < 0.05
    assert r["unreachable_on_audio"] == ["b"]
    assert r["reach"]["audio"]["d"]["effect"] == "hp"
    # "blur" pairs are matched by an "a" effect, never by hp; the centred cosine is high for
    # them and the streak pairs cannot be matched (no audio effect pushes "b" up)
    o = r["oracle"]
    assert o["n_pairs"] == 40 and len(o["pairs"]) == 40
    assert "hp" not in o["best_audio_effect_per_image_effect"]["blur"]
    blur = [p["centred_cosine"] for p in o["pairs"] if p["image_effect"] == "blur"]
    streak = [p["centred_cosine"] for p in o["pairs"] if p["image_effect"] == "streak"]
    assert min(blur) > 0.9 and max(streak) < 0.5
    assert o["mean_cosine"] == pytest.approx(np.mean(blur + streak), abs=0.02)
    # a two-effect chain that reaches "b" makes it reachable
    pairs = _emb("audio", ["lp+hp"], {"lp+hp": e[1]})
    r2 = va.audit_from_embeddings(img, aud, V, V, terms, 0.1, n_pairs=10, pairs=pairs)
    assert r2["unreachable_on_audio"] == [] and r2["reach"]["audio_pairs"]["b"]["max_mass"] > 0.9
    md = va.markdown(r2)
    assert "| audio effect | reads as |" in md and "two-effect chain max" in md and "Oracle" in md
    json.dumps(r2, allow_nan=False)


def test_min_mass_keeps_tails_out_of_the_readings():
    matrix = {"x": {"top": [["g", 0.97], ["t", 0.02]]}, "y": {"top": [["p", 0.6], ["t", 0.2]]},
              "z": {"top": [["q", 0.5], ["t", 0.3]]}}
    assert va.sink_terms(matrix, 2, 0.7) == {"t": ["x", "y", "z"]}
    assert va.sink_terms(matrix, 2, 0.7, min_mass=0.05) == {}
    assert va.readings(matrix, 2, 0.05)["t"] == ["y", "z"]


def test_two_way_effects_get_a_down_row():
    from deltav2a.plugins import get

    rows = va.audio_effect_rows(["lowpass", "reverb", "playback_rate"])
    assert rows == ["lowpass", "reverb", "playback_rate", "playback_rate:down"]
    down = va.params_down_at_intensity(get("audio_effect", "playback_rate"), 0.9)
    up = get("audio_effect", "playback_rate").params_at_intensity(0.9)
    assert down["rate"] < 1.0 < up["rate"] and down["rate"] == pytest.approx(1 / up["rate"], rel=1e-6)
    assert va.params_down_at_intensity(get("audio_effect", "reverb"), 0.5) is None
    assert "playback_rate+playback_rate:down" not in va.pair_rows(rows)
    assert "lowpass+playback_rate:down" in va.pair_rows(rows)


def test_cli_audits_the_perceptual_encoders_on_generated_media(tmp_path):
    out = tmp_path / "audit"
    r = run_cli("vocab", "audit", "-o", str(out), "--intensities", "0.4,0.9", "--oracle-pairs", "12")
    assert r.returncode == 0, r.stderr
    assert "oracle single-effect agreement: centred cosine" in r.stdout
    res = json.loads((out / "vocab_audit.json").read_text())
    assert res["encoders"]["audio"]["name"] == "perceptual-audio"
    assert res["vocabulary"]["name"] == "v3" and len(res["terms"]) == 24
    assert list(res["matrix"]["audio"]) == ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay",
                                           "stutter", "playback_rate", "playback_rate:down"]
    # the stutter gate is what "fragmented" stands on (lexicon v3, gap_depth)
    assert "fragmented" in [t for t, _ in res["matrix"]["audio"]["stutter"]["top"][:2]]
    assert list(res["matrix"]["image"])[0] == "adaptive_blur"
    # the readings the lexicon is built for, even on synthetic grooves and landscapes
    assert "granular" in [t for t, _ in res["matrix"]["audio"]["bitcrush"]["top"][:2]]
    assert "granular" in [t for t, _ in res["matrix"]["image"]["add_noise"]["top"][:2]]
    assert res["oracle"]["n_pairs"] == 12 and -1 <= res["oracle"]["mean_cosine"] <= 1
    assert (out / "vocab_audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| audio effect | reads as |" in (out / "vocab_audit.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--images", "/nonexistent/photos"], "not a folder"),
    (["--intensities", "0,0.5"], "0 is no edit"),
    (["--intensities", "abc"], "comma-separated"),
    (["--vocab", "nosuchvocab"], "vocabulary"),
    (["--sink-share", "1.5"], "--sink-share"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    out = tmp_path / "audit"
    r = run_cli("vocab", "audit", "-o", str(out), *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:") and message in lines[-1], r.stderr
    assert "Traceback" not in r.stderr
    assert not (out / "vocab_audit.json").exists()


@pytest.mark.filterwarnings("ignore")
def test_audit_runs_on_random_weight_clip_and_clap(tmp_path, request):
    """Any encoder pair: CLIP and CLAP built with random weights (as in test_clip_clap)."""
    if clip_files is None:
        pytest.skip("torch / open_clip are not installed")
    clip_files_, clap_files_ = request.getfixturevalue("clip_files"), request.getfixturevalue("clap_files")
    from deltav2a.config import load_config

    cfg = load_config(None, {
        "encoders": {"image": {"name": "clip", "options": {"checkpoint": str(clip_files_["folder"]),
                                                           "device": "cpu", "batch_size": 4}},
                     "audio": {"name": "clap", "options": {"amodel": "HTSAT-tiny",
                                                           "checkpoint": str(clap_files_["safetensors"]),
                                                           "text_model_dir": str(clap_files_["text_dir"]),
                                                           "device": "cpu", "batch_size": 4}}},
        "effects": {"image": ["adaptive_blur", "add_noise"], "audio": ["lowpass", "bitcrush", "playback_rate"]}})
    r = va.run_audit(cfg, intensities=(0.5, 0.9), n_pairs=8, generated=(2, 2, 3.0))
    assert r["encoders"]["image"]["fingerprint"].startswith("clip/")
    assert r["encoders"]["audio"]["name"] == "clap"
    assert list(r["matrix"]["audio"]) == ["lowpass", "bitcrush", "playback_rate", "playback_rate:down"]
    for m in ("image", "audio"):
        for row in r["matrix"][m].values():
            assert sum(row["label"]) == pytest.approx(1.0, abs=1e-4) and np.isfinite(row["entropy_bits"])
        assert all(0 <= v["max_mass"] <= 1 for v in r["reach"][m].values())
    assert np.isfinite(r["oracle"]["mean_cosine"]) and r["oracle"]["n_pairs"] == 8
    va.write_outputs(r, tmp_path / "clipclap")
    assert (tmp_path / "clipclap" / "vocab_audit.png").stat().st_size > 0
