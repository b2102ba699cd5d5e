"""An example DeltaV2A plugin, installable on its own.

Keep this module cheap to import: DeltaV2A imports every plugin when it lists them, so
Wand and pedalboard are imported only inside the methods that use them.
"""

from deltav2a.api.effects import AudioEffect, ImageEffect
from deltav2a.api.hookspecs import hookimpl
from deltav2a.api.params import Param


class Pixelate(ImageEffect):
    """Mosaic: the picture is rebuilt from coarse square blocks.

    Block size = 1 + intensity * 5% of the shorter side (pixels), nearest-neighbour down and
    up so block edges stay hard.
    """

    name = "pixelate"

    def render(self, img, intensity: float) -> None:
        w, h = img.width, img.height
        block = max(1, round(1 + intensity * 0.05 * min(w, h)))
        img.sample(max(1, w // block), max(1, h // block))
        img.sample(w, h)


class Chorus(AudioEffect):
    """Chorus: detuned, modulated copies thicken the sound (pedalboard.Chorus)."""

    name = "chorus"
    params = (
        Param("rate_hz", 0.1, 10.0, default=1.5, bypass=0.1, scale="log", unit="Hz",
              doc="modulation speed"),
        Param("depth", 0.0, 1.0, default=0.5, bypass=0.0, doc="modulation depth"),
        Param("mix", 0.0, 1.0, default=0.5, bypass=0.0, doc="wet share of the output"),
    )

    def build(self, values):
        import pedalboard

        return pedalboard.Chorus(rate_hz=values["rate_hz"], depth=values["depth"], mix=values["mix"])


@hookimpl
def register_image_effects(register):
    register(Pixelate)


@hookimpl
def register_audio_effects(register):
    register(Chorus)
