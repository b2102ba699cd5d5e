"""The fourth pass of the drum task (docs/drums.md "Fourth pass"): the `strikes` feature (a
roll is a figure of strokes, a one-shot one stroke), the FILL term T_tom_or_G, guard 5's
`struck_only` option, and the `acoustic2` preset that uses them, on synthetic hits with
known answers; `note` and `acoustic` stay as they were."""

from __future__ import annotations

import numpy as np
import pytest

from deltav2a.drums.config import RoleAssignerConfig
from deltav2a.drums.features import count_strikes, rule_terms
from deltav2a.drums.fusion import apply_guards
from deltav2a.drums.rules import rule_scores
from deltav2a.drums.types import ScoreVector
from test_drums import hat
from test_drums_acoustic import SR, _t, chirp_kick, feats, snare, swell, tom


def roll(strokes: int = 20, period: float = 0.06, seed: int = 3) -> np.ndarray:
    """A snare roll: `strokes` short strokes (a 190 Hz body under mid-band noise, 12 ms decay)
    every `period` s, each a little louder or softer, over a 0.3 s ring of the last one."""
    rng = np.random.default_rng(seed)
    t = _t(0.3)
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same")
    one = ((0.5 * np.sin(2 * np.pi * 190 * t) + 0.4 * noise / noise.std()) * np.exp(-t / 0.012)).astype(np.float32)
    n = int(period * SR)
    x = np.zeros(n * strokes + len(one), dtype=np.float32)
    for k in range(strokes):
        x[k * n: k * n + len(one)] += one * rng.uniform(0.7, 1.0)
    return x


def test_a_roll_is_many_strokes_and_a_one_shot_one():
    assert feats(roll(20)).strikes >= 15          # 19 re-attacks; a few may merge in the 16 ms frames
    for x in (snare(), tom(), chirp_kick(), hat(), swell()):
        assert feats(x).strikes == 0
    # a low kick's envelope ripples with its phase, and a drone swells slowly: no re-attack of 10 dB
    kick40 = (np.sin(2 * np.pi * 40 * _t(0.6)) * np.exp(-_t(0.6) / 0.15)).astype(np.float32)
    assert feats(kick40).strikes == 0
    trem = (np.sin(2 * np.pi * 300 * _t(2.0)) * (1 + 0.5 * np.sin(2 * np.pi * 3 * _t(2.0)))).astype(np.float32)
    assert feats(trem).strikes == 0               # +-3.5 dB tremolo


def test_count_strikes_known_answers():
    env = np.array([1.0, 0.1, 0.9, 0.05, 0.8, 0.5, 0.3])   # peak, two strokes back above -10 dB
    assert count_strikes(env, rise_db=10.0, floor_db=20.0) == 2
    assert count_strikes(env, rise_db=30.0, floor_db=20.0) == 0
    assert count_strikes(np.array([1.0, 0.01, 0.05]), 10.0, 20.0) == 0   # rises 14 dB, but 26 dB down
    assert count_strikes(np.array([]), 10.0, 20.0) == 0
    assert count_strikes(np.zeros(4), 10.0, 20.0) == 0


def test_figure_terms():
    cfg = RoleAssignerConfig.preset("acoustic2")
    tr, tt = rule_terms(feats(roll(), cfg), cfg), rule_terms(feats(tom(), cfg), cfg)
    assert tr["G"] == 1.0 and tr["T_tom_or_G"] == 1.0
    assert tt["G"] == 0.0 and tt["T_tom_or_G"] == pytest.approx(tt["T_tom"])


def test_guard5_struck_only_spares_a_swell():
    p = ScoreVector({"CORE": 0.05, "ACCENT": 0.40, "MOTION": 0.05, "FILL": 0.05, "TEXTURE": 0.45})
    note, ac2 = RoleAssignerConfig.preset("note"), RoleAssignerConfig.preset("acoustic2")
    # keep the other guards out of it: no MOTION lead, no FILL lead, a soft slow hit
    terms = {"S": 0.1, "D": 0.5, "D_short": 0.5, "F": 0.0, "H": 0.0, "A_fast": 0.0}
    swelled, fired = apply_guards(p, terms, ac2)
    assert "low_confidence_texture_extra" not in fired and swelled.argmax().value == "TEXTURE"
    _, fired = apply_guards(p, terms, note)                     # the note: always
    assert "low_confidence_texture_extra" in fired
    struck, fired = apply_guards(p, {**terms, "A_fast": 0.9}, ac2)
    assert "low_confidence_texture_extra" in fired and struck.argmax().value == "ACCENT"


def test_acoustic2_tells_a_roll_and_each_hit_and_differs_from_acoustic_only_there():
    ac, ac2 = RoleAssignerConfig.preset("acoustic"), RoleAssignerConfig.preset("acoustic2")
    hits = {"FILL": tom(), "CORE": chirp_kick(), "ACCENT": snare(), "MOTION": hat(), "TEXTURE": swell()}
    for role, x in hits.items():
        _, p = rule_scores(rule_terms(feats(x, ac2), ac2), ac2)
        assert p.argmax().value == role
    _, p2 = rule_scores(rule_terms(feats(roll(), ac2), ac2), ac2)
    _, p1 = rule_scores(rule_terms(feats(roll(), ac), ac), ac)
    assert p2.argmax().value == "FILL" and p1.argmax().value != "FILL"   # a snare roll: a fill figure
    w1, w2 = ac.rule_scoring.weights, ac2.rule_scoring.weights
    assert {r: w for r, w in w1.items() if r != "FILL"} == {r: w for r, w in w2.items() if r != "FILL"}
    f1 = dict(w1["FILL"])
    f1["T_tom_or_G"] = f1.pop("T_tom")
    assert f1 == w2["FILL"]
    assert ac2.guards.low_confidence_texture_extra.struck_only
    assert not ac.guards.low_confidence_texture_extra.struck_only
    assert not RoleAssignerConfig().guards.low_confidence_texture_extra.struck_only   # the note's default
    note = RoleAssignerConfig.preset("note")
    assert not any({"G", "T_tom_or_G"} & set(w) for w in note.rule_scoring.weights.values())
    assert ac2.model_copy(update={"guards": ac.guards, "rule_scoring": ac.rule_scoring}) == ac


@pytest.mark.shared_data
def test_real_one_shots_acoustic2_rules_take_the_roll_as_fill(shared_data, tmp_path, monkeypatch):
    """On the 63 labelled CC0 one-shots (rules only, no encoder): the snare roll is the only
    sample with several strokes, and acoustic2's rules call it FILL without losing a tom."""
    monkeypatch.setenv("DELTAV2A_CACHE", str(tmp_path / "cache"))
    from deltav2a.drums import RoleAssigner
    from deltav2a.drums.evaluation import evaluate, read_labels

    d = shared_data / "drums"
    if not (d / "labels.csv").is_file():
        pytest.skip("no drums/ in the shared data")
    cfg = RoleAssignerConfig.preset("acoustic2")
    cfg.text.enabled = False
    batch = RoleAssigner(cfg).assign_many(sorted(d.glob("*.flac")))
    by = {s.sample_id: s for s in batch.results}
    assert [k for k, s in by.items() if s.features.strikes >= 4] == ["drum_roll"]
    assert by["drum_roll"].scores.rule.argmax().value == "FILL"
    toms = [s for k, s in by.items() if "tom" in k.split("_")]
    assert sum(s.scores.rule.argmax().value == "FILL" for s in toms) >= 6
    m = evaluate(batch.results, read_labels(d / "labels.csv"))["variants"]["rules"]
    assert m["macro_f1"] > 0.74
