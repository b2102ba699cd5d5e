"""Frozen copy of perceptual-audio's analysis 2 (normalisation version 3) as of commit 4698620.

DO NOT EDIT. tests/test_perceptual_encoders.py checks that the shipped encoder's analysis 2
still computes these descriptors up to float32 rounding (decision 15.16's standard: every
normalised coordinate within 1e-6, the same NaN pattern): the speed work of decisions
15.30-15.39 changed how the numbers are computed, not which numbers come out, so
normalisation 3's constants (fitted on this code) stay valid. Only the analysis functions
are copied (the encoder class, analysis 1 and the lexicon are not); `raw_windows` is the
encoder's `_raw_windows` for analysis 2.
"""
from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, Sequence

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


def _span(freqs: "np.ndarray", lo: float, hi: float) -> slice:
    """The contiguous bins with lo <= f < hi, as a slice (cheaper than a boolean mask)."""
    import numpy as np

    idx = np.flatnonzero((freqs >= lo) & (freqs < hi))
    return slice(int(idx[0]), int(idx[-1]) + 1)


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


def _stereo_width(clip: "np.ndarray", mono: "np.ndarray | None" = None) -> float:
    """Side share of the energy: 1 - E[mean of channels^2] / mean of E[channel^2].

    `mono` is the float32 mean of the channels when the caller has it already.
    """
    import numpy as np

    if clip.shape[0] < 2:
        return 0.0
    total = float(np.mean([_mean_square(ch) for ch in clip]))
    if total <= SILENCE:
        return 0.0
    mid = _mean_square(clip.mean(axis=0, dtype=np.float32) if mono is None else mono)
    return max(0.0, 1.0 - mid / total)


def _downmix(part: "np.ndarray") -> "np.ndarray":
    """(1, n) float32 mean of the channels (the clip itself when it is mono).

    Two channels: (L + R) * 0.5, which is bit for bit numpy's float32 mean over the channel
    axis ((L + R) / 2; halving is exact) at a third of its cost.
    """
    import numpy as np

    if part.shape[0] == 1:
        return part
    if part.shape[0] == 2:
        out = np.add(part[0], part[1], dtype=np.float32)
        out *= np.float32(0.5)
        return out[None, :]
    return part.mean(axis=0, keepdims=True, dtype=np.float32)


def _upper_quartile_21(windows: "np.ndarray") -> "np.ndarray":
    """np.percentile(windows, 75, axis=1) for rows of 21 values: the 16th smallest.

    With 21 values the 75th percentile falls exactly on index 15 (0.75 * 20), where numpy's
    linear interpolation returns that value unchanged; a row sort finds it faster.
    """
    import numpy as np

    return np.sort(windows, axis=1)[:, 15]


def _mean_square(x: "np.ndarray") -> float:
    """Mean of x^2 for float32 x, accumulated in float64 (pairwise) without a float64 copy."""
    import numpy as np

    return float(np.square(x).sum(dtype=np.float64)) / max(1, x.size)


def _envelope_descriptors(e: "np.ndarray", sr: float, env_block: int, names: Any,
                          out: dict[str, float]) -> None:
    """Decay depth, modulation depth and gap depth from the 10 ms block powers `e` (both analyses).

    Decay depth: how far the level falls below its recent peak; modulation depth: the spread
    of the active blocks' amplitude.
    """
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    if len(e) >= 4:
        edb = 10.0 * np.log10(e + SILENCE)
        edb = np.maximum(edb, edb.max() - 80.0)
        w = max(2, int(round(DECAY_WINDOW_S * sr / env_block)))
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
            h = int(round(GAP_HALF_WINDOW_S * sr / env_block))
            padded = np.concatenate([np.full(h, edb[0]), edb, np.full(h, edb[-1])])
            view = sliding_window_view(padded, 2 * h + 1)
            ref = (_upper_quartile_21(view) if view.shape[1] == 21 and GAP_QUANTILE == 75.0
                   else np.percentile(view, GAP_QUANTILE, axis=1))
            live = ref > edb.max() - ENV_RANGE_DB
            out["gap_depth"] = float(np.mean(np.clip(ref - edb, 0.0, ENV_RANGE_DB)[live]))


def _band_dynamics(logb: np.ndarray, hop: int, sr: float, baseline_frames: int,
                   out: dict[str, float]) -> None:
    """Echo periodicity and spectral persistence from per-frame log band levels (both analyses).

    Echo periodicity: the positive log change per band (onset strength), autocorrelated and
    summed over bands, peak above a running baseline within ECHO_LAGS_S: an echo repeats
    the same onsets one delay later. Spectral persistence: how long the per-band
    standardised levels stay correlated with themselves; speeding the clip up shortens it,
    reverb lengthens it. `hop`/`sr` and the baseline length are the analysis' own.
    """
    import numpy as np

    rise = np.maximum(np.diff(logb, axis=0), 0.0)
    ac = _autocorr(rise)
    if ac is not None:
        hop_s = hop / sr
        lo = max(2, int(round(ECHO_LAGS_S[0] / hop_s)))
        hi = int(round(ECHO_LAGS_S[1] / hop_s))
        win = ac[lo: hi + 1]
        if len(win) > baseline_frames:
            k = np.ones(baseline_frames) / baseline_frames
            padded = np.concatenate([np.full(baseline_frames // 2, win[0]), win,
                                     np.full(baseline_frames // 2, win[-1])])
            baseline = np.convolve(padded, k, mode="valid")
            out["echo_periodicity"] = float(np.max(win - baseline))
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
            out["spectral_persistence"] = float(lag) * hop / sr


#: analysis 2 (normalisation version 3, issue 15): the same 24 descriptors from half the frames
HOP_2 = 1024               # 23.2 ms hop (frames still 2048 samples, 46 ms: every sample is seen twice)


ECHO_BASELINE_2 = 5        # echo prominence over a 5-lag (116 ms) moving average: ~100 ms, as in analysis 1


FFT_BLOCK = 64             # frames per FFT call (the complex output of a block is ~0.5 MB)


FLOOR_FRAME_STEP = 4       # spectral_floor: the 5th percentile of every 4th frame (93 ms apart)


_WORKSPACE = threading.local()


WORKSPACE_MAX_ELEMENTS = 1 << 22   # float32: 16 MB


def _buffer(name: str, shape: tuple[int, ...]) -> "np.ndarray":
    """A float32 array of `shape` from this thread's workspace (contents undefined).

    Allocating and freeing the 2-5 MB per-frame arrays of every clip made glibc grow and trim
    the heap each time, and the page faults cost about a quarter of the analysis time. The
    buffers grow to the largest clip seen and stay (a 10 s clip: about 20 MB per thread for
    analysis 1, 12 MB for analysis 2); an array over WORKSPACE_MAX_ELEMENTS (16 MB; clips
    over ~20 s) is allocated afresh and not kept, so the workspace stays bounded.
    """
    import numpy as np

    bufs = _WORKSPACE.__dict__.setdefault("bufs", {})
    size = int(np.prod(shape))
    if size > WORKSPACE_MAX_ELEMENTS:
        return np.empty(shape, dtype=np.float32)
    buf = bufs.get(name)
    if buf is None or buf.size < size:
        buf = bufs[name] = np.empty(size, dtype=np.float32)
    return buf[:size].reshape(shape)


#: analysis 2's time-frequency grid per analysis rate: (frame, hop) in samples. Only 44.1 kHz:
#: analysing 48 kHz input natively (frames of 2250, hop 1125: the same grid within 1 %)
#: would save the resampling (~3 ms of a 10 s clip) but moved some coordinates by up to
#: 0.3 (clipping ratio, low-mid band share) against the same music at 44.1 kHz, where
#: resampling first keeps every coordinate within 0.03. So every other rate is resampled.
NATIVE_GRIDS_2: dict[int, tuple[int, int]] = {SR: (NFFT, HOP_2)}


_GRIDS: dict[int, dict] = {}


def _grid_2(sr: int) -> dict:
    """Analysis 2's constants at one native rate: window, bins up to 20 kHz, band slices."""
    import numpy as np

    if sr not in _GRIDS:
        nfft, hop = NATIVE_GRIDS_2[sr]
        win = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nfft) / nfft)).astype(np.float32)
        pscale = 2.0 / (nfft * float(np.sum(win.astype(np.float64) ** 2)))
        freqs = np.arange(int(MAX_HZ * nfft / sr) + 1) * (sr / nfft)
        bins = freqs[1:]
        top_bin = len(freqs) - 1
        edges = np.unique(np.geomspace(1, top_bin, N_ONSET_BANDS + 1).astype(int))[:-1]
        _GRIDS[sr] = {
            "sr": sr, "nfft": nfft, "hop": hop, "env_block": int(round(sr * ENV_BLOCK / SR)),
            # the window carries sqrt(pscale), so |X|^2 is already the calibrated bin power
            "win_scaled": (win * np.sqrt(pscale)).astype(np.float32),
            "freqs": freqs, "hf_bins": _span(bins, *HF_BAND_HZ), "mid_bins": _span(bins, *MID_BAND_HZ),
            "floor_bins": _span(bins, FLOOR_FROM_HZ, sr), "band_edges": edges,
            "ms_bands": {name: _span(freqs, lo, hi) for name, lo, hi in
                         zip(("band_bass", "band_low_mid", "band_mid", "band_presence", "band_brilliance"),
                             BANDS_HZ[:-1], BANDS_HZ[1:])},
            "reg": _span(freqs, *REGISTER_BAND_HZ),
            "flat_segments": _segments(len(bins), {"spectral_flatness": slice(0, len(bins)),
                                                   "hf_flatness": _span(bins, *HF_BAND_HZ),
                                                   "harmonic_distortion": _span(bins, *MID_BAND_HZ)}),
        }
    return _GRIDS[sr]


def _segments(n: int, spans: dict[str, slice]) -> tuple["np.ndarray", dict[str, tuple["np.ndarray", int]]]:
    """reduceat edges cutting 0..n at every span's ends, and per span (its segments, its width).

    One np.add.reduceat over the edges then gives every span's row sums in one pass.
    """
    import numpy as np

    cuts = sorted(({0} | {sl.start for sl in spans.values()} | {sl.stop for sl in spans.values()}) - {n})
    edges = np.array(cuts, dtype=np.intp)
    bounds = cuts + [n]
    members = {name: (np.array([i for i in range(len(cuts)) if sl.start <= bounds[i] and bounds[i + 1] <= sl.stop],
                               dtype=np.intp), sl.stop - sl.start)
               for name, sl in spans.items()}
    return edges, members


def _dot_ms(x: "np.ndarray", y: "np.ndarray | None" = None) -> float:
    """Mean of x * y (x * x) for float32 x, y: float32 sums of 1024-sample rows, added in float64.

    Not np.dot: BLAS may spread a long dot product over every core, which oversubscribes
    the database's worker processes; einsum's own loops stay on one thread.
    """
    import numpy as np

    y = x if y is None else y
    k = x.size // 1024 * 1024
    rows = np.einsum("ij,ij->i", x[:k].reshape(-1, 1024), y[:k].reshape(-1, 1024))
    tail = float(np.einsum("i,i->", x[k:], y[k:], dtype=np.float64)) if k < x.size else 0.0
    return (float(rows.sum(dtype=np.float64)) + tail) / max(1, x.size)


def stereo_width_2(clip: "np.ndarray") -> float:
    """_stereo_width from three dot products (L.L, R.R, L.R) instead of three passes and a copy.

    With two channels, E[((L + R) / 2)^2] = (E[L^2] + 2 E[LR] + E[R^2]) / 4, so the value is
    the same quantity; it differs from analysis 1 only by float32 rounding. More than two
    channels use the general form.
    """
    import numpy as np

    if clip.shape[0] < 2:
        return 0.0
    if clip.shape[0] > 2:
        return _stereo_width(clip)
    ll, rr, lr = _dot_ms(clip[0]), _dot_ms(clip[1]), _dot_ms(clip[0], clip[1])
    total = 0.5 * (ll + rr)
    if total <= SILENCE:
        return 0.0
    mid = 0.25 * (ll + 2.0 * lr + rr)
    return float(np.clip(1.0 - mid / total, 0.0, 1.0))


DOWNMIX_BLOCK = 64 * 1024  # samples per block of downmix_width_2 (a multiple of _dot_ms's 1024)


def downmix_width_2(part: "np.ndarray") -> tuple["np.ndarray", float]:
    """(mono float32 1-D, stereo width) of a (channels, samples) clip in one pass over it.

    Two channels: _downmix's (L + R) * 0.5 and stereo_width_2's three dot products, block
    by block, so each block of L and R is read from cache by all four (separate passes read
    the 3.5 MB of a 10 s stereo clip four times). The 1024-sample row sums are the same
    operations as _dot_ms's, collected and added in the same order, so both values are bit
    for bit those of _downmix and stereo_width_2. The mono signal is this thread's
    workspace (_buffer "mono"): valid until the next call.
    """
    import numpy as np

    if part.shape[0] != 2:
        return _downmix(part)[0], stereo_width_2(part)
    left, right = part[0], part[1]
    n = part.shape[1]
    k = n // 1024 * 1024
    mono = _buffer("mono", (n,))
    rows = np.empty((3, k // 1024), dtype=np.float32)
    for a in range(0, k, DOWNMIX_BLOCK):
        b = min(k, a + DOWNMIX_BLOCK)
        lb, rb = left[a:b].reshape(-1, 1024), right[a:b].reshape(-1, 1024)
        np.einsum("ij,ij->i", lb, lb, out=rows[0, a // 1024: b // 1024])
        np.einsum("ij,ij->i", rb, rb, out=rows[1, a // 1024: b // 1024])
        np.einsum("ij,ij->i", lb, rb, out=rows[2, a // 1024: b // 1024])
        mb = np.add(left[a:b], right[a:b], out=mono[a:b])
        mb *= np.float32(0.5)
    mb = np.add(left[k:], right[k:], out=mono[k:])
    mb *= np.float32(0.5)

    def mean(i: int, x: "np.ndarray", y: "np.ndarray") -> float:
        tail = float(np.einsum("i,i->", x[k:], y[k:], dtype=np.float64)) if k < n else 0.0
        return (float(rows[i].sum(dtype=np.float64)) + tail) / max(1, n)

    ll, rr, lr = mean(0, left, left), mean(1, right, right), mean(2, left, right)
    total = 0.5 * (ll + rr)
    if total <= SILENCE:
        return mono, 0.0
    return mono, float(np.clip(1.0 - 0.25 * (ll + 2.0 * lr + rr) / total, 0.0, 1.0))


def describe_mono_2(m: "np.ndarray", width: float, names: Sequence[str] = DESCRIPTORS_V2,
                    sample_rate: int = SR) -> "np.ndarray":
    """Analysis 2 (normalisation version 3): describe_mono's descriptors at half the cost.

    Same definitions, same 44.1 kHz rate and 2048-sample (46 ms) Hann frames, with a hop
    of 1024 (23.2 ms) instead of 512; sums in float32 where float64 bought nothing; the
    spectral floor's per-frame percentile on every 4th frame; onset bands by reduceat in
    float32; the large per-frame arrays live in a per-thread workspace (_buffer) instead of
    being allocated afresh for every clip. Since decision 15.16 the per-frame quantities
    (power, energy, peak, onset bands, long-term column sums, flux) are computed block by
    block right after each block's FFT, |X| comes from numpy's complex abs, and the three
    flatness spans' sums from one reduceat: the same values up to float32 rounding (every
    normalised coordinate within 1e-6 of before), ~12 % less CPU time. Only the time step
    of the frame-wise descriptors changes: spectral flux
    compares frames 23 ms apart, echo periodicity looks at lags of 46 ms to 1 s (was 23 ms),
    spectral persistence is interpolated on a 23 ms grid. docs/perceptual_encoders.md,
    "Analysis versions", lists what each descriptor keeps.
    """
    import numpy as np
    import scipy.fft as sfft
    from numpy.lib.stride_tricks import sliding_window_view

    c = _grid_2(int(sample_rate))
    sr, nfft, hop, env_block = c["sr"], c["nfft"], c["hop"], c["env_block"]
    nan = float("nan")
    out = {name: nan for name in DESCRIPTORS_V2}
    out["stereo_width"] = width
    m = np.ascontiguousarray(m, dtype=np.float32)
    n = len(m)
    ms = _dot_ms(m)
    out["rms_level"] = 10.0 * math.log10(max(ms, SILENCE))
    out["spectral_floor"] = 0.0
    if n < nfft:
        m = np.concatenate([m, np.zeros(nfft - n, dtype=np.float32)])
    frames = sliding_window_view(m, nfft)[::hop]
    nf, nb = len(frames), len(c["freqs"])
    p = _buffer("power", (nf, nb))
    b = min(nf, FFT_BLOCK)
    block = _buffer("frames", (b, nfft))
    # row 0: the last magnitude row of the previous block (the flux compares neighbours)
    mag, diff = _buffer("mag", (b + 1, nb)), _buffer("flux", (b, nb))
    energy, pmax = np.empty(nf, dtype=np.float32), np.empty(nf, dtype=np.float32)
    rise, norm = np.zeros(nf, dtype=np.float32), np.zeros(nf, dtype=np.float32)
    colsum = np.zeros(nb, dtype=np.float64)
    with_bands = nf >= 8
    bands = np.empty((nf, len(c["band_edges"])), dtype=np.float32) if with_bands else None
    for a in range(0, nf, FFT_BLOCK):
        # blocks of FFT_BLOCK frames, and every per-frame quantity computed while the
        # block is in cache: windowing all frames first, and each quantity in its own pass
        # over the whole power array, read and wrote the 1.6-3.5 MB arrays of a 10 s clip
        # from memory again and again. Each row's values are the same operations as before
        z = min(FFT_BLOCK, nf - a)
        w = np.multiply(frames[a: a + z], c["win_scaled"], out=block[:z])
        spec = sfft.rfft(w, axis=1, workers=1, overwrite_x=True)
        # |X| of the bins up to 20 kHz (the flux's magnitudes), then |X|^2: numpy's complex
        # abs is vectorised, twice as fast as squaring and adding the strided (re, im)
        # pairs, and rounds |X|^2 to within 2 float32 ulps of re^2 + im^2
        ma = np.abs(spec[:, :nb], out=mag[1: 1 + z])
        pb = np.square(ma, out=p[a: a + z])
        pb.sum(axis=1, out=energy[a: a + z])
        pb.max(axis=1, out=pmax[a: a + z])
        colsum += pb.sum(axis=0)  # this block's column sums in float32, the blocks' in float64
        if with_bands:
            # (reduceat, not a matrix product: BLAS could go multi-threaded inside a worker process)
            np.add.reduceat(pb, c["band_edges"], axis=1, out=bands[a: a + z])
        # spectral flux of frames a (against the previous block's last) .. a + z - 1
        first = 1 if a == 0 else 0
        d = np.subtract(mag[1 + first: 1 + z], mag[first: z], out=diff[: z - first])
        np.maximum(d, 0, out=d).sum(axis=1, out=rise[a + first: a + z])
        mag[1 + first: 1 + z].sum(axis=1, out=norm[a + first: a + z])
        mag[0] = mag[z]
    del spec, ma, pb, w, block, d
    top = float(energy.max())
    if top <= SILENCE:
        return np.array([out[k] for k in names], dtype=np.float64)
    active = energy > max(top * FRAME_RANGE, SILENCE)
    every = bool(active.all())
    pa = p if every else p[active]
    freqs = c["freqs"]
    if with_bands:
        bands = bands.astype(np.float64)

    # long-term spectrum shape
    s = colsum / nf if every else pa.mean(axis=0, dtype=np.float64)
    total = float(s.sum())
    centroid = float((freqs * s).sum() / total)
    out["spectral_centroid"] = centroid
    cum = np.cumsum(s) / total
    out["spectral_rolloff"] = float(freqs[min(int(np.searchsorted(cum, 0.85)), len(freqs) - 1)])
    out["spectral_bandwidth"] = float(np.sqrt(((freqs - centroid) ** 2 * s).sum() / total))
    out["zero_crossing_rate"] = 2.0 * float(np.sqrt((freqs * freqs * s).sum() / total))
    for name, span in c["ms_bands"].items():
        out[name] = float(s[span].sum() / total)
    sreg = s[c["reg"]]
    if float(sreg.sum()) > 0:
        out["pitch_register"] = float(np.exp((np.log(freqs[c["reg"]]) * sreg).sum() / sreg.sum()))

    # per-frame flatness (full band, upper band, mid band); floor 120 dB under each frame's peak
    floor = (pmax if every else pmax[active])[:, None] * np.float32(1e-12) + np.float32(1e-30)
    pf = np.add(pa[:, 1:], floor, out=_buffer("pf", (len(pa), nb - 1)))
    above = c["floor_bins"]
    # each row's sums over the three spans from one pass: sums over the segments between the
    # spans' edges (reduceat), added per span (float32 segment sums, float64 from there)
    edges, members = c["flat_segments"]
    seg = np.add.reduceat(pf, edges, axis=1).astype(np.float64)
    arith = {name: np.log(seg[:, idx].sum(axis=1) / n_bins) for name, (idx, n_bins) in members.items()}
    logp = np.log(pf, out=pf)  # in place: the arithmetic means are taken
    seg = np.add.reduceat(logp, edges, axis=1).astype(np.float64)
    for name, (idx, n_bins) in members.items():
        # exp(mean over frames of ln(geometric / arithmetic mean)), as _log_flatness
        out[name] = float(np.exp(np.mean(seg[:, idx].sum(axis=1) / n_bins - arith[name])))
    upper = logp[::FLOOR_FRAME_STEP, above]
    k = int(FLOOR_QUANTILE / 100.0 * (upper.shape[1] - 1))
    out["spectral_floor"] = float(np.exp(np.median(np.sort(upper, axis=1)[:, k])))
    del pf, logp, upper

    # spectral flux, normalised by the frame's magnitude (level-independent)
    if len(pa) > 1:  # rise, norm: from the FFT blocks above
        sel = active[1:] & (norm[1:] > 0)
        if sel.any():
            out["spectral_flux"] = float(np.mean(rise[1:][sel] / norm[1:][sel], dtype=np.float64))

    # time domain: crest factor, clipping
    x = m[:n]
    nfr = n // nfft
    tail = x[nfr * nfft:]
    # the clip's peak from the frame peaks and the tail's (the same value, one pass fewer)
    pk = max(float(tail.max()), -float(tail.min())) if len(tail) else 0.0
    if nfr >= 1:
        fr = x[: nfr * nfft].reshape(nfr, nfft)
        rms = np.sqrt(np.einsum("ij,ij->i", fr, fr) / np.float32(nfft))
        peak = np.maximum(fr.max(axis=1), -fr.min(axis=1))
        pk = max(pk, float(peak.max()))
        ok = rms > max(float(rms.max()) * 1e-3, 1e-6)
        if ok.any():
            out["crest_factor"] = float(np.median(peak[ok] / rms[ok]))
    if pk > 0:
        t = np.float32(CLIP_LEVEL * pk)
        # only frames whose peak reaches t can hold such samples: count there (same count)
        hot = np.flatnonzero(peak >= t) if nfr >= 1 else np.zeros(0, dtype=np.intp)
        parts = [tail, x[: nfr * nfft] if 2 * len(hot) > nfr else fr[hot]]
        out["clipping_ratio"] = float(sum(np.count_nonzero(v >= t) + np.count_nonzero(v <= -t)
                                          for v in parts)) / n

    # 10 ms envelope: decay depth, modulation depth, gap depth
    nblk = n // env_block
    seg = x[: nblk * env_block].reshape(nblk, env_block)
    e = (np.einsum("ij,ij->i", seg, seg) / np.float32(env_block)).astype(np.float64)
    _envelope_descriptors(e, sr, env_block, names, out)

    # band-wise onset strength, echo periodicity, spectral persistence (as describe_mono)
    if with_bands:
        _band_dynamics(np.log(bands + top * 1e-8), hop, sr, ECHO_BASELINE_2, out)
    return np.array([out[k] for k in names], dtype=np.float64)


def _windows(n: int, sample_rate: float) -> list[tuple[int, int]]:
    """Sample ranges analysed for a clip of n samples (whole, or 3 x 10 s for long clips)."""
    if n <= MAX_SECONDS * sample_rate:
        return [(0, n)]
    w = int(round(WINDOW_SECONDS * sample_rate))
    starts = [round(k * (n - w) / (N_WINDOWS - 1)) for k in range(N_WINDOWS)]
    return [(s, s + w) for s in starts]

def raw_windows(clip: "np.ndarray", sr: float, names: Sequence[str] = DESCRIPTORS_V2) -> list["np.ndarray"]:
    """The encoder's _raw_windows with analysis 2 (clip: checked (channels, samples) float32)."""
    import numpy as np

    from deltav2a.media.io import resample

    clip = np.ascontiguousarray(clip, dtype=np.float32)
    rows = []
    for a, b in _windows(clip.shape[1], sr):
        mono, width = downmix_width_2(clip[:, a:b])
        rate = int(sr) if sr in NATIVE_GRIDS_2 else SR
        mono = resample(mono[None, :], sr, rate)[0]
        rows.append(describe_mono_2(mono, width, names, rate))
    return rows
