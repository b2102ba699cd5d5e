"""The seven audio effects of the DeltaV2A research chain.

Six are thin wrappers over Pedalboard (JUCE) plugins; `playback_rate` is a tape-style
speed change done with soxr outside Pedalboard, which is why chains always render it last.
Parameter names, ranges and scales are the contract with the controller and the inverse
mapping database: the controller predicts positions in [0, 1] along each `Param`'s scale,
so changing a range or scale here invalidates every trained controller and stored DB.
See docs/audio_effects.md for the reasoning behind each range, default and bypass value.

Nothing heavy is imported at module level: registration must stay cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from deltav2a.api.effects import JUCE_MAX_FRACTION_OF_NYQUIST, AudioEffect
from deltav2a.api.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

# Freeverb constants as used by juce::Reverb (the engine behind pedalboard.Reverb).
_FREEVERB_ROOM_SCALE = 0.28
_FREEVERB_ROOM_OFFSET = 0.7
_FREEVERB_LONGEST_COMB_S = 1617 / 44100  # JUCE rescales comb lengths to the sample rate
_FREEVERB_WET_SCALE = 3.0
_FREEVERB_ALLPASS_MARGIN_S = 0.05  # the four series all-passes smear the tail a little

TAIL_FLOOR_DB = 60.0  # "inaudible": the conventional RT60 criterion




class Lowpass(AudioEffect):
    """First-order low-pass filter (6 dB/octave): darker, muffled, distant.

    Pedalboard's `LowpassFilter`. Because the slope is gentle, the effect is subtle until
    the cutoff is well inside the musical range; hence the log scale. At 20 kHz (bypass)
    the magnitude stays within 0.1 dB up to 10 kHz and 0.3 dB up to 15 kHz at 44.1 kHz,
    but the filter's phase shift means the output is not sample-identical to the input.
    Cutoffs at or above 0.49 x the sample rate are held there (the JUCE filter is
    undefined at Nyquist).
    """

    name: ClassVar[str] = "lowpass"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "cutoff_hz", 100.0, 20000.0, default=1500.0, bypass=20000.0, scale="log", unit="Hz",
            max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
            doc="-3 dB frequency; lower is darker. 20000 Hz is the top of human hearing "
                "(bypass).",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        return pedalboard.LowpassFilter(cutoff_frequency_hz=float(values["cutoff_hz"]))


class Highpass(AudioEffect):
    """First-order high-pass filter (6 dB/octave): thinner, smaller, telephone-like.

    Pedalboard's `HighpassFilter`. 20 Hz (bypass) is the bottom of human hearing; it only
    trims sub-bass and DC (-0.7 dB at 50 Hz, -0.2 dB at 100 Hz). The range stops at 8 kHz:
    above that almost nothing musical is left.
    """

    name: ClassVar[str] = "highpass"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "cutoff_hz", 20.0, 8000.0, default=500.0, bypass=20.0, scale="log", unit="Hz",
            max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
            doc="-3 dB frequency; higher is thinner. 20 Hz is the bottom of human hearing "
                "(bypass).",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        return pedalboard.HighpassFilter(cutoff_frequency_hz=float(values["cutoff_hz"]))


class Bitcrush(AudioEffect):
    """Bit-depth reduction: grainy, lo-fi quantisation noise.

    Pedalboard's `Bitcrush` rounds samples to steps of 2^-bit_depth (no clipping);
    fractional depths are valid and give intermediate step sizes, so the parameter is
    continuous. 16 bits (bypass) is CD resolution: the added error is below -90 dB.
    """

    name: ClassVar[str] = "bitcrush"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "bit_depth", 3.0, 16.0, default=8.0, bypass=16.0, unit="bits",
            doc="Quantisation resolution; fewer bits is noisier. Below 3 bits music "
                "turns into noise.",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        return pedalboard.Bitcrush(bit_depth=float(values["bit_depth"]))


class Reverb(AudioEffect):
    """Freeverb-style room reverb: space, distance, wash.

    Pedalboard's `Reverb` (juce::Reverb). JUCE scales the dry level by 2 and the wet level
    by 3, so dry_level 0.5 (not 1) is unity gain; the range stops there, because above it
    the "reverb" would mostly make the track louder. With room_size 0, wet_level 0 and
    dry_level 0.5 the output equals the input exactly; damping has no neutral value and its
    bypass is Pedalboard's own default (0.5).
    """

    name: ClassVar[str] = "reverb"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "room_size", 0.0, 1.0, default=0.5, bypass=0.0,
            doc="Comb-filter feedback (0.7 + 0.28 x room_size); larger rings longer, "
                "about 0.7 s to 12 s to -60 dB.",
        ),
        Param(
            "damping", 0.0, 1.0, default=0.5, bypass=0.5,
            doc="High-frequency absorption inside the tail; no neutral value, bypass is "
                "Pedalboard's default 0.5.",
        ),
        Param(
            "wet_level", 0.0, 1.0, default=0.33, bypass=0.0,
            doc="Reverberated signal level (JUCE gain 3 x wet_level); 0 means no reverb.",
        ),
        Param(
            "dry_level", 0.0, 0.5, default=0.4, bypass=0.5,
            doc="Direct signal level (JUCE gain 2 x dry_level); 0.5 is unity (bypass), lower "
                "pushes the source back.",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        return pedalboard.Reverb(
            room_size=float(values["room_size"]),
            damping=float(values["damping"]),
            wet_level=float(values["wet_level"]),
            dry_level=float(values["dry_level"]),
        )

    def tail_seconds(self, **raw: float) -> float:
        """Time for the wet signal to fall 60 dB below the input level after it stops.

        Each pass through Freeverb's longest comb (36.7 ms) multiplies the tail by the
        feedback g = 0.7 + 0.28 x room_size; damping only removes highs, so the undamped
        decay bounds the low end. The wet gain shifts the start level. Against rendered
        noise bursts this over-estimates by 2-13 % at damping 0 and by up to ~75 % at
        damping 1 (tests/test_audio_effects.py checks the bound).
        """
        v = self.resolve(raw)
        wet_gain = _FREEVERB_WET_SCALE * v["wet_level"]
        if wet_gain <= 0.0:
            return 0.0
        drop_db = TAIL_FLOOR_DB + 20.0 * math.log10(wet_gain)
        if drop_db <= 0.0:
            return 0.0
        g = _FREEVERB_ROOM_OFFSET + _FREEVERB_ROOM_SCALE * v["room_size"]
        db_per_pass = -20.0 * math.log10(g)
        return drop_db / db_per_pass * _FREEVERB_LONGEST_COMB_S + _FREEVERB_ALLPASS_MARGIN_S


class Distortion(AudioEffect):
    """tanh waveshaping after a drive gain: saturation, grit, aggression.

    Pedalboard's `Distortion` computes tanh(x * 10^(drive_db/20)). At 0 dB (bypass) it is
    not an exact identity: tanh still rounds peaks (a 0.5 peak comes out at 0.46), while
    samples below -20 dBFS (0.1) change by less than 0.4 %. There is no gentler setting.
    """

    name: ClassVar[str] = "distortion"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "drive_db", 0.0, 40.0, default=20.0, bypass=0.0, unit="dB",
            doc="Gain into the tanh shaper; 0 dB is the mildest (bypass), 40 dB is "
                "near square-wave clipping.",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        return pedalboard.Distortion(drive_db=float(values["drive_db"]))


class Delay(AudioEffect):
    """Feedback echo: repeats that add rhythm and space.

    Pedalboard's `Delay`: out = (1 - mix) x dry + mix x echoes, the k-th echo at
    k x delay_seconds with amplitude feedback^(k-1). mix 0 (bypass) is an exact identity.
    delay_seconds has no neutral value; its bypass is the shortest time, where a single
    echo fuses with the dry sound instead of being heard as a repeat.
    """

    name: ClassVar[str] = "delay"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "delay_seconds", 0.02, 1.0, default=0.3, bypass=0.02, unit="s",
            doc="Time between repeats; 20 ms (bypass) is a doubling, 0.1-0.2 s slapback, "
                "above 0.3 s distinct echoes.",
        ),
        Param(
            "feedback", 0.0, 0.9, default=0.3, bypass=0.0,
            doc="Fraction of each echo fed back; 0 gives one echo. Capped at 0.9 so tails "
                "stay finite.",
        ),
        Param(
            "mix", 0.0, 1.0, default=0.35, bypass=0.0,
            doc="Crossfade dry -> echoes; 0 is the dry signal only (bypass), 1 echoes only.",
        ),
    )

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        return pedalboard.Delay(
            delay_seconds=float(values["delay_seconds"]),
            feedback=float(values["feedback"]),
            mix=float(values["mix"]),
        )

    def tail_seconds(self, **raw: float) -> float:
        """Time until the last echo louder than -60 dB (relative to the input) has sounded."""
        v = self.resolve(raw)
        mix, feedback, delay = v["mix"], v["feedback"], v["delay_seconds"]
        floor = 10.0 ** (-TAIL_FLOOR_DB / 20.0)
        if mix <= floor:
            return 0.0
        echoes = 1
        if feedback > 0.0:
            echoes += max(0, math.floor(math.log(floor / mix) / math.log(feedback)))
        return echoes * delay


class PlaybackRate(AudioEffect):
    """Tape-style speed change: faster is higher and shorter, slower is lower and longer.

    Rendered outside Pedalboard with soxr (high quality): the clip is treated as if it had
    been recorded at rate x sample_rate and resampled back, so rate 2 plays twice as fast,
    an octave up, in half the time. Because it changes the duration it is always the last
    step of a chain. rate 1 (bypass) returns the input untouched.
    """

    name: ClassVar[str] = "playback_rate"
    finite_output: ClassVar[bool] = True  # tested: finite in, finite out
    outside_pedalboard: ClassVar[bool] = True
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "rate", 0.5, 2.0, default=1.25, bypass=1.0, scale="log", unit="x",
            doc="Speed factor; 2 is an octave up at half the length, 0.5 an octave down at "
                "twice the length. 1 (mid-range) is bypass.",
        ),
    )

    def process(self, audio: "np.ndarray", sample_rate: int, **raw: float) -> "np.ndarray":
        from deltav2a.media.io import resample

        rate = self.resolve(raw)["rate"]
        if rate == 1.0:
            return audio
        return resample(audio, float(sample_rate) * rate, float(sample_rate))

    def stream(self, sample_rate: float, channels: int, **raw: float) -> "BlockStream | None":
        """soxr's streaming resampler: the same samples as `process`, block by block."""
        import numpy as np
        import soxr

        from deltav2a.api.effects import BlockStream

        rate = self.resolve(raw)["rate"]
        if rate == 1.0:
            return BlockStream(lambda block, last: block, 1.0)
        st = soxr.ResampleStream(float(sample_rate) * rate, float(sample_rate), channels,
                                 dtype="float32", quality="HQ")

        def step(block: "np.ndarray", last: bool) -> "np.ndarray":
            return st.resample_chunk(np.ascontiguousarray(block.T), last=last).T

        return BlockStream(step, 1.0 / rate)


BUILTIN_AUDIO_EFFECTS: tuple[type[AudioEffect], ...] = (
    Lowpass, Bitcrush, Reverb, Highpass, Distortion, Delay, PlaybackRate,
)

__all__ = [
    "BUILTIN_AUDIO_EFFECTS", "Bitcrush", "Delay", "Distortion", "Highpass", "Lowpass",
    "PlaybackRate", "Reverb",
]
