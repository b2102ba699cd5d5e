"""The effect set of the pipeline note (seed 001): four image and three new audio effects.

The note's experiment sweeps image `blur`, `brightness`, `saturation`, `contrast` and audio
`lpf`, `highshelf`, `saturation`, `reverb` at three intensities and asks which image effect
"means" which audio effect (blur <-> lpf, brightness <-> highshelf are its examples). These
classes make that set available through the same registry as every other effect, so the
analysis commands run on them, on the built-ins, or on any third-party plugin alike.

`reverb` is not redefined: the built-in Freeverb `reverb` (deltav2a_plugins.audio_effects)
already is the note's reverb, and the registry forbids a second audio effect of that name.
Image `saturation` and audio `saturation` share a name on purpose (the note uses it for
both); they are different kinds, which the registry keeps apart.

Each class carries `synonyms`: the words the text-anchor discovery writes into its
templates ("A {synonym} photo of {category}"). They are data, extendable per user (see
`deltav2a.analysis.synonyms`).

Wand and pedalboard are imported inside methods: registration must stay cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from deltav2a.api.effects import JUCE_MAX_FRACTION_OF_NYQUIST, AudioEffect, ImageEffect
from deltav2a.api.params import Param

if TYPE_CHECKING:  # pragma: no cover
    from wand.image import Image as WandImage

# below this linear drive the normalised tanh is the identity to float32 precision
# (deviation g^2 / 3 < 4e-7), so the plugin degenerates to a unity gain
MIN_SATURATION_DRIVE = 1e-3


def _short_side(img: "WandImage") -> int:
    return min(int(img.width), int(img.height))


# ------------------------------------------------------------------ image


class Blur(ImageEffect):
    """Gaussian blur ("out of focus"): every detail finer than the kernel disappears.

    Unlike the built-in adaptive blur it keeps no edges, which is the note's "blur": the
    whole picture goes soft. The sigma is a fraction of the shorter side S so a thumbnail
    and a full photo are blurred alike once viewed at the same size:

        sigma = 0.02 * S * intensity     (7.7 px at intensity 1 on a 512x384 image)

    ImageMagick's separable `blur` is used (radius 0 = chosen from sigma); it equals the
    2-D Gaussian and costs O(sigma) per pixel instead of O(sigma^2).
    """

    name: ClassVar[str] = "blur"
    SIGMA_FRACTION: ClassVar[float] = 0.02
    synonyms: ClassVar[tuple[str, ...]] = (
        "blurry", "blurred", "out of focus", "fuzzy", "unfocused", "defocused", "soft-focus", "hazy")

    def render(self, img: "WandImage", intensity: float) -> None:
        sigma = self.SIGMA_FRACTION * _short_side(img) * intensity
        img.blur(radius=0.0, sigma=sigma)


class Brightness(ImageEffect):
    """Brighter picture: HSL lightness scaled up, highlights roll into white.

    ImageMagick's `modulate` multiplies the lightness of every pixel, so dark areas gain
    little and mid-tones most, and hue is untouched:

        lightness *= 1 + 0.6 * intensity     (x1.6 at intensity 1)
    """

    name: ClassVar[str] = "brightness"
    MAX_GAIN: ClassVar[float] = 0.6
    synonyms: ClassVar[tuple[str, ...]] = ("bright", "luminous", "radiant", "glowing", "light", "brighter")

    def render(self, img: "WandImage", intensity: float) -> None:
        img.modulate(brightness=100.0 * (1.0 + self.MAX_GAIN * intensity), saturation=100.0, hue=100.0)


class Saturation(ImageEffect):
    """More saturated colour: HSL saturation scaled up, greys stay grey.

        saturation *= 1 + 1.0 * intensity    (x2 at intensity 1)
    """

    name: ClassVar[str] = "saturation"
    MAX_GAIN: ClassVar[float] = 1.0
    synonyms: ClassVar[tuple[str, ...]] = ("saturated", "vivid", "colorful", "colourful", "rich", "intense")

    def render(self, img: "WandImage", intensity: float) -> None:
        img.modulate(brightness=100.0, saturation=100.0 * (1.0 + self.MAX_GAIN * intensity), hue=100.0)


class Contrast(ImageEffect):
    """Higher contrast: a sigmoidal tone curve around mid-grey (shadows down, highlights up).

    ImageMagick's sigmoidal contrast does not clip the way a linear stretch does, and as
    its strength goes to 0 the curve goes to the identity, so the mapping is continuous:

        strength = 10 * intensity,  midpoint = 50 % grey
    """

    name: ClassVar[str] = "contrast"
    MAX_STRENGTH: ClassVar[float] = 10.0
    synonyms: ClassVar[tuple[str, ...]] = ("punchy", "crisp", "harsh", "defined", "contrasty", "high-contrast")

    def render(self, img: "WandImage", intensity: float) -> None:
        img.sigmoidal_contrast(sharpen=True, strength=self.MAX_STRENGTH * intensity,
                               midpoint=0.5 * img.quantum_range)


# ------------------------------------------------------------------ audio


class Lpf(AudioEffect):
    """Second-order low-pass (12 dB/octave): the note's "lpf", steeper than `lowpass`.

    Two of JUCE's first-order low-passes in series (a nested Pedalboard), so the stop band
    falls twice as fast as the built-in `lowpass` and a cutoff in the musical range is
    clearly heard; -6 dB at the cutoff. At 20 kHz (bypass) the loss is 0.2 dB at 10 kHz.
    Cutoffs at or above 0.49 x the sample rate are held there (JUCE is undefined at Nyquist).
    """

    name: ClassVar[str] = "lpf"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    params: ClassVar[tuple[Param, ...]] = (
        Param("cutoff_hz", 100.0, 20000.0, default=1500.0, bypass=20000.0, scale="log", unit="Hz",
              max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
              doc="-6 dB frequency of the two-stage filter; lower is darker. 20000 Hz is bypass."),
    )
    synonyms: ClassVar[tuple[str, ...]] = (
        "muffled", "dull", "dark", "filtered", "muted", "underwater", "veiled", "low pass")

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        fc = float(values["cutoff_hz"])
        return pedalboard.Pedalboard([pedalboard.LowpassFilter(cutoff_frequency_hz=fc),
                                      pedalboard.LowpassFilter(cutoff_frequency_hz=fc)])


class HighShelf(AudioEffect):
    """High-shelf boost: "brighter", more air and presence above the shelf frequency.

    Pedalboard's `HighShelfFilter` (RBJ shelf, Q 0.707). The gain range is symmetric, so
    `params_at_intensity` moves it up (a boost, the note's brightness counterpart); a cut is
    still reachable by setting gain_db directly. The shelf frequency is held at its default
    in intensity sweeps (`intensity_fixed`). 0 dB (bypass) is an exact identity.
    """

    name: ClassVar[str] = "highshelf"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    params: ClassVar[tuple[Param, ...]] = (
        Param("gain_db", -18.0, 18.0, default=6.0, bypass=0.0, unit="dB",
              doc="Shelf gain; positive brightens, negative darkens. 0 dB is bypass."),
        Param("cutoff_hz", 1000.0, 12000.0, default=4000.0, bypass=4000.0, scale="log", unit="Hz",
              max_fraction_of_nyquist=JUCE_MAX_FRACTION_OF_NYQUIST,
              doc="Shelf midpoint frequency; held below 0.49 x the sample rate."),
    )
    intensity_fixed: ClassVar[tuple[str, ...]] = ("cutoff_hz",)
    synonyms: ClassVar[tuple[str, ...]] = ("bright", "crisp", "airy", "clear", "brilliant", "sparkling")

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        return pedalboard.HighShelfFilter(cutoff_frequency_hz=float(values["cutoff_hz"]),
                                          gain_db=float(values["gain_db"]), q=1.0 / math.sqrt(2.0))


class AudioSaturation(AudioEffect):
    """Normalised tanh saturation: quiet parts pushed up into a soft knee, peaks kept at 0 dBFS.

    y = tanh(g x) / tanh(g) with g = 10^(drive_db / 20) - 1. Full-scale stays full-scale (no
    clipping for |x| <= 1), small signals gain g / tanh(g), so the sound gets denser and
    warmer with added odd harmonics. As drive_db -> 0, g -> 0 and the curve tends to the
    identity, so unlike `distortion` the bypass (0 dB) is exact. Rendered as a nested
    Pedalboard (Distortion at 20 log10 g, then Gain at -20 log10 tanh g), so it stays in
    the Pedalboard part of a chain.
    """

    name: ClassVar[str] = "saturation"
    streamable: ClassVar[bool] = True  # no latency: long clips render block by block
    params: ClassVar[tuple[Param, ...]] = (
        Param("drive_db", 0.0, 30.0, default=12.0, bypass=0.0, unit="dB",
              doc="Drive into the normalised tanh; 0 dB is bypass, 30 dB near square-wave."),
    )
    synonyms: ClassVar[tuple[str, ...]] = ("saturated", "warm", "overdriven", "distorted", "gritty", "dense")

    def build(self, values: Mapping[str, float]) -> Any:
        import pedalboard

        g = 10.0 ** (float(values["drive_db"]) / 20.0) - 1.0
        if g < MIN_SATURATION_DRIVE:
            return pedalboard.Gain(gain_db=0.0)
        return pedalboard.Pedalboard([
            pedalboard.Distortion(drive_db=20.0 * math.log10(g)),
            pedalboard.Gain(gain_db=-20.0 * math.log10(math.tanh(g))),
        ])


IMAGE_EFFECTS: tuple[type[ImageEffect], ...] = (Blur, Brightness, Saturation, Contrast)
AUDIO_EFFECTS: tuple[type[AudioEffect], ...] = (Lpf, HighShelf, AudioSaturation)

__all__ = ["AUDIO_EFFECTS", "AudioSaturation", "Blur", "Brightness", "Contrast", "HighShelf",
           "IMAGE_EFFECTS", "Lpf", "Saturation"]
