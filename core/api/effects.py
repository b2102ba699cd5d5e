"""Base classes for image and audio effects.

Effects are small classes in the spirit of pedalboard: typed, documented parameters with
ranges, and no heavy import until they are applied (Wand and pedalboard are imported
inside the methods, so listing plugins stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from ..errors import DeltaV2AError
from .params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


class Effect:
    """Common parameter handling for both modalities."""

    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    kind: ClassVar[str] = ""

    @classmethod
    def summary(cls) -> str:
        return _first_line(cls.__doc__)

    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in cls.params) or "none"
        raise DeltaV2AError(f"{cls.kind} '{cls.name}' has no parameter '{name}' (known: {known})")

    @classmethod
    def resolve(cls, values: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Fill defaults and validate user values; returns every parameter, raw units."""
        values = dict(values or {})
        out: dict[str, float] = {}
        for p in cls.params:
            out[p.name] = p.validate(values.pop(p.name), cls.name) if p.name in values else p.default
        if values:
            cls.param(next(iter(values)))  # raises the "no parameter" error
        return out

    @classmethod
    def bypass_values(cls) -> dict[str, float]:
        return {p.name: p.bypass for p in cls.params}

    @classmethod
    def describe(cls) -> dict:
        return {
            "name": cls.name,
            "kind": cls.kind,
            "summary": cls.summary(),
            "doc": (cls.__doc__ or "").strip(),
            "params": [p.describe() for p in cls.params],
        }


INTENSITY = Param(
    "intensity", 0.0, 1.0, default=0.5, bypass=0.0,
    doc="0 leaves the image untouched, 1 is the strongest setting of the effect",
)


class ImageEffect(Effect):
    """An ImageMagick (Wand) operation driven by one intensity in [0, 1].

    Subclasses implement `render(img, intensity)` on a `wand.image.Image` in place. The
    base class converts from and to Pillow, seeds ImageMagick's random generator and
    pins it to one thread so random effects are reproducible, and returns the input
    unchanged (as RGB) at intensity 0.

    An effect may declare more parameters after `INTENSITY` (`params = (INTENSITY,
    Param("angle", ...))`); `render` then receives each of them, validated and with its
    default filled in, as a keyword argument: `render(img, intensity, angle=...)`. The
    pipeline (databases, calibration, transfer) drives image effects by intensity only, so
    extra parameters are knobs for `apply-image --effect NAME:param=value` and plugins.
    """

    kind: ClassVar[str] = "image effect"
    params: ClassVar[tuple[Param, ...]] = (INTENSITY,)
    random: ClassVar[bool] = False

    def render(self, img: Any, intensity: float, **params: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, image: "PILImage", intensity: float, seed: int = 0, **params: float) -> "PILImage":
        from ..media.io import ensure_rgb
        from ..media.wand import pil_to_wand, seed_imagemagick, wand_to_pil

        intensity = INTENSITY.validate(intensity, self.name)
        extra = {k: v for k, v in self.resolve({**params, "intensity": intensity}).items() if k != "intensity"}
        image = ensure_rgb(image)
        if intensity == 0.0:
            return image.copy()
        with pil_to_wand(image) as img:
            if self.random:
                from wand.resource import limits

                threads = limits["thread"]
                seed_imagemagick(seed)  # pins one thread: random draws are per thread
                try:
                    self.render(img, intensity, **extra)
                finally:
                    limits["thread"] = threads
            else:
                self.render(img, intensity, **extra)
            out = wand_to_pil(img)
        if out.size != image.size:
            out = out.resize(image.size)
        return out


@dataclass
class BlockStream:
    """`process` of an outside-Pedalboard effect as a block processor (state kept inside).

    `process(block, last)` takes (channels, n) float32 blocks in order and returns the output
    produced so far; `ratio` is output frames per input frame (to size the output buffer).
    """

    process: Callable[["np.ndarray", bool], "np.ndarray"]
    ratio: float = 1.0


class AudioEffect(Effect):
    """The one base of audio effects: typed `params` and a public `build(values)`.

    An effect that is one Pedalboard plugin implements `build(values)` (values: every
    parameter, validated, raw units, already adapted to the sample rate) and returns the
    Pedalboard object; chains put it into one Pedalboard with the other such steps, block by
    block for long clips. An effect that cannot be one (`outside_pedalboard = True`)
    implements `process` instead and is rendered after the Pedalboard part of a chain.
    `tail_seconds` says how long the effect keeps sounding after its input stops, so chains
    keep reverb and echo tails instead of cutting them.

    Sample-rate limits are declared on the `Param` (`max_fraction_of_nyquist`), so
    `at_sample_rate` needs no override for them; built-ins and third-party effects are
    rendered by exactly the same code.
    """

    kind: ClassVar[str] = "audio effect"
    outside_pedalboard: ClassVar[bool] = False
    #: the Pedalboard plugin from `build` has no latency, so a long clip may be rendered block
    #: by block with its state carried over (core/render/chain.py); declare True when that is
    #: so (False, the default, renders the clip whole: always correct, more memory)
    streamable: ClassVar[bool] = False
    #: finite input always gives finite output (e.g. cutoffs held below Nyquist), so a chain
    #: of such effects skips its NaN/Inf scan of the rendered audio; leave False unless tested
    finite_output: ClassVar[bool] = False

    def build(self, values: Mapping[str, float]) -> Any:
        """The Pedalboard plugin for `values` (every parameter, validated; see `plugin`)."""
        raise DeltaV2AError(f"audio effect '{self.name}' is not a Pedalboard plugin")

    def plugin(self, **raw: float) -> Any:
        """`build` on `raw` validated, defaults filled in (what chains call; not an override point)."""
        return self.build(self.resolve(raw))

    def process(self, audio: "np.ndarray", sample_rate: int, **raw: float) -> "np.ndarray":
        import pedalboard

        values = self.at_sample_rate(sample_rate, self.resolve(raw))
        return pedalboard.Pedalboard([self.plugin(**values)])(audio, sample_rate)

    def tail_seconds(self, **raw: float) -> float:
        return 0.0

    def stream(self, sample_rate: float, channels: int, **raw: float) -> BlockStream | None:
        """`process` block by block, for long clips; None (the default) if it cannot be."""
        return None

    def at_sample_rate(self, sample_rate: float, raw: Mapping[str, float]) -> dict[str, float]:
        """Raw values adapted to a sample rate before `build`: each `Param`'s declared limit
        (`max_fraction_of_nyquist`) applied. Override only for limits a Param cannot state."""
        out = dict(raw)
        for p in self.params:
            if p.name in out and p.max_fraction_of_nyquist is not None:
                out[p.name] = p.at_sample_rate(out[p.name], sample_rate)
        return out

    #: parameters left at their default by `params_at_intensity` (no "stronger" direction)
    intensity_fixed: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def params_at_intensity(cls, intensity: float) -> dict[str, float]:
        """One number -> raw parameters, for sweeps such as sensitivity and extract.

        Each parameter moves from its bypass position toward the far end of its normalised
        range by `intensity` (0 = bypass, 1 = the far end); a parameter whose bypass sits
        exactly mid-range moves up. Parameters in `intensity_fixed` stay at their default.
        """
        intensity = INTENSITY.validate(intensity, cls.name)
        out: dict[str, float] = {}
        for p in cls.params:
            if p.name in cls.intensity_fixed:
                out[p.name] = p.default
                continue
            ub = p.bypass_normalised
            end = 1.0 if ub <= 0.5 else 0.0
            out[p.name] = p.denormalise(ub + intensity * (end - ub))
        return out


#: JUCE's first-order IIR filters use a bilinear transform whose pre-warp, tan(pi*fc/fs),
#: blows up at Nyquist; filter frequencies declare this limit (0.49 x the sample rate)
JUCE_MAX_FRACTION_OF_NYQUIST = 0.98


def parse_image_effect_spec(spec: str) -> tuple[type[ImageEffect], dict[str, float]]:
    """`"motion_blur:angle=45,intensity=0.7"` -> (effect class, validated raw values).

    Only the values written in the spec are returned; each is checked against the effect's
    declared parameters, so a typo fails before the image is read.
    """
    from .registry import get

    name, sep, rest = str(spec).strip().partition(":")
    if not name.strip():
        raise DeltaV2AError(f"image effect spec {spec!r} has no effect name (expected NAME[:param=value,...])")
    cls = get("image_effect", name.strip())
    values: dict[str, float] = {}
    if sep:
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise DeltaV2AError(f"image effect spec {spec!r}: {item.strip()!r} is not PARAM=VALUE")
            values[key.strip()] = cls.param(key.strip()).validate(value.strip(), cls.name)
    return cls, values
