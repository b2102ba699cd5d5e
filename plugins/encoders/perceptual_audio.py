"""`perceptual-audio`: a clip as 24 interpretable, normalised low-level descriptors (23 with
lexicons v1/v2, whose normalisation predates `gap_depth`).

No weights and no downloads: numpy/scipy/soxr only, so it is the default audio encoder
whenever nothing else is configured. Three analyses compute the same descriptors (issue 15):
analysis 1 (normalisations 1 and 2, the default; ~25 ms for a 10 s stereo clip on one
core), analysis 2 (normalisation 3, encoder option `normalisation_version: "3"`; hop
1024 instead of 512, ~6.5 ms, > 1,500x real time) and analysis 3 (normalisation 4,
`normalisation_version: "4"`: analysis 2 with sparser flatness and floor frames and fewer
passes, ~0.83x its time; decision 15.50). docs/perceptual_encoders.md, "Analysis versions"
and "Analysis 3", says what differs and how closely they agree. Normalisation 5 (lexicon v5,
issue 16) is analysis 3 plus two descriptors, `quiet_floor` and `onset_rate` (26 in all;
+0.3 ms per 10 s clip; "Normalisation 5" there, decisions 16.50-16.51).

Every descriptor is an absolute property of the one clip, so E(A') - E(A) says what an
effect changed: a low-pass lowers the bandwidth, centroid and upper band shares; a
high-pass empties the bass band and raises the pitch register; distortion lowers the crest
factor and raises the clipping ratio, level and spectral floor; reverb fills the gaps
between notes (smaller decay and modulation depth), widens the stereo image and makes the
spectrum persist longer; delay adds a peak to the onset autocorrelation (echo
periodicity); bit reduction lifts the spectral floor (white quantisation noise in the
otherwise empty bins) and the high-band flatness; a speed change moves the pitch register
and centroid and shortens the spectral persistence. Each descriptor is documented in
docs/perceptual_encoders.md and glossed in data/perceptual_normalisation.yaml.

Sample rate: every clip is analysed at 44.1 kHz (soxr via `deltav2a.media.io.resample`;
44.1 kHz input is used as is), so the vector does not depend on the file's rate. The
spectral and temporal descriptors use the mono downmix; stereo width uses the original
channels (a mono clip has width 0).

Length: clips up to 30 s are analysed whole. Longer clips are described by three 10 s
windows (start, middle, end) whose normalised vectors are averaged, so memory and time stay
bounded whatever the length. Clips shorter than 50 ms raise DeltaV2AError.

Silence: a clip without audible signal (every frame below -120 dBFS) has its level
descriptors (rms_level, spectral_floor) at their floor, stereo width 0, and every other
descriptor undefined, which normalises to 0 (the corpus centre); the vector is finite.
NaN or Inf samples raise DeltaV2AError.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from deltav2a.api.encoders import AudioEncoder
from deltav2a.errors import DeltaV2AError

from .lexicon import PerceptualBase

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
#: normalisation version 5 (issue 16, decisions 16.50+; analysis 3 only) adds two descriptors
#: that tell "noise added" from "content moved up" (decision 16.42): `quiet_floor`, how much
#: higher the spectral floor stands against the frame's level in the quietest frames than in
#: the loudest (a noise bed does not get quieter with the music; content moved up does), and
#: `onset_rate`, the note onsets per second, which a speed-up multiplies by its rate and
#: added noise leaves alone
DESCRIPTORS_V3: tuple[str, ...] = DESCRIPTORS_V2 + ("quiet_floor", "onset_rate")
DESCRIPTOR_SETS: tuple[tuple[str, ...], ...] = (DESCRIPTORS, DESCRIPTORS_V2, DESCRIPTORS_V3)
#: quiet_floor: the quietest and the loudest QUIET_QUARTILE of the spectral floor's frames
#: (by level), at least QUIET_MIN_FRAMES of them
QUIET_QUARTILE = 25.0
QUIET_MIN_FRAMES = 8
#: onset_rate: a peak of the onset strength (mean positive change of the 24 log band levels)
#: that is the largest within +-ONSET_SEPARATION_S and exceeds its +-ONSET_CONTEXT_S moving
#: mean by ONSET_DELTA standard deviations of the clip's onset strength, and by at least
#: ONSET_MIN_RISE (nats: a 0.65 dB rise averaged over the bands; a steady tone's leakage moves
#: it by < 0.1; reverberation lowers the rises, so the floor stays well below a real onset's ~1)
ONSET_SEPARATION_S = 0.07
ONSET_CONTEXT_S = 0.5
ONSET_DELTA = 0.5
ONSET_MIN_RISE = 0.15

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


_SIMD_SORT: list[bool] = []


def _kth_smallest(rows: "np.ndarray", k: int) -> "np.ndarray":
    """The k-th smallest value of each row (NaN-free float rows): exactly np.sort(rows)[:, k].

    A row sort and a partition return the same order statistic, bit for bit; which is
    faster depends on the CPU (decision 15.53): numpy's vectorised sort (x86-simd-sort,
    AVX-512 in numpy 1.x, also AVX2 from numpy 2) sorts 108 x 878 float32 rows in about
    half a partition's time, while without it the sort is the plain introsort, ~4.5x slower
    than a partition (4.2 vs 0.93 ms on an AVX2-only EPYC, numpy 1.26).
    """
    import numpy as np

    if not _SIMD_SORT:
        feats: dict = {}
        for where in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
            try:  # a private table: if a numpy moves it again, partition (never wrong, at worst slower)
                feats = dict(__import__(where, fromlist=["__cpu_features__"]).__cpu_features__)
                break
            except (ImportError, AttributeError):
                continue
        numpy2 = int(np.__version__.split(".")[0]) >= 2
        _SIMD_SORT.append(bool(feats.get("AVX512_SKX")) or (numpy2 and bool(feats.get("AVX2"))))
    if _SIMD_SORT[0]:
        return np.sort(rows, axis=1)[:, k]
    return np.partition(rows, k, axis=1)[:, k]


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


def _log_flatness_32(logp: "np.ndarray", p: "np.ndarray") -> float:
    """_log_flatness with float32 row sums (pairwise: ~1e-7 relative over 1,000 bins)."""
    import numpy as np

    lf = logp.mean(axis=1).astype(np.float64) - np.log(p.mean(axis=1).astype(np.float64))
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
    nf, nb = len(frames), len(c["freqs"])
    # the same operations in the same order as before, into this thread's workspace (_buffer)
    spec = sfft.rfft(np.multiply(frames, c["win"], out=_buffer("frames", (nf, NFFT))), axis=1, workers=1)
    spec = spec[:, :nb]
    p = np.multiply(spec.real, spec.real, out=_buffer("power", (nf, nb)))
    p += np.multiply(spec.imag, spec.imag, out=_buffer("power_im", (nf, nb)))
    p *= c["pscale"]
    del spec
    energy = p.sum(axis=1).astype(np.float64)
    top = float(energy.max())
    if top <= SILENCE:
        return np.array([out[k] for k in names], dtype=np.float64)
    active = energy > max(top * FRAME_RANGE, SILENCE)
    pa = p if active.all() else p[active]  # same values; no copy when every frame is active
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
    pf = np.add(pa[:, 1:], floor, out=_buffer("pf", (len(pa), nb - 1)))   # bin 0 (DC) left out
    logp = np.log(pf, out=_buffer("logp", pf.shape))
    out["spectral_flatness"] = _log_flatness(logp, pf)
    hf, mid, above = c["hf_bins"], c["mid_bins"], c["floor_bins"]
    out["hf_flatness"] = _log_flatness(logp[:, hf], pf[:, hf])
    out["harmonic_distortion"] = _log_flatness(logp[:, mid], pf[:, mid])
    upper = logp[:, above]
    k = int(FLOOR_QUANTILE / 100.0 * (upper.shape[1] - 1))
    # the k-th smallest of each row (a selection has one exact answer: sort or partition,
    # the value is the same; _kth_smallest picks the faster on this CPU)
    out["spectral_floor"] = float(np.exp(np.median(_kth_smallest(upper, k))))

    # spectral flux, normalised by the frame's magnitude (level-independent)
    if len(pa) > 1:
        mag = np.sqrt(p, out=_buffer("power_im", p.shape))
        d = np.subtract(mag[1:], mag[:-1], out=_buffer("flux", (nf - 1, nb)))
        rise = np.maximum(d, 0, out=d).sum(axis=1, dtype=np.float64)
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

    # 10 ms envelope: decay depth, modulation depth, gap depth
    e = _block_power(x, ENV_BLOCK)
    _envelope_descriptors(e, SR, ENV_BLOCK, names, out)

    # band-wise onset strength (positive log change in 24 log-spaced bands, 11.6 ms hop),
    # autocorrelated and summed over bands: an echo repeats the same onsets one delay later
    if len(p) >= 8:
        bands = np.add.reduceat(p, c["band_edges"], axis=1, dtype=np.float64)
        _band_dynamics(np.log(bands + top * 1e-8), HOP, SR, ECHO_BASELINE, out)
    return np.array([out[k] for k in names], dtype=np.float64)


def _envelope_descriptors(e: "np.ndarray", sr: float, env_block: int, names: Any,
                          out: dict[str, float]) -> None:
    """Decay depth, modulation depth and gap depth from the 10 ms block powers `e` (both analyses).

    Decay depth: how far the level falls below its recent peak; modulation depth: the spread
    of the active blocks' amplitude.
    """
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy.ndimage import maximum_filter1d, rank_filter

    if len(e) >= 4:
        edb = 10.0 * np.log10(e + SILENCE)
        edb = np.maximum(edb, edb.max() - 80.0)
        w = max(2, int(round(DECAY_WINDOW_S * sr / env_block)))
        # the maximum of the w blocks ending at each block, the first block's level before
        # the clip (mode "nearest"): the same values as the maximum over a sliding window
        # view of the padded levels, a tenth of the time (decision 15.32)
        running = maximum_filter1d(edb, w, origin=(w - 1) // 2, mode="nearest")
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
            if 2 * h + 1 == 21 and GAP_QUANTILE == 75.0:
                # with 21 values the 75th percentile falls exactly on the 16th smallest
                # (0.75 * 20 = 15), which numpy's linear interpolation returns unchanged: a
                # rank filter (edges held, mode "nearest") finds that same value directly
                ref = rank_filter(edb, 15, size=21, mode="nearest")
            else:
                padded = np.concatenate([np.full(h, edb[0]), edb, np.full(h, edb[-1])])
                ref = np.percentile(sliding_window_view(padded, 2 * h + 1), GAP_QUANTILE, axis=1)
            live = ref > edb.max() - ENV_RANGE_DB
            out["gap_depth"] = float(np.mean(np.clip(ref - edb, 0.0, ENV_RANGE_DB)[live]))


def _echo_peak(ac: "np.ndarray", hop: int, sr: int, baseline_frames: int, out: dict) -> None:
    """`echo_periodicity` from a normalised onset autocorrelation (analyses 2 and 3): the
    largest lift of the lags in ECHO_LAGS_S over their running mean, so a repeat stands out
    against the slow decay every autocorrelation has; left unset when the clip is too short."""
    import numpy as np

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
        _echo_peak(ac, hop, sr, baseline_frames, out)
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
            **_band_spans(freqs, bins),
        }
    return _GRIDS[sr]


def _band_spans(freqs: "np.ndarray", bins: "np.ndarray") -> dict:
    """The grid entries analyses 2 and 3 share: mid/side bands, the register band and the
    flatness segments, from the bin frequencies (`freqs`) and the analysed bins (`bins`)."""
    return {
        "ms_bands": {name: _span(freqs, lo, hi) for name, lo, hi in
                     zip(("band_bass", "band_low_mid", "band_mid", "band_presence", "band_brilliance"),
                         BANDS_HZ[:-1], BANDS_HZ[1:])},
        "reg": _span(freqs, *REGISTER_BAND_HZ),
        "flat_segments": _segments(len(bins), {"spectral_flatness": slice(0, len(bins)),
                                               "hf_flatness": _span(bins, *HF_BAND_HZ),
                                               "harmonic_distortion": _span(bins, *MID_BAND_HZ)}),
    }


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


def downmix_width_2(part: "np.ndarray", with_ms: bool = False) -> tuple:
    """(mono float32 1-D, stereo width) of a (channels, samples) clip in one pass over it.

    Two channels: _downmix's (L + R) * 0.5 and stereo_width_2's three dot products, block
    by block, so each block of L and R is read from cache by all four (separate passes read
    the 3.5 MB of a 10 s stereo clip four times). The 1024-sample row sums are the same
    operations as _dot_ms's, collected and added in the same order, so both values are bit
    for bit those of _downmix and stereo_width_2. The mono signal is this thread's
    workspace (_buffer "mono"): valid until the next call. `with_ms` (analysis 3) appends
    the mono signal's mean square, 0.25 (L.L + 2 L.R + R.R) from the same dot products
    (None for other channel counts: the caller computes it).
    """
    import numpy as np

    if part.shape[0] != 2:
        return (_downmix(part)[0], stereo_width_2(part)) + ((None,) if with_ms else ())
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
    extra = (max(0.0, 0.25 * (ll + 2.0 * lr + rr)),) if with_ms else ()
    if total <= SILENCE:
        return (mono, 0.0) + extra
    return (mono, float(np.clip(1.0 - 0.25 * (ll + 2.0 * lr + rr) / total, 0.0, 1.0))) + extra


def _spectrum_shape(s: "np.ndarray", c: dict, out: dict) -> None:
    """Analyses 2 and 3's long-term spectrum descriptors from the mean power spectrum `s`, written
    once: centroid, roll-off, bandwidth, the zero-crossing rate it implies, the band shares and
    the pitch register (`out` updated; `c`: the analysis constants)."""
    import numpy as np

    freqs = c["freqs"]
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


def _time_descriptors(x: "np.ndarray", frame: int, sr: float, env_block: int, names: Any, out: dict) -> None:
    """Analyses 2 and 3's time-domain part, written once: crest factor over `frame`-sample frames,
    the clipping ratio, and the 10 ms envelope's decay / modulation / gap depth (`out` updated)."""
    import numpy as np

    n = len(x)
    nfr = n // frame
    tail = x[nfr * frame:]
    # the clip's peak from the frame peaks and the tail's (the same value, one pass fewer)
    pk = max(float(tail.max()), -float(tail.min())) if len(tail) else 0.0
    if nfr >= 1:
        fr = x[: nfr * frame].reshape(nfr, frame)
        rms = np.sqrt(np.einsum("ij,ij->i", fr, fr) / np.float32(frame))
        peak = np.maximum(fr.max(axis=1), -fr.min(axis=1))
        pk = max(pk, float(peak.max()))
        ok = rms > max(float(rms.max()) * 1e-3, 1e-6)
        if ok.any():
            out["crest_factor"] = float(np.median(peak[ok] / rms[ok]))
    if pk > 0:
        t = np.float32(CLIP_LEVEL * pk)
        # only frames whose peak reaches t can hold such samples: count there (same count)
        hot = np.flatnonzero(peak >= t) if nfr >= 1 else np.zeros(0, dtype=np.intp)
        parts = [tail, x[: nfr * frame] if 2 * len(hot) > nfr else fr[hot]]
        out["clipping_ratio"] = float(sum(np.count_nonzero(v >= t) + np.count_nonzero(v <= -t)
                                          for v in parts)) / n
    nblk = n // env_block
    seg = x[: nblk * env_block].reshape(nblk, env_block)
    e = (np.einsum("ij,ij->i", seg, seg) / np.float32(env_block)).astype(np.float64)
    _envelope_descriptors(e, sr, env_block, names, out)


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
    if with_bands:
        bands = bands.astype(np.float64)

    # long-term spectrum shape
    s = colsum / nf if every else pa.mean(axis=0, dtype=np.float64)
    _spectrum_shape(s, c, out)

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
    out["spectral_floor"] = float(np.exp(np.median(_kth_smallest(upper, k))))
    del pf, logp, upper

    # spectral flux, normalised by the frame's magnitude (level-independent)
    if len(pa) > 1:  # rise, norm: from the FFT blocks above
        sel = active[1:] & (norm[1:] > 0)
        if sel.any():
            out["spectral_flux"] = float(np.mean(rise[1:][sel] / norm[1:][sel], dtype=np.float64))

    # time domain: crest factor, clipping, the 10 ms envelope
    _time_descriptors(m[:n], nfft, sr, env_block, names, out)

    # band-wise onset strength, echo periodicity, spectral persistence (as describe_mono)
    if with_bands:
        _band_dynamics(np.log(bands + top * 1e-8), hop, sr, ECHO_BASELINE_2, out)
    return np.array([out[k] for k in names], dtype=np.float64)



#: analysis 3 (normalisation version 4, issue 15): analysis 2's descriptors at lower cost.
#: NFFT_3 / HOP_3: the STFT grid; FLAT_FRAME_STEP_3: the flatness descriptors from every
#: such frame; FLOOR_FRAME_STEP_3: the spectral floor's percentile from every such frame
#: (on the powers, _kth_smallest); CREST_FRAME_3: crest factor frames (46 ms,
#: as analyses 1 and 2)
NFFT_3 = 2048
HOP_3 = 1024
FLAT_FRAME_STEP_3 = 2
FLOOR_FRAME_STEP_3 = 8
CREST_FRAME_3 = 2048
FFT_BLOCK_3 = 64
_GRIDS_3: dict[tuple[int, int], dict] = {}


def _grid_3(nfft: int, hop: int) -> dict:
    """Analysis 3's constants for one (frame, hop) grid at 44.1 kHz."""
    import numpy as np

    key = (nfft, hop)
    if key not in _GRIDS_3:
        win = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nfft) / nfft)).astype(np.float32)
        pscale = 2.0 / (nfft * float(np.sum(win.astype(np.float64) ** 2)))
        freqs = np.arange(int(MAX_HZ * nfft / SR) + 1) * (SR / nfft)
        bins = freqs[1:]
        top_bin = len(freqs) - 1
        edges = np.unique(np.geomspace(1, top_bin, N_ONSET_BANDS + 1).astype(int))[:-1]
        _GRIDS_3[key] = {
            "nfft": nfft, "hop": hop,
            "baseline": max(3, 2 * int(round(0.1 * SR / hop / 2.0)) + 1),  # ~100 ms, odd
            "win_scaled": (win * np.sqrt(pscale)).astype(np.float32),
            "freqs": freqs, "floor_bins": _span(freqs, FLOOR_FROM_HZ, SR), "band_edges": edges,
            **_band_spans(freqs, bins),
        }
    return _GRIDS_3[key]


def _band_dynamics_3(logb: "np.ndarray", hop: int, sr: float, baseline_frames: int,
                     out: dict[str, float], onsets: bool = False) -> None:
    """_band_dynamics for analysis 3: the same two quantities (echo periodicity, spectral
    persistence) from one float32 FFT call instead of two in float64 (scipy's float64 FFT of
    these ~44 x 864 arrays is ~5x slower than its float32 one here). The onset strength and
    the standardised levels are put side by side as rows, transformed once, and each
    group's power spectra summed and inverted together: the same autocorrelations up to
    float32 rounding (~1e-6 of the zero-lag value; one zero pads the onsets, which are a
    frame shorter, and zero padding adds nothing to lags below the length)."""
    import numpy as np
    import scipy.fft as sfft

    rise = np.maximum(np.diff(logb, axis=0), 0.0)
    n = logb.shape[0]
    if onsets:
        _onset_rate(rise, hop, sr, out)
    sd = logb.std(axis=0)
    live = sd > 1e-6
    nr, nz = rise.shape[1], int(live.sum())
    rows = np.zeros((nr + nz, n), dtype=np.float32)
    rows[:nr, : n - 1] = (rise - rise.mean(axis=0)).T
    if nz:
        lv = logb[:, live]
        rows[nr:] = ((lv - lv.mean(axis=0)) / sd[live]).T
        rows[nr:] -= rows[nr:].mean(axis=1, keepdims=True)  # _autocorr removes the mean again
    size = sfft.next_fast_len(2 * n)
    f = sfft.rfft(rows, size, axis=1, workers=1)
    pw = f.real * f.real + f.imag * f.imag
    both = np.stack([pw[:nr].sum(axis=0), pw[nr:].sum(axis=0)])
    ac = sfft.irfft(both, size, axis=1, workers=1).astype(np.float64)
    acr, acz = ac[0, : n - 1], ac[1, :n]
    if acr[0] > 1e-12:
        _echo_peak(acr / acr[0], hop, sr, baseline_frames, out)
    if nz and acz[0] > 1e-12:
        acz = acz / acz[0]
        below = np.flatnonzero(acz < PERSISTENCE_LEVEL)
        if len(below):
            i = int(below[0])
            lag = i - 1 + (acz[i - 1] - PERSISTENCE_LEVEL) / (acz[i - 1] - acz[i])
        else:
            lag = float(len(acz))
        out["spectral_persistence"] = float(lag) * hop / sr


def _onset_rate(rise: "np.ndarray", hop: int, sr: float, out: dict[str, float]) -> None:
    """onset_rate (normalisation 5): note onsets per second of the analysed clip. The onset
    strength is the mean over the 24 bands of the positive change of their log level from
    frame to frame (the rises echo periodicity reads); an onset is a frame whose strength is
    the largest within +-ONSET_SEPARATION_S and exceeds its +-ONSET_CONTEXT_S moving mean by
    ONSET_DELTA standard deviations of the whole clip's strength (and by ONSET_MIN_RISE at
    least: a steady tone has no onsets). The log levels make it
    independent of loudness; a speed-up by r puts the same onsets into 1/r of the time."""
    import numpy as np
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    o = rise.mean(axis=1)
    sd = float(o.std())
    seconds = (len(o) + 1) * hop / sr
    if sd <= 1e-9:
        out["onset_rate"] = 0.0
        return
    sep = max(1, int(round(ONSET_SEPARATION_S * sr / hop)))
    ctx = max(3, 2 * int(round(ONSET_CONTEXT_S * sr / hop)) + 1)
    peak = o >= maximum_filter1d(o, 2 * sep + 1, mode="nearest")
    over = o > uniform_filter1d(o, ctx, mode="nearest") + max(ONSET_DELTA * sd, ONSET_MIN_RISE)
    out["onset_rate"] = float(np.count_nonzero(peak & over)) / seconds


def _quiet_floor(floor: "np.ndarray", level: "np.ndarray", out: dict[str, float]) -> None:
    """quiet_floor (normalisation 5, dB): how much higher the spectral floor (the 5th
    percentile bin power in 2-20 kHz, per frame) stands against the frame's level in the
    quietest quarter of the floor's frames than in the loudest quarter (medians of floor/level
    in dB, their difference). The floor of music follows the music's level (0 dB: the same
    shape when quiet and loud, however high a speed-up or a brighter mix has lifted it); a
    noise bed stays when the music gets quieter, so it stands out in the quiet frames."""
    import numpy as np

    rel = 10.0 * np.log10(floor / np.maximum(level, 1e-30))
    lo, hi = np.percentile(level, [QUIET_QUARTILE, 100.0 - QUIET_QUARTILE])
    if hi <= lo * 1.0000001:  # one level throughout (a steady tone or noise): no quiet frames
        out["quiet_floor"] = 0.0
        return
    out["quiet_floor"] = float(np.median(rel[level <= lo]) - np.median(rel[level >= hi]))


def _flatness_floor_3(rows: "np.ndarray", c: dict, fs: int, out: dict[str, float],
                      level: "np.ndarray | None" = None) -> None:
    """Analysis 3's spectral floor and three flatness measures from the sampled frames'
    bin powers `rows` (float32, overwritten: the logs are taken in place); the floor reads
    every fs-th of them. With `level` (normalisation 5: the power of each of those floor
    frames), quiet_floor as well."""
    import numpy as np

    floor = rows.max(axis=1) * np.float32(1e-12) + np.float32(1e-30)  # 120 dB under the frame's peak
    # spectral floor: k-th smallest power in 2-20 kHz by selection (the order statistic
    # analysis 2 finds by sorting the logs), median over the frames
    upper = rows[::fs, c["floor_bins"]]
    k = int(FLOOR_QUANTILE / 100.0 * (upper.shape[1] - 1))
    kth = _kth_smallest(upper, k)
    per_frame = kth.astype(np.float64) + floor[::fs].astype(np.float64)
    out["spectral_floor"] = float(np.median(per_frame))
    if level is not None and len(per_frame) >= QUIET_MIN_FRAMES:
        _quiet_floor(per_frame, level.astype(np.float64), out)

    # per-frame flatness (full band, upper band, mid band), bin 0 (DC) left out
    pa = rows[:, 1:]
    pa += floor[:, None]
    edges, members = c["flat_segments"]
    seg = np.add.reduceat(pa, edges, axis=1).astype(np.float64)
    arith = {name: np.log(seg[:, i].sum(axis=1) / n_bins) for name, (i, n_bins) in members.items()}
    logp = np.log(pa, out=pa)
    seg = np.add.reduceat(logp, edges, axis=1).astype(np.float64)
    for name, (i, n_bins) in members.items():
        out[name] = float(np.exp(np.mean(seg[:, i].sum(axis=1) / n_bins - arith[name])))


def describe_mono_3(m: "np.ndarray", width: float, names: Sequence[str] = DESCRIPTORS_V2,
                    nfft: int = NFFT_3, hop: int = HOP_3, flat_step: int = FLAT_FRAME_STEP_3,
                    floor_step: int = FLOOR_FRAME_STEP_3, ms: float | None = None) -> "np.ndarray":
    """Analysis 3 (normalisation version 4): describe_mono_2's descriptors at lower cost.

    Mono float32 at 44.1 kHz. What differs from analysis 2 (docs/perceptual_encoders.md,
    "Analysis versions", decision 15.50):

    - the three flatness descriptors average the active frames among every `flat_step`-th
      frame (non-overlapping 46 ms frames: every sample still counts once), copied out of
      each FFT block while it is in cache, so the power of every frame is never stored;
    - the spectral floor is the median over every `floor_step`-th frame (186 ms apart) of
      the 5th percentile of the bin powers in 2-20 kHz, taken on the powers (_kth_smallest)
      rather than on their logarithms (the same order statistic; the median of an even
      count is the mean of the two middle powers, not of their logs);
    - the long-term spectrum is the mean over every frame (analysis 2: the active ones;
      a frame more than 60 dB below the loudest adds < 1e-6 of it);
    - the rms level comes from the downmix's dot products (`ms`, when the caller has it);
    - the flux's positive change per frame is (sum |d| + sum d) / 2 (the same quantity up
      to float32 rounding of the row sums).

    Everything else (the STFT grid, onset bands, flux, envelope, time domain) is analysis 2's.
    """
    import numpy as np
    import scipy.fft as sfft
    from numpy.lib.stride_tricks import sliding_window_view

    c = _grid_3(nfft, hop)
    if FFT_BLOCK_3 % flat_step or floor_step % flat_step:
        raise ValueError(f"flat_step {flat_step} must divide {FFT_BLOCK_3} and floor_step {floor_step}")
    sr, env_block = SR, ENV_BLOCK
    nan = float("nan")
    out = {name: nan for name in DESCRIPTORS_V3}
    out["stereo_width"] = width
    extra = "onset_rate" in names  # normalisation 5: quiet_floor and onset_rate as well
    m = np.ascontiguousarray(m, dtype=np.float32)
    n = len(m)
    ms = _dot_ms(m) if ms is None else ms
    out["rms_level"] = 10.0 * math.log10(max(ms, SILENCE))
    out["spectral_floor"] = 0.0
    if n < max(nfft, CREST_FRAME_3):
        m = np.concatenate([m, np.zeros(max(nfft, CREST_FRAME_3) - n, dtype=np.float32)])
    frames = sliding_window_view(m, nfft)[::hop]
    nf, nb = len(frames), len(c["freqs"])
    b = min(nf, FFT_BLOCK_3)
    pblock = _buffer("power", (b, nb))
    # every flat_step-th frame's power (FFT_BLOCK_3 is a multiple of flat_step, so block
    # starts are too); the flatness takes their logs in place
    rows = _buffer("rows", ((nf + flat_step - 1) // flat_step, nb))
    block = _buffer("frames", (b, nfft))
    mag, diff = _buffer("mag", (b + 1, nb)), _buffer("flux", (b, nb))
    energy = np.empty(nf, dtype=np.float32)
    rise, norm = np.zeros(nf, dtype=np.float32), np.zeros(nf, dtype=np.float32)
    colsum = np.zeros(nb, dtype=np.float64)
    with_bands = nf >= 8
    bands = np.empty((nf, len(c["band_edges"])), dtype=np.float32) if with_bands else None
    for a in range(0, nf, FFT_BLOCK_3):
        z = min(FFT_BLOCK_3, nf - a)
        w = np.multiply(frames[a: a + z], c["win_scaled"], out=block[:z])
        spec = sfft.rfft(w, axis=1, workers=1, overwrite_x=True)
        ma = np.abs(spec[:, :nb], out=mag[1: 1 + z])
        pb = np.square(ma, out=pblock[:z])
        colsum += pb.sum(axis=0)
        keep = pb[::flat_step]
        rows[a // flat_step: a // flat_step + len(keep)] = keep
        if with_bands:
            # the onset bands cover bins 1..nb-1: a frame's power is their sum plus bin 0
            bb = np.add.reduceat(pb, c["band_edges"], axis=1, out=bands[a: a + z])
            np.add(bb.sum(axis=1), pb[:, 0], out=energy[a: a + z])
        else:
            pb.sum(axis=1, out=energy[a: a + z])
        # flux: each frame's summed |change| against the previous frame (the block's
        # first frame against the previous block's last), and each frame's summed |X|
        first = 1 if a == 0 else 0
        d = np.subtract(mag[1 + first: 1 + z], mag[first: z], out=diff[: z - first])
        np.abs(d, out=d).sum(axis=1, out=rise[a + first: a + z])
        mag[1: 1 + z].sum(axis=1, out=norm[a: a + z])
        mag[0] = mag[z]
    del spec, ma, pb, w, block, d, keep
    top = float(energy.max())
    if top <= SILENCE:
        return np.array([out[k] for k in names], dtype=np.float64)
    active = energy > max(top * FRAME_RANGE, SILENCE)

    # long-term spectrum shape (all frames)
    s = colsum / nf
    _spectrum_shape(s, c, out)

    # the frames of the flatness (the active ones among every flat_step-th) and, among
    # them, of the spectral floor (every floor_step-th)
    sampled = active[::flat_step]
    if sampled.any():
        fs = max(1, floor_step // flat_step)
        level = energy[::flat_step][sampled][::fs] if extra else None  # the floor frames' powers
        _flatness_floor_3(rows if sampled.all() else rows[sampled], c, fs, out, level)
    else:  # only frames between the sampled ones are active (a lone click): undefined
        out["spectral_floor"] = nan

    # spectral flux, normalised by the frame's magnitude (level-independent): the positive
    # change sum(max(d, 0)) is (sum |d| + sum d) / 2 and sum d = norm_t - norm_t-1, which
    # spares np.maximum (6x slower than np.abs without AVX-512)
    if nf > 1:
        up = 0.5 * (rise[1:].astype(np.float64) + norm[1:].astype(np.float64) - norm[:-1].astype(np.float64))
        sel = active[1:] & (norm[1:] > 0)
        if sel.any():
            out["spectral_flux"] = float(np.mean(np.maximum(up[sel], 0.0) / norm[1:][sel], dtype=np.float64))

    # time domain: crest factor (46 ms frames), clipping, the 10 ms envelope
    _time_descriptors(m[:n], CREST_FRAME_3, sr, env_block, names, out)

    # band-wise onset strength, echo periodicity, spectral persistence
    if with_bands:
        _band_dynamics_3(np.log(bands.astype(np.float64) + top * 1e-8), hop, sr, c["baseline"], out, extra)
    elif extra:
        out["onset_rate"] = 0.0  # under 8 frames (0.2 s): no onset can be told from its context
    return np.array([out[k] for k in names], dtype=np.float64)


def _windows(n: int, sample_rate: float) -> list[tuple[int, int]]:
    """Sample ranges analysed for a clip of n samples (whole, or 3 x 10 s for long clips)."""
    if n <= MAX_SECONDS * sample_rate:
        return [(0, n)]
    w = int(round(WINDOW_SECONDS * sample_rate))
    starts = [round(k * (n - w) / (N_WINDOWS - 1)) for k in range(N_WINDOWS)]
    return [(s, s + w) for s in starts]


class PerceptualAudioEncoder(PerceptualBase, AudioEncoder):
    """Weight-free audio encoder: 24 normalised low-level descriptors (spectrum, dynamics, space).

    The default audio encoder when none is configured. Each clip becomes a vector of
    interpretable descriptors (spectral centroid, roll-off, bandwidth, flatness, five band
    energies, crest factor, clipping ratio, zero-crossing rate, decay depth, modulation
    depth, echo periodicity, spectral floor, high-band flatness, mid-band flatness as a
    harmonic-distortion cue, spectral flux, spectral persistence, pitch register, stereo
    width, and with lexicon v3 gap depth: the gaps a gate cuts), analysed at a fixed 44.1 kHz and passed through a fixed, versioned
    normalisation. Text is embedded through a shipped lexicon that grounds every vocabulary
    term in signed descriptor directions. numpy/scipy/soxr only; a few milliseconds per
    second of audio on one core (under one with normalisation 3's analysis 2). See
    docs/perceptual_encoders.md.
    """

    name: ClassVar[str] = "perceptual-audio"
    modality: ClassVar[str] = "audio"
    DESCRIPTORS: ClassVar[tuple[str, ...]] = DESCRIPTORS
    DESCRIPTOR_SETS: ClassVar[tuple[tuple[str, ...], ...]] = DESCRIPTOR_SETS
    ALGORITHM_REVISION: ClassVar[int] = 1
    #: analysis 1: 512-sample hop (normalisation versions 1, 2); analysis 2: describe_mono_2
    #: (normalisation version 3); analysis 3: describe_mono_3 (normalisation version 4)
    ANALYSES: ClassVar[tuple[int, ...]] = (1, 2, 3)

    @property
    def table(self):
        table = super().table
        if len(table.names) > len(DESCRIPTORS_V2) and table.analysis != 3:
            raise DeltaV2AError(f"normalisation file {table.source}: quiet_floor and onset_rate are "
                                f"computed by audio analysis 3 only, not {table.analysis}")
        return table

    def __init__(self, **options) -> None:
        super().__init__(**options)  # validates against PerceptualOptions
        self._init_options(self.options)

    @staticmethod
    def _check(clip: "np.ndarray", index: int, sample_rate: float, analysis: int = 1) -> "np.ndarray":
        import numpy as np

        from deltav2a.media.io import check_audio

        x = np.asarray(clip)
        # analysis 2 of a stereo clip analysed whole reads every sample in its downmix, whose
        # sums of squares are finite iff every sample is: _raw_windows checks there instead of
        # a scan of its own here (decision 15.30: one pass over A' fewer per encode)
        deferred = analysis in (2, 3) and x.ndim == 2 and x.shape[0] == 2 and x.shape[1] <= MAX_SECONDS * sample_rate
        x = check_audio(x, f"perceptual-audio: clip {index}", finite=not deferred)
        if x.shape[0] > 16 and x.shape[1] <= 16:
            raise DeltaV2AError(f"perceptual-audio: clip {index} has shape {x.shape}: expected "
                                "(channels, samples) (transposed?)")
        if x.shape[1] < MIN_SECONDS * sample_rate:
            raise DeltaV2AError(f"perceptual-audio: clip {index} is {1000 * x.shape[1] / sample_rate:.1f} ms "
                                f"long; at least {1000 * MIN_SECONDS:g} ms is needed")
        # soundfile hands out (samples, channels) transposed views; rows must be contiguous
        return np.ascontiguousarray(x)

    @staticmethod
    def _rate(sample_rate: float) -> float:
        try:
            sr = float(sample_rate)
        except (TypeError, ValueError):
            raise DeltaV2AError(f"perceptual-audio: sample rate must be a number, got {sample_rate!r}") from None
        if not (math.isfinite(sr) and sr >= MIN_SAMPLE_RATE):
            raise DeltaV2AError(f"perceptual-audio: sample rate must be at least {MIN_SAMPLE_RATE:g} Hz, "
                                f"got {sample_rate!r}")
        return sr

    def _raw_windows(self, clip: "np.ndarray", sr: float, index: int = 0) -> list["np.ndarray"]:
        import numpy as np

        from deltav2a.media.io import check_audio, resample

        names = self.descriptor_names
        analysis = self.table.analysis
        fast = analysis == 2
        rows = []
        for a, b in _windows(clip.shape[1], sr):
            part = clip[:, a:b]
            if analysis == 3:
                mono, width, ms = downmix_width_2(part, with_ms=True)
                if not math.isfinite(width):  # NaN/Inf samples (or |x| > 1e19): the exact check
                    check_audio(clip, f"perceptual-audio: clip {index}")
                if sr != SR:  # every other rate is resampled first (as analysis 2; decision 15.12)
                    mono, ms = resample(mono[None, :], sr, SR)[0], None
                rows.append(describe_mono_3(mono, width, names, ms=ms))
                continue
            if fast:
                mono, width = downmix_width_2(part)
                if not math.isfinite(width):  # NaN/Inf samples (or |x| > 1e19): the exact check
                    check_audio(clip, f"perceptual-audio: clip {index}")
                rate = int(sr) if sr in NATIVE_GRIDS_2 else SR
                mono = resample(mono[None, :], sr, rate)[0]
                rows.append(describe_mono_2(mono, width, names, rate))
                continue
            mono = _downmix(part)
            width = _stereo_width(part, mono[0])
            mono = resample(np.ascontiguousarray(mono, dtype=np.float32), sr, SR)[0]
            rows.append(describe_mono(mono, width, names))
        return rows

    def raw_descriptors(self, clips: Sequence["np.ndarray"], sample_rate: float) -> "np.ndarray":
        """(N, dim) raw descriptors (the first analysis window of long clips); for the fit."""
        import numpy as np

        sr = self._rate(sample_rate)
        if isinstance(clips, np.ndarray) and clips.ndim < 3:
            raise DeltaV2AError("perceptual-audio: pass a list of (channels, samples) clips")
        out = np.empty((len(clips), self.dim), dtype=np.float64)
        for i, clip in enumerate(clips):
            out[i] = self._raw_windows(self._check(clip, i, sr, self.table.analysis), sr, i)[0]
        return out

    def encode_audio(self, clips: Sequence["np.ndarray"], sample_rate: int) -> "np.ndarray":
        """(N, dim) float32: normalised descriptors of each (channels, samples) clip.

        dim is 23 with normalisation version 1 (lexicons v1, v2), 24 with versions 2-4
        (lexicon v3 adds `gap_depth`) and 26 with version 5 (lexicon v5: `quiet_floor`,
        `onset_rate`)."""
        import numpy as np

        table = self.table  # validate the data file before any work
        sr = self._rate(sample_rate)
        if isinstance(clips, np.ndarray) and clips.ndim < 3:
            raise DeltaV2AError("perceptual-audio: pass a list of (channels, samples) clips")
        out = np.empty((len(clips), self.dim), dtype=np.float32)
        for i, clip in enumerate(clips):
            rows = self._raw_windows(self._check(clip, i, sr, self.table.analysis), sr, i)
            z = table.normalise(np.stack(rows))
            out[i] = z[0] if len(rows) == 1 else z.mean(axis=0, dtype=np.float64).astype(np.float32)
        return out
