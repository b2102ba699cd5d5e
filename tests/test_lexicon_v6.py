"""Lexicon v6 (decision 16.74): *steady*'s audio side grounded in its own gloss ("constant,
unwavering: even level, no echoes") instead of the exact mirror of *oscillating*.

The mirror read a rhythm breaking up (echo periodicity falling) as steadiness and a level
falling further between notes as more even; the checks below render the real effects and
ask the encoder which of them sounds steadier, which is the question a listener answers."""

from __future__ import annotations

import numpy as np
import yaml

from deltav2a_plugins.audio_effects.scatter import Scatter
from deltav2a_plugins.audio_effects.smear import Smear
from deltav2a_plugins.audio_effects.stutter import Stutter
from deltav2a_plugins.encoders import lexicon as lx
from deltav2a_plugins.encoders.perceptual_audio import PerceptualAudioEncoder
from deltav2a_plugins.encoders.perceptual_image import PerceptualImageEncoder
from test_perceptual_encoders import SR, _vocab, photos, synthetic_music  # noqa: F401 (fixture)


def test_v6_changes_only_steadys_audio_side(photos):
    """Among vocabulary v3's terms only *steady*'s audio direction differs from v4; its image
    side is still exactly −*oscillating*; the audio side leads with an even level and no
    longer rewards the level falling between notes; v6 reads what v4 reads (normalisation 3
    by default, 4 as the shipped model pins) and has its own fingerprint."""
    assert str(yaml.safe_load(lx.LEXICON_FILES["6"].read_text())["lexicon_version"]) == "6"
    terms = _vocab("v3").terms
    v4a = PerceptualAudioEncoder(lexicon_version="4", normalisation_version="4")
    v6a = PerceptualAudioEncoder(lexicon_version="6", normalisation_version="4")
    new, old = v6a.encode_text(terms), v4a.encode_text(terms)
    assert {t for t, a, b in zip(terms, new, old) if not np.array_equal(a, b)} == {"steady"}
    w = dict(zip(terms, new))
    names = list(v6a.descriptor_names)
    steady = dict(zip(names, w["steady"]))
    assert min(steady, key=steady.get) == "modulation_depth"
    assert steady["decay_depth"] == 0.0 and steady["spectral_flux"] < 0 < steady["spectral_persistence"]
    assert not np.allclose(w["steady"], -w["oscillating"])
    v4i, v6i = PerceptualImageEncoder(lexicon_version="4"), PerceptualImageEncoder(lexicon_version="6")
    assert np.array_equal(v4i.encode_text(terms), v6i.encode_text(terms))
    si, oi = v6i.encode_text(["steady", "oscillating"])
    assert np.allclose(si, -oi)
    assert np.array_equal(v4i.encode_images(photos), v6i.encode_images(photos))
    assert PerceptualAudioEncoder(lexicon_version="6").table.version == "3"
    assert v6a.fingerprint() != v4a.fingerprint()
    assert PerceptualAudioEncoder(lexicon_version="4").fingerprint() == "perceptual-audio/3/60e7dc590aa06176"


def test_v6_hears_a_smear_as_steadier_and_a_scatter_as_less_steady():
    """On real renders: a smear in time evens the level (steadier), a grain scatter breaks the
    music into pieces and a gate chops it (both less steady, the gate most). v6 orders them
    so; v4's mirror got the smear and the scatter the wrong way round on the same renders."""
    x = synthetic_music(0)
    renders = [Smear().process(x, SR, length_ms=600.0, mix=0.9), Scatter().process(x, SR, radius_ms=225.0),
               Stutter().process(x, SR, rate_hz=8.0, depth=0.9)]

    def steadiness(lexicon: str) -> list[float]:
        enc = PerceptualAudioEncoder(lexicon_version=lexicon, normalisation_version="4")
        s = enc.encode_text(["steady"])[0]
        z = enc.encode_audio([x, *renders], SR)
        return [float((d @ s) / np.linalg.norm(d)) for d in z[1:] - z[0]]

    smear, scatter, stutter = steadiness("6")
    assert smear > 0.05 and stutter < scatter < -0.1, (smear, scatter, stutter)
    old_smear, old_scatter, _ = steadiness("4")
    assert old_smear < 0 < old_scatter, (old_smear, old_scatter)
