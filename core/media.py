"""Reading and writing images and audio, with one-line errors for anything unusable.

Audio arrays are float32 shaped (channels, samples), Pedalboard's layout. Images are
Pillow RGB images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_path
from .errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def _check_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DeltaV2AError(f"{what} not found: {p}")
    if p.is_dir():
        raise DeltaV2AError(f"{what} is a directory, not a file: {p}")
    if p.stat().st_size == 0:
        raise DeltaV2AError(f"{what} is empty: {p}")
    return p


# ---------------------------------------------------------------- images


def ensure_rgb(image: "PILImage") -> "PILImage":
    """Any Pillow mode -> 8-bit RGB.

    16-bit and float greyscale are rescaled by their type's range rather than clipped;
    transparency is composited over white (the usual background for transparent art).
    """
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(image, dtype=np.float64)
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            scale = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        else:
            top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
            scale = arr / top
        grey = Image.fromarray(np.clip(scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        return grey.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike) -> "PILImage":
    from PIL import Image, UnidentifiedImageError

    p = _check_file(path, "image")
    try:
        with Image.open(p) as im:
            im.load()
            image = ensure_rgb(im)
    except UnidentifiedImageError:
        raise DeltaV2AError(f"not a readable image: {p}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DeltaV2AError(f"corrupt or truncated image {p}: {exc}") from None
    if image.width < 1 or image.height < 1:
        raise DeltaV2AError(f"image has no pixels: {p}")
    return image


def save_image(image: "PILImage", path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DeltaV2AError(f"unsupported image output type '{p.suffix}' for {p} (use .png or .jpg)")
    with atomic_path(p) as tmp:
        image.save(tmp, format=None if p.suffix.lower() != ".jpg" else "JPEG")
    return p


# ---------------------------------------------------------------- audio


def check_audio(audio: "np.ndarray", what: str = "audio") -> "np.ndarray":
    """Reject what would silently poison an embedding or a render: no samples, NaN, Inf."""
    import numpy as np

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise DeltaV2AError(f"{what}: expected (channels, samples), got shape {audio.shape}")
    if audio.shape[1] == 0:
        raise DeltaV2AError(f"{what} has zero length")
    flat = audio.reshape(-1)
    # a dot product is ~2x cheaper than isfinite().all() and is finite iff every sample is
    # (bar absurd magnitudes, which the exact check below then lets through)
    if not np.isfinite(np.dot(flat, flat)) and not np.isfinite(audio).all():
        raise DeltaV2AError(f"{what} contains NaN or Inf samples")
    return audio


def resample(audio: "np.ndarray", sr_in: float, sr_out: float) -> "np.ndarray":
    import numpy as np
    import soxr

    if sr_in == sr_out:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(out.T if out.ndim == 2 else out[None, :], dtype=np.float32)


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False,
    max_seconds: float | None = None,
) -> tuple["np.ndarray", int]:
    """Decode wav/flac/ogg/mp3 with soundfile; optionally resample (soxr) and downmix.

    `max_seconds` reads only the start of the file, so memory stays bounded whatever its length.
    """
    import soundfile as sf

    p = _check_file(path, "audio file")
    try:
        frames = -1
        if max_seconds is not None:
            frames = max(1, int(max_seconds * sf.info(str(p)).samplerate))
        data, sr = sf.read(str(p), frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeltaV2AError(f"not a readable audio file {p}: {msg}") from None
    audio = check_audio(data.T, f"audio file {p}")
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, int(sr)


def save_audio(audio: "np.ndarray", sample_rate: int, path: str | os.PathLike) -> Path:
    """Write 32-bit float WAV: lossless, and distortion peaks above 0 dBFS survive."""
    import soundfile as sf

    p = Path(path)
    if p.suffix.lower() != ".wav":
        raise DeltaV2AError(f"audio output must be .wav, got '{p.suffix or p.name}'")
    audio = check_audio(audio, "rendered audio")
    with atomic_path(p) as tmp:
        sf.write(str(tmp), audio.T, int(sample_rate), subtype="FLOAT", format="WAV")
    return p
