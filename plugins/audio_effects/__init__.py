"""Built-in audio effects (registered through the `deltav2a` entry points).

The seven effects of the research chain (lowpass, bitcrush, reverb, highpass, distortion,
delay and playback_rate) and `stutter`, a rhythmic gate added so that *fragmented* has a
sound (issue 16, decision 16.10), and three that are not in the default list:
`narrowband` (an old radio's band, narrowed from both ends: *flat*) and `smear` (a motion blur in time: *fluid*),
decisions 16.30-16.31, and `scatter` (ImageMagick's spread along time, a granular spray; the
perceptual encoder reads it *steady*, not *fragmented*: decision 16.70). Registration only imports the effect classes; pedalboard, numpy
and soxr are imported when something is rendered, so `deltav2a list-plugins` stays fast.
"""

from deltav2a.api.hookspecs import hookimpl


@hookimpl
def register_audio_effects(register):
    from .pedalboard_effects import BUILTIN_AUDIO_EFFECTS
    from .narrowband import Narrowband
    from .scatter import Scatter
    from .smear import Smear
    from .stutter import Stutter

    for cls in (*BUILTIN_AUDIO_EFFECTS, Stutter, Narrowband, Smear, Scatter):
        register(cls)
