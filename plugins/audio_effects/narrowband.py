"""`narrowband`: the band of an old radio or record, narrowed from both ends (issue 16, decision 16.30).

What a viewer calls a sepia-toned photo, *flat* (one plane, no depth, the colour drained; old
and faded), a listener hears in the sound of an AM radio, a 78 rpm record or a small
speaker: the band shrinks from both ends, no deep bass and no air on top, while the middle,
where the centroid sits, stays. None of the default effects does that: a low-pass only removes
the top and moves the centroid down (*muffled*), a high-pass only the bottom (*thin*).
Lexicon v4's *flat* audio direction is this narrowing: spectral bandwidth, brilliance and
spectral flatness fall.

A compressor and a mono fold (the other two marks of an old radio) were tried on the dev
half and left out (decision 16.30): the perceptual encoder reads a compressor's filled gaps
and flattened envelope as *fluid* (legato) and a mono fold as *confined*, so with them the
effect read three words instead of one.

One nested `Pedalboard`: two first-order high-passes at `low_cut_hz` and two first-order
low-passes at `high_cut_hz`, so the band edges fall at 12 dB/octave (steeper than
`lowpass`/`highpass`: the band is narrowed rather than tilted). No latency: it renders block
by block. Nothing heavy is imported at module level: registration must stay cheap.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from deltav2a.api.effects import JUCE_MAX_FRACTION_OF_NYQUIST, AudioEffect
from deltav2a.api.params import Param


class Narrowband(AudioEffect):
    """Old radio / record band: 12 dB/octave edges at `low_cut_hz` and `high_cut_hz`.

    Pedalboard's `HighpassFilter` and `LowpassFilter`, two of each in one nested
    `Pedalboard`. At the bypass values (20 Hz, 20 kHz) the filters only trim the edges of
    hearing (magnitude within 0.4 dB from 100 Hz to 10 kHz, tested).
    """

    name: ClassVar[str] = "narrowband"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out (cutoffs held below Nyquist)
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "low_cut_hz", 20.0, 200.0, default=120.0, bypass=20.0, scale="log", unit="Hz",
            max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
            doc="Lower band edge (12 dB/octave); 20 Hz is the bottom of hearing (bypass), "
                "100-200 Hz an AM radio's or a 78 rpm record's.",
        ),
        Param(
            "high_cut_hz", 2500.0, 20000.0, default=4000.0, bypass=20000.0, scale="log", unit="Hz",
            max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
            doc="Upper band edge (12 dB/octave); 20 kHz is the top of hearing (bypass), 4-5 kHz "
                "an AM radio or 78 rpm record, 2.5 kHz close to a telephone.",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        lo, hi = float(values["low_cut_hz"]), float(values["high_cut_hz"])
        return pedalboard.Pedalboard([
            pedalboard.HighpassFilter(cutoff_frequency_hz=lo),
            pedalboard.HighpassFilter(cutoff_frequency_hz=lo),
            pedalboard.LowpassFilter(cutoff_frequency_hz=hi),
            pedalboard.LowpassFilter(cutoff_frequency_hz=hi),
        ])


__all__ = ["Narrowband"]
