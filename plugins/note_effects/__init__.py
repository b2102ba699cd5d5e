"""The pipeline note's effect set: image blur/brightness/saturation/contrast, audio lpf/highshelf/saturation.

The note's fourth audio effect, `reverb`, is the built-in one. Registration imports only
the classes; Wand and pedalboard load when something is rendered. `synonyms.yaml` beside
this file holds the text-anchor synonyms of the built-in effects (the classes here carry
their own).
"""

from deltav2a.api.hookspecs import hookimpl


@hookimpl
def register_image_effects(register):
    from .effects import IMAGE_EFFECTS

    for effect in IMAGE_EFFECTS:
        register(effect)


@hookimpl
def register_audio_effects(register):
    from .effects import AUDIO_EFFECTS

    for effect in AUDIO_EFFECTS:
        register(effect)
