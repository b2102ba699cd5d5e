"""The note's nine DSP features of a hit (dsp/features.py), each in [0, 1].

* energy: the largest frame RMS, relative to a full-scale sine at the normalisation peak
  (peak_target / sqrt 2), clipped to 1. After peak normalisation this is the hit's
  "body": a sine-like kick is near 1, a noise burst near 0.3 (its crest factor is higher).
* sharpness: the peak of librosa's onset strength (mean positive rise of the log-mel
  spectrum between frames, dB) over `sharpness_ref_db`, clipped to 1. The hit is preceded
  by one frame of silence, so an abrupt attack rises by tens of dB in one frame and a
  fade-in by little.
* attack_time: seconds from the onset (RMS envelope first at `onset_level` of its peak) to
  the envelope first reaching 90 % of its peak; clipped to 1.
* decay_time: seconds from the peak until the envelope first falls to 30 % of it (the rest
  of the clip when it never does); clipped to 1. This envelope uses 64 ms frames (at least
  one period of the 20 Hz band edge), the attack's 16 ms ones.
* low/mid/high_ratio: shares of the long-term power spectrum in the note's bands
  (20-150 Hz, 150 Hz-2 kHz, 2-8 kHz); they sum to 1.
* spectral_flatness, zero_crossing_rate: librosa's, averaged over the frames within
  `active_db` of the loudest.

The derived rule terms (A_fast, D, D_short) normalise the times by the note's windows:
A_fast = 1 - attack/attack_window, D = decay/decay_window, both clipped to [0, 1].

Five features of ours, for what a drummer hears and the note's nine miss (toms were never
told from kicks, drones from hits, a roll from a snare); only presets whose weights name
their terms use them:

* body_pitch_hz: the strongest partial between 25 Hz and 2 kHz of the body, the first
  150 ms from the envelope peak (Hann window, zero-padded FFT). A kick's or tom's membrane
  fundamental dominates its body: kicks 40-70 Hz, toms 80-250 Hz.
* tonality: the share of the body's 20 Hz-8 kHz power within +-1 semitone of that partial
  (at least the window's main lobe, +-2/0.15 s = 13 Hz, so a steady sine reads ~1 at any
  pitch). A tuned tom rings at one pitch (~0.9); a kick is pitched too, a snare's wires and
  a hat's metal spread their power as noise (< 0.5).
* ring_time: seconds from the 64 ms envelope's peak to `ring_db` (20 dB) below it. The
  note's decay (to 30 %, -10.5 dB) ends while a tom still rings; -20 dB separates the
  ring of a tom or a drone from a kick's thud.
* spectral_centroid_hz: the power-weighted mean over frames of librosa's spectral centroid.
* strikes: re-attacks after the peak, on the attack's 16 ms envelope: the level climbs
  `strike_rise_db` (10 dB) above its lowest point since the last stroke and comes within
  `strike_floor_db` (20 dB) of the peak. A one-shot is one stroke (0); a roll is a stroke
  every 40-60 ms (dozens); a drone's slow swells or a kick tail's ripple stay under 10 dB.

Their terms: T = tonality; P_kick / P_tom = membership of the body pitch in the kick
register (below 75 Hz) / tom register (75-250 Hz), ramping over half an octave at each
edge; T_kick = T * P_kick, T_tom = T * P_tom ("a pitched body in that register");
R = ring_time / 1 s, R_short = 1 - R; C = log-position of the centroid in 100 Hz-8 kHz;
A_slow = 1 - A_fast (a swell, not a strike); G = strikes / `figure_strokes`, clipped to 1
(a figure of strokes: a roll or a fill); T_tom_or_G = max(T_tom, G) (what a FILL is: a
pitched tom body, or several strokes).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .types import DSPFeatures

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .config import RoleAssignerConfig


def _clip01(v: float) -> float:
    return 0.0 if not math.isfinite(v) else min(1.0, max(0.0, float(v)))


def extract(y: "np.ndarray", sr: int, cfg: "RoleAssignerConfig") -> DSPFeatures:
    """Features of a mono float32 hit at `sr` (already trimmed and peak-normalised)."""
    import librosa
    import numpy as np

    d = cfg.dsp
    y = np.ascontiguousarray(y, dtype=np.float32)
    n_fft, hop = d.n_fft, d.hop_length

    # energy: max frame RMS against a sine at the normalisation peak
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop, center=True)[0]
    ref = (cfg.audio.peak_target if cfg.audio.peak_normalize else 1.0) / math.sqrt(2.0)
    energy = _clip01(float(rms.max()) / ref)

    # sharpness: onset-strength peak from one frame of silence before the hit
    padded = np.concatenate([np.zeros(n_fft, dtype=np.float32), y])
    onset = librosa.onset.onset_strength(y=padded, sr=sr, n_fft=n_fft, hop_length=hop, lag=1,
                                         max_size=1, center=True)
    sharpness = _clip01(float(onset.max()) / d.sharpness_ref_db)

    # attack and decay from a fine RMS envelope
    env = librosa.feature.rms(y=y, frame_length=d.envelope_frame, hop_length=d.envelope_hop, center=True)[0]
    dt = d.envelope_hop / sr
    peak_i = int(np.argmax(env))
    peak = float(env[peak_i])
    onset_i = int(np.flatnonzero(env >= d.onset_level * peak)[0])
    reach_i = int(np.flatnonzero(env >= d.attack_level * peak)[0])
    attack_time = _clip01(max(0, reach_i - onset_i) * dt)
    # decay on a smoother envelope: an RMS over less than one period of a low tone (a 20-50 Hz
    # kick or drone) ripples with the waveform's phase, and the first ripple trough under 30 %
    # would be taken for the decay
    denv = librosa.feature.rms(y=y, frame_length=d.decay_envelope_frame, hop_length=d.envelope_hop,
                               center=True)[0]
    dpk = int(np.argmax(denv))
    after = np.flatnonzero(denv[dpk:] <= d.decay_level * float(denv[dpk]))
    decay_frames = int(after[0]) if len(after) else len(denv) - dpk
    decay_time = _clip01(decay_frames * dt)

    # band shares of the long-term power spectrum
    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True))
    S = mag ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    spectrum = S.mean(axis=1, dtype=np.float64)
    be = d.band_edges_hz
    parts = []
    for lo, hi in (be.low, be.mid, be.high):
        sel = (freqs >= lo) & ((freqs < hi) if (lo, hi) != be.high else (freqs <= hi))
        parts.append(float(spectrum[sel].sum()))
    total = sum(parts)
    low, mid, high = ((p / total) for p in parts) if total > 0 else (0.0, 0.0, 0.0)

    # flatness and ZCR over the active frames
    frame_power = S.sum(axis=0)
    active = frame_power >= frame_power.max() * 10 ** (-d.active_db / 10.0)
    flat = librosa.feature.spectral_flatness(S=mag, power=2.0)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop, center=True)[0]
    m = min(len(zcr), len(active))
    flatness = _clip01(float(flat[active].mean()))
    zc = _clip01(float(zcr[:m][active[:m]].mean()))

    # spectral centroid, power-weighted over the active frames
    cen = librosa.feature.spectral_centroid(S=mag, freq=freqs)[0]
    w = frame_power[: len(cen)] * active[: len(cen)]
    centroid = float((cen * w).sum() / w.sum()) if w.sum() > 0 else 0.0

    # ring: the decay envelope's fall to ring_db below its peak
    rafter = np.flatnonzero(denv[dpk:] <= float(denv[dpk]) * 10 ** (-d.ring_db / 20.0))
    ring_time = (int(rafter[0]) if len(rafter) else len(denv) - dpk) * dt

    strikes = count_strikes(env[peak_i:], d.strike_rise_db, d.strike_floor_db)
    pitch, ton = body_pitch(y[peak_i * d.envelope_hop:], sr, cfg)
    return DSPFeatures(energy=energy, sharpness=sharpness, attack_time=attack_time,
                       decay_time=decay_time, low_ratio=_clip01(low), mid_ratio=_clip01(mid),
                       high_ratio=_clip01(high), spectral_flatness=flatness,
                       zero_crossing_rate=zc, duration=len(y) / sr, body_pitch_hz=pitch,
                       tonality=ton, ring_time=min(2.0, ring_time) if math.isfinite(ring_time) else 0.0,
                       spectral_centroid_hz=centroid if math.isfinite(centroid) else 0.0,
                       strikes=strikes)


def count_strikes(env: "np.ndarray", rise_db: float, floor_db: float) -> int:
    """Re-attacks in an amplitude envelope that starts at its peak: climbs of `rise_db` above
    the lowest level since the last stroke that come within `floor_db` of the peak."""
    import numpy as np

    if len(env) == 0 or not float(env[0]) > 0:
        return 0
    level = 20.0 * np.log10(np.maximum(np.asarray(env, dtype=np.float64), 1e-12) / float(env[0]))
    n, low = 0, 0.0
    for v in level[1:]:
        low = min(low, float(v))
        if v - low >= rise_db and v >= -floor_db:
            n += 1
            low = float(v)
    return n


def body_pitch(body: "np.ndarray", sr: int, cfg: "RoleAssignerConfig") -> tuple[float, float]:
    """(Hz of the body's strongest partial, tonality) of a hit cut at its envelope peak."""
    import numpy as np

    d = cfg.dsp
    n = max(1, int(round(d.body_window_sec * sr)))
    seg = np.zeros(n, dtype=np.float64)
    part = np.asarray(body[:n], dtype=np.float64)
    seg[: len(part)] = part                       # a hit that ends sooner is followed by silence
    nfft = max(16384, 1 << (n - 1).bit_length())  # ~1 Hz bins at 16 kHz; bounded by the window
    power = np.abs(np.fft.rfft(seg * np.hanning(n), n=nfft)) ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    lo, hi = d.body_band_hz
    search = (freqs >= lo) & (freqs <= hi)
    lo_all, hi_all = d.band_edges_hz.low[0], d.band_edges_hz.high[1]
    total = float(power[(freqs >= lo_all) & (freqs <= hi_all)].sum())
    if not search.any() or total <= 0:
        return 0.0, 0.0
    f0 = float(freqs[search][int(np.argmax(power[search]))])
    half = max(f0 * (2 ** (d.tonality_semitones / 12) - 1), 2.0 / d.body_window_sec)
    share = float(power[(freqs >= f0 - half) & (freqs <= f0 + half)].sum()) / total
    return f0, _clip01(share)


def _register(f: float, lo: float | None, hi: float | None, ramp: float) -> float:
    """Membership of pitch f in [lo, hi] Hz, ramping linearly (in octaves) across each edge."""
    if f <= 0:
        return 0.0
    m = 1.0
    if lo is not None:
        m = min(m, _clip01(0.5 + math.log2(f / lo) / ramp))
    if hi is not None:
        m = min(m, _clip01(0.5 - math.log2(f / hi) / ramp))
    return m


def rule_terms(f: DSPFeatures, cfg: "RoleAssignerConfig") -> dict[str, float]:
    """The named quantities the rule weights and guards refer to."""
    a_fast = _clip01(1.0 - f.attack_time / cfg.dsp.attack_window_sec)
    dd = _clip01(f.decay_time / cfg.dsp.decay_window_sec)
    d = cfg.dsp
    p_kick = _register(f.body_pitch_hz, None, d.kick_tom_split_hz, d.register_ramp_octaves)
    p_tom = _register(f.body_pitch_hz, d.kick_tom_split_hz, d.tom_max_hz, d.register_ramp_octaves)
    r = _clip01(f.ring_time / d.ring_window_sec)
    c_lo, c_hi = d.centroid_range_hz
    c = _clip01(math.log(f.spectral_centroid_hz / c_lo) / math.log(c_hi / c_lo)) if f.spectral_centroid_hz > 0 else 0.0
    t = _clip01(f.tonality)
    g = _clip01(f.strikes / d.figure_strokes)
    return {"E": f.energy, "S": f.sharpness, "A_fast": a_fast, "D": dd, "D_short": 1.0 - dd,
            "L": f.low_ratio, "M": f.mid_ratio, "H": f.high_ratio, "F": f.spectral_flatness,
            "Z": f.zero_crossing_rate, "one_minus_S": 1.0 - f.sharpness,
            "one_minus_E": 1.0 - f.energy, "L_plus_M": f.low_ratio + f.mid_ratio, "one": 1.0,
            "T": t, "one_minus_T": 1.0 - t, "P_kick": p_kick, "P_tom": p_tom,
            "T_kick": t * p_kick, "T_tom": t * p_tom, "R": r, "R_short": 1.0 - r, "C": c,
            "A_slow": 1.0 - a_fast, "G": g, "T_tom_or_G": max(t * p_tom, g)}
