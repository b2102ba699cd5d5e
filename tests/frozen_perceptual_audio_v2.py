"""Frozen copy of perceptual-audio's analysis as of normalisation version 2 (commit 2b95853).

DO NOT EDIT. tests/test_perceptual_encoders.py checks that the shipped encoder, with
normalisation 1 or 2, still computes exactly (bit for bit) the raw descriptors this code
computes: the speed work of issue 15 changed how the numbers are computed, not which
numbers come out, so every model trained against versions 1 and 2 keeps running unchanged.
Comparing against code run on the same machine (rather than against stored arrays) keeps
the check exact on any CPU.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Sequence


from deltav2a.errors import DeltaV2AError



if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

SR = 44100                 # internal analysis rate (Hz)
NFFT = 2048                # 46 ms analysis frames
HOP = 512                  # 11.6 ms hop
ENV_BLOCK = 441            # 10 ms blocks for the decay / modulation envelope
N_ONSET_BANDS = 24         # log-spaced bands (echo periodicity, spectral persistence)
ECHO_BASELINE = 9          # echo peak prominence over a 9-lag (~100 ms) moving average
MAX_SECONDS = 30.0         # analysed whole up to this length ...
WINDOW_SECONDS = 10.0      # ... longer clips: three windows of this length
N_WINDOWS = 3
MIN_SECONDS = 0.05
MIN_SAMPLE_RATE = 1000.0
SILENCE = 1e-12            # mean-square power of -120 dBFS: below this a frame is silent
FRAME_RANGE = 1e-6         # frames more than 60 dB below the loudest are not "active"
ENV_RANGE_DB = 50.0        # envelope blocks within 50 dB of the loudest are analysed
DECAY_WINDOW_S = 0.3       # running-maximum window of decay_depth
BANDS_HZ = (0.0, 150.0, 500.0, 2000.0, 6000.0, SR)
MAX_HZ = 20000.0           # spectral descriptors ignore content above 20 kHz
HF_BAND_HZ = (4000.0, 16000.0)
FLOOR_FROM_HZ = 2000.0
FLOOR_QUANTILE = 5.0       # spectral_floor: 5th percentile of the bins in 2-20 kHz
MID_BAND_HZ = (1000.0, 5000.0)
REGISTER_BAND_HZ = (50.0, 2000.0)
ECHO_LAGS_S = (0.02, 1.0)
PERSISTENCE_LEVEL = 0.5    # spectral persistence: lag where the band autocorrelation halves
CLIP_LEVEL = 0.95          # clipping ratio: samples within 5 % of the peak
GAP_HALF_WINDOW_S = 0.1    # gap_depth: each 10 ms level against its +-100 ms neighbourhood ...
GAP_QUANTILE = 75.0        # ... upper quartile (the "on" level even when a gate is closed 2/3 of the time)

DESCRIPTORS: tuple[str, ...] = (
    "rms_level", "spectral_centroid", "spectral_rolloff", "spectral_bandwidth",
    "spectral_flatness", "band_bass", "band_low_mid", "band_mid", "band_presence",
    "band_brilliance", "crest_factor", "clipping_ratio", "zero_crossing_rate", "decay_depth",
    "modulation_depth", "echo_periodicity", "spectral_floor", "hf_flatness",
    "harmonic_distortion", "spectral_flux", "spectral_persistence", "pitch_register", "stereo_width",
)
#: normalisation version 2 (lexicon v3, issue 16) adds one descriptor of broken continuity;
#: versions 1 and 2 of the lexicon keep the 23 above, so their vectors stay bit-identical
DESCRIPTORS_V2: tuple[str, ...] = DESCRIPTORS + ("gap_depth",)
DESCRIPTOR_SETS: tuple[tuple[str, ...], ...] = (DESCRIPTORS, DESCRIPTORS_V2)

_CACHE: dict[str, "np.ndarray"] = {}


def _consts() -> dict[str, "np.ndarray"]:
    import numpy as np

    if not _CACHE:
        win = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(NFFT) / NFFT)).astype(np.float32)
        _CACHE["win"] = win
        # spectra stop at 20 kHz: above it, what a file holds depends on its rate and on the
        # resampler's transition band, not on the music
        _CACHE["freqs"] = np.arange(int(MAX_HZ * NFFT / SR) + 1) * (SR / NFFT)
        bins = _CACHE["freqs"][1:]
        _CACHE["hf_bins"] = _span(bins, *HF_BAND_HZ)
        _CACHE["mid_bins"] = _span(bins, *MID_BAND_HZ)
        _CACHE["floor_bins"] = _span(bins, FLOOR_FROM_HZ, SR)
        top_bin = len(_CACHE["freqs"]) - 1
        _CACHE["band_edges"] = np.unique(np.geomspace(1, top_bin, N_ONSET_BANDS + 1).astype(int))[:-1]
        # one-sided power per bin such that the bins sum to the frame's mean square
        _CACHE["pscale"] = np.float32(2.0 / (NFFT * float(np.sum(win.astype(np.float64) ** 2))))
    return _CACHE


def _span(freqs: "np.ndarray", lo: float, hi: float) -> slice:
    """The contiguous bins with lo <= f < hi, as a slice (cheaper than a boolean mask)."""
    import numpy as np

    idx = np.flatnonzero((freqs >= lo) & (freqs < hi))
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _band(freqs: "np.ndarray", lo: float, hi: float) -> "np.ndarray":
    return (freqs >= lo) & (freqs < hi)


def _log_flatness(logp: "np.ndarray", p: "np.ndarray") -> float:
    """exp(mean over frames of ln(geometric / arithmetic mean)) of power rows."""
    import numpy as np

    lf = logp.mean(axis=1, dtype=np.float64) - np.log(p.mean(axis=1, dtype=np.float64))
    return float(np.exp(np.mean(lf)))


def _autocorr(x: "np.ndarray") -> "np.ndarray | None":
    """Normalised autocorrelation along axis 0 of mean-removed envelopes, summed over columns.

    None when every envelope is constant (nothing to correlate).
    """
    import scipy.fft as sfft

    x = x - x.mean(axis=0)
    n = x.shape[0]
    size = sfft.next_fast_len(2 * n)
    f = sfft.rfft(x, size, axis=0, workers=1)
    ac = sfft.irfft((f.real * f.real + f.imag * f.imag).sum(axis=1), size, workers=1)[:n]
    if ac[0] <= 1e-12:
        return None
    return ac / ac[0]


def _block_power(x: "np.ndarray", block: int) -> "np.ndarray":
    import numpy as np

    n = len(x) // block
    seg = x[: n * block].reshape(n, block)
    return np.square(seg).mean(axis=1, dtype=np.float64)


def _stereo_width(clip: "np.ndarray") -> float:
    """Side share of the energy: 1 - E[mean of channels^2] / mean of E[channel^2]."""
    import numpy as np

    if clip.shape[0] < 2:
        return 0.0
    total = float(np.mean([_mean_square(ch) for ch in clip]))
    if total <= SILENCE:
        return 0.0
    mid = _mean_square(clip.mean(axis=0, dtype=np.float32))
    return max(0.0, 1.0 - mid / total)


def _mean_square(x: "np.ndarray") -> float:
    """Mean of x^2 for float32 x, accumulated in float64 (pairwise) without a float64 copy."""
    import numpy as np

    return float(np.square(x).sum(dtype=np.float64)) / max(1, x.size)


def describe_mono(m: "np.ndarray", width: float,
                  names: Sequence[str] = DESCRIPTORS) -> "np.ndarray":
    """Mono float32 signal at SR -> raw descriptors in `names` order (NaN = undefined).

    `names` is one of DESCRIPTOR_SETS; descriptors outside it are not computed.
    """
    import numpy as np
    import scipy.fft as sfft
    from numpy.lib.stride_tricks import sliding_window_view

    c = _consts()
    nan = float("nan")
    out = {name: nan for name in DESCRIPTORS_V2}
    out["stereo_width"] = width
    m = np.ascontiguousarray(m, dtype=np.float32)
    n = len(m)
    ms = _mean_square(m)
    out["rms_level"] = 10.0 * math.log10(max(ms, SILENCE))
    out["spectral_floor"] = 0.0
    if n < NFFT:
        m = np.concatenate([m, np.zeros(NFFT - n, dtype=np.float32)])
    frames = sliding_window_view(m, NFFT)[::HOP]
    spec = sfft.rfft(frames * c["win"], axis=1, workers=1)
    spec = spec[:, : len(c["freqs"])]
    p = (spec.real * spec.real + spec.imag * spec.imag) * c["pscale"]
    energy = p.sum(axis=1).astype(np.float64)
    top = float(energy.max())
    if top <= SILENCE:
        return np.array([out[k] for k in names], dtype=np.float64)
    active = energy > max(top * FRAME_RANGE, SILENCE)
    pa = p[active]
    freqs = c["freqs"]

    # long-term spectrum shape
    s = pa.mean(axis=0, dtype=np.float64)
    total = float(s.sum())
    centroid = float((freqs * s).sum() / total)
    out["spectral_centroid"] = centroid
    cum = np.cumsum(s) / total
    out["spectral_rolloff"] = float(freqs[min(int(np.searchsorted(cum, 0.85)), len(freqs) - 1)])
    out["spectral_bandwidth"] = float(np.sqrt(((freqs - centroid) ** 2 * s).sum() / total))
    # Rice's formula: a Gaussian signal crosses zero 2 * sqrt(m2 / m0) times per second. From
    # the spectrum rather than by counting, so content above 20 kHz (present or not depending
    # on the file's rate) cannot change it
    out["zero_crossing_rate"] = 2.0 * float(np.sqrt((freqs * freqs * s).sum() / total))
    for name, lo, hi in zip(("band_bass", "band_low_mid", "band_mid", "band_presence", "band_brilliance"),
                            BANDS_HZ[:-1], BANDS_HZ[1:]):
        out[name] = float(s[_band(freqs, lo, hi)].sum() / total)
    reg = _band(freqs, *REGISTER_BAND_HZ)
    sreg = s[reg]
    if float(sreg.sum()) > 0:
        out["pitch_register"] = float(np.exp((np.log(freqs[reg]) * sreg).sum() / sreg.sum()))

    # per-frame flatness (full band, upper band, mid band); floor 120 dB under each frame's peak
    floor = pa.max(axis=1, keepdims=True) * np.float32(1e-12) + np.float32(1e-30)
    pf = pa[:, 1:] + floor   # bin 0 (DC) left out
    logp = np.log(pf)
    out["spectral_flatness"] = _log_flatness(logp, pf)
    hf, mid, above = c["hf_bins"], c["mid_bins"], c["floor_bins"]
    out["hf_flatness"] = _log_flatness(logp[:, hf], pf[:, hf])
    out["harmonic_distortion"] = _log_flatness(logp[:, mid], pf[:, mid])
    upper = logp[:, above]
    k = int(FLOOR_QUANTILE / 100.0 * (upper.shape[1] - 1))
    out["spectral_floor"] = float(np.exp(np.median(np.partition(upper, k, axis=1)[:, k])))

    # spectral flux, normalised by the frame's magnitude (level-independent)
    if len(pa) > 1:
        mag = np.sqrt(p)
        rise = np.maximum(mag[1:] - mag[:-1], 0).sum(axis=1, dtype=np.float64)
        norm = mag[1:].sum(axis=1, dtype=np.float64)
        sel = active[1:] & (norm > 0)
        if sel.any():
            out["spectral_flux"] = float(np.mean(rise[sel] / norm[sel]))

    # time domain: crest factor, clipping
    x = m[:n]
    nfr = n // NFFT
    if nfr >= 1:
        fr = x[: nfr * NFFT].reshape(nfr, NFFT)
        rms = np.sqrt(np.square(fr).mean(axis=1, dtype=np.float64))
        peak = np.abs(fr).max(axis=1)
        ok = rms > max(float(rms.max()) * 1e-3, 1e-6)
        if ok.any():
            out["crest_factor"] = float(np.median(peak[ok] / rms[ok]))
    ax = np.abs(x)
    pk = float(ax.max())
    if pk > 0:
        out["clipping_ratio"] = float(np.count_nonzero(ax >= CLIP_LEVEL * pk)) / n

    # 10 ms envelope: decay depth (how far the level falls below its recent peak) and modulation
    e = _block_power(x, ENV_BLOCK)
    if len(e) >= 4:
        edb = 10.0 * np.log10(e + SILENCE)
        edb = np.maximum(edb, edb.max() - 80.0)
        w = max(2, int(round(DECAY_WINDOW_S * SR / ENV_BLOCK)))
        padded = np.concatenate([np.full(w - 1, edb[0]), edb])
        running = sliding_window_view(padded, w).max(axis=1)
        act = edb > edb.max() - ENV_RANGE_DB
        out["decay_depth"] = float(np.mean((running - edb)[act]))
        amp = np.sqrt(e[act])
        if amp.mean() > 0:
            out["modulation_depth"] = float(amp.std() / amp.mean())
        if "gap_depth" in names:
            # gap depth: how far each 10 ms level dips below the upper quartile of its
            # +-100 ms neighbourhood. A gate cuts gaps into sustained sound (every closed
            # block sits its full depth below the open ones around it); a note's decay dips
            # little within 100 ms, and reverb and compression fill the gaps. Blocks count
            # where their neighbourhood is active (a silent gap inside music is the deepest
            # gap, not "inactive"); a dip counts at most ENV_RANGE_DB
            h = int(round(GAP_HALF_WINDOW_S * SR / ENV_BLOCK))
            padded = np.concatenate([np.full(h, edb[0]), edb, np.full(h, edb[-1])])
            ref = np.percentile(sliding_window_view(padded, 2 * h + 1), GAP_QUANTILE, axis=1)
            live = ref > edb.max() - ENV_RANGE_DB
            out["gap_depth"] = float(np.mean(np.clip(ref - edb, 0.0, ENV_RANGE_DB)[live]))

    # band-wise onset strength (positive log change in 24 log-spaced bands, 11.6 ms hop),
    # autocorrelated and summed over bands: an echo repeats the same onsets one delay later
    if len(p) >= 8:
        bands = np.add.reduceat(p, c["band_edges"], axis=1, dtype=np.float64)
        logb = np.log(bands + top * 1e-8)
        rise = np.maximum(np.diff(logb, axis=0), 0.0)
        ac = _autocorr(rise)
        if ac is not None:
            hop_s = HOP / SR
            lo = max(2, int(round(ECHO_LAGS_S[0] / hop_s)))
            hi = int(round(ECHO_LAGS_S[1] / hop_s))
            win = ac[lo: hi + 1]
            if len(win) > ECHO_BASELINE:
                k = np.ones(ECHO_BASELINE) / ECHO_BASELINE
                padded = np.concatenate([np.full(ECHO_BASELINE // 2, win[0]), win,
                                         np.full(ECHO_BASELINE // 2, win[-1])])
                baseline = np.convolve(padded, k, mode="valid")
                out["echo_periodicity"] = float(np.max(win - baseline))
        # spectral persistence: how long the (per-band standardised) band levels stay
        # correlated with themselves; speeding the clip up shortens it, reverb lengthens it
        sd = logb.std(axis=0)
        live = sd > 1e-6
        if live.any():
            zb = (logb[:, live] - logb[:, live].mean(axis=0)) / sd[live]
            acz = _autocorr(zb)
            if acz is not None:
                below = np.flatnonzero(acz < PERSISTENCE_LEVEL)
                if len(below):
                    i = int(below[0])
                    lag = i - 1 + (acz[i - 1] - PERSISTENCE_LEVEL) / (acz[i - 1] - acz[i])
                else:
                    lag = float(len(acz))
                out["spectral_persistence"] = float(lag) * HOP / SR
    return np.array([out[k] for k in names], dtype=np.float64)


def _windows(n: int, sample_rate: float) -> list[tuple[int, int]]:
    """Sample ranges analysed for a clip of n samples (whole, or 3 x 10 s for long clips)."""
    if n <= MAX_SECONDS * sample_rate:
        return [(0, n)]
    w = int(round(WINDOW_SECONDS * sample_rate))
    starts = [round(k * (n - w) / (N_WINDOWS - 1)) for k in range(N_WINDOWS)]
    return [(s, s + w) for s in starts]



def raw_windows(clip: "np.ndarray", sr: float, names: Sequence[str]) -> list["np.ndarray"]:
    """PerceptualAudioEncoder._raw_windows as of normalisation version 2."""
    import numpy as np

    from deltav2a.media.io import resample

    rows = []
    for a, b in _windows(clip.shape[1], sr):
        part = clip[:, a:b]
        width = _stereo_width(part)
        mono = part.mean(axis=0, keepdims=True, dtype=np.float32) if part.shape[0] > 1 else part
        mono = resample(np.ascontiguousarray(mono, dtype=np.float32), sr, SR)[0]
        rows.append(describe_mono(mono, width, names))
    return rows
