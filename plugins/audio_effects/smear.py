"""`smear`: a motion blur in time (issue 16, decision 16.31).

A motion-blurred photo is each pixel averaged with its neighbours along one line; a viewer
calls it *fluid*: flowing, streaming, smeared. The same operation on a sound averages each
moment with the moments around it along time: attacks are softened, the gaps
between notes fill with the notes around them and the spectrum changes slowly, so the notes
run into one another (legato, "smeared in time"), which is lexicon v4's *fluid* audio direction.
The default effects only come close through a reverb, which also darkens the tail (damping),
widens the image and adds a room: it reads *muddy* and *expansive* before *fluid*; a delay
adds periodic copies (*layered*, *oscillating*). The smear adds neither a room, nor width,
nor periodic echoes, nor a tilt of the spectrum. (A smeared hi-hat becomes a sustained noise
wash: the encoder reads part of that as *granular*, docs/vocab_audit.md.)

Rendered outside Pedalboard with numpy/scipy: the sound is convolved with a sparse kernel of
`length_ms` whose taps (one every 2 ms on average, jittered: "velvet noise") all have the
same size and a random sign, so the wet signal is the average of many copies of the sound
shifted over the whole length, as a motion blur averages copies shifted along a line. The
taps are equal (a box, not a decaying tail: no room) and irregular (no periodic echo), the
kernel is the same for every channel (no added width) and has a flat spectrum on average
(no darkening); the taps' signs decorrelate the copies so the level is kept (scaled by
1 / sqrt(taps)). The seed is fixed, so the same clip is always smeared the same way.

Nothing heavy is imported at module level: registration must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from deltav2a.api.effects import AudioEffect
from deltav2a.api.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: mean spacing of the kernel's taps (velvet-noise density 500 taps/s: dense enough to fuse)
TAP_SPACING_S = 0.002
#: seed of the taps' positions and signs (the kernel depends only on length and sample rate)
KERNEL_SEED = 0


def smear_kernel(sample_rate: float, length_ms: float) -> "np.ndarray":
    """The velvet-noise box kernel: one tap of +-1/sqrt(taps) at a random position inside each
    `TAP_SPACING_S` cell over `length_ms`; the first tap is at 0 (the blur starts at the sound)."""
    import numpy as np

    n = max(1, int(round(length_ms * 1e-3 * float(sample_rate))))
    cell = max(1, int(round(TAP_SPACING_S * float(sample_rate))))
    cells = max(1, n // cell)
    rng = np.random.default_rng(KERNEL_SEED)
    pos = np.arange(cells) * cell + rng.integers(0, cell, size=cells)
    pos[0] = 0
    sign = rng.choice([-1.0, 1.0], size=cells)
    k = np.zeros(cells * cell, dtype=np.float64)
    k[pos] = sign / np.sqrt(cells)
    return k


def smear_time(audio: "np.ndarray", sample_rate: float, length_ms: float, mix: float) -> "np.ndarray":
    """`audio` (channels x samples) mixed with its convolution by `smear_kernel` by `mix`;
    same shape, float32 (the smear's tail past the input's end is cut: `tail_seconds` says
    how long it is, for chains that keep tails)."""
    import numpy as np
    from scipy.signal import fftconvolve

    x = np.asarray(audio, dtype=np.float32)
    if mix <= 0.0:
        return x
    k = smear_kernel(sample_rate, length_ms)
    wet = fftconvolve(x.astype(np.float64), k.reshape((1,) * (x.ndim - 1) + (-1,)), mode="full", axes=-1)
    wet = wet[..., :x.shape[-1]]
    # the copies are uncorrelated with the dry sound: an equal-power crossfade keeps the level
    dry_gain, wet_gain = np.cos(0.5 * np.pi * mix), np.sin(0.5 * np.pi * mix)
    out = dry_gain * x + wet_gain * wet.astype(np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


class Smear(AudioEffect):
    """Motion blur in time: the sound averaged with copies of itself spread over `length_ms`.

    Rendered outside Pedalboard (convolution with a fixed velvet-noise box kernel). mix 0
    (bypass) returns the input untouched; deterministic. The smear sounds on for `length_ms`
    after the input stops (`tail_seconds`); chains with `tail: cut` keep the input's length.
    """

    name: ClassVar[str] = "smear"
    outside_pedalboard: ClassVar[bool] = True
    finite_output: ClassVar[bool] = True  # tested; non-finite samples are zeroed
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "length_ms", 30.0, 1000.0, default=400.0, bypass=30.0, unit="ms",
            doc="Length of the time blur; 30 ms (bypass; no neutral value) fuses into one sound, "
                "250 ms runs eighth notes at 120 BPM together, 1000 ms a long streak over two beats.",
        ),
        Param(
            "mix", 0.0, 1.0, default=0.7, bypass=0.0,
            doc="Equal-power crossfade dry -> smeared; 0 is the dry signal (bypass), 1 the smear only.",
        ),
    )

    def process(self, audio: "np.ndarray", sample_rate: int, **raw: float) -> "np.ndarray":
        v = self.resolve(raw)
        if v["mix"] <= 0.0:
            return audio
        return smear_time(audio, sample_rate, v["length_ms"], v["mix"])

    def tail_seconds(self, **raw: float) -> float:
        v = self.resolve(raw)
        return 0.0 if v["mix"] <= 0.0 else v["length_ms"] * 1e-3


__all__ = ["Smear", "smear_kernel", "smear_time"]
