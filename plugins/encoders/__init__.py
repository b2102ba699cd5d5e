"""Built-in encoders (registered through the deltav2a entry points).

Registration imports only the encoder classes; each class imports numpy/scipy (or torch,
for the neural encoders) inside its methods, so listing plugins stays fast. To add an
encoder, import its class inside the hook and add one `register(...)` line.
"""

from deltav2a.api.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    from .clap import ClapAudioEncoder
    from .clip import ClipImageEncoder
    from .perceptual_audio import PerceptualAudioEncoder
    from .perceptual_image import PerceptualImageEncoder

    register(PerceptualImageEncoder)
    register(PerceptualAudioEncoder)
    register(ClipImageEncoder)
    register(ClapAudioEncoder)
