"""`scatter`: ImageMagick's spread, done to a sound along time (issue 16, decision 16.70).

A spread image is made by replacing every pixel with a random neighbour from within a radius:
the picture is still there, but broken into specks, and a viewer reads it *fragmented* and
*granular* at once (held-out v4: spread *fragmented* 0.59 + *granular* 0.34, noise the other way
round). The same operation on a sound is the granular synthesist's "spray" (position jitter):
the sound is cut into short overlapping grains and each grain is read from a random moment
within `radius_ms` of its own. The music is still there, in order on a large scale, but every
few tens of milliseconds it jumps: notes break into specks (*fragmented*) and the grain seams
add a fine, rough texture (*granular*). The nearest existing effects each make one of the two:
a stutter gates the sound into pieces with silences between them (*fragmented*, *rigid*), a bit
reduction adds quantisation noise (*granular*); neither moves material in time, which is what
spread does to pixels. (That is the listener's reading. The perceptual encoder reads it
mostly *steady*: it hears the beat's periodicity break up and has no descriptor for a splice
every 20 ms; docs/vocab_audit.md, "Eighth pass".)

Rendered outside Pedalboard with numpy (Pedalboard has no granular plugin). Grains of
`grain_ms` overlap by half and carry a periodic Hann window, whose copies at that hop sum to
exactly 1, so radius 0 gives back the input. Each grain's displacement is `radius_ms` times a
fixed uniform draw in [-1, 1] (seed `GRAIN_SEED`), so the expected displacement grows linearly
with the radius, as spread's does with its radius (docs/image_effects.md), and the same clip is
always scattered the same way. The displacement is the same on every channel (no added width);
a grain is never read from outside the clip. Output samples are Hann-weighted sums of two input
samples whose weights add to 1, so finite input stays finite and the peak cannot grow.

Nothing heavy is imported at module level: registration must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from deltav2a.api.effects import AudioEffect
from deltav2a.api.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: seed of the grains' displacements (they depend only on the clip's length and the settings)
GRAIN_SEED = 0


def scatter_grains(audio: "np.ndarray", sample_rate: float, radius_ms: float,
                   grain_ms: float) -> "np.ndarray":
    """`audio` (channels x samples) with each half-overlapping Hann grain of `grain_ms` read
    from up to `radius_ms` earlier or later; same shape, float32.

    Grain k sits at o_k = (k - 1) * hop (hop = half a grain; the first grain starts half a
    grain before the clip, so the windows sum to 1 over every sample) and is read from
    o_k + d_k, d_k = round(u_k * radius), u_k ~ Uniform(-1, 1) seeded; the read position is
    kept inside the clip (a grain that overhangs an end may keep its own position).
    """
    import numpy as np

    x = np.asarray(audio, dtype=np.float32)
    n = x.shape[-1]
    half = max(1, int(round(grain_ms * 1e-3 * float(sample_rate) / 2.0)))
    g = 2 * half
    r = int(round(radius_ms * 1e-3 * float(sample_rate)))
    if r <= 0 or n == 0:
        return x
    k = -(-n // half) + 1                                    # ceil(n / hop) + 1 grains
    o = (np.arange(k, dtype=np.int64) - 1) * half
    u = np.random.default_rng(GRAIN_SEED).uniform(-1.0, 1.0, size=k)
    src = np.clip(o + np.rint(u * r).astype(np.int64), np.minimum(o, 0), np.maximum(o, n - g))
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(g) / g)).astype(np.float32)
    flat = x.reshape(-1, n)
    xp = np.zeros((flat.shape[0], n + 2 * g), dtype=np.float32)
    xp[:, g:g + n] = flat
    out = np.zeros_like(xp)
    for ok, sk in zip(o.tolist(), src.tolist()):
        out[:, ok + g:ok + 2 * g] += w * xp[:, sk + g:sk + 2 * g]
    return out[:, g:g + n].reshape(x.shape)


class Scatter(AudioEffect):
    """Grain scatter (granular spray): every grain read from a random moment within a radius.

    Rendered outside Pedalboard (numpy overlap-add of Hann grains). radius 0 (bypass) returns
    the input untouched; deterministic; no tail (grains only move inside the clip). Intensity
    moves the radius only: the grain size stays at its default (`intensity_fixed`).
    """

    name: ClassVar[str] = "scatter"
    outside_pedalboard: ClassVar[bool] = True
    # every output sample is a convex combination of input samples (weights sum to 1)
    finite_output: ClassVar[bool] = True
    intensity_fixed: ClassVar[tuple[str, ...]] = ("grain_ms",)
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "radius_ms", 0.0, 250.0, default=80.0, bypass=0.0, unit="ms",
            doc="Farthest a grain is read from its own moment; 0 is the input (bypass), 60 ms "
                "roughens notes, 250 ms (an eighth note at 120 BPM) throws specks across beats.",
        ),
        Param(
            "grain_ms", 20.0, 100.0, default=40.0, bypass=100.0, unit="ms",
            doc="Length of each grain (they overlap by half); no effect while the radius is 0 "
                "(bypass 100 ms, the gentlest: no neutral value). 20 ms buzzes, 100 ms keeps "
                "short phrases whole.",
        ),
    )

    def process(self, audio: "np.ndarray", sample_rate: int, **raw: float) -> "np.ndarray":
        v = self.resolve(raw)
        if v["radius_ms"] <= 0.0:
            return audio
        return scatter_grains(audio, sample_rate, v["radius_ms"], v["grain_ms"])


__all__ = ["GRAIN_SEED", "Scatter", "scatter_grains"]
