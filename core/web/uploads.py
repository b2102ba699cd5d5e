"""Uploaded bytes -> image or audio, judged by content (never by file name), bounded.

Each check raises `DeltaV2AError` with a sentence the page shows as is.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

IMAGE_FORMATS = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")
MAX_IMAGE_PIXELS = 40_000_000
MAX_AUDIO_SECONDS = 60.0
MAX_AUDIO_CHANNELS = 8


def read_image(data: bytes, what: str, max_pixels: int = MAX_IMAGE_PIXELS) -> "PILImage":
    """Pillow identifies the format from the bytes; the size is checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    from ..media.io import ensure_rgb

    if not data:
        raise DeltaV2AError(f"{what}: the file is empty")
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
            if im.width * im.height > max_pixels:
                raise DeltaV2AError(f"{what}: {im.width}x{im.height} pixels is more than the limit "
                                    f"of {max_pixels / 1e6:.0f} megapixels")
            im.load()
            image = ensure_rgb(im)
    except DeltaV2AError:
        raise
    except UnidentifiedImageError:
        raise DeltaV2AError(f"{what}: not an image (expected {', '.join(IMAGE_FORMATS)})") from None
    except Image.DecompressionBombError:
        raise DeltaV2AError(f"{what}: too many pixels (limit {max_pixels / 1e6:.0f} megapixels)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DeltaV2AError(f"{what}: corrupt or truncated image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if image.width < 8 or image.height < 8:
        raise DeltaV2AError(f"{what}: {image.width}x{image.height} pixels is too small (at least 8x8)")
    return image


def read_audio(data: bytes, what: str, max_seconds: float = MAX_AUDIO_SECONDS) -> tuple["np.ndarray", int]:
    """libsndfile sniffs the container from the bytes; length and channels are checked from
    the header before any sample is decoded, so a huge header cannot allocate much."""
    import soundfile as sf

    from ..media.io import check_audio

    if not data:
        raise DeltaV2AError(f"{what}: the file is empty")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise DeltaV2AError(f"{what}: not an audio file (expected WAV, FLAC, OGG or MP3)") from None
    if info.samplerate < 8000 or info.samplerate > 192_000:
        raise DeltaV2AError(f"{what}: sample rate {info.samplerate} Hz is outside 8000-192000 Hz")
    if info.channels < 1 or info.channels > MAX_AUDIO_CHANNELS:
        raise DeltaV2AError(f"{what}: {info.channels} channels (at most {MAX_AUDIO_CHANNELS})")
    if info.frames > max_seconds * info.samplerate:
        raise DeltaV2AError(f"{what}: {info.frames / info.samplerate:.1f} s is longer than the limit of {max_seconds:g} s")
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise DeltaV2AError(f"{what}: corrupt audio file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if audio.shape[0] > max_seconds * sr:  # headers of streamed formats may not know the length
        raise DeltaV2AError(f"{what}: longer than the limit of {max_seconds:g} s")
    return check_audio(audio.T, what), int(sr)
