"""The seven built-in ImageMagick effects, each driven by one intensity in (0, 1].

The research pipeline (750 photos x 7 effects -> CLIP deltas) needs every effect to be
clearly visible by intensity 0.5 and to grow smoothly with intensity, so the image delta
and the audio delta it is aligned with scale together. Three decisions hold for all of
them:

* Sizes are relative. A radius or sigma is a fraction of the image's shorter side `S`
  (in pixels), so a 64 px thumbnail and a 2048 px photo come out comparably affected
  once viewed at the same size (which is how CLIP sees them).
* Nothing changes the image's size: every operation used here keeps width and height.
* Where ImageMagick's own control is not monotone or not continuous (adaptive blur's
  sigma, adaptive sharpen's fixed amount, sepia's threshold, spread's whole-pixel
  radius, solarize's hard jump at white), the effect is completed by a blend whose
  weight comes from the intensity, so the mapping is continuous, monotone and the
  identity at 0. The exact formulas are in each class docstring and in
  docs/image_effects.md.

Wand is imported inside the methods only (via the ImageEffect base class), so listing
plugins never loads ImageMagick.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from deltav2a.api.effects import INTENSITY, ImageEffect
from deltav2a.api.params import Param

if TYPE_CHECKING:  # pragma: no cover
    from wand.image import Image as WandImage


def short_side(img: "WandImage") -> int:
    """The reference length every radius is a fraction of."""
    return min(int(img.width), int(img.height))


def blend_into(img: "WandImage", other: "WandImage", weight: float) -> None:
    """img <- (1 - weight) * img + weight * other, per channel, in place.

    A weight above 1 extrapolates past `other` (ImageMagick clips the result to range),
    which is how a fixed-strength operator is turned into a variable-strength one.
    """
    weight = max(float(weight), 0.0)
    img.composite(other, left=0, top=0, operator="blend",
                  arguments=f"{100.0 * weight:.6f},{100.0 * (1.0 - weight):.6f}")


class AdaptiveBlur(ImageEffect):
    """Edge-preserving blur: flat areas and texture soften while strong edges stay crisp.

    ImageMagick's adaptive blur picks, per pixel, a Gaussian kernel truncated more tightly
    the stronger the local edge, so it reads as "smoother" rather than "out of focus".
    Its sigma is not a strength: sigma also blurs the edge map, so past about radius/4
    ever more pixels count as edges and the result gets *sharper* again (on one dev
    photo the mean change falls from 9.1 to 2.6 levels as sigma goes from radius/4 to
    radius). So the blur is made once at its strongest clean setting and the intensity
    sets how much of it replaces the original, which is continuous and monotone. The
    weight rises as 1 - (1 - intensity)^2 because a sharp original showing through at
    half opacity still reads as sharp; this way 0.5 already replaces three quarters.
    With S the shorter side in pixels:

        sigma   = max(0.01 * S, 1.0)            (3.8 px on a 512x384 image)
        radius  = 3 * sigma                     (kernel half-width in pixels)
        blurred = adaptive_blur(radius, sigma)
        w       = 1 - (1 - intensity)^2
        out     = (1 - w) * image + w * blurred

    The kernel is two-dimensional and scales with the image, so cost grows as S^4 (72 s
    for one 2048x1536 image). Above S = 512 the blurred layer is therefore computed on a
    copy scaled to S = 512 (same relative sigma) and scaled back before the blend; the
    original's detail still comes from the full-resolution image, and only the kept
    edges inside the blurred layer soften by the scale factor.
    """

    name: ClassVar[str] = "adaptive_blur"
    SIGMA_FRACTION: ClassVar[float] = 0.01
    MIN_SIGMA: ClassVar[float] = 1.0
    WORK_SHORT_SIDE: ClassVar[int] = 512

    def render(self, img: "WandImage", intensity: float) -> None:
        width, height = img.width, img.height
        scale = min(1.0, self.WORK_SHORT_SIDE / short_side(img))
        with img.clone() as blurred:
            if scale < 1.0:
                blurred.resize(max(1, round(width * scale)), max(1, round(height * scale)),
                               filter="lanczos")
            sigma = max(self.SIGMA_FRACTION * short_side(blurred), self.MIN_SIGMA)
            blurred.adaptive_blur(radius=3.0 * sigma, sigma=sigma)
            if scale < 1.0:
                blurred.resize(width, height, filter="mitchell")
            blend_into(img, blurred, 1.0 - (1.0 - intensity) ** 2)


class MotionBlur(ImageEffect):
    """Horizontal motion blur, as from a camera panning left to right during the exposure.

    The angle defaults to 0 degrees (horizontal), which the pipeline always uses, so that
    intensity alone sets the strength and the delta's direction is the same for every
    image; `apply-image --effect motion_blur:angle=90` turns the streaks. ImageMagick
    smears along one side of each pixel, so edges trail to the left. Mapping, with S the
    shorter side:

        sigma  = 0.03 * S * intensity           (11.5 px at intensity 1 on a 512x384 image)
        radius = 3 * sigma                      (trail length in pixels)
        angle  = the `angle` parameter (0 degrees unless given)
    """

    name: ClassVar[str] = "motion_blur"
    SIGMA_FRACTION: ClassVar[float] = 0.03
    params: ClassVar[tuple[Param, ...]] = (
        INTENSITY,
        Param("angle", 0.0, 360.0, default=0.0, bypass=0.0, unit="degrees",
              doc="direction of the streaks: 0 horizontal, 90 vertical"),
    )

    def render(self, img: "WandImage", intensity: float, angle: float = 0.0) -> None:
        sigma = self.SIGMA_FRACTION * short_side(img) * intensity
        img.motion_blur(radius=3.0 * sigma, sigma=sigma, angle=angle)


class AdaptiveSharpen(ImageEffect):
    """Edge-aware sharpening: edges and texture gain contrast, flat areas stay clean.

    ImageMagick sharpens hardest where the local edge is strongest, so noise in smooth
    areas is not amplified the way an unsharp mask would. Its own amount is fixed and
    subtle on a photo, and shrinking sigma towards 0 does nothing until it suddenly does,
    so the halo width is fixed (relative to the image) and the intensity is the amount:
    a gain along the line from the original through the sharpened image. With S the
    shorter side:

        sigma  = max(0.006 * S, 1.0)            (2.3 px on a 512x384 image)
        radius = 2 * sigma
        gain   = 3 * intensity
        out    = image + gain * (adaptive_sharpen(image) - image)   (clipped to range)
    """

    name: ClassVar[str] = "adaptive_sharpen"
    SIGMA_FRACTION: ClassVar[float] = 0.006
    GAIN_PER_INTENSITY: ClassVar[float] = 3.0
    MIN_SIGMA: ClassVar[float] = 1.0  # below ~1 px ImageMagick's 3x3 kernel barely acts

    def render(self, img: "WandImage", intensity: float) -> None:
        sigma = max(self.SIGMA_FRACTION * short_side(img), self.MIN_SIGMA)
        with img.clone() as sharp:
            sharp.adaptive_sharpen(radius=2.0 * sigma, sigma=sigma)
            blend_into(img, sharp, self.GAIN_PER_INTENSITY * intensity)


class AddNoise(ImageEffect):
    """Gaussian sensor-style grain, independent per channel (colour noise).

    Gaussian noise is chosen over uniform/impulse/Poisson because it reads as ordinary film
    or sensor grain and its strength is one number. ImageMagick 6 adds noise with standard
    deviation of about 0.078 * attenuate of full scale (plus a negligible signal-dependent
    term), i.e. ~20 levels of 255 at attenuate 1. Mapping:

        noise_type = gaussian
        attenuate  = 1.2 * intensity            (std ~24/255 at intensity 1, ~12 at 0.5)

    Grain is one pixel wide at every image size: this is per-pixel sensor noise, so its
    amplitude, not its size, is what intensity controls. Seeded by the base class.
    """

    name: ClassVar[str] = "add_noise"
    random: ClassVar[bool] = True
    NOISE_TYPE: ClassVar[str] = "gaussian"
    ATTENUATE_PER_INTENSITY: ClassVar[float] = 1.2

    def render(self, img: "WandImage", intensity: float) -> None:
        attenuate = self.ATTENUATE_PER_INTENSITY * intensity
        # ImageMagick 6 ignores the API argument and reads the "attenuate" artifact
        # (the -attenuate setting); ImageMagick 7 takes the argument. Set both.
        img.artifacts["attenuate"] = f"{attenuate:.6f}"
        img.noise(self.NOISE_TYPE, attenuate=attenuate)


class Spread(ImageEffect):
    """Pixel scatter: every pixel swaps with a random neighbour, like frosted glass.

    ImageMagick's spread only knows whole-pixel neighbourhoods: any radius r is used as
    a window of 2*ceil(r)+1 pixels, so on its own it moves in steps and, on a small
    image, would not change at all between intensities. To make it continuous, the
    target radius r is split into its whole-pixel neighbours: a seeded random fraction
    f of pixels takes the spread at ceil(r), the rest at floor(r) (floor(r) = 0 means the
    original pixel). With S the shorter side:

        r = 0.02 * S * intensity                (7.7 px at intensity 1 on a 512x384 image)
        f = r - floor(r)
        out = spread(floor r)  where  u >= f,   spread(floor r + 1)  where  u < f,
              u ~ Uniform(0, 1) per pixel (seeded)

    so the expected displacement grows linearly with intensity. Seeded by the base class.
    """

    name: ClassVar[str] = "spread"
    random: ClassVar[bool] = True
    RADIUS_FRACTION: ClassVar[float] = 0.02

    def render(self, img: "WandImage", intensity: float) -> None:
        from wand.color import Color
        from wand.image import Image as WandImage

        radius = self.RADIUS_FRACTION * short_side(img) * intensity
        low = math.floor(radius)
        frac = radius - low
        if frac < 1e-6:  # a whole radius: no mixing (and radius 0 is no spread at all)
            if low >= 1:
                img.spread(radius=float(low))
            return
        with img.clone() as high:
            # Every random operator after seeding replays the same stream, so spread(k)
            # is the same field whether k is the upper or the lower neighbour: crossing a
            # whole radius does not reshuffle the picture.
            high.spread(radius=float(low + 1))
            if low >= 1:
                img.spread(radius=float(low))
            with WandImage(width=img.width, height=img.height,
                           background=Color("gray50")) as mask:
                mask.noise("random", attenuate=1.0)
                # The mask draws from that same stream; turning it half a turn keeps a
                # pixel's choice independent of its own displacement.
                mask.rotate(180)
                mask.threshold(1.0 - frac)  # white (take `high`) with probability frac
                high.composite(mask, left=0, top=0, operator="copy_opacity")
            img.composite(high, left=0, top=0, operator="over")


class SepiaTone(ImageEffect):
    """Old-photograph brown toning: colours collapse into one muted, warm brown.

    ImageMagick's threshold is not a strength: at 0-20% it produces a flat yellow image,
    and the classic look is at 80%. Its output is also contrast-stretched and far more
    saturated than a real sepia print (on a neutral grey ramp HSV saturation averages
    0.64; a pale photo turns bright orange), so the toned image has its saturation cut
    to 60% in HSL, the faded look of the printing process. The intensity is then how much
    of the toned image replaces the original:

        toned = modulate(sepia_tone(threshold = 0.8 * QuantumRange), saturation = 60%)
        out   = (1 - intensity) * image + intensity * toned

    which is the identity at 0, continuous, and moves every pixel monotonically towards
    its toned value. Mean saturation along that path need not be monotone: a vivid blue
    mixed halfway with brown passes near grey.
    """

    name: ClassVar[str] = "sepia_tone"
    THRESHOLD: ClassVar[float] = 0.8
    SATURATION_PERCENT: ClassVar[float] = 60.0

    def render(self, img: "WandImage", intensity: float) -> None:
        with img.clone() as toned:
            toned.sepia_tone(threshold=self.THRESHOLD * img.quantum_range)
            toned.modulate(brightness=100.0, saturation=self.SATURATION_PERCENT, hue=100.0)
            blend_into(img, toned, intensity)


class Solarize(ImageEffect):
    """Sabattier / solarisation: tones above a threshold are inverted, highlights go dark.

    The threshold falls from white towards mid-grey as intensity grows, so ever more of the
    bright range is inverted while shadows are never touched:

        threshold = QuantumRange * (1 - 0.5 * intensity)   (191/255 at 0.5, 128/255 at 1)
        out = solarize(threshold)                           for intensity >= 0.2
        out = blend(image, solarize(threshold), w = intensity / 0.2)   below 0.2

    The short fade-in exists because a pure white pixel inverts to black for any threshold
    below white: without it, intensity 0.001 would already turn blown-out sky black.
    """

    name: ClassVar[str] = "solarize"
    DEPTH: ClassVar[float] = 0.5
    FADE_IN: ClassVar[float] = 0.2

    def render(self, img: "WandImage", intensity: float) -> None:
        threshold = img.quantum_range * (1.0 - self.DEPTH * intensity)
        if intensity >= self.FADE_IN:
            img.solarize(threshold=threshold)
            return
        with img.clone() as solar:
            solar.solarize(threshold=threshold)
            blend_into(img, solar, intensity / self.FADE_IN)


ALL_EFFECTS: tuple[type[ImageEffect], ...] = (
    AdaptiveBlur, MotionBlur, AdaptiveSharpen, AddNoise, Spread, SepiaTone, Solarize,
)
