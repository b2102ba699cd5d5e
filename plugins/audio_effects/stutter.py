"""`stutter`: a rhythmic gate that chops the sound into pieces (issue 16, decision 16.10).

The seven effects of the research chain can filter, smear, repeat, crush, saturate and
re-pitch a sound, but none of them breaks its continuity: nothing a listener would call
*choppy*, *stuttering* or *fragmented*, which is what a viewer calls a spread (pixel-scattered)
image. A trance-gate / stutter edit does exactly that: it switches the level between "on" and
"off" at a fixed rate, so the sound comes in pieces.

Pedalboard has no such plugin (its `NoiseGate` opens on the input level, not on a clock, and
there is no tremolo), so the gate is a small numpy step outside Pedalboard, like
`playback_rate`. The gain depends only on the absolute sample index, so rendering is
deterministic and block-by-block rendering (`stream`) gives the same samples as one call.

Nothing heavy is imported at module level: registration must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from deltav2a.api.effects import AudioEffect, BlockStream
from deltav2a.api.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def gate_gain(start: int, n: int, sample_rate: float, rate_hz: float, duty: float,
              depth: float, smoothing_ms: float) -> "np.ndarray":
    """Gain of samples start .. start + n - 1 (float32, in [1 - depth, 1]).

    Each period of 1 / rate_hz seconds opens for its first `duty` share and closes for the
    rest; the gain is 1 when open and 1 - depth when closed. Each edge is a raised-cosine
    ramp of `smoothing_ms` (shortened to half the open or closed span when that is shorter),
    so the gate never steps from one sample to the next: a step would click.
    """
    import numpy as np

    period = float(sample_rate) / float(rate_hz)             # samples per cycle
    open_len = duty * period
    ramp = min(smoothing_ms * 1e-3 * float(sample_rate), open_len / 2.0,
               (period - open_len) / 2.0)
    tau = np.mod(np.arange(start, start + n, dtype=np.float64), period)
    if ramp <= 0.0:  # duty 1: always open
        return np.ones(n, dtype=np.float32)
    w = np.clip(np.minimum(tau, open_len - tau) / ramp, 0.0, 1.0)
    opened = 0.5 - 0.5 * np.cos(np.pi * w)
    return (1.0 - depth * (1.0 - opened)).astype(np.float32)


class Stutter(AudioEffect):
    """Rhythmic gate (stutter): the level is switched off and on at a fixed rate, in pieces.

    Rendered outside Pedalboard with numpy (Pedalboard has no clocked gate). Each cycle of
    1 / rate_hz is open for its first `duty` share and closed (gain 1 - depth) for the rest,
    with raised-cosine edges of `smoothing_ms` so there are no clicks. depth 0 or duty 1
    (bypass) returns the input untouched; the phase starts at the first sample, so the same
    clip is always chopped the same way. No tail: the gate only scales samples.
    """

    name: ClassVar[str] = "stutter"
    outside_pedalboard: ClassVar[bool] = True
    # the gain is in [1 - depth, 1], within [0, 1]: finite samples stay finite, so chains
    # with a stutter skip the render's NaN/Inf scan of A' (decision 15.33)
    finite_output: ClassVar[bool] = True
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "rate_hz", 2.0, 16.0, default=8.0, bypass=2.0, scale="log", unit="Hz",
            doc="Gate cycles per second; 2 Hz (bypass; no neutral value) is a slow pulse, 8 Hz "
                "a sixteenth-note stutter at 120 BPM, 16 Hz a buzz-like chop.",
        ),
        Param(
            "duty", 0.25, 1.0, default=0.5, bypass=1.0,
            doc="Open share of each cycle; 1 never closes (bypass), 0.25 leaves short "
                "fragments between long gaps.",
        ),
        Param(
            "depth", 0.0, 1.0, default=0.9, bypass=0.0,
            doc="Level removed while closed (gain 1 - depth); 0 is no gating (bypass), 1 "
                "full silence between the pieces.",
        ),
        Param(
            "smoothing_ms", 2.0, 20.0, default=5.0, bypass=20.0, unit="ms",
            doc="Raised-cosine ramp of each gate edge; 20 ms (bypass; no neutral value) is a "
                "soft pulse, 2 ms a hard chop that still does not click.",
        ),
    )

    @staticmethod
    def _inactive(v: dict[str, float]) -> bool:
        return v["depth"] <= 0.0 or v["duty"] >= 1.0

    def process(self, audio: "np.ndarray", sample_rate: int, **raw: float) -> "np.ndarray":
        import numpy as np

        v = self.resolve(raw)
        if self._inactive(v):
            return audio
        x = np.asarray(audio, dtype=np.float32)
        g = gate_gain(0, x.shape[-1], sample_rate, v["rate_hz"], v["duty"], v["depth"],
                      v["smoothing_ms"])
        return x * g

    def stream(self, sample_rate: float, channels: int, **raw: float) -> BlockStream:
        """The same gain block by block: it depends only on the absolute sample index."""
        v = self.resolve(raw)
        if self._inactive(v):
            return BlockStream(lambda block, last: block, 1.0)
        pos = [0]

        def step(block: "np.ndarray", last: bool) -> "np.ndarray":
            n = block.shape[-1]
            g = gate_gain(pos[0], n, sample_rate, v["rate_hz"], v["duty"], v["depth"],
                          v["smoothing_ms"])
            pos[0] += n
            return block * g

        return BlockStream(step, 1.0)


__all__ = ["Stutter", "gate_gain"]
