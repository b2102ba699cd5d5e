"""`radio`: the sound of an old radio or record, narrowed and squashed (issue 16, decision 16.30).

What a viewer calls a sepia-toned photo, *flat* (one plane, no depth, contrast drained; old and
faded), a listener hears in an old radio or a worn record: the band shrinks from both ends
(no deep bass, no air on top), and the dynamics are pressed into one level. None of the
default effects does that: a low-pass only removes the top (*muffled*), a high-pass only the
bottom (*thin*), and nothing reduces the dynamic range. Lexicon v4's *flat* audio direction
is exactly this: narrower spectral bandwidth, less brilliance, lower crest factor and
modulation depth.

One Pedalboard chain, built as a nested `Pedalboard`: two first-order high-passes and two
first-order low-passes (12 dB/octave band edges: steeper than `lowpass`/`highpass`, so the
band is narrowed rather than tilted), a `Compressor`, and a make-up `Gain` that gives back
half of the gain reduction at the threshold (so the effect flattens the dynamics instead of
mostly lowering the level). Every part has no latency, so it renders block by block.

Nothing heavy is imported at module level: registration must stay cheap.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from deltav2a.api.effects import JUCE_MAX_FRACTION_OF_NYQUIST, AudioEffect
from deltav2a.api.params import Param

#: the compressor's attack and release: fast enough to catch a drum hit's attack (the crest
#: that makes a sound "deep" in level), slow enough not to distort bass notes
ATTACK_MS = 5.0
RELEASE_MS = 150.0
#: share of the static gain reduction at the threshold given back as make-up gain
MAKEUP_SHARE = 0.5


def makeup_db(threshold_db: float, ratio: float) -> float:
    """Make-up gain: `MAKEUP_SHARE` x how far a 0 dBFS peak is pulled down by the compressor."""
    return MAKEUP_SHARE * (-threshold_db) * (1.0 - 1.0 / ratio)


class Radio(AudioEffect):
    """Old radio / record: the band narrowed from both ends and the dynamics compressed.

    Pedalboard plugins (2 x `HighpassFilter`, 2 x `LowpassFilter`, `Compressor`, `Gain`) in
    one nested `Pedalboard`. At the bypass values (20 Hz, 20 kHz, ratio 1, 0 dB threshold) the
    compressor and gain are identities and the filters only trim the edges of hearing.
    """

    name: ClassVar[str] = "radio"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out (cutoffs held below Nyquist)
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "low_cut_hz", 20.0, 600.0, default=300.0, bypass=20.0, scale="log", unit="Hz",
            max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
            doc="Lower band edge (12 dB/octave); 20 Hz is the bottom of hearing (bypass), 300 Hz "
                "an AM radio's, 600 Hz a small speaker's.",
        ),
        Param(
            "high_cut_hz", 2500.0, 20000.0, default=4000.0, bypass=20000.0, scale="log", unit="Hz",
            max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
            doc="Upper band edge (12 dB/octave); 20 kHz is the top of hearing (bypass), 4-5 kHz "
                "an AM radio or 78 rpm record, 2.5 kHz a telephone.",
        ),
        Param(
            "threshold_db", -40.0, 0.0, default=-24.0, bypass=0.0, unit="dB",
            doc="Compressor threshold; 0 dB never compresses a clip that does not clip (bypass), "
                "-40 dB presses almost everything to one level.",
        ),
        Param(
            "ratio", 1.0, 12.0, default=4.0, bypass=1.0, scale="log",
            doc="Compression ratio (input dB over threshold per output dB); 1 is no compression "
                "(bypass), 4 broadcast-style, 12 close to limiting.",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        lo, hi = float(values["low_cut_hz"]), float(values["high_cut_hz"])
        thr, ratio = float(values["threshold_db"]), float(values["ratio"])
        return pedalboard.Pedalboard([
            pedalboard.HighpassFilter(cutoff_frequency_hz=lo),
            pedalboard.HighpassFilter(cutoff_frequency_hz=lo),
            pedalboard.LowpassFilter(cutoff_frequency_hz=hi),
            pedalboard.LowpassFilter(cutoff_frequency_hz=hi),
            pedalboard.Compressor(threshold_db=thr, ratio=ratio, attack_ms=ATTACK_MS, release_ms=RELEASE_MS),
            pedalboard.Gain(gain_db=makeup_db(thr, ratio)),
        ])


__all__ = ["Radio", "makeup_db"]
