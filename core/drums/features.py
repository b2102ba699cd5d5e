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

    return DSPFeatures(energy=energy, sharpness=sharpness, attack_time=attack_time,
                       decay_time=decay_time, low_ratio=_clip01(low), mid_ratio=_clip01(mid),
                       high_ratio=_clip01(high), spectral_flatness=flatness,
                       zero_crossing_rate=zc, duration=len(y) / sr)


def rule_terms(f: DSPFeatures, cfg: "RoleAssignerConfig") -> dict[str, float]:
    """The named quantities the rule weights and guards refer to."""
    a_fast = _clip01(1.0 - f.attack_time / cfg.dsp.attack_window_sec)
    dd = _clip01(f.decay_time / cfg.dsp.decay_window_sec)
    return {"E": f.energy, "S": f.sharpness, "A_fast": a_fast, "D": dd, "D_short": 1.0 - dd,
            "L": f.low_ratio, "M": f.mid_ratio, "H": f.high_ratio, "F": f.spectral_flatness,
            "Z": f.zero_crossing_rate, "one_minus_S": 1.0 - f.sharpness,
            "one_minus_E": 1.0 - f.energy, "L_plus_M": f.low_ratio + f.mid_ratio, "one": 1.0}
