"""The drum task's acoustic features (ours, beyond the note's nine) on synthetic hits with
known answers, the register terms, and the `acoustic` preset that uses them: a tom is a
pitched membrane ringing at 80-250 Hz, a kick a pitched body below 75 Hz whose pitch drops,
a snare a noisy burst over a body, a hat noisy metal, a texture a swell that keeps sounding."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli

from deltav2a.drums.config import RoleAssignerConfig
from deltav2a.drums.features import _register, extract, rule_terms
from deltav2a.drums.preprocess import prepare
from deltav2a.drums.rules import rule_scores
from deltav2a.drums.types import DSPFeatures
from deltav2a.errors import DeltaV2AError
from test_drums import hat  # the note's noise-burst hat (20 ms decay, high-passed)

SR = 44100


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def tom(f: float = 120.0, tau: float = 0.2, seconds: float = 0.8) -> np.ndarray:
    """A tuned tom: a steady sine at f with a slowly decaying envelope (rings)."""
    t = _t(seconds)
    return (np.sin(2 * np.pi * f * t) * np.exp(-t / tau)).astype(np.float32)


def chirp_kick(seconds: float = 0.5, tau: float = 0.07) -> np.ndarray:
    """A kick: pitch drops from 150 Hz to 50 Hz within ~20 ms (phase = integral of f), fast decay."""
    t = _t(seconds)
    f = 50.0 + 100.0 * np.exp(-t / 0.02)
    phase = 2 * np.pi * np.cumsum(f) / SR
    return (np.sin(phase) * np.exp(-t / tau)).astype(np.float32)


def snare(seconds: float = 0.3, seed: int = 2) -> np.ndarray:
    """A 190 Hz body under a noise burst (the wires) whose power lies mostly in the mid band,
    as the note's ACCENT rule (mid band) describes: white noise through an 8-tap average
    (-3 dB near 2.4 kHz)."""
    rng = np.random.default_rng(seed)
    t = _t(seconds)
    body = np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same")
    noise = noise / noise.std() * np.exp(-t / 0.06)
    return (0.5 * body + 0.4 * noise).astype(np.float32)


def swell(seconds: float = 2.0, seed: int = 1) -> np.ndarray:
    """A texture: low-passed noise that fades in over 600 ms and keeps sounding."""
    rng = np.random.default_rng(seed)
    t = _t(seconds)
    x = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same")
    return (x * np.minimum(t / 0.6, 1.0)).astype(np.float32)


def feats(x: np.ndarray, cfg: RoleAssignerConfig | None = None) -> DSPFeatures:
    cfg = cfg or RoleAssignerConfig()
    h = prepare(x, SR, cfg)
    return extract(h.y, h.sr, cfg)


def test_body_pitch_tonality_and_ring_of_a_tom_and_a_kick():
    ft, fk = feats(tom(120.0, tau=0.2)), feats(chirp_kick())
    assert ft.body_pitch_hz == pytest.approx(120.0, abs=2.0)
    assert 40.0 <= fk.body_pitch_hz <= 70.0                 # where the dropping pitch settles
    assert ft.tonality > 0.9                                # one steady partial holds the power
    assert fk.tonality < ft.tonality                        # the sweep spreads the kick's
    # ring to -20 dB of an exponential envelope: tau * ln(10) (+- a 64 ms envelope frame)
    assert ft.ring_time == pytest.approx(0.2 * math.log(10), abs=0.07)
    assert fk.ring_time == pytest.approx(0.07 * math.log(10), abs=0.07)
    assert ft.ring_time > 2 * fk.ring_time


def test_a_steady_sine_reads_fully_tonal_at_any_pitch():
    # the band around the partial is at least the window's main lobe, so a low sine is not
    # penalised by the frequency resolution (a kick is as "pitched" as a tom)
    for f in (45.0, 120.0, 700.0):
        x = np.sin(2 * np.pi * f * _t(0.6)).astype(np.float32)
        ff = feats(x)
        assert ff.body_pitch_hz == pytest.approx(f, abs=2.0)
        assert ff.tonality > 0.97, f


def test_noisy_hits_are_not_tonal_and_their_centroid_is_high():
    fs, fh, ft = feats(snare()), feats(hat()), feats(tom())
    assert fh.tonality < 0.1
    assert fh.tonality < fs.tonality < 0.6 < ft.tonality    # a snare: noise over a body
    assert fh.spectral_centroid_hz > 4000 > fs.spectral_centroid_hz > ft.spectral_centroid_hz
    one_k = feats(np.sin(2 * np.pi * 1000 * _t(0.5)).astype(np.float32))
    assert one_k.spectral_centroid_hz == pytest.approx(1000, rel=0.05)


def test_register_terms_split_kick_and_tom_pitch():
    cfg = RoleAssignerConfig()
    d = cfg.dsp
    assert _register(d.kick_tom_split_hz, None, d.kick_tom_split_hz, 0.5) == pytest.approx(0.5)
    assert _register(40.0, None, 75.0, 0.5) == 1.0 and _register(120.0, None, 75.0, 0.5) == 0.0
    assert _register(120.0, 75.0, 250.0, 0.5) == 1.0 and _register(500.0, 75.0, 250.0, 0.5) == 0.0
    assert _register(0.0, 75.0, 250.0, 0.5) == 0.0          # no partial found: no register
    tt, tk = rule_terms(feats(tom()), cfg), rule_terms(feats(chirp_kick()), cfg)
    assert tt["P_tom"] == 1.0 and tt["P_kick"] == 0.0 and tt["T_tom"] > 0.9
    assert tk["P_kick"] == 1.0 and tk["P_tom"] == 0.0 and tk["T_kick"] > 0.5
    assert rule_terms(feats(swell()), cfg)["A_slow"] == 1.0    # 600 ms fade-in: no strike


def test_acoustic_preset_tells_each_synthetic_hit_and_the_note_misses_the_tom():
    ac, note = RoleAssignerConfig.preset("acoustic"), RoleAssignerConfig.preset("note")
    hits = {"FILL": tom(), "CORE": chirp_kick(), "ACCENT": snare(), "MOTION": hat(), "TEXTURE": swell()}
    for role, x in hits.items():
        raw, p = rule_scores(rule_terms(feats(x, ac), ac), ac)
        assert p.argmax().value == role, (role, raw)
    # the note's rules have no pitch: a ringing 120 Hz tom is a kick to them
    _, p = rule_scores(rule_terms(feats(tom(), note), note), note)
    assert p.argmax().value == "CORE"


def test_acoustic_preset_keeps_the_note_scale_and_the_note_preset_is_untouched():
    ac, note = RoleAssignerConfig.preset("acoustic"), RoleAssignerConfig.preset("note")
    for role, w in ac.rule_scoring.weights.items():
        assert sum(w.values()) == pytest.approx(1.0)                     # like the note's
        assert sum(note.rule_scoring.weights[role].values()) == pytest.approx(1.0)
        # half the note's own terms (a signature adds, never removes, weight)
        for term, v in note.rule_scoring.weights[role].items():
            assert w[term] >= 0.5 * v - 1e-9
    acoustic_terms = {"T", "one_minus_T", "P_kick", "P_tom", "T_kick", "T_tom", "R", "R_short", "C", "A_slow"}
    assert not any(acoustic_terms & set(w) for w in note.rule_scoring.weights.values())
    assert ac.rule_scoring.temperature == 0.1 and ac.guards == note.guards and ac.fusion == note.fusion


def test_acoustic_settings_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    cases = {"dsp:\n  body_band_hz: [2000, 25]\n": "body_band_hz",
             "dsp:\n  kick_tom_split_hz: 300\n": "kick_tom_split_hz",
             "rule_scoring:\n  weights: {CORE: {pitch: 1}, ACCENT: {}, MOTION: {}, FILL: {}, TEXTURE: {}}\n": "pitch"}
    for text, problem in cases.items():
        bad.write_text(text)
        with pytest.raises(DeltaV2AError, match=problem):
            RoleAssignerConfig.from_yaml(bad)


def test_features_stay_finite_on_a_hit_that_ends_at_its_peak():
    # the body window then holds silence: no partial, tonality 0, nothing NaN
    x = np.concatenate([np.linspace(0, 1, int(0.09 * SR)) * np.sin(2 * np.pi * 300 * _t(0.09))]).astype(np.float32)
    f = feats(x)
    assert all(math.isfinite(v) for v in f.as_dict().values())
    assert 0.0 <= f.tonality <= 1.0


def test_cli_evaluate_with_the_acoustic_preset_writes_the_new_features_and_skips_bad_files(tmp_path):
    """The installed `drums evaluate --preset acoustic` on one hit of each role plus the bad
    files a sample folder holds: the five roles are told apart by the rules, the new features
    are in the CSV and JSON, the bad files are skipped and counted."""
    d = tmp_path / "hits"
    d.mkdir()
    hits = {"tom": (tom(), "FILL"), "kick": (chirp_kick(), "CORE"), "snare": (snare(), "ACCENT"),
            "hat": (hat(), "MOTION"), "swell": (swell(), "TEXTURE")}
    for name, (x, _) in hits.items():
        sf.write(d / f"{name}.wav", x, SR)
    sf.write(d / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    nan = tom()
    nan[100] = np.nan
    sf.write(d / "nan.wav", nan, SR, subtype="FLOAT")
    (d / "readme.wav").write_text("not audio")
    labels = d / "labels.csv"
    labels.write_text("file,role\n" + "".join(f"{n}.wav,{r}\n" for n, (_, r) in hits.items()))
    out = tmp_path / "eval"
    res = run_cli("drums", "evaluate", str(d), "--labels", str(labels), "-o", str(out), "--preset", "acoustic",
                  env={"DELTAV2A_CACHE": str(tmp_path / "c")})
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 5 and len(m["skipped"]) == 3
    assert m["variants"]["rules"]["accuracy"] == 1.0 and m["variants"]["rules"]["macro_f1"] == 1.0
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["rule_scoring"]["weights"]["FILL"]["T_tom"] == 0.35
    tom_row = next(r for r in csv.DictReader((out / "results.csv").open()) if r["sample_id"] == "tom")
    assert float(tom_row["body_pitch_hz"]) == pytest.approx(120.0, abs=2.0) and float(tom_row["tonality"]) > 0.9
    assert float(tom_row["ring_time"]) > 0.3 and float(tom_row["spectral_centroid_hz"]) > 0


@pytest.mark.shared_data
def test_real_one_shots_acoustic_rules_find_the_toms(shared_data, tmp_path, monkeypatch):
    """On the 63 labelled CC0 one-shots the note's rules never say FILL; the acoustic ones
    find the drum kit's toms (rules only, so the text encoder is not loaded)."""
    monkeypatch.setenv("DELTAV2A_CACHE", str(tmp_path / "cache"))
    from deltav2a.drums import RoleAssigner
    from deltav2a.drums.evaluation import evaluate, read_labels

    d = shared_data / "drums"
    if not (d / "labels.csv").is_file():
        pytest.skip("no drums/ in the shared data")
    m = {}
    for name in ("note", "acoustic"):
        cfg = RoleAssignerConfig.preset(name)
        cfg.text.enabled = False
        batch = RoleAssigner(cfg).assign_many(sorted(d.glob("*.flac")))
        m[name] = evaluate(batch.results, read_labels(d / "labels.csv"))["variants"]["rules"]
        if name == "acoustic":
            toms = [s for s in batch.results if "tom" in s.sample_id.split("_")]
            assert len(toms) == 7 and sum(s.scores.rule.argmax().value == "FILL" for s in toms) >= 6
    assert m["note"]["per_role_f1"]["FILL"] == 0.0
    assert m["acoustic"]["per_role_f1"]["FILL"] > 0.5
    assert m["acoustic"]["macro_f1"] > m["note"]["macro_f1"] + 0.1
