"""The built-in audio effects (the notes' seven, `stutter`, `narrowband`, `smear` and `scatter`), rendered with real Pedalboard, soxr
and numpy.

Fixtures are synthetic and seeded (harmonic tones, noise bursts, clicks, then silence),
so the tests run anywhere; measurements are physical (spectral centroid, residual noise,
decay energy, autocorrelation, harmonic distortion, pitch and duration), not snapshots.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from deltav2a.api.effects import AudioEffect
from deltav2a.api.registry import get, get_registry

SR = 44100
EXPECTED_PARAMS = {
    "lowpass": ("cutoff_hz",),
    "bitcrush": ("bit_depth",),
    "reverb": ("room_size", "damping", "wet_level", "dry_level"),
    "highpass": ("cutoff_hz",),
    "distortion": ("drive_db",),
    "delay": ("delay_seconds", "feedback", "mix"),
    "playback_rate": ("rate",),
    "stutter": ("rate_hz", "duty", "depth", "smoothing_ms"),
    "narrowband": ("low_cut_hz", "high_cut_hz"),
    "smear": ("length_ms", "mix"),
    "scatter": ("radius_ms", "grain_ms"),
}


def effect(name: str) -> AudioEffect:
    return get("audio_effect", name)()


def music_like(sr: int = SR, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Stereo: harmonic tones to 2 s, noise bursts and clicks, then silence (peak 0.5)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    env = np.clip(np.minimum(t / 0.02, (2.0 - t) / 0.05), 0.0, 1.0) * (t < 2.0)
    left = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 7))
    right = sum(np.sin(2 * np.pi * 330 * k * t + 0.3 * k) / k for k in range(1, 5))
    x = np.stack([left, 0.5 * left + right]) * env * 0.15
    m = int(0.05 * sr)
    for start in (0.5, 1.2, 1.95):
        i = int(start * sr)
        x[:, i:i + m] += 0.3 * rng.standard_normal((2, m)) * np.hanning(m)
    for click in (0.25, 0.75, 1.5):
        x[:, int(click * sr)] += 0.4
    x *= 0.5 / np.abs(x).max()
    return x.astype(np.float32)


def sine(freq: float, sr: int = SR, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t))[None, :].astype(np.float32)


def centroid(x: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[1], 1 / sr)
    return float((spec * freqs).sum() / spec.sum())


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def magnitude_response_db(e: AudioEffect, sr: int, **raw: float) -> tuple[np.ndarray, np.ndarray]:
    n = 1 << 15
    imp = np.zeros((1, n), dtype=np.float32)
    imp[0, 0] = 1.0
    h = e.process(imp, sr, **raw)[0]
    return np.fft.rfftfreq(n, 1 / sr), 20 * np.log10(np.abs(np.fft.rfft(h)) + 1e-12)


def peak_frequency(x: np.ndarray, sr: int) -> float:
    """Strongest frequency, refined by parabolic interpolation on a zero-padded FFT."""
    sig = x.mean(axis=0) * np.hanning(x.shape[1])
    n = 1 << int(math.ceil(math.log2(x.shape[1] * 4)))
    mag = np.abs(np.fft.rfft(sig, n))
    k = int(np.argmax(mag[1:-1])) + 1
    a, b, c = np.log(mag[k - 1:k + 2] + 1e-30)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / n


@pytest.fixture(scope="module")
def fixture_audio() -> np.ndarray:
    return music_like()


# ----------------------------------------------------------------- registration


def test_all_eleven_registered_through_entry_points():
    names = set(get_registry().names("audio_effect"))
    assert set(EXPECTED_PARAMS) <= names
    for name, params in EXPECTED_PARAMS.items():
        rec = get_registry().record("audio_effect", name)
        assert rec.plugin == "audio_effects" and rec.distribution == "deltav2a"
        cls = rec.obj
        assert issubclass(cls, AudioEffect) and cls.name == name
        assert tuple(p.name for p in cls.params) == params
        assert cls.summary()
    assert sum(len(p) for p in EXPECTED_PARAMS.values()) == 22
    outside = {n for n in EXPECTED_PARAMS if get("audio_effect", n).outside_pedalboard}
    assert outside == {"playback_rate", "stutter", "smear", "scatter"}


def test_registration_and_chain_import_stay_cheap():
    code = (
        "import sys\n"
        "from deltav2a.api.registry import load_registry\n"
        "r = load_registry(only=['audio_effects'])\n"
        "import deltav2a.render.chain\n"
        "assert len(r.names('audio_effect')) == 11, r.names('audio_effect')\n"
        "heavy = [m for m in ('numpy', 'pedalboard', 'soxr', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "DELTAV2A_STRICT_PLUGINS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_params_are_fully_declared(name):
    cls = get("audio_effect", name)
    for p in cls.params:
        assert p.doc and p.minimum <= p.bypass <= p.maximum
        assert p.minimum <= p.default <= p.maximum
        if name != "reverb" or p.name != "damping":  # damping has no neutral value
            assert p.default != p.bypass, f"{name}.{p.name}: default must be an active setting"
    logs = {(name, p.name) for p in cls.params if p.scale == "log"}
    expected_log = {("lowpass", "cutoff_hz"), ("highpass", "cutoff_hz"), ("playback_rate", "rate"),
                    ("stutter", "rate_hz"), ("narrowband", "low_cut_hz"),
                    ("narrowband", "high_cut_hz")}
    assert logs == {k for k in expected_log if k[0] == name}


# ----------------------------------------------------------------- normalised space


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_normalise_round_trip(name):
    for p in get("audio_effect", name).params:
        for u in np.linspace(0.0, 1.0, 11):
            assert p.normalise(p.denormalise(u)) == pytest.approx(u, abs=1e-12)
        for raw in np.linspace(p.minimum, p.maximum, 7):
            assert p.denormalise(p.normalise(raw)) == pytest.approx(raw, rel=1e-12)
        assert p.normalise(p.minimum) == 0.0 and p.normalise(p.maximum) == pytest.approx(1.0)
        mid = p.denormalise(0.5)
        if p.scale == "log":
            assert mid == pytest.approx(math.sqrt(p.minimum * p.maximum), rel=1e-12)
        else:
            assert mid == pytest.approx((p.minimum + p.maximum) / 2, rel=1e-12)


def test_log_scale_spacing_is_geometric():
    p = get("audio_effect", "lowpass").param("cutoff_hz")
    # equal steps in normalised space are equal frequency ratios (octaves stay octaves)
    f = [p.denormalise(u) for u in (0.2, 0.4, 0.6, 0.8)]
    assert f[1] / f[0] == pytest.approx(f[2] / f[1]) == pytest.approx(f[3] / f[2])
    rate = get("audio_effect", "playback_rate").param("rate")
    assert rate.bypass_normalised == pytest.approx(0.5)  # 1x sits mid-range: 0.5x and 2x
    assert rate.normalise(0.5) == 0.0 and rate.normalise(2.0) == pytest.approx(1.0)


# ----------------------------------------------------------------- bypass = identity


def test_reverb_delay_playback_bypass_are_exact(fixture_audio):
    x = fixture_audio
    for name in ("reverb", "delay", "playback_rate", "stutter", "smear", "scatter"):
        e = effect(name)
        y = e.process(x, SR, **e.bypass_values())
        assert y.shape == x.shape
        assert np.max(np.abs(y - x)) <= 1e-7, name


def test_bitcrush_bypass_is_16_bit_rounding(fixture_audio):
    e = effect("bitcrush")
    y = e.process(fixture_audio, SR, **e.bypass_values())
    err = np.abs(y - fixture_audio)
    assert err.max() <= 2.0 ** -16 * 1.001          # at most one 16-bit step
    assert 20 * np.log10(rms(y - fixture_audio) / rms(fixture_audio)) < -80


def test_distortion_bypass_is_plain_tanh(fixture_audio):
    """0 dB drive is tanh(x): the mildest setting, identical below about -20 dBFS."""
    e = effect("distortion")
    y = e.process(fixture_audio, SR, **e.bypass_values())
    np.testing.assert_allclose(y, np.tanh(fixture_audio), atol=2e-6)
    quiet = fixture_audio * (0.1 / np.abs(fixture_audio).max())  # peak -20 dBFS
    yq = e.process(quiet, SR, **e.bypass_values())
    assert np.max(np.abs(yq - quiet)) <= 0.004 * 0.1


@pytest.mark.parametrize("sr", [44100, 48000])
def test_filter_bypass_magnitude_is_flat(sr):
    """First-order filters shift phase, so bypass is judged on the magnitude response."""
    f, lp = magnitude_response_db(effect("lowpass"), sr, cutoff_hz=20000)
    band = (f >= 20) & (f <= 10000)
    assert np.max(np.abs(lp[band])) < 0.2
    assert np.max(np.abs(lp[(f >= 20) & (f <= 15000)])) < 0.7
    f, hp = magnitude_response_db(effect("highpass"), sr, cutoff_hz=20)
    assert np.max(np.abs(hp[(f >= 100) & (f <= 20000)])) < 0.2
    assert np.max(np.abs(hp[(f >= 50) & (f <= 20000)])) < 0.7


def test_defaults_are_audibly_active(fixture_audio):
    x = fixture_audio
    for name in EXPECTED_PARAMS:
        e = effect(name)
        y = e.process(x, SR)  # no values: defaults
        n = min(x.shape[1], y.shape[1])
        changed = rms(y[:, :n] - x[:, :n]) / rms(x)
        assert y.shape[1] != x.shape[1] or changed > 10 ** (-40 / 20), name


# ----------------------------------------------------------------- sample rates


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_filters_stay_finite_at_every_sample_rate(sr):
    """A 20 kHz cutoff is above Nyquist at 22.05 kHz; JUCE alone would return NaN."""
    x = music_like(sr=sr)
    for name, raw in (("lowpass", 20000.0), ("highpass", 8000.0)):
        y = effect(name).process(x, sr, cutoff_hz=raw)
        assert np.isfinite(y).all() and y.shape == x.shape
    y = effect("lowpass").process(x, sr, cutoff_hz=20000.0)
    assert rms(y) > 0.9 * rms(x)  # still (almost) a pass-through


# ----------------------------------------------------------------- directions


def test_lowpass_lowers_centroid_monotonically(fixture_audio):
    c0 = centroid(fixture_audio)
    cs = [centroid(effect("lowpass").process(fixture_audio, SR, cutoff_hz=f))
          for f in (8000, 2000, 500, 150)]
    assert c0 > cs[0] > cs[1] > cs[2] > cs[3]
    assert cs[3] < 0.5 * c0


def test_highpass_raises_centroid_monotonically(fixture_audio):
    c0 = centroid(fixture_audio)
    cs = [centroid(effect("highpass").process(fixture_audio, SR, cutoff_hz=f))
          for f in (100, 500, 2000, 6000)]
    assert c0 < cs[0] < cs[1] < cs[2] < cs[3]
    assert cs[3] > 2 * c0


def test_bitcrush_adds_quantisation_noise(fixture_audio):
    x = fixture_audio
    noise = []
    for bits in (16, 12, 8, 5, 3):
        y = effect("bitcrush").process(x, SR, bit_depth=bits)
        noise.append(rms(y - x))
        assert len(np.unique(y)) <= 2 ** (bits + 1) + 1  # values lie on the 2^-bits grid
    assert all(a < b for a, b in zip(noise, noise[1:]))
    # each bit removed roughly doubles the error (6 dB/bit): 8 -> 5 bits is ~18 dB
    assert 12 < 20 * np.log10(noise[3] / noise[2]) < 24


def test_reverb_lengthens_decay(fixture_audio):
    x = fixture_audio
    after = slice(int(2.1 * SR), int(2.6 * SR))  # the fixture is silent here
    assert np.max(np.abs(x[:, after])) == 0.0
    energies = []
    for room in (0.1, 0.5, 0.9):
        y = effect("reverb").process(x, SR, room_size=room, damping=0.5, wet_level=0.4,
                                     dry_level=0.5)
        energies.append(rms(y[:, after]))
    assert energies[0] > 1e-4 and energies[0] < energies[1] < energies[2]
    late = slice(int(2.5 * SR), int(3.0 * SR))
    y_small = effect("reverb").process(x, SR, room_size=0.1, wet_level=0.4)
    y_big = effect("reverb").process(x, SR, room_size=0.9, wet_level=0.4)
    assert rms(y_big[:, late]) > 10 * rms(y_small[:, late])


@pytest.mark.parametrize("room,damping,wet", [
    (0.0, 0.0, 0.33), (0.5, 0.5, 0.33), (0.8, 0.0, 1.0), (0.8, 1.0, 0.1), (0.95, 0.5, 0.5),
])
def test_reverb_tail_estimate_bounds_the_measured_tail(room, damping, wet):
    sr = 22050
    rng = np.random.default_rng(1)
    x = np.zeros((2, sr * 10), dtype=np.float32)
    m = int(0.1 * sr)
    x[:, :m] = rng.uniform(-1, 1, (2, m))
    e = effect("reverb")
    y = e.process(x, sr, room_size=room, damping=damping, wet_level=wet, dry_level=0.0)
    loud = np.flatnonzero(np.abs(y).max(axis=0) > 1e-3)
    measured = loud[-1] / sr - 0.1
    estimate = e.tail_seconds(room_size=room, damping=damping, wet_level=wet)
    assert measured <= estimate <= 1.8 * measured + 0.1
    assert e.tail_seconds(room_size=room, wet_level=0.0) == 0.0


@pytest.mark.parametrize("delay_s", [0.05, 0.25, 0.6])
def test_delay_adds_autocorrelation_peak_at_delay_time(delay_s):
    rng = np.random.default_rng(2)
    x = np.zeros((1, SR * 2), dtype=np.float32)
    x[0, :SR] = 0.3 * rng.standard_normal(SR)

    def strongest_lag(sig: np.ndarray) -> tuple[int, float]:
        s = sig[0] - sig[0].mean()
        spec = np.fft.rfft(s, 2 * len(s))
        ac = np.fft.irfft(np.abs(spec) ** 2)[:len(s)]
        lo, hi = int(0.02 * SR), int(0.8 * SR)
        k = lo + int(np.argmax(ac[lo:hi]))
        return k, float(ac[k] / ac[0])

    _, before = strongest_lag(x)
    y = effect("delay").process(x, SR, delay_seconds=delay_s, feedback=0.0, mix=0.5)
    lag, height = strongest_lag(y)
    assert abs(lag - round(delay_s * SR)) <= 1
    assert height > 0.3 and before < 0.05


def test_delay_tail_estimate_matches_last_audible_echo():
    x = np.zeros((1, SR * 6), dtype=np.float32)
    x[0, 0] = 1.0
    e = effect("delay")
    for raw in (dict(delay_seconds=0.1, feedback=0.5, mix=0.5),
                dict(delay_seconds=0.3, feedback=0.0, mix=0.35),
                dict(delay_seconds=0.07, feedback=0.9, mix=1.0)):
        y = e.process(x, SR, **raw)
        last = np.flatnonzero(np.abs(y[0]) >= 1e-3)[-1] / SR
        assert e.tail_seconds(**raw) == pytest.approx(last, abs=2 / SR)


def test_distortion_adds_harmonics_and_lowers_crest_factor():
    x = sine(441.0, amp=0.5)  # 441 Hz: an exact number of cycles per 1 s window

    def thd(y: np.ndarray) -> float:
        mag = np.abs(np.fft.rfft(y[0]))  # bins are 1 Hz apart
        return float(np.sqrt(sum(mag[441 * k] ** 2 for k in (3, 5, 7, 9))) / mag[441])

    def crest(y: np.ndarray) -> float:
        return float(np.abs(y).max() / rms(y))

    ys = [effect("distortion").process(x, SR, drive_db=d) for d in (0, 10, 20, 35)]
    thds, crests = [thd(y) for y in ys], [crest(y) for y in ys]
    assert thd(x) < 1e-4
    assert all(a < b for a, b in zip(thds, thds[1:])) and thds[-1] > 0.2
    assert all(a > b for a, b in zip(crests, crests[1:]))
    assert crests[-1] < 1.1 < math.sqrt(2) - 0.01 < crest(x)  # towards a square wave


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
@pytest.mark.parametrize("rate", [0.5, 0.8, 1.25, 2.0])
def test_playback_rate_changes_duration_and_pitch(sr, rate):
    x = np.repeat(sine(440.0, sr=sr, seconds=1.0), 2, axis=0)
    y = effect("playback_rate").process(x, sr, rate=rate)
    assert y.dtype == np.float32 and y.shape[0] == 2
    assert abs(y.shape[1] - x.shape[1] / rate) <= 1
    assert peak_frequency(y, sr) == pytest.approx(440.0 * rate, rel=2e-3)
    mid = slice(y.shape[1] // 4, 3 * y.shape[1] // 4)  # away from resampler edges
    assert rms(y[:, mid]) == pytest.approx(rms(x), rel=0.02)  # speed, not gain


def test_playback_rate_octave_up_halves_duration_of_music(fixture_audio):
    y = effect("playback_rate").process(fixture_audio, SR, rate=2.0)
    assert abs(y.shape[1] - fixture_audio.shape[1] / 2) <= 1
    # the strongest partial (220 Hz, left) moves up an octave; 1 s in = 0.5 s out
    assert peak_frequency(fixture_audio[:1, :SR], SR) == pytest.approx(220.0, rel=2e-3)
    assert peak_frequency(y[:1, : SR // 2], SR) == pytest.approx(440.0, rel=2e-3)


# ----------------------------------------------------------------- real music


@pytest.mark.shared_data
def test_effects_on_a_real_clip(shared_data):
    from deltav2a.media.io import load_audio

    audio, sr = load_audio(sorted((shared_data / "music").glob("*.ogg"))[0])
    audio = audio[:, : sr * 3]
    c0 = centroid(audio, sr)
    assert centroid(effect("lowpass").process(audio, sr, cutoff_hz=800), sr) < c0
    assert centroid(effect("highpass").process(audio, sr, cutoff_hz=2000), sr) > c0
    for name in EXPECTED_PARAMS:
        y = effect(name).process(audio, sr)
        assert np.isfinite(y).all() and y.shape[0] == audio.shape[0]


# ----------------------------------------------------------------- stutter (issue 16)


def _gate_envelope(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-sample gain the effect applied (x is a constant-amplitude carrier)."""
    return y[0] / x[0]


def test_stutter_gates_at_its_rate_duty_and_depth():
    """A constant signal comes out as a periodic on/off pattern: open for the duty share of
    each cycle at full level, closed at 1 - depth, edges as long as the smoothing."""
    sr = 48000
    x = np.full((1, sr), 0.5, dtype=np.float32)
    e = effect("stutter")
    y = e.process(x, sr, rate_hz=4.0, duty=0.25, depth=0.75, smoothing_ms=5.0)
    g = _gate_envelope(y, x)
    period = sr // 4
    assert g.min() == pytest.approx(0.25, abs=1e-6) and g.max() == pytest.approx(1.0, abs=1e-6)
    opened = g > 0.999
    closed = g < 0.251
    # the two 5 ms ramps lie inside the open quarter: open 0.25 - 2 x 5 ms x 4 Hz, closed 0.75
    assert opened.mean() == pytest.approx(0.25 - 2 * 0.005 * 4, abs=0.002)
    assert closed.mean() == pytest.approx(0.75, abs=0.002)
    np.testing.assert_allclose(g[:period * 3], g[period:period * 4], atol=1e-6)  # periodic
    assert opened[period // 8] and closed[period // 2]                           # open first


def test_stutter_does_not_click():
    """The largest sample step of a gated sine stays that of the sine (no discontinuity)."""
    sr = 44100
    x = sine(220.0, sr, 1.0, 0.5)
    y = effect("stutter").process(x, sr, rate_hz=16.0, duty=0.25, depth=1.0, smoothing_ms=2.0)
    step = np.abs(np.diff(x[0])).max()
    assert np.abs(np.diff(y[0])).max() <= step * 1.05
    # the same gate without ramps would jump by up to the full amplitude (0.5)
    t = np.arange(x.shape[1]) / sr
    hard = x[0] * (np.mod(t * 16.0, 1.0) < 0.25)
    assert np.abs(np.diff(hard)).max() > 10 * step


def test_stutter_intensity_sweep_and_bypass(fixture_audio):
    e = effect("stutter")
    x = fixture_audio
    assert e.process(x, SR, depth=0.0) is x and e.process(x, SR, duty=1.0) is x
    removed = [rms(x - e.process(x, SR, **e.params_at_intensity(u))) for u in (0.2, 0.5, 0.9)]
    assert removed[0] < removed[1] < removed[2]
    p = e.params_at_intensity(1.0)
    assert p == pytest.approx({"rate_hz": 16.0, "duty": 0.25, "depth": 1.0, "smoothing_ms": 2.0})


def test_stutter_is_deterministic_and_streams_like_a_whole_render(fixture_audio):
    e = effect("stutter")
    x = fixture_audio
    whole = e.process(x, SR, rate_hz=7.3, duty=0.4, depth=0.8, smoothing_ms=3.0)
    np.testing.assert_array_equal(whole, e.process(x.copy(), SR, rate_hz=7.3, duty=0.4, depth=0.8,
                                                   smoothing_ms=3.0))
    st = e.stream(SR, x.shape[0], rate_hz=7.3, duty=0.4, depth=0.8, smoothing_ms=3.0)
    sizes = [1000, 4097, 333, x.shape[1]]
    parts, pos = [], 0
    for n in sizes:
        parts.append(st.process(x[:, pos:pos + n], pos + n >= x.shape[1]))
        pos += n
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    assert st.ratio == 1.0 and e.tail_seconds() == 0.0


# ----------------------------------------------------------------- narrowband and smear (issue 16, 16.30-16.31)


def spectral_bandwidth(x: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[1], 1 / sr)
    c = (spec * freqs).sum() / spec.sum()
    return float(np.sqrt((spec * (freqs - c) ** 2).sum() / spec.sum()))


def frame_rms(x: np.ndarray, sr: int, ms: float = 10.0) -> np.ndarray:
    n = int(sr * ms / 1000)
    m = x.mean(axis=0)[: x.shape[1] // n * n].astype(np.float64)
    return np.sqrt((m.reshape(-1, n) ** 2).mean(axis=1))


def test_narrowband_bypass_is_flat():
    """Bypass: two 20 Hz / 20 kHz first-order sections each, within the single filters'
    flatness doubled; a 1 kHz sine keeps its level."""
    e = effect("narrowband")
    f, h = magnitude_response_db(e, SR, **e.bypass_values())
    assert np.max(np.abs(h[(f >= 100) & (f <= 10000)])) < 0.4
    y = e.process(sine(1000.0, SR, 1.0, 0.9), SR, **e.bypass_values())
    assert np.abs(y[:, SR // 2:]).max() == pytest.approx(0.9, rel=0.01)  # after the filters' onset


def test_narrowband_narrows_the_band_from_both_ends(fixture_audio):
    """Stronger settings narrow the spectrum; both ends are cut at 12 dB/octave while the
    middle passes (unlike a low-pass, the mid-band stays the loudest part)."""
    e = effect("narrowband")
    x = fixture_audio
    bw = []
    for u in (0.05, 0.5, 1.0):
        y = e.process(x, SR, **e.params_at_intensity(u))
        assert np.isfinite(y).all() and y.shape == x.shape
        bw.append(spectral_bandwidth(y))
    assert bw[0] > bw[1] > bw[2]
    f, h = magnitude_response_db(e, SR, **e.params_at_intensity(1.0))  # 200 Hz - 2.5 kHz
    at = lambda hz: float(h[np.argmin(np.abs(f - hz))])
    assert abs(at(700)) < 1.5
    assert at(700) > at(50) + 15 and at(700) > at(10000) + 15
    assert at(25) - at(50) == pytest.approx(-12.0, abs=2.0)        # 12 dB/octave below the band
    assert at(10000) - at(5000) == pytest.approx(-12.0, abs=2.0)   # and above it


def test_smear_fills_gaps_keeps_level_and_adds_no_width():
    """Pulses with silent gaps: the smear fills the gaps (motion blur in time), keeps the
    overall level (decorrelated taps), and a mono input stays identical on both channels."""
    sr = SR
    t = np.arange(3 * sr) / sr
    pulse = (0.5 * np.sin(2 * np.pi * 220 * t) * (np.mod(t, 0.5) < 0.1)).astype(np.float32)
    x = np.stack([pulse, pulse])
    e = effect("smear")
    y = e.process(x, sr, length_ms=400.0, mix=1.0)
    ex, ey = frame_rms(x, sr), frame_rms(y, sr)
    gaps = ex < 1e-6
    assert ey[gaps].mean() > 0.2 * ex[~gaps].mean()
    assert 0.7 < rms(y) / rms(x) < 1.4
    np.testing.assert_array_equal(y[0], y[1])
    shorter = e.process(x, sr, length_ms=60.0, mix=1.0)
    assert frame_rms(shorter, sr)[gaps].mean() < ey[gaps].mean()


def test_smear_has_no_periodic_echo():
    """The taps are jittered: the kernel's autocorrelation has no peak away from zero lag
    (a delay's regular repeats would show one), so the smear is not heard as an echo."""
    from deltav2a_plugins.audio_effects.smear import smear_kernel

    k = smear_kernel(SR, 500.0)
    ac = np.correlate(k, k, mode="full")[k.size - 1:]
    assert ac[0] == pytest.approx(1.0, rel=1e-9)
    assert np.abs(ac[int(0.001 * SR):]).max() < 0.2


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_narrowband_and_smear_finite_deterministic_at_every_sample_rate(sr):
    x = music_like(sr=sr)
    for name in ("narrowband", "smear"):
        e = effect(name)
        for u in (0.35, 0.6, 0.9, 1.0):
            y = e.process(x, sr, **e.params_at_intensity(u))
            assert np.isfinite(y).all() and y.shape == x.shape, (name, u)
            np.testing.assert_array_equal(y, e.process(x.copy(), sr, **e.params_at_intensity(u)))
    assert effect("smear").tail_seconds(length_ms=300.0, mix=0.5) == pytest.approx(0.3)
    assert effect("smear").tail_seconds(mix=0.0) == 0.0


def test_narrowband_and_smear_render_in_a_chain_in_the_given_order(fixture_audio):
    """The re-ship order (docs/vocab_audit.md): narrowband with the Pedalboard effects, smear
    outside before the gate; a kept tail includes the smear's length."""
    from deltav2a.render.chain import AudioChain, ChainSettings

    order = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "narrowband", "smear",
             "stutter", "playback_rate"]
    specs = ["stutter", "smear:length_ms=300,mix=0.8", "narrowband", "reverb"]
    chain = AudioChain(ChainSettings.parse(specs), order=order, tail="keep")
    assert chain.names == ["reverb", "narrowband", "smear", "stutter"]
    assert not chain.streamable or chain._streams(SR, 2) is None      # smear needs the whole clip
    out = chain.render(fixture_audio, SR).audio
    assert np.isfinite(out).all() and out.shape[1] >= fixture_audio.shape[1] + int(0.3 * SR)
    cut = AudioChain(ChainSettings.parse(specs), order=order, tail="cut")(fixture_audio, SR)
    assert cut.shape == fixture_audio.shape and np.isfinite(cut).all()


# ----------------------------------------------------------------- scatter (issue 16, decision 16.70)


def test_scatter_moves_each_moment_by_at_most_the_radius_and_keeps_dc():
    """A time-code signal (x[t] = t) read back through the scatter: every output sample is a
    Hann-weighted mix of two grains whose weights sum to 1, so y[t] - t is the weighted
    displacement, within the radius; the mean displacement grows with the radius (spread's
    linear expected displacement); a constant comes back exactly (the windows sum to 1)."""
    from deltav2a_plugins.audio_effects.scatter import scatter_grains

    sr = 8000
    n = 4 * sr
    code = np.arange(n, dtype=np.float32)[None, :]
    shift = []
    for radius_ms in (10.0, 50.0, 200.0):
        y = scatter_grains(code, sr, radius_ms, 40.0)
        d = y[0].astype(np.float64) - code[0]
        assert np.abs(d).max() <= radius_ms * 1e-3 * sr + 1e-3
        shift.append(np.abs(d).mean())
    assert shift[0] < shift[1] < shift[2]
    assert shift[2] / shift[1] == pytest.approx(4.0, rel=0.35)          # about linear in the radius
    ones = np.ones((2, n), dtype=np.float32)
    np.testing.assert_allclose(scatter_grains(ones, sr, 200.0, 40.0), ones, atol=1e-6)


def test_scatter_breaks_continuity_keeps_level_and_adds_no_width():
    """A rising sweep: before, each 20 ms frame's peak frequency is above the last; after a
    150 ms scatter, the music jumps back and forth in time (many frames fall), at about the
    same level (uncorrelated grain crossfades lose ~1.25 dB), never above the input's peak;
    a channel that is twice the other stays twice it (one displacement for every channel)."""
    sr = SR
    t = np.arange(3 * sr) / sr
    sweep = (0.4 * np.sin(2 * np.pi * (200 * t + 300 * t ** 2))).astype(np.float32)
    x = np.stack([sweep, 2 * sweep])
    e = effect("scatter")
    y = e.process(x, sr, **e.params_at_intensity(0.6))
    assert e.params_at_intensity(0.6) == {"radius_ms": pytest.approx(150.0), "grain_ms": 40.0}

    def falls(sig):
        frames = sig[: sig.size // 882 * 882].reshape(-1, 882)
        peak = np.abs(np.fft.rfft(frames * np.hanning(882), axis=1)).argmax(axis=1)
        return float(np.mean(np.diff(peak) < 0))

    assert falls(x[0]) == 0.0
    assert falls(y[0]) > 0.2
    assert 0.75 < rms(y) / rms(x) < 1.05
    assert np.abs(y).max() <= np.abs(x).max() + 1e-6
    np.testing.assert_allclose(y[1], 2 * y[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_scatter_finite_deterministic_and_short_clips(sr):
    x = music_like(sr=sr)
    e = effect("scatter")
    for u in (0.35, 0.6, 0.9, 1.0):
        y = e.process(x, sr, **e.params_at_intensity(u))
        assert np.isfinite(y).all() and y.shape == x.shape and y.dtype == np.float32
        np.testing.assert_array_equal(y, e.process(x.copy(), sr, **e.params_at_intensity(u)))
    for n in (0, 1, 100, int(0.03 * sr)):                     # shorter than a grain or the radius
        short = x[:, :n]
        y = e.process(short, sr, radius_ms=250.0, grain_ms=100.0)
        assert y.shape == short.shape and np.isfinite(y).all()
    assert e.tail_seconds(radius_ms=250.0) == 0.0


def test_scatter_renders_in_a_chain_in_the_given_order(fixture_audio):
    from deltav2a.render.chain import AudioChain, ChainSettings

    order = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "narrowband", "smear",
             "scatter", "stutter", "playback_rate"]
    chain = AudioChain(ChainSettings.parse(["stutter", "scatter:radius_ms=120", "bitcrush"]), order=order,
                       tail="cut")
    assert chain.names == ["bitcrush", "scatter", "stutter"]
    out = chain(fixture_audio, SR)
    assert out.shape == fixture_audio.shape and np.isfinite(out).all()
