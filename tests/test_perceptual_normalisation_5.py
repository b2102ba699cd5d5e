"""Normalisation 5 (issue 16, sixth pass, decisions 16.50+): analysis 3 plus `quiet_floor` and
`onset_rate`, and lexicon v5, which grounds *agitated*/*fast* in the onset rate.

The separation the two descriptors exist for (decision 16.42) is checked on real renders
through the real effects: a speed-up multiplies the onset rate and leaves the floor following
the music's level, a bit reduction lays a floor that stays in the quiet frames and leaves the
onsets alone."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from deltav2a.errors import DeltaV2AError
from deltav2a_plugins.audio_effects.pedalboard_effects import Bitcrush, PlaybackRate
from deltav2a_plugins.encoders import lexicon as lx
from deltav2a_plugins.encoders.perceptual_audio import DESCRIPTORS_V2, DESCRIPTORS_V3, PerceptualAudioEncoder
from deltav2a_plugins.encoders.perceptual_image import PerceptualImageEncoder
from test_perceptual_encoders import SR, _analysis_inputs, _vocab, photos, synthetic_music  # noqa: F401 (fixture)

NEW = ("quiet_floor", "onset_rate")


def harmonic_notes(seconds: float = 6.0, period: float = 0.5) -> np.ndarray:
    """A stereo sequence of plucked harmonic notes (11 partials, 2 notes per second)."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    notes = (220.0, 262.0, 330.0, 196.0, 247.0, 294.0)
    for k in range(int(seconds / period)):
        a = int(k * period * SR)
        tt = t[: min(len(t), a + int(period * SR)) - a]
        f = notes[k % len(notes)]
        x[a: a + len(tt)] += np.exp(-4.0 * tt) * sum((0.6 / h) * np.sin(2 * np.pi * f * h * tt) for h in range(1, 12))
    x = (0.5 * x / np.abs(x).max()).astype(np.float32)
    return np.stack([x, x])


def test_normalisation_5_adds_two_descriptors_to_analysis_3():
    """26 descriptors (analysis 3's 24, bit for bit, then the two), its own fingerprint,
    finite and deterministic vectors for every kind of input; versions 1-4 keep their lists."""
    n4, n5 = PerceptualAudioEncoder(normalisation_version="4"), PerceptualAudioEncoder(normalisation_version="5")
    assert n5.table.version == "5" and n5.table.analysis == 3 and n5.dim == 26
    assert n5.descriptor_names == DESCRIPTORS_V3 == DESCRIPTORS_V2 + NEW
    assert n4.descriptor_names == DESCRIPTORS_V2
    for v in ("1", "2", "3"):
        assert PerceptualAudioEncoder(normalisation_version=v).dim == (23 if v == "1" else 24)
    assert n5.fingerprint().startswith("perceptual-audio/5/")
    # the 24 shared constants are version 4's
    assert n5.table.descriptors[:24] == n4.table.descriptors
    for clip, sr in _analysis_inputs():
        a, b = n4.raw_descriptors([clip], sr)[0], n5.raw_descriptors([clip], sr)[0]
        assert np.array_equal(a, b[:24], equal_nan=True)
        vec = n5.encode_audio([clip], sr)
        assert vec.shape == (1, 26) and np.isfinite(vec).all()
        assert np.array_equal(vec[0, :24], n4.encode_audio([clip], sr)[0])
        assert np.array_equal(vec, PerceptualAudioEncoder(normalisation_version="5").encode_audio([clip.copy()], sr))
    # music has quiet and loud frames and onsets: both defined, in their ranges
    raw = n5.raw_descriptors([synthetic_music(0)], SR)[0]
    assert -20.0 < raw[24] < 20.0 and 0.5 < raw[25] < 20.0, raw[24:]
    # a steady tone has no quiet frames and no onsets
    tone = np.sin(2 * np.pi * 440.0 * np.arange(2 * SR) / SR).astype(np.float32)[None]
    assert list(n5.raw_descriptors([tone], SR)[0][24:]) == [0.0, 0.0]


def test_a_speed_up_and_a_bit_reduction_move_different_descriptors():
    """Decision 16.42's separation, on renders by the real effects: a 1.5x speed-up raises the
    onset rate by its rate and leaves the floor following the music (quiet_floor within 1 dB);
    a 6-bit reduction lays a floor that stays when the notes decay (> 5 dB) and keeps the onsets.
    Normalised, lexicon v5 reads the speed-up as more agitated than v4 does and the bit
    reduction as no more agitated."""
    enc = PerceptualAudioEncoder(lexicon_version="5")
    x = harmonic_notes()
    fast = PlaybackRate().process(x, SR, rate=1.5)
    crushed = Bitcrush().process(x, SR, bit_depth=6.0)
    r0, rf, rc = (enc.raw_descriptors([y], SR)[0][24:] for y in (x, fast, crushed))
    assert 1.35 < rf[1] / r0[1] < 1.65, (r0, rf)
    assert rf[0] <= r0[0] + 1.0, (r0, rf)
    assert rc[0] > r0[0] + 5.0, (r0, rc)
    assert abs(rc[1] / r0[1] - 1.0) < 0.1, (r0, rc)
    z = enc.encode_audio([x, fast, crushed], SR)
    v4 = PerceptualAudioEncoder(lexicon_version="4", normalisation_version="5")
    new, old = enc.encode_text(["agitated"])[0], v4.encode_text(["agitated"])[0]
    d_fast, d_crush = z[1] - z[0], z[2] - z[0]
    assert d_fast @ new > d_fast @ old + 0.05
    assert d_crush @ new <= d_crush @ old + 0.01


def test_lexicon_v5_regrounds_agitated_on_normalisation_5(photos):
    """v5 reads normalisation 5 by default and changes, among vocabulary v3's terms, the audio
    direction of agitated (and its antonym) only; fast/slow too; the image side is v4's."""
    v4a = PerceptualAudioEncoder(lexicon_version="4", normalisation_version="5")
    v5a = PerceptualAudioEncoder(lexicon_version="5")
    assert v5a.table.version == "5" and v5a.dim == 26
    assert lx._read_yaml(lx.LEXICON_FILES["5"], "lexicon")["normalisation_versions"] == ["5"]
    terms = _vocab("v3").terms
    new, old = v5a.encode_text(terms), v4a.encode_text(terms)
    changed = {t for t, a, b in zip(terms, new, old) if not np.array_equal(a, b)}
    assert changed == {"agitated", "calm"}
    w = dict(zip(terms, new))
    names = list(v5a.descriptor_names)
    assert not w["granular"][names.index("quiet_floor")] and not w["granular"][names.index("onset_rate")]
    fast, slow = v5a.encode_text(["fast", "slow"])
    assert fast[names.index("onset_rate")] > 0 and np.allclose(slow, -fast)
    assert w["agitated"][names.index("onset_rate")] > 0 and np.allclose(w["calm"], -w["agitated"])
    v4i, v5i = PerceptualImageEncoder(lexicon_version="4"), PerceptualImageEncoder(lexicon_version="5")
    assert np.array_equal(v4i.encode_text(terms), v5i.encode_text(terms))
    assert np.array_equal(v4i.encode_images(photos), v5i.encode_images(photos))
    # v1-v4 are what they were
    assert PerceptualAudioEncoder(lexicon_version="4").fingerprint() == "perceptual-audio/3/60e7dc590aa06176"


def test_lexicon_v5_refuses_other_normalisations(tmp_path):
    for v in ("1", "2", "3", "4"):
        with pytest.raises(DeltaV2AError, match=f"reads normalisation 5 only, not normalisation {v} "):
            PerceptualAudioEncoder(lexicon_version="5", normalisation_version=v)
        with pytest.raises(DeltaV2AError, match="reads normalisation 5 only"):
            PerceptualImageEncoder(lexicon_version="5", normalisation_version=v)
    # a normalisation file by path is checked by its version
    with pytest.raises(DeltaV2AError, match="not normalisation 4 "):
        PerceptualAudioEncoder(lexicon_version="5", normalisation=str(lx.NORMALISATION_FILES["4"]))
    # a malformed declaration is one line too
    doc = yaml.safe_load(lx.LEXICON_FILES["5"].read_text())
    doc["normalisation_versions"] = "5"
    bad = tmp_path / "lex.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DeltaV2AError, match="normalisation_versions must be a non-empty list"):
        PerceptualAudioEncoder(lexicon=str(bad))
    # the two new descriptors exist in analysis 3 only
    doc = yaml.safe_load(lx.NORMALISATION_FILES["5"].read_text())
    doc["audio"]["analysis"] = 2
    bad = tmp_path / "norm.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DeltaV2AError, match="computed by audio analysis 3 only"):
        PerceptualAudioEncoder(normalisation=str(bad)).encode_audio([synthetic_music(0, 1.0)], SR)


def test_lexicon_v5_on_a_wrong_normalisation_through_the_cli(tmp_path):
    """One error line, exit 2, nothing written."""
    import soundfile as sf

    from conftest import run_cli

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "x.wav", synthetic_music(0, 2.0).T, SR)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"encoders": {"audio": {"name": "perceptual-audio", "options": {
        "lexicon_version": "5", "normalisation_version": "4"}}}}))
    out = tmp_path / "out"
    r = run_cli("sensitivity", "--audio", str(audio), "-c", str(cfg), "--intensities", "0.5", "-o", str(out))
    assert r.returncode == 2 and not out.exists() and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if "error" in ln.lower()] == [
        "error: encoder 'perceptual-audio': lexicon perceptual_lexicon_v5.yaml reads normalisation 5 only, "
        "not normalisation 4 (perceptual_normalisation_v4.yaml)"]
