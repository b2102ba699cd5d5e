"""Preprocessing of one hit (the note's dsp/audio_io.py): mono, trim, crop, peak-normalise, 16 kHz.

Two views of the same trimmed hit come out: the DSP view at the note's rate (16 kHz by
default) for the features, and the hit at its own rate for the text-side encoder, which
resamples to whatever it needs (perceptual-audio analyses at 44.1 kHz, CLAP at 48 kHz), so
a hat keeps its top octave for the encoder even though the DSP rules stop at 8 kHz.

Bad input is a one-line DeltaV2AError: unreadable/non-audio file (media.load_audio),
NaN/Inf samples, a silent file, a hit shorter than the attack window after trimming.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .config import RoleAssignerConfig


@dataclass(frozen=True)
class Hit:
    y: "np.ndarray"          # mono float32 at sr (DSP view)
    sr: int
    native: "np.ndarray"     # (1, samples) float32 at native_sr (encoder view)
    native_sr: int


def _peak_normalise(x: "np.ndarray", target: float) -> "np.ndarray":
    import numpy as np

    peak = float(np.max(np.abs(x)))
    return (x * (target / peak)).astype(np.float32) if peak > 0 else x


def prepare(y: "np.ndarray", sr: float, cfg: "RoleAssignerConfig", what: str = "audio") -> Hit:
    """Raw samples ((samples,) or (channels, samples)) -> the analysed hit."""
    import librosa
    import numpy as np

    from ..media.io import check_audio, resample

    try:
        sr_f = float(sr)
    except (TypeError, ValueError):
        raise DeltaV2AError(f"{what}: sample rate must be a number, got {sr!r}") from None
    if not (np.isfinite(sr_f) and sr_f >= 1000):
        raise DeltaV2AError(f"{what}: sample rate must be at least 1000 Hz, got {sr!r}")
    a = cfg.audio
    x = check_audio(np.asarray(y), what)
    if x.shape[0] > 16 and x.shape[1] <= 16:
        raise DeltaV2AError(f"{what} has shape {x.shape}: expected (channels, samples) (transposed?)")
    mono = x.mean(axis=0, dtype=np.float32) if (a.mono or x.shape[0] == 1) else x[0]
    if float(np.max(np.abs(mono))) < a.silence_peak:
        raise DeltaV2AError(f"{what} is silent (peak below {20 * np.log10(a.silence_peak):.0f} dBFS)")
    if a.trim_silence:
        mono, _ = librosa.effects.trim(mono, top_db=a.trim_top_db, frame_length=512, hop_length=64)
    mono = mono[: int(round(a.max_duration_sec * sr_f))]
    need = cfg.dsp.attack_window_sec
    if len(mono) < need * sr_f:
        raise DeltaV2AError(f"{what} is {1000 * len(mono) / sr_f:.0f} ms long after trimming; "
                            f"shorter than the {1000 * need:g} ms attack window")
    native = np.ascontiguousarray(mono, dtype=np.float32)
    dsp = resample(native[None, :], sr_f, a.target_sr)[0]
    if a.peak_normalize:
        native = _peak_normalise(native, a.peak_target)
        dsp = _peak_normalise(dsp, a.peak_target)
    return Hit(np.ascontiguousarray(dsp, dtype=np.float32), int(a.target_sr), native[None, :], int(round(sr_f)))


def load_hit(path: str | os.PathLike, cfg: "RoleAssignerConfig") -> Hit:
    from ..media.io import load_audio

    # leading silence is trimmed and the hit cropped to max_duration_sec: a minute is plenty
    audio, sr = load_audio(path, max_seconds=cfg.audio.max_duration_sec + cfg.audio.max_leading_silence_sec)
    return prepare(audio, sr, cfg, what=f"audio file {path}")
