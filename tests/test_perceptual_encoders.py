"""The weight-free perceptual encoders (perceptual-image, perceptual-audio) and their lexicon.

Media fixtures are generated here (a procedural "photo" and a procedural piece of music);
the real-corpus checks run only when ../shared/data is present.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from deltav2a.errors import DeltaV2AError
from deltav2a.media.io import resample
from deltav2a_plugins.encoders import lexicon as lx
from deltav2a_plugins.encoders.perceptual_audio import DESCRIPTORS_V2, PerceptualAudioEncoder
from deltav2a_plugins.encoders.perceptual_image import PerceptualImageEncoder

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
VOCABS = ("v1", "v2", "v3")


# ---------------------------------------------------------------- fixtures


def synthetic_photo(seed: int = 0, w: int = 256, h: int = 192) -> Image.Image:
    """Sky gradient over 1/f-textured ground, a few hard-edged objects and a bright sun."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    f = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    f[0, 0] = 1.0
    tex = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((h, w))) / f ** 0.9))
    tex = (tex - tex.mean()) / tex.std()
    sky = y < h * 0.45 + 8 * np.sin(x / 23.0)
    t = y / h
    img = np.zeros((h, w, 3))
    img[..., 0] = np.where(sky, 0.55 + 0.35 * t, 0.35 + 0.08 * tex)
    img[..., 1] = np.where(sky, 0.70 + 0.25 * t, 0.45 + 0.10 * tex)
    img[..., 2] = np.where(sky, 0.95, 0.20 + 0.06 * tex)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(h * 0.5, h), rng.uniform(8, 24)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r ** 2] = rng.uniform(0.05, 0.9, 3)
    img[(x - w * 0.8) ** 2 + (y - h * 0.15) ** 2 < 100] = 1.0
    img += 0.003 * rng.standard_normal(img.shape)
    return Image.fromarray(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8), "RGB")


def synthetic_music(seed: int = 0, seconds: float = 6.0) -> np.ndarray:
    """Stereo (2, n) float32 at 44.1 kHz: decaying harmonic chords, kick, hi-hat, bass."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    out = np.zeros((2, n))
    beat = 0.5
    chords = [[220.0, 277.2, 329.6], [196.0, 246.9, 293.7], [174.6, 220.0, 261.6], [196.0, 246.9, 311.1]]
    for i, start in enumerate(np.arange(0, seconds, beat)):
        s = int(start * SR)
        seg = np.arange(n - s) / SR
        env = np.exp(-seg / 0.35) * (1 - np.exp(-seg / 0.005))
        pan = 0.3 + 0.2 * (i % 3)
        for f0 in chords[(i // 4) % 4]:
            tone = sum(np.sin(2 * np.pi * f0 * k * seg + rng.uniform(0, 6.28)) / k ** 1.3 for k in range(1, 9))
            out[0, s:] += 0.06 * (1 - pan) * env * tone
            out[1, s:] += 0.06 * pan * env * tone
        out[:, s:] += 0.25 * np.sin(2 * np.pi * (50 + 60 * np.exp(-seg / 0.03)) * seg) * np.exp(-seg / 0.12)
        h0 = int((start + beat / 2) * SR)
        if h0 < n:
            hl = min(n - h0, int(0.05 * SR))
            hat = np.diff(np.concatenate([[0.0], rng.standard_normal(hl) * np.exp(-np.arange(hl) / SR / 0.015)]))
            out[0, h0:h0 + hl] += 0.06 * hat
            out[1, h0:h0 + hl] += 0.04 * hat
    out += 0.12 * np.sin(2 * np.pi * 55 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * t / beat))
    out += 1e-4 * rng.standard_normal(out.shape)
    return (out / np.abs(out).max() * 0.7).astype(np.float32)


@pytest.fixture(scope="module")
def ienc() -> PerceptualImageEncoder:
    return PerceptualImageEncoder()


@pytest.fixture(scope="module")
def aenc() -> PerceptualAudioEncoder:
    return PerceptualAudioEncoder()


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [synthetic_photo(0), synthetic_photo(1, w=200, h=150)]


@pytest.fixture(scope="module")
def music() -> list[np.ndarray]:
    return [synthetic_music(0), synthetic_music(1, seconds=4.0)]


def _vocab(name: str):
    from deltav2a.api.vocabulary import parse_vocabulary

    return parse_vocabulary(ROOT / "vocabularies" / f"{name}.yaml")


# ---------------------------------------------------------------- registration, shapes


def test_registered_cheaply_and_described():
    from deltav2a.api import registry as plugins

    assert plugins.get("encoder", "perceptual-image") is PerceptualImageEncoder
    assert plugins.get("encoder", "perceptual-audio") is PerceptualAudioEncoder
    assert PerceptualImageEncoder.modality == "image" and PerceptualAudioEncoder.modality == "audio"
    assert PerceptualImageEncoder().dim == 19 and PerceptualAudioEncoder().dim == 24
    assert PerceptualAudioEncoder(lexicon_version="2").dim == 23  # lexicons v1/v2: 23 descriptors
    assert "Weight-free" in PerceptualImageEncoder.summary()
    # registering and constructing must not import numpy/scipy (listing plugins stays fast)
    code = ("import sys; from deltav2a_plugins.encoders import perceptual_audio as a, perceptual_image as i; "
            "a.PerceptualAudioEncoder(); i.PerceptualImageEncoder(); "
            "print(sorted(m for m in ('numpy', 'scipy', 'soxr', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_shapes_dtypes_and_batching(ienc, aenc, photos, music):
    v = ienc.encode_images(photos)
    assert v.shape == (2, 19) and v.dtype == np.float32 and np.isfinite(v).all()
    one = np.stack([ienc.encode_images([p])[0] for p in photos])
    assert np.array_equal(v, one)
    a = aenc.encode_audio(music, SR)
    assert a.shape == (2, 24) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, np.stack([aenc.encode_audio([m], SR)[0] for m in music]))
    assert ienc.encode_images([]).shape == (0, 19) and aenc.encode_audio([], SR).shape == (0, 24)
    t = ienc.encode_text(["a blurry image", "a noisy photograph"])
    assert t.shape == (2, 19) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-6)


def test_deterministic_and_identical_item_gives_zero_delta(ienc, aenc, photos, music):
    v1 = ienc.encode_images(photos)
    v2 = PerceptualImageEncoder().encode_images([p.copy() for p in photos])
    assert np.array_equal(v1, v2)
    a1 = aenc.encode_audio(music, SR)
    a2 = PerceptualAudioEncoder().encode_audio([m.copy() for m in music], SR)
    assert np.array_equal(a1, a2)
    assert np.linalg.norm(v2 - v1) == 0.0 and np.linalg.norm(a2 - a1) == 0.0


def test_sample_rate_does_not_matter(aenc, music):
    x = music[0]
    a = aenc.encode_audio([x], SR)[0]
    b = aenc.encode_audio([resample(x, SR, 48000)], 48000)[0]
    c = aenc.encode_audio([resample(x, SR, 96000)], 96000)[0]
    assert np.linalg.norm(a - b) < 0.02 and np.linalg.norm(a - c) < 0.02
    # ... while a real change is far larger than that
    assert np.linalg.norm(aenc.encode_audio([x * 0.25], SR)[0] - a) > 0.1


def test_mono_has_zero_width_and_channels_matter_only_through_width(aenc, music):
    stereo = music[0]
    mono = stereo.mean(axis=0, keepdims=True)
    vs, vm = aenc.encode_audio([stereo, mono], SR)
    i = aenc.DESCRIPTORS.index("stereo_width")
    raw = aenc.raw_descriptors([mono], SR)[0]
    assert raw[i] == 0.0
    others = [k for k in range(aenc.dim) if k != i]
    assert np.allclose(vs[others], vm[others], atol=1e-5)
    assert vs[i] > vm[i]


# ---------------------------------------------------------------- edits move the vector


def _labels(enc, before, after, vocab):
    from deltav2a.style.encoding import term_embeddings
    from deltav2a.style.label import style_labels

    V = term_embeddings(enc, vocab, use_cache=False)
    s, norm = style_labels(before, after, V, 0.1)
    order = np.argsort(-s[0])
    return [vocab.terms[i] for i in order], float(norm[0])


def _image_effect(name, img):
    from deltav2a.api import registry as plugins

    return plugins.get("image_effect", name)().apply(img, 0.5, seed=0)


def _audio_effect(name, x, sr=SR):
    from deltav2a.api import registry as plugins
    from deltav2a.render.chain import AudioChain, ChainSettings, EffectSetting

    cls = plugins.get("audio_effect", name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AudioChain(ChainSettings([EffectSetting(name, cls.params_at_intensity(0.5))]), tail="cut")(x, sr)


# effect -> (terms of which one must be among the top k, k, terms that must not be top-1)
IMAGE_EXPECT = {
    "adaptive_blur": ({"muffled", "muddy", "polished", "cohesive"}, 3, {"crisp", "piercing"}),
    "motion_blur": ({"fluid", "muffled", "muddy", "calm"}, 2, {"crisp", "piercing"}),
    "adaptive_sharpen": ({"piercing", "crisp"}, 1, {"muffled", "muddy"}),
    "add_noise": ({"granular"}, 1, {"polished"}),
    "spread": ({"fragmented"}, 1, {"cohesive"}),
    "solarize": ({"clipped"}, 1, {"pristine"}),
}
AUDIO_EXPECT = {
    # lexicon v2: a mild low-pass first reads "flat" (band-limited), then "muffled"
    "lowpass": ({"muffled", "muddy", "deep"}, 2, {"piercing", "thin"}),
    "highpass": ({"thin", "piercing"}, 1, {"deep", "muffled"}),
    "distortion": ({"clipped", "dense", "agitated"}, 1, {"pristine"}),
    "bitcrush": ({"granular"}, 1, {"polished"}),
}


def test_edits_read_as_the_words_they_should_on_synthetic_media(ienc, aenc, photos, music):
    """The lexicon is not arbitrary: each effect's delta lands on the words it should."""
    v3 = _vocab("v3")
    img = photos[0]
    base = ienc.encode_images([img])
    for name, (want, k, never) in IMAGE_EXPECT.items():
        after = ienc.encode_images([_image_effect(name, img)])
        ranked, norm = _labels(ienc, base, after, v3)
        assert norm > 0.06, (name, norm)
        assert want & set(ranked[:k]), (name, ranked[:5])
        assert ranked[0] not in never, (name, ranked[:5])
    x = music[0]
    abase = aenc.encode_audio([x], SR)
    for name, (want, k, never) in AUDIO_EXPECT.items():
        after = aenc.encode_audio([_audio_effect(name, x)], SR)
        ranked, norm = _labels(aenc, abase, after, v3)
        assert norm > 0.06, (name, norm)
        assert want & set(ranked[:k]), (name, ranked[:5])
        assert ranked[0] not in never, (name, ranked[:5])


def test_blur_and_lowpass_meet_in_text_space(ienc, aenc, photos, music):
    """E2: a blurred image and a low-passed clip get the same leading v3 word."""
    v3 = _vocab("v3")
    img, x = photos[0], music[0]
    ri, _ = _labels(ienc, ienc.encode_images([img]),
                    ienc.encode_images([_image_effect("motion_blur", img)]), v3)
    ra, _ = _labels(aenc, aenc.encode_audio([x], SR), aenc.encode_audio([_audio_effect("lowpass", x)], SR), v3)
    ri_n, _ = _labels(ienc, ienc.encode_images([img]),
                      ienc.encode_images([_image_effect("add_noise", img)]), v3)
    ra_n, _ = _labels(aenc, aenc.encode_audio([x], SR), aenc.encode_audio([_audio_effect("bitcrush", x)], SR), v3)
    assert {"muffled", "fluid", "muddy"} & set(ri[:2]) and "muffled" in ra[:2]
    assert ri_n[0] == ra_n[0] == "granular"


@pytest.mark.shared_data
def test_edits_on_real_media(shared_data, ienc, aenc):
    """On real photos and music, the label averaged over items lands on the expected words."""
    from deltav2a.style.encoding import term_embeddings
    from deltav2a.media.io import load_audio
    from deltav2a.style.label import style_labels

    v3 = _vocab("v3")
    images = [Image.open(p).convert("RGB") for p in sorted((shared_data / "images").glob("*.jpg"))[::45][:5]]
    clips = [load_audio(p) for p in sorted((shared_data / "music").glob("*.ogg"))[::40][:4]]
    expect_aud = dict(AUDIO_EXPECT, reverb=({"expansive", "layered", "hollow"}, 3, set()),
                      delay=({"oscillating", "layered"}, 3, set()))
    Vi = term_embeddings(ienc, v3, use_cache=False)
    Va = term_embeddings(aenc, v3, use_cache=False)
    base_i = ienc.encode_images(images)
    for name, (want, k, never) in IMAGE_EXPECT.items():
        after = ienc.encode_images([_image_effect(name, im) for im in images])
        s, norm = style_labels(base_i, after, Vi, 0.1)
        if name != "solarize":  # solarize leaves an image without highlights unchanged
            assert norm.min() > 0.06, (name, norm)
        ranked = [v3.terms[i] for i in np.argsort(-s.mean(axis=0))]
        assert want & set(ranked[:k]) and ranked[0] not in never, (name, ranked[:5])
    for name, (want, k, never) in expect_aud.items():
        base = np.concatenate([aenc.encode_audio([x], sr) for x, sr in clips])
        after = np.concatenate([aenc.encode_audio([_audio_effect(name, x, sr)], sr) for x, sr in clips])
        s, norm = style_labels(base, after, Va, 0.1)
        assert norm.min() > 0.06, (name, norm)
        ranked = [v3.terms[i] for i in np.argsort(-s.mean(axis=0))]
        assert want & set(ranked[:k]) and ranked[0] not in never, (name, ranked[:5])


# ---------------------------------------------------------------- text side


@pytest.mark.parametrize("vocab_name", VOCABS)
def test_every_vocabulary_term_is_grounded_in_both_modalities(ienc, aenc, vocab_name):
    vocab = _vocab(vocab_name)
    for enc in (ienc, aenc):
        for term in vocab.terms:
            exp = enc.explain_text(term)
            assert [e for _, e, _ in exp.known] == [term], (enc.name, term, exp)
            own = enc.encode_text([term])[0]
            prompts = vocab.prompts(enc.modality, term)
            vecs = enc.encode_text(prompts)
            assert enc.last_unknown_words == [[] for _ in prompts], (term, enc.last_unknown_words)
            # template words are neutral: every prompt embeds exactly as the bare term
            assert np.allclose(vecs, own[None, :], atol=1e-6), (enc.name, term)


#: v3 axes whose poles lexicon v2 grounds separately: the negation of one pole is an "undo"
#: no edit performs (removing echoes, removing a room), so the other pole gets its own,
#: reachable meaning (docs/perceptual_encoders.md, "Lexicon version 2")
REGROUNDED_AXES = {("layered", "flat"), ("dense", "hollow"), ("crisp", "muddy"), ("deep", "thin")}


def test_antonyms_are_opposite(ienc, aenc):
    for enc in (ienc, aenc):
        for ph in _vocab("v3").phases:
            for ax in ph.axes:
                p, a = enc.encode_text([ax.pole, ax.antipole])
                if (ax.pole, ax.antipole) in REGROUNDED_AXES:
                    assert np.dot(p, a) < 0, (enc.name, ax.pole, ax.antipole, np.dot(p, a))
                else:
                    assert np.dot(p, a) == pytest.approx(-1.0, abs=1e-6), (ax.pole, ax.antipole)
    old_i, old_a = PerceptualImageEncoder(lexicon_version="1"), PerceptualAudioEncoder(lexicon_version="1")
    for enc in (old_i, old_a):  # lexicon v1 keeps every v3 axis an exact antonym pair
        for ph in _vocab("v3").phases:
            for ax in ph.axes:
                p, a = enc.encode_text([ax.pole, ax.antipole])
                assert np.dot(p, a) == pytest.approx(-1.0, abs=1e-6), (ax.pole, ax.antipole)


def test_lexicon_versions_stay_loadable():
    """Every shipped lexicon loads under its own version; v1 keeps the fingerprint models
    trained before lexicon v2 were made with (the previously shipped model, recorded below),
    the default (newest) differs and is what the shipped model now uses; bad choices are
    one-line errors."""
    import json

    for version, path in lx.LEXICON_FILES.items():
        assert str(yaml.safe_load(path.read_text())["lexicon_version"]) == version
        for cls in (PerceptualImageEncoder, PerceptualAudioEncoder):
            assert cls(lexicon_version=version).lexicon.version == version
    assert lx.LEXICON_FILES[lx.DEFAULT_LEXICON_VERSION] == lx.LEXICON_FILE
    # v3 stays the encoders' default (what a config naming no lexicon gets); the default
    # config and the shipped model pin v4 with audio normalisation 4 explicitly (decision
    # 16.64; v4 alone names normalisation 3); v5 reads normalisation 5 only (decisions
    # 16.50+) and v6, the newest, is v4 with its own *steady* (16.74); neither is the default
    assert lx.DEFAULT_LEXICON_VERSION == "3" and max(lx.LEXICON_FILES, key=int) == "6"
    v1 = {"image": "perceptual-image/1/b2ce78f3009c4b2f", "audio": "perceptual-audio/1/01222d581fae7c39"}
    assert PerceptualImageEncoder(lexicon_version="1").fingerprint() == v1["image"]
    assert PerceptualAudioEncoder(lexicon_version="1").fingerprint() == v1["audio"]
    v2 = {"image": "perceptual-image/1/cc6da16ebdecd4e1", "audio": "perceptual-audio/1/7093353b5f3b72f3"}
    assert PerceptualImageEncoder(lexicon_version="2").fingerprint() == v2["image"]
    assert PerceptualAudioEncoder(lexicon_version="2").fingerprint() == v2["audio"]
    # the shipped model runs with the lexicon (and normalisation) its config names: since
    # decision 16.64 lexicon v4 on both encoders, audio normalisation 4
    model = ROOT / "core" / "models" / "default"
    meta = json.loads((model / "controller.json").read_text())
    cfg = yaml.safe_load((model / "config.yaml").read_text())
    for m, cls in (("image", PerceptualImageEncoder), ("audio", PerceptualAudioEncoder)):
        assert cls(**cfg["encoders"][m].get("options", {})).fingerprint() == meta["encoders"][m]["fingerprint"]
    assert meta["encoders"]["image"]["fingerprint"] == "perceptual-image/3/eb8896c785910480"
    assert meta["encoders"]["audio"]["fingerprint"] == "perceptual-audio/4/f807bbd8ad0cd612"
    # the default (newest, v3) is a new encoder: normalisation version 2, 24 audio descriptors
    assert PerceptualImageEncoder().fingerprint().startswith("perceptual-image/2/")
    assert PerceptualAudioEncoder().fingerprint().startswith("perceptual-audio/2/")
    assert {PerceptualAudioEncoder().fingerprint()}.isdisjoint({v1["audio"], v2["audio"]})
    # v3 as it was shipped (recorded when v4 was added): adding v4 must not move it
    v3 = {"image": "perceptual-image/2/aeaea9bac2bc4e13", "audio": "perceptual-audio/2/eb540c94b4700fba"}
    assert PerceptualImageEncoder(lexicon_version="3").fingerprint() == v3["image"] == PerceptualImageEncoder().fingerprint()
    assert PerceptualAudioEncoder(lexicon_version="3").fingerprint() == v3["audio"] == PerceptualAudioEncoder().fingerprint()
    v4 = {"image": "perceptual-image/3/eb8896c785910480", "audio": "perceptual-audio/3/60e7dc590aa06176"}
    assert PerceptualImageEncoder(lexicon_version="4").fingerprint() == v4["image"]
    assert PerceptualAudioEncoder(lexicon_version="4").fingerprint() == v4["audio"]
    with pytest.raises(DeltaV2AError, match="no shipped lexicon version '7'"):
        PerceptualAudioEncoder(lexicon_version="7")
    with pytest.raises(DeltaV2AError, match="not both"):
        PerceptualAudioEncoder(lexicon_version="1", lexicon=str(lx.LEXICON_FILE))


#: perceptual-audio vector of synthetic_music(0) under lexicons v1/v2, computed with the code
#: before normalisation version 2 existed (main at 20fb731): adding gap_depth must not move it
V2_AUDIO_VECTOR = [
    0.0721619, -0.2190397, -0.5698368, 0.4166589, -0.2172132, 0.1987623, -0.6418505, -0.5284288,
    -0.6015712, 0.2147847, -0.4966917, 0.4695521, 0.3842491, 0.3911405, 0.1791167, 0.7971568,
    0.6668867, 0.517435, -0.754097, -0.617018, -0.183719, -0.6282977, -0.8882385]


def test_lexicon_v3_adds_gap_depth_and_older_vectors_stay_bit_identical(music, photos):
    """v1/v2 encoders compute the 23 descriptors they always did (same values as before the
    change, and exactly the first 23 coordinates of the v3 vector); v3 adds gap_depth."""
    from deltav2a_plugins.encoders import perceptual_audio as pa

    olds = [PerceptualAudioEncoder(lexicon_version=v) for v in ("1", "2")]
    new = PerceptualAudioEncoder(lexicon_version="3")
    assert new.descriptor_names == pa.DESCRIPTORS_V2 == pa.DESCRIPTORS + ("gap_depth",)
    assert all(o.descriptor_names == pa.DESCRIPTORS for o in olds)
    assert [o.table.version for o in olds] == ["1", "1"] and new.table.version == "2"
    v3 = new.encode_audio(music, SR)
    for o in olds:
        old = o.encode_audio(music, SR)
        assert old.shape == (2, 23) and np.array_equal(old, v3[:, :23])
        assert np.allclose(old[0], V2_AUDIO_VECTOR, atol=2e-6)
    # the image vector is the same under every lexicon
    iv = [PerceptualImageEncoder(lexicon_version=v).encode_images(photos) for v in ("1", "2", "3")]
    assert np.array_equal(iv[0], iv[1]) and np.array_equal(iv[0], iv[2])
    # every constant of normalisation 1 is kept in 2
    t1, t2 = olds[0].table, new.table
    assert t2.descriptors[:23] == t1.descriptors and t1.version != t2.version


def test_gap_depth_rises_with_a_gate_and_falls_with_reverb(music):
    """gap_depth is what the stutter effect moves most; reverb fills the gaps."""
    from deltav2a.render.chain import AudioChain, ChainSettings

    enc = PerceptualAudioEncoder()
    i = enc.descriptor_names.index("gap_depth")
    x = music[0]
    base = enc.encode_audio([x], SR)[0]
    gated = enc.encode_audio([AudioChain(ChainSettings.parse(["stutter"]), tail="cut")(x, SR)], SR)[0]
    wet = enc.encode_audio([AudioChain(ChainSettings.parse(["reverb:room_size=0.8,wet_level=0.5"]), tail="cut")(x, SR)], SR)[0]
    d = gated - base
    # on this very percussive fixture the onsets at every opening (spectral flux) move too
    assert d[i] > 0.5 and i in np.argsort(-np.abs(d))[:3]
    assert wet[i] < base[i]
    raw = enc.raw_descriptors([x, AudioChain(ChainSettings.parse(["stutter:depth=1,duty=0.5,rate_hz=8"]), tail="cut")(x, SR)], SR)
    assert raw[1, i] > raw[0, i] + 5.0  # dB: closed halves sit far below the open ones


#: the v3 words lexicon v4 re-grounds on the audio side (with their exact antonyms); every
#: other direction, and the whole image side, is v3's (docs/perceptual_encoders.md, "What
#: version 4 changes")
V4_REGROUNDED = {"expansive", "confined", "hollow", "fragmented", "cohesive"}


def test_lexicon_v4_regrounds_three_words_on_normalisation_3(music, photos):
    """v4 reads normalisation 3 (analysis 2): its media vectors are exactly those of v3 with
    `normalisation_version: "3"`, so a database built that way is relabelled, not re-rendered;
    it changes the audio directions of expansive, hollow and fragmented (and their antonyms)
    only, each for its meaning: expansive = extent in space (no smear in time), hollow = the
    middle missing (no room smear), fragmented = the level also falls between the pieces."""
    v3i, v3a = PerceptualImageEncoder(lexicon_version="3"), PerceptualAudioEncoder(lexicon_version="3")
    v4i, v4a = PerceptualImageEncoder(lexicon_version="4"), PerceptualAudioEncoder(lexicon_version="4")
    assert v4a.table.version == v4i.table.version == "3" and v4a.table.analysis == 2
    assert v4a.descriptor_names == v3a.descriptor_names and v4a.dim == 24
    on3 = PerceptualAudioEncoder(lexicon_version="3", normalisation_version="3")
    assert np.array_equal(v4a.encode_audio(music, SR), on3.encode_audio(music, SR))
    assert np.array_equal(v4i.encode_images(photos), v3i.encode_images(photos))
    terms = _vocab("v3").terms
    assert np.array_equal(v4i.encode_text(terms), v3i.encode_text(terms))  # image side unchanged
    new, old = v4a.encode_text(terms), v3a.encode_text(terms)
    changed = {t for t, a, b in zip(terms, new, old) if not np.array_equal(a, b)}
    assert changed == V4_REGROUNDED
    w = dict(zip(terms, new))
    names = list(v4a.descriptor_names)
    smear = [names.index(n) for n in ("decay_depth", "echo_periodicity", "spectral_persistence", "gap_depth")]
    assert not w["expansive"][smear].any() and not w["hollow"][smear].any()
    assert w["expansive"].argmax() == names.index("stereo_width")
    assert w["hollow"][names.index("band_mid")] < 0 and w["hollow"][names.index("band_low_mid")] < 0
    assert w["fragmented"][names.index("decay_depth")] > 0 and w["fragmented"].argmax() == names.index("gap_depth")
    assert np.allclose(w["cohesive"], -w["fragmented"]) and np.allclose(w["confined"], -w["expansive"])
    # the re-grounded axis dense/hollow stays negatively correlated
    assert float(np.dot(w["dense"], w["hollow"])) < 0


def test_a_custom_lexicon_picks_its_normalisation(tmp_path):
    """A lexicon file names the normalisation it needs; without the key it is version 1."""
    lex = tmp_path / "lex.yaml"
    doc = yaml.safe_load(lx.LEXICON_FILES["2"].read_text())
    lex.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert PerceptualAudioEncoder(lexicon=str(lex)).dim == 23
    doc["normalisation_version"] = "2"
    lex.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert PerceptualAudioEncoder(lexicon=str(lex)).dim == 24
    doc["normalisation_version"] = "9"
    lex.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DeltaV2AError, match="no shipped normalisation version '9'"):
        PerceptualAudioEncoder(lexicon=str(lex))
    # a v3 lexicon on a 23-descriptor normalisation names the missing descriptor
    with pytest.raises(DeltaV2AError, match="unknown audio descriptor 'gap_depth'"):
        PerceptualAudioEncoder(lexicon_version="3", normalisation=str(lx.NORMALISATION_FILES["1"])).encode_text(["choppy"])


def test_free_text_known_neutral_unknown(ienc, aenc):
    exp = ienc.explain_text("A very blurry, out of focus photo of a mountain; no noise, lo-fi vibes")
    assert [(w, e, s) for w, e, s in exp.known] == [
        ("blurry", "blurry", 1), ("out of focus", "out of focus", 1), ("noise", "noise", -1), ("lo-fi", "lo-fi", 1)]
    assert exp.unknown == ["vibes"]
    assert {"very", "photo", "mountain", "a", "of", "no"} <= set(exp.neutral)
    v = ienc.encode_text(["zorblax muffled sound", "muffled"])
    assert ienc.last_unknown_words == [["zorblax"], []]
    assert np.allclose(v[0], v[1])
    # synonyms anchor where they should; plural / -ly forms fall back to the base entry
    blurry, muddy, crisp = ienc.encode_text(["blurry", "muddy", "crisp"])
    assert np.dot(blurry, muddy) > 0.8 and np.dot(blurry, crisp) < -0.5
    assert np.allclose(aenc.encode_text(["noises"])[0], aenc.encode_text(["noise"])[0])
    assert aenc.explain_text("less distorted").known == [("distorted", "distorted", -1)]
    assert np.allclose(aenc.encode_text(["not distorted"])[0], -aenc.encode_text(["distorted"])[0])
    # a word can mean different things per modality (fuzzy image = blurry, fuzzy sound = fuzz)
    assert np.dot(ienc.encode_text(["fuzzy"])[0], ienc.encode_text(["blurry"])[0]) > 0.99
    assert np.dot(aenc.encode_text(["fuzzy"])[0], aenc.encode_text(["clipped"])[0]) > 0.7
    # combining words: the result lies between them
    mix = aenc.encode_text(["muffled and reverberant"])[0]
    m, r = aenc.encode_text(["muffled", "reverberant"])
    assert np.dot(mix, m) > 0.5 and np.dot(mix, r) > 0.5


@pytest.mark.parametrize("text", ["zorblax quux", "a photo of an image", "", "   ", "12345"])
def test_text_without_a_known_direction_is_an_error(ienc, text):
    with pytest.raises(DeltaV2AError, match=re.escape(repr(text))):
        ienc.encode_text([text])


def test_text_errors(aenc):
    with pytest.raises(DeltaV2AError, match="unknown words: zorblax"):
        aenc.encode_text(["a zorblax sound"])
    with pytest.raises(DeltaV2AError, match="cancel out"):
        aenc.encode_text(["muffled piercing"])
    with pytest.raises(DeltaV2AError, match="must be a string"):
        aenc.encode_text([None])  # type: ignore[list-item]
    assert aenc.encode_text("a muffled sound").shape == (1, 24)  # one string is one text


# ---------------------------------------------------------------- fingerprint and data files


def _copy_data(tmp_path: Path) -> tuple[Path, Path]:
    norm = tmp_path / "norm.yaml"
    lex = tmp_path / "lex.yaml"
    shutil.copy(lx.NORMALISATION_FILES["2"], norm)  # the default lexicon's (v3) normalisation
    shutil.copy(lx.LEXICON_FILE, lex)
    return norm, lex


def test_fingerprint_names_the_data(tmp_path, ienc, aenc, photos):
    version = yaml.safe_load(lx.NORMALISATION_FILES["2"].read_text())["normalisation_version"]
    assert re.fullmatch(rf"perceptual-image/{re.escape(version)}/[0-9a-f]{{16}}", ienc.fingerprint())
    assert re.fullmatch(rf"perceptual-audio/{re.escape(version)}/[0-9a-f]{{16}}", aenc.fingerprint())
    norm, lex = _copy_data(tmp_path)
    same = PerceptualImageEncoder(normalisation=str(norm), lexicon=str(lex))
    assert same.fingerprint() == ienc.fingerprint()

    doc = yaml.safe_load(norm.read_text())
    doc["image"]["descriptors"][0]["centre"] += 0.5
    norm.write_text(yaml.safe_dump(doc, sort_keys=False))
    moved = PerceptualImageEncoder(normalisation=str(norm), lexicon=str(lex))
    assert moved.fingerprint() != ienc.fingerprint()
    assert not np.array_equal(moved.encode_images(photos[:1]), ienc.encode_images(photos[:1]))
    # the audio side did not change, so neither does its fingerprint
    assert PerceptualAudioEncoder(normalisation=str(norm), lexicon=str(lex)).fingerprint() == aenc.fingerprint()

    doc["normalisation_version"] = "99"
    norm.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert PerceptualImageEncoder(normalisation=str(norm)).fingerprint().startswith("perceptual-image/99/")

    ldoc = yaml.safe_load(lex.read_text())
    ldoc["words"]["muffled"] = {"gloss": "changed", "like": {"calm": 1.0}}
    lex.write_text(yaml.safe_dump(ldoc, sort_keys=False))
    assert PerceptualAudioEncoder(lexicon=str(lex)).fingerprint() != aenc.fingerprint()


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["image"]["descriptors"].pop(3), "belongs to another encoder version"),
    (lambda d: d["image"]["descriptors"][0].update(scale=0), "scale > 0"),
    (lambda d: d["image"]["descriptors"][0].update(transform="sqrt"), "transform must be one of"),
    (lambda d: d.pop("normalisation_version"), "missing normalisation_version"),
])
def test_bad_normalisation_file_is_a_one_line_error(tmp_path, photos, edit, match):
    norm, _ = _copy_data(tmp_path)
    doc = yaml.safe_load(norm.read_text())
    edit(doc)
    norm.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DeltaV2AError, match=match):
        PerceptualImageEncoder(normalisation=str(norm)).encode_images(photos[:1])


@pytest.mark.parametrize("entry,match", [
    ({"gloss": "x", "image": {"no_such_descriptor": 1.0}, "audio": {"rms_level": 1.0}}, "unknown image descriptor"),
    ({"gloss": "x", "like": {"nonexistent": 1.0}}, "unknown entry 'nonexistent'"),
    ({"gloss": "x", "like": {"zz loop": 1.0}}, "loop"),
    ({"image": {"luminance": 1.0}, "audio": {"rms_level": 1.0}}, "has no gloss"),
    ({"gloss": "x", "audio": {"rms_level": 1.0}}, "no 'image' weights"),
])
def test_bad_lexicon_is_a_one_line_error(tmp_path, entry, match):
    _, lex = _copy_data(tmp_path)
    doc = yaml.safe_load(lex.read_text())
    doc["words"]["zz loop"] = entry
    lex.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DeltaV2AError, match=match):
        PerceptualImageEncoder(lexicon=str(lex)).encode_text(["muffled"])


def test_yaml_booleans_in_the_lexicon_are_caught(tmp_path):
    _, lex = _copy_data(tmp_path)
    lex.write_text(lex.read_text(encoding="utf-8").replace('"on"', "on"), encoding="utf-8")
    with pytest.raises(DeltaV2AError, match="non-word True"):
        PerceptualImageEncoder(lexicon=str(lex)).encode_text(["muffled"])
    assert "on" in PerceptualImageEncoder().lexicon.neutral


def test_unknown_option_is_an_error():
    with pytest.raises(DeltaV2AError, match="no option 'wieghts'"):
        PerceptualImageEncoder(wieghts="x")
    PerceptualAudioEncoder(device="cpu", batch_size=8)  # neural-encoder options are accepted


def test_docs_cover_every_descriptor_and_word():
    doc = (ROOT / "docs" / "perceptual_encoders.md").read_text(encoding="utf-8")
    for name in PerceptualImageEncoder.DESCRIPTORS + PerceptualAudioEncoder().descriptor_names:
        assert f"`{name}`" in doc, name
    words = yaml.safe_load(lx.LEXICON_FILE.read_text())["words"]
    missing = [w for w in words if f"`{w}`" not in doc]
    assert not missing, missing


# ---------------------------------------------------------------- bad and unusual input


def test_silent_audio_is_defined(aenc):
    v = aenc.encode_audio([np.zeros((2, SR), np.float32)], SR)[0]
    assert np.isfinite(v).all()
    table = aenc.table
    names = aenc.descriptor_names
    floor_rms = -table.squash * table.output_scale
    assert v[names.index("rms_level")] == pytest.approx(floor_rms, abs=0.01)
    assert v[names.index("stereo_width")] < 0  # width 0
    undefined = [n for n in names if n not in ("rms_level", "spectral_floor", "stereo_width")]
    assert all(v[names.index(n)] == 0.0 for n in undefined)


def test_unusual_but_valid_audio(aenc, music):
    sr = SR
    for x in (np.full((1, sr), 0.3, np.float32),                                     # DC
              np.random.default_rng(0).standard_normal((1, sr)).astype(np.float32),  # loud noise
              np.ones((1, int(0.06 * sr)), np.float32),                               # 60 ms
              np.zeros(sr, np.float32)):                                              # 1-D = mono
        assert np.isfinite(aenc.encode_audio([x], sr)).all()
    # 8 kHz material is resampled up and just has nothing in the upper bands
    assert np.isfinite(aenc.encode_audio([resample(music[1], SR, 8000)], 8000)).all()


def test_long_audio_is_three_windows(aenc, music):
    from deltav2a_plugins.encoders import perceptual_audio as pa

    long = np.concatenate([music[0]] * 6, axis=1)  # 36 s > 30 s
    v = aenc.encode_audio([long], SR)[0]
    windows = pa._windows(long.shape[1], SR)
    assert len(windows) == 3 and all(b - a == 10 * SR for a, b in windows)
    assert windows[0][0] == 0 and windows[-1][1] == long.shape[1]
    parts = aenc.encode_audio([long[:, a:b] for a, b in windows], SR)
    assert np.allclose(v, parts.mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("clip,sr,match", [
    (np.full((2, 4410), np.nan, np.float32), SR, "NaN or Inf"),
    (np.array([[0.0, np.inf] * 2205], np.float32), SR, "NaN or Inf"),
    (np.zeros((2, 1000), np.float32), SR, "at least 50 ms"),
    (np.zeros((2, 0), np.float32), SR, "zero length"),
    (np.zeros((SR, 2), np.float32), SR, "transposed"),
    (np.zeros((2, 2, 100), np.float32), SR, "expected \\(channels, samples\\)"),
    (np.zeros((2, SR), np.float32), 0, "sample rate"),
    (np.zeros((2, SR), np.float32), float("nan"), "sample rate"),
    (np.zeros((2, SR), np.float32), "fast", "sample rate"),
])
def test_bad_audio_is_a_one_line_error(aenc, clip, sr, match):
    with pytest.raises(DeltaV2AError, match=match):
        aenc.encode_audio([clip], sr)


def test_bad_clip_list_is_an_error(aenc):
    with pytest.raises(DeltaV2AError, match="list of"):
        aenc.encode_audio(np.zeros((2, SR), np.float32), SR)  # a bare array, not a list


@pytest.mark.parametrize("image", [
    Image.new("RGB", (1, 1), (10, 200, 30)),
    Image.new("RGB", (2, 2)),
    Image.new("RGB", (64, 48), (128, 128, 128)),     # constant
    Image.new("RGB", (4000, 3), (255, 0, 0)),        # extreme aspect ratio
    Image.new("L", (40, 30), 200),                   # greyscale
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)),     # transparent
    Image.new("I;16", (40, 30), 30000),              # 16-bit
])
def test_unusual_images_give_finite_vectors(ienc, image):
    v = ienc.encode_images([image])
    assert v.shape == (1, 19) and np.isfinite(v).all()


def test_constant_image_has_flat_texture(ienc):
    v = ienc.encode_images([Image.new("RGB", (64, 48), (128, 128, 128))])[0]
    names = ienc.DESCRIPTORS
    for n in ("detail_fine", "detail_mid", "detail_coarse", "edge_density"):
        assert v[names.index(n)] < -1.0, n   # at the floor of their range
    for n in ("detail_sparsity", "gradient_anisotropy", "pixel_coherence"):
        assert v[names.index(n)] == 0.0, n   # undefined -> corpus centre


def test_large_images_are_reduced_and_not_an_input_is_an_error(ienc, photos):
    # 4x and 2x pixel replicas: the 1024 px one is reduced (box) to exactly the 512 px one;
    # analysed at full size its finest band would be empty and the vectors would differ
    big = photos[0].resize((1024, 768), Image.Resampling.NEAREST)
    small = photos[0].resize((512, 384), Image.Resampling.NEAREST)
    assert np.allclose(ienc.encode_images([big]), ienc.encode_images([small]), atol=1e-5)
    with pytest.raises(DeltaV2AError, match="expected a Pillow image"):
        ienc.encode_images([np.zeros((4, 4, 3))])


# ---------------------------------------------------------------- analysis versions (issue 15)


def _analysis_inputs() -> list[tuple[np.ndarray, float]]:
    """Clips that reach every branch of the analysis: stereo, 48 kHz, mono, three channels,
    long (three windows), shorter than a frame, silent, clipped."""
    loud = np.clip(synthetic_music(5, 2.0) * 4.0, -1.0, 1.0).astype(np.float32)
    return [(synthetic_music(0), SR), (synthetic_music(1, 4.0), 48000.0), (synthetic_music(2, 3.0)[:1], SR),
            (np.concatenate([synthetic_music(3, 2.0), synthetic_music(4, 2.0)[:1]]), SR),
            (np.tile(synthetic_music(3, 4.0), 9), SR), (synthetic_music(4, 1.0)[:, :2500], SR),
            (np.zeros((2, SR), np.float32), SR), (loud, SR)]


def test_normalisations_1_and_2_keep_their_descriptors_bit_for_bit():
    """The speed work of issue 15 did not move a single bit of analysis 1: the encoder's raw
    descriptors equal those of a frozen copy of the code before it (run here, on this CPU),
    for the 23 (normalisation 1) and the 24 (normalisation 2) descriptors, and the vectors
    are that copy's rows normalised."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import frozen_perceptual_audio_v2 as frozen

    for enc in (PerceptualAudioEncoder(lexicon_version="1"), PerceptualAudioEncoder(),
                PerceptualAudioEncoder(normalisation_version="2")):
        assert enc.table.analysis == 1
        for clip, sr in _analysis_inputs():
            new = enc._raw_windows(clip, sr)
            old = frozen.raw_windows(clip, sr, enc.descriptor_names)
            assert len(new) == len(old)
            for a, b in zip(new, old):
                assert np.array_equal(a, b, equal_nan=True), (enc.descriptor_names, a, b)
            z = enc.table.normalise(np.stack(old))
            want = z[0] if len(old) == 1 else z.mean(axis=0, dtype=np.float64).astype(np.float32)
            assert np.array_equal(enc.encode_audio([clip], sr)[0], want)


def test_normalisation_3_is_analysis_2_and_means_what_2_means():
    """normalisation_version 3 selects analysis 2 (same 24 descriptors, hop 1024): its own
    fingerprint, finite vectors for every kind of input, and descriptors that rank effect
    renders as analysis 1 does (Spearman per descriptor over renders of every effect)."""
    from scipy.stats import spearmanr

    v2, v3 = PerceptualAudioEncoder(), PerceptualAudioEncoder(normalisation_version="3")
    assert v3.table.analysis == 2 and v3.table.version == "3" and v3.descriptor_names == v2.descriptor_names
    assert v3.fingerprint().startswith("perceptual-audio/3/") and v3.fingerprint() != v2.fingerprint()
    # the image side of normalisation 3 is normalisation 2's
    img2, img3 = PerceptualImageEncoder(), PerceptualImageEncoder(normalisation_version="3")
    assert img3.table.descriptors == img2.table.descriptors
    for clip, sr in _analysis_inputs():
        vec = v3.encode_audio([clip], sr)
        assert vec.shape == (1, 24) and np.isfinite(vec).all()
    silent = v3.raw_descriptors([np.zeros((2, SR), np.float32)], SR)[0]
    assert np.array_equal(np.isnan(silent), np.isnan(v2.raw_descriptors([np.zeros((2, SR), np.float32)], SR)[0]))

    a, b = _raw_over_effect_renders(v2, v3)
    rho = {n: spearmanr(a[:, j], b[:, j]).statistic for j, n in enumerate(v2.descriptor_names)}
    # echo periodicity loses the 23-46 ms lags (two hops of 23 ms is its shortest lag now),
    # and this synthetic music's 0.5 s beat dominates its autocorrelation; spectral flux
    # compares frames twice as far apart: agreement, but looser. (On held-out real clips:
    # benchmarks/results/perceptual_analysis_agreement.json, raw 0.95 / delta 0.86 for echo.)
    loose = {"echo_periodicity": 0.45, "spectral_flux": 0.9}
    low = {n: round(r, 3) for n, r in rho.items() if not r >= loose.get(n, 0.95)}
    assert not low, low


def test_normalisation_version_option_errors(tmp_path):
    with pytest.raises(DeltaV2AError, match=r"no shipped normalisation version '9' \(shipped: 1, 2, 3, 4, 5\)"):
        PerceptualAudioEncoder(normalisation_version="9")
    with pytest.raises(DeltaV2AError, match="not both"):
        PerceptualAudioEncoder(normalisation_version="3", normalisation=str(lx.NORMALISATION_FILES["3"]))
    doc = yaml.safe_load(lx.NORMALISATION_FILES["3"].read_text())
    for value, match in ((7, "audio analysis 7 is not one this version of 'perceptual-audio' computes"),
                         ("fast", "audio.analysis must be a positive integer")):
        doc["audio"]["analysis"] = value
        bad = tmp_path / f"n{value}.yaml"
        bad.write_text(yaml.safe_dump(doc))
        with pytest.raises(DeltaV2AError, match=match):
            PerceptualAudioEncoder(normalisation=str(bad)).encode_audio([synthetic_music(0, 1.0)], SR)
    # the image encoder computes one analysis only
    doc["audio"]["analysis"] = 2
    doc["image"]["analysis"] = 2
    bad = tmp_path / "img.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(DeltaV2AError, match="image analysis 2 is not one"):
        PerceptualImageEncoder(normalisation=str(bad)).encode_images([synthetic_photo(0)])


def test_normalisation_3_through_the_cli(tmp_path):
    """The installed entry point takes normalisation_version from the config (sensitivity
    encodes every effect through it); a bad version is one line, exit 2, nothing written."""
    import json

    import soundfile as sf

    from conftest import run_cli

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "x.wav", synthetic_music(0, 3.0).T, SR)
    results = {}
    for version in ("2", "3", "4", "9"):
        cfg = tmp_path / f"c{version}.yaml"
        cfg.write_text(yaml.safe_dump({"encoders": {"audio": {"name": "perceptual-audio", "options": {
            "normalisation_version": version}}}}))
        out = tmp_path / f"out{version}"
        r = run_cli("sensitivity", "--audio", str(audio), "-c", str(cfg), "--intensities", "0.5", "-o", str(out))
        if version == "9":
            assert r.returncode == 2 and not out.exists()
            assert r.stderr.strip().splitlines()[-1] == ("error: encoder 'perceptual-audio': no shipped "
                                                          "normalisation version '9' (shipped: 1, 2, 3, 4, 5)")
            assert "Traceback" not in r.stderr
            continue
        assert r.returncode == 0, r.stderr
        rows = json.loads((out / "sensitivity_results.json").read_text())["results"]
        results[version] = {row["effect"]: row["mean"] for row in rows}
    assert results["2"].keys() == results["3"].keys() == results["4"].keys() and results["2"] != results["3"]
    assert all(0.06 < v < 5 for v in results["3"].values()), results["3"]
    # analysis 3 (normalisation 4) reads every effect's strength as analysis 2 does, within 5 %
    assert all(abs(results["4"][k] / results["3"][k] - 1.0) < 0.05 for k in results["3"]), results


def test_analysis_2_fused_passes_match_the_separate_ones():
    """Decision 15.16: the one-pass downmix + stereo width is bit for bit the separate
    downmix and three dot products, and the clipping ratio counted only in frames whose
    peak reaches the threshold is the count over every sample (odd lengths, a tail, loud
    clipping, a mono and a silent clip)."""
    from deltav2a_plugins.encoders import perceptual_audio as pa

    rng = np.random.default_rng(3)
    for n in (3000, 44100, 441000 + 517):
        clip = (rng.standard_normal((2, n)) * 0.2).astype(np.float32)
        clip[1] = 0.6 * clip[0] + 0.4 * clip[1]
        mono, width = pa.downmix_width_2(clip)
        assert np.array_equal(mono, pa._downmix(clip)[0]) and width == pa.stereo_width_2(clip)
        for gain in (1.0, 8.0):  # 8: a quarter of the samples clipped at +-1
            x = np.clip(mono * gain, -1.0, 1.0)
            got = pa.describe_mono_2(x, 0.0)[pa.DESCRIPTORS_V2.index("clipping_ratio")]
            t = np.float32(pa.CLIP_LEVEL * float(np.abs(x).max()))
            assert got == (np.count_nonzero(x >= t) + np.count_nonzero(x <= -t)) / n
    mono_clip = rng.standard_normal((1, 5000)).astype(np.float32)
    assert pa.downmix_width_2(mono_clip)[1] == 0.0
    assert pa.downmix_width_2(np.zeros((2, 4096), np.float32))[1] == 0.0


def test_analysis_2_matches_its_frozen_copy():
    """Decisions 15.30-15.39 made analysis 2 cheaper without moving its descriptors beyond
    float32 rounding (normalisation 3's constants were fitted on the earlier code): against a
    frozen copy of it, every normalised coordinate within 1e-6 and the same undefined (NaN)
    descriptors, on every kind of input and on renders of every effect."""
    import warnings as _w

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import frozen_perceptual_audio_analysis2 as frozen

    from deltav2a.api import registry as plugins
    from deltav2a.render.chain import AudioChain, ChainSettings, EffectSetting

    enc = PerceptualAudioEncoder(normalisation_version="3")
    half = synthetic_music(6, 3.0)
    half[:, : half.shape[1] // 2] = 0.0
    inputs = _analysis_inputs() + [(half, SR), (synthetic_music(7, 1.0)[:, :3000], SR)]
    x = synthetic_music(8, 3.0)
    for name in ("lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate", "stutter"):
        cls = plugins.get("audio_effect", name)
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            inputs.append((AudioChain(ChainSettings([EffectSetting(name, cls.params_at_intensity(0.9))]),
                                      tail="cut")(x, SR), SR))
    for clip, sr in inputs:
        new = enc._raw_windows(enc._check(clip, 0, sr, 2), sr)
        old = frozen.raw_windows(clip, sr)
        assert len(new) == len(old)
        for a, b in zip(new, old):
            assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
        za, zb = enc.table.normalise(np.stack(new)), enc.table.normalise(np.stack(old))
        assert np.abs(za.astype(np.float64) - zb).max() <= 1e-6, np.abs(za - zb).max()


@pytest.mark.parametrize("channels,seconds,sr", [(2, 1.0, SR), (2, 31.0, SR), (1, 1.0, SR), (3, 1.0, SR),
                                                 (2, 1.0, 48000)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("version", ["3", "4"])
def test_analysis_2_finds_every_nan_and_inf(channels, seconds, sr, bad, version):
    """Analyses 2 and 3 read a stereo clip's finiteness from its downmix's sums of squares
    instead of a scan of their own (decision 15.30): NaN or Inf anywhere (the 1024-sample rows, the
    tail, outside a long clip's three windows, other channel counts) is still the one-line error."""
    enc = PerceptualAudioEncoder(normalisation_version=version)
    n = int(seconds * sr) + 517
    for where in (5, n - 3, n // 2 + 1):
        clip = (np.random.default_rng(where).standard_normal((channels, n)) * 0.1).astype(np.float32)
        clip[channels - 1, where] = bad
        with pytest.raises(DeltaV2AError, match="clip 0 contains NaN or Inf samples"):
            enc.encode_audio([clip], sr)
        with pytest.raises(DeltaV2AError, match="NaN or Inf"):
            enc.raw_descriptors([clip], sr)


#: what analysis 3 computes exactly as analysis 2 (up to float32 rounding): all but the
#: three flatness descriptors (every 2nd frame) and the spectral floor (every 8th frame)
ANALYSIS_3_SAME = tuple(n for n in DESCRIPTORS_V2 if n not in (
    "spectral_flatness", "hf_flatness", "harmonic_distortion", "spectral_floor"))


def test_normalisation_4_is_analysis_3():
    """normalisation_version 4 selects analysis 3 (decision 15.50): 24 descriptors, its own
    fingerprint, finite and deterministic vectors for every kind of input, the same undefined
    descriptors as analysis 2, every descriptor it computes as analysis 2 equal to it, and
    the four it samples more sparsely close to it. Lexicons v3 and v4 both embed text on it."""
    v3, v4 = PerceptualAudioEncoder(normalisation_version="3"), PerceptualAudioEncoder(normalisation_version="4")
    assert v4.table.analysis == 3 and v4.table.version == "4" and v4.dim == 24
    assert v4.descriptor_names == v3.descriptor_names == DESCRIPTORS_V2
    assert v4.fingerprint().startswith("perceptual-audio/4/") and v4.fingerprint() != v3.fingerprint()
    # the image side of normalisation 4 is normalisation 3's
    assert (PerceptualImageEncoder(normalisation_version="4").table.descriptors
            == PerceptualImageEncoder(normalisation_version="3").table.descriptors)
    same = [DESCRIPTORS_V2.index(n) for n in ANALYSIS_3_SAME]
    other = [DESCRIPTORS_V2.index(n) for n in DESCRIPTORS_V2 if n not in ANALYSIS_3_SAME]
    for clip, sr in _analysis_inputs():
        vec = v4.encode_audio([clip], sr)
        assert vec.shape == (1, 24) and vec.dtype == np.float32 and np.isfinite(vec).all()
        again = PerceptualAudioEncoder(normalisation_version="4").encode_audio([clip.copy()], sr)
        assert np.array_equal(vec, again)
        a, b = v3.raw_descriptors([clip], sr)[0], v4.raw_descriptors([clip], sr)[0]
        assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
        ok = ~np.isnan(a)
        rel = np.abs(b - a) / np.maximum(np.abs(a), 1e-9)
        assert (rel[same][ok[same]] < 1e-4).all(), dict(zip(ANALYSIS_3_SAME, rel[same]))
        za, zb = v3.encode_audio([clip], sr)[0], vec[0]
        assert np.abs(za[other] - zb[other]).max() < 0.1, (za[other], zb[other])
    for lexicon in ("3", "4"):
        enc = PerceptualAudioEncoder(normalisation_version="4", lexicon_version=lexicon)
        t = enc.encode_text(["muffled and distant", "choppy"])
        assert t.shape == (2, 24) and np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)


def test_analysis_3_level_and_floor_match_their_definitions():
    """Analysis 3 takes the mono level from the downmix's dot products and finds the spectral
    floor's percentile by selection: the same mean square as a direct sum, and the same
    order statistic as analysis 2's sort, on the frames it samples."""
    from deltav2a_plugins.encoders import perceptual_audio as pa

    rng = np.random.default_rng(5)
    for n in (3000, 44100 + 517, 441000):
        clip = (rng.standard_normal((2, n)) * 0.2).astype(np.float32)
        clip[1] = 0.7 * clip[0] + 0.3 * clip[1]
        mono, width, ms = pa.downmix_width_2(clip, with_ms=True)
        mono = mono.copy()  # the workspace buffer: the next call overwrites it
        m2, w2 = pa.downmix_width_2(clip)
        assert np.array_equal(mono, m2) and width == w2
        direct = float(np.mean(np.square(mono.astype(np.float64))))
        assert abs(ms / direct - 1.0) < 1e-5
        a = pa.describe_mono_3(mono.copy(), width, ms=ms)
        b = pa.describe_mono_3(mono.copy(), width)
        assert np.allclose(a, b, rtol=1e-5, equal_nan=True)
    assert pa.downmix_width_2(rng.standard_normal((1, 5000)).astype(np.float32), with_ms=True)[2] is None
    # the floor: with every frame (steps 1), analysis 3's selection is analysis 2's sort
    x = synthetic_music(9, 3.0)[0].copy()
    j = DESCRIPTORS_V2.index("spectral_floor")
    old = pa.FLOOR_FRAME_STEP
    try:
        pa.FLOOR_FRAME_STEP = 1
        a2 = pa.describe_mono_2(x, 0.0)
    finally:
        pa.FLOOR_FRAME_STEP = old
    a3 = pa.describe_mono_3(x, 0.0, flat_step=1, floor_step=1)
    # (with an even frame count the median's two middle values are averaged as powers, not logs)
    assert a3[j] == pytest.approx(a2[j], rel=1e-3)
    for k in ("spectral_flatness", "hf_flatness", "harmonic_distortion"):
        i = DESCRIPTORS_V2.index(k)
        assert a3[i] == pytest.approx(a2[i], rel=1e-4), k


def test_kth_smallest_is_the_sort_either_way():
    """Decision 15.53: the floor's per-row order statistic by sort or by partition (chosen per
    CPU) is the same value bit for bit, for float32 logs and powers with ties."""
    from deltav2a_plugins.encoders import perceptual_audio as pa

    rng = np.random.default_rng(11)
    rows = np.log(rng.random((108, 878)).astype(np.float32) ** 4 + np.float32(1e-30))
    rows[:, ::7] = rows[:, :1]  # ties
    saved = list(pa._SIMD_SORT)
    try:
        for simd in (True, False):
            pa._SIMD_SORT[:] = [simd]
            for k in (0, 43, 877):
                assert np.array_equal(pa._kth_smallest(rows, k), np.sort(rows, axis=1)[:, k])
    finally:
        pa._SIMD_SORT[:] = saved


def test_band_dynamics_3_is_band_dynamics():
    """Analysis 3's one-FFT echo periodicity and spectral persistence equal the two-FFT
    originals to float32 rounding, also with constant bands and short inputs."""
    from deltav2a_plugins.encoders import perceptual_audio as pa

    rng = np.random.default_rng(2)
    x = np.cumsum(rng.standard_normal((430, 22)), axis=0) * 0.1
    x[:, 3] = -5.0  # a constant band (no spread, not standardised)
    beat = x.copy()
    beat[::20] += 2.0  # onsets 20 frames apart: an echo peak
    for logb in (x, beat, x[:9], np.full((50, 22), -3.0)):
        a: dict = {}
        b: dict = {}
        pa._band_dynamics(logb, 1024, 44100, 5, a)
        pa._band_dynamics_3(logb, 1024, 44100, 5, b)
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), k


def _raw_over_effect_renders(enc_a, enc_b):
    """Raw descriptors of two encoders on the same renders: two synthetic grooves x the eight
    default effects x intensities 0.2 / 0.5 / 0.9 (for comparing one analysis with the next)."""
    from deltav2a.api import registry as plugins
    from deltav2a.render.chain import AudioChain, ChainSettings, EffectSetting

    a, b = [], []
    for x in (synthetic_music(0, 4.0), synthetic_music(1, 4.0)):
        for name in ("lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate",
                     "stutter"):
            cls = plugins.get("audio_effect", name)
            for t in (0.2, 0.5, 0.9):
                chain = AudioChain(ChainSettings([EffectSetting(name, cls.params_at_intensity(t))]), tail="cut")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    y = chain(x, SR)
                a.append(enc_a.raw_descriptors([y], SR)[0])
                b.append(enc_b.raw_descriptors([y], SR)[0])
    return np.array(a), np.array(b)


def test_normalisation_4_means_what_3_means():
    """On renders of every effect, analysis 3's raw descriptors rank as analysis 2's
    (Spearman per descriptor >= 0.98; held-out real clips:
    benchmarks/results/perceptual_analysis_agreement_3_4.json)."""
    from scipy.stats import spearmanr

    v3, v4 = PerceptualAudioEncoder(normalisation_version="3"), PerceptualAudioEncoder(normalisation_version="4")
    a, b = _raw_over_effect_renders(v3, v4)
    rho = {n: spearmanr(a[:, j], b[:, j]).statistic for j, n in enumerate(DESCRIPTORS_V2)}
    low = {n: round(r, 4) for n, r in rho.items() if not r >= 0.98}
    assert not low, low


def test_lexicon_digest_is_memoised_and_unchanged():
    """Decision 15.61: the digest is computed once per loaded lexicon, with the same value as
    hashing its fields; a copy with other directions gets its own digest."""
    import dataclasses

    lex = PerceptualAudioEncoder().lexicon
    expected = lx._digest({"version": lex.version, "descriptors": list(lex.descriptor_names),
                           "directions": {w: [round(x, 9) for x in v] for w, v in sorted(lex.directions.items())},
                           "neutral": sorted(lex.neutral)})
    assert lex.digest() == expected
    assert lex.__dict__["_digest_memo"] == expected and lex.digest() == expected
    word = sorted(lex.directions)[0]
    other = dataclasses.replace(lex, directions={**lex.directions, word: tuple(-x for x in lex.directions[word])})
    assert other.digest() != expected and lex.digest() == expected


@pytest.mark.parametrize("version", ["1", "2", "3", "4", "5"])
def test_normalise_row_by_row_matches_the_column_formula(version):
    """Decision 15.62: `transformed` row by row on Python floats and the memoised centre / scale
    arrays give the bytes of the per-column formula, NaN and 0 / negative raw values included."""
    table = PerceptualAudioEncoder(normalisation_version=version).table
    D = len(table.descriptors)
    rng = np.random.default_rng(int(version))
    for N in (0, 1, 5):
        raw = rng.standard_normal((N, D)) * 10 ** rng.uniform(-6, 3, (N, D))
        if N:
            raw[rng.random((N, D)) < 0.2] = np.nan
            raw[0, 0], raw[-1, -1] = 0.0, -5.0
        t = np.empty_like(raw)
        for j, d in enumerate(table.descriptors):
            t[:, j] = [d.apply(float(v)) for v in raw[:, j]]
        assert np.array_equal(table.transformed(raw), t, equal_nan=True)
        centre = np.array([d.centre for d in table.descriptors])
        scale = np.array([d.scale for d in table.descriptors])
        z = table.squash * np.tanh((t - centre) / scale / table.squash)
        want = (np.where(np.isnan(z), 0.0, z) * table.output_scale).astype(np.float32)
        got = table.normalise(raw)
        assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
    assert table.names == tuple(d.name for d in table.descriptors)
