"""Reading and writing images and audio, with one-line errors for anything unusable.

Audio arrays are float32 shaped (channels, samples), Pedalboard's layout. Images are
Pillow RGB images.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_path
from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: Limits on what a file may make us allocate (docs/security.md). An image may have at most
#: MAX_IMAGE_PIXELS pixels (Pillow refuses more before decoding: decompression bombs) and
#: MAX_IMAGE_SIDE pixels per side; ImageMagick gets the same limits (core/media/wand.py).
MAX_IMAGE_PIXELS = 64_000_000
MAX_IMAGE_SIDE = 16_000
#: Sample rates outside this range are refused (a 3 s clip at 100 MHz is 2.4 GB).
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 64
#: Long clips are decoded, checked, resampled and written in blocks of this many frames, so
#: memory stays near one copy of the audio (benchmarks/bench_memory.py).
BLOCK_FRAMES = 1 << 18
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def _check_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DeltaV2AError(f"{what} not found: {p}")
    if p.is_dir():
        raise DeltaV2AError(f"{what} is a directory, not a file: {p}")
    if p.stat().st_size == 0:
        raise DeltaV2AError(f"{what} is empty: {p}")
    if not os.access(p, os.R_OK):
        raise DeltaV2AError(f"{what} is not readable (permission denied): {p}")
    from ..atomic import note_input

    note_input(p)
    return p


def check_sample_rate(sample_rate, what: str = "sample rate") -> int:
    """An integer rate in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] Hz, or a one-line error."""
    try:
        sr = float(sample_rate)
    except (TypeError, ValueError):
        raise DeltaV2AError(f"{what} must be a number of Hz, got {sample_rate!r}") from None
    if not (MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE):
        raise DeltaV2AError(f"{what} {sample_rate!r} Hz is outside the supported range "
                            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return int(sr) if sr.is_integer() else sr


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
    import warnings

    from PIL import Image, UnidentifiedImageError

    p = _check_file(path, "image")
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # explicit, not Pillow's default (~179 MP)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x the limit; here the limit is the limit
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if max(w, h) > MAX_IMAGE_SIDE:
                    raise DeltaV2AError(f"image {p} is {w}x{h}: more than {MAX_IMAGE_SIDE} "
                                        "pixels per side")
                im.load()
                image = ensure_rgb(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DeltaV2AError(f"image {p} has more than {MAX_IMAGE_PIXELS / 1e6:g} megapixels "
                            "(the documented limit; a possible decompression bomb)") from None
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


def check_audio(audio: "np.ndarray", what: str = "audio", finite: bool = True) -> "np.ndarray":
    """Reject what would silently poison an embedding or a render: no samples, NaN, Inf.

    `finite=False` checks the shape only, for a caller whose own first pass over the
    samples decides finiteness (and calls this again with `finite=True` when it fails).
    """
    import numpy as np

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise DeltaV2AError(f"{what}: expected (channels, samples), got shape {audio.shape}")
    if audio.shape[1] == 0:
        raise DeltaV2AError(f"{what} has zero length")
    if not finite:
        return audio
    # a dot product is ~2x cheaper than isfinite().all() and is finite iff every sample is
    # (bar absurd magnitudes, which the exact check below then lets through); per row and
    # block, so a transposed or long clip is never copied whole
    for start in range(0, audio.shape[1], BLOCK_FRAMES * 16):
        block = audio[:, start:start + BLOCK_FRAMES * 16]
        if not all(np.isfinite(np.dot(row, row)) for row in block) and not np.isfinite(block).all():
            raise DeltaV2AError(f"{what} contains NaN or Inf samples")
    return audio


def resample(audio: "np.ndarray", sr_in: float, sr_out: float) -> "np.ndarray":
    import numpy as np
    import soxr

    if sr_in == sr_out:
        return audio
    if audio.shape[1] > 4 * BLOCK_FRAMES:
        return _resample_stream(audio, sr_in, sr_out)
    out = soxr.resample(np.ascontiguousarray(audio.T), sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(out.T if out.ndim == 2 else out[None, :], dtype=np.float32)


def _resample_stream(audio: "np.ndarray", sr_in: float, sr_out: float) -> "np.ndarray":
    """soxr's streaming resampler, block by block into one preallocated output (long clips)."""
    import math

    import numpy as np
    import soxr

    channels, n = audio.shape
    stream = soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32", quality="HQ")
    out = np.empty((channels, int(math.ceil(n * sr_out / sr_in)) + 64), dtype=np.float32)
    pos = 0
    for start in range(0, n, BLOCK_FRAMES):
        block = np.ascontiguousarray(audio[:, start:start + BLOCK_FRAMES].T)
        y = stream.resample_chunk(block, last=start + BLOCK_FRAMES >= n)
        if pos + len(y) > out.shape[1]:
            out = np.concatenate([out, np.empty((channels, len(y)), np.float32)], axis=1)
        out[:, pos:pos + len(y)] = y.T
        pos += len(y)
    return out[:, :pos]


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False,
    max_seconds: float | None = None,
) -> tuple["np.ndarray", int]:
    """Decode wav/flac/ogg/mp3 with soundfile; optionally resample (soxr) and downmix.

    `max_seconds` reads only the start of the file, so memory stays bounded whatever its length.
    """
    import soundfile as sf

    p = _check_file(path, "audio file")
    if sample_rate is not None:
        check_sample_rate(sample_rate)
    try:
        data, sr, declared = _decode(p, max_seconds)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeltaV2AError(f"not a readable audio file {p}: {msg}") from None
    audio = check_audio(data, f"audio file {p}")
    if max_seconds is None or audio.shape[1] < int(max_seconds * sr):
        _warn_if_truncated(p, audio.shape[1], declared, sr)
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, int(sr)


def _decode(p: Path, max_seconds: float | None = None) -> tuple["np.ndarray", int, int]:
    """(channels, frames) float32, the rate, and the frame count the header declares;
    with `max_seconds`, only the start of the file is read.

    Decoded block by block straight into the (channels, frames) layout, so a long clip
    costs one copy of its samples instead of three (soundfile's (frames, channels) array,
    its transpose, a contiguous copy).
    """
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(str(p)) as f:
        sr, channels, declared = int(f.samplerate), int(f.channels), int(f.frames)
        if not (MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE):
            raise DeltaV2AError(f"audio file {p} declares {sr} Hz, outside the supported "
                                f"range {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
        if not 1 <= channels <= MAX_CHANNELS:
            raise DeltaV2AError(f"audio file {p} declares {channels} channels "
                                f"(1..{MAX_CHANNELS} are supported)")
        # the header is only a hint (truncated files, lying headers): never trust it for
        # more than an hour of preallocation; the buffer grows if the file has more
        limit = max(1, int(max_seconds * sr)) if max_seconds is not None else None
        out = np.empty((channels, max(1, min(declared, sr * 3600, limit or declared))), dtype=np.float32)
        pos = 0
        while limit is None or pos < limit:
            want = BLOCK_FRAMES if limit is None else min(BLOCK_FRAMES, limit - pos)
            block = f.read(want, dtype="float32", always_2d=True)
            if len(block) == 0:
                break
            if pos + len(block) > out.shape[1]:
                grown = np.empty((channels, max(2 * out.shape[1], pos + len(block))), np.float32)
                grown[:, :pos] = out[:, :pos]
                out = grown
            out[:, pos:pos + len(block)] = block.T
            pos += len(block)
    return (out[:, :pos] if pos * 2 > out.shape[1] else out[:, :pos].copy()), sr, declared


def _warn_if_truncated(p: Path, decoded: int, declared: int, sr: int) -> None:
    """A file that stops early decodes partially without an error in libsndfile: say so."""
    import warnings

    missing = declared - decoded
    reason = None
    if declared > 0 and missing > max(0.01 * declared, 0.05 * sr):
        reason = f"its header declares {declared / sr:.2f} s"
    elif p.suffix.lower() in (".ogg", ".oga", ".opus") and not _ogg_has_end(p):
        reason = "the Ogg stream has no end-of-stream page"
    elif p.suffix.lower() == ".wav":
        expected = _wav_data_bytes(p)
        if expected is not None and expected[0] > expected[1]:
            reason = f"its header declares {expected[0]} bytes of samples, the file holds {expected[1]}"
    if reason:
        warnings.warn(f"audio file {p} looks truncated: decoded {decoded / sr:.2f} s, but {reason}",
                      stacklevel=3)


def _ogg_has_end(p: Path) -> bool:
    size = p.stat().st_size
    with open(p, "rb") as fh:
        fh.seek(max(0, size - 65536))
        tail = fh.read()
    at = tail.rfind(b"OggS")
    return at < 0 or at + 5 >= len(tail) or bool(tail[at + 5] & 0x04)


def _wav_data_bytes(p: Path) -> tuple[int, int] | None:
    """(bytes the RIFF `data` chunk declares, bytes present) or None if not plain RIFF."""
    import struct

    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if n in (0, 0xFFFFFFFF):  # streaming writers leave it unset
                    return None
                return n, size - fh.tell()
            fh.seek(n + (n & 1), 1)


@contextlib.contextmanager
def wav_writer(tmp: Path, target: Path, sample_rate: int, channels: int):
    """Yield `write(block)` for (channels, frames) float32 blocks into a 32-bit float WAV at
    `tmp` (the temporary of `target`); libsndfile's errors name `target`, in one line."""
    import soundfile as sf

    def fail(exc: Exception) -> DeltaV2AError:  # libsndfile hides errno ("System error")
        return DeltaV2AError(f"cannot write {target}: {exc} (disk full or file too large?); "
                             "nothing was replaced")

    try:
        f = sf.SoundFile(str(tmp), "w", int(sample_rate), channels, subtype="FLOAT", format="WAV")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise fail(exc) from None

    def write(block: "np.ndarray") -> None:
        try:
            f.write(block.T)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise fail(exc) from None

    try:
        yield write
    finally:
        try:
            f.close()
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise fail(exc) from None


class WavFrames:
    """A written clip read back on demand, as a (channels, frames) float32 array answers
    `.shape` and `[:, a:b]` (what the summary plot samples), so the whole A' need not stay
    in memory after `AudioChain.render_to_file` streamed it into its file."""

    dtype = "float32"
    ndim = 2

    def __init__(self, path: str | os.PathLike) -> None:
        import soundfile as sf

        self.path = Path(path)
        info = sf.info(str(self.path))
        self.shape = (int(info.channels), int(info.frames))

    def __getitem__(self, key):
        import numpy as np
        import soundfile as sf

        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        start, stop, step = cols.indices(self.shape[1]) if isinstance(cols, slice) else (cols, cols + 1, 1)
        with sf.SoundFile(str(self.path)) as f:
            f.seek(start)
            data = f.read(max(0, stop - start), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T[rows, ::step])

    def __array__(self, dtype=None, copy=None):
        return self[:, :].astype(dtype or "float32", copy=False)


def save_audio(audio: "np.ndarray", sample_rate: int, path: str | os.PathLike) -> Path:
    """Write 32-bit float WAV: lossless, and distortion peaks above 0 dBFS survive."""
    p = Path(path)
    if p.suffix.lower() != ".wav":
        raise DeltaV2AError(f"audio output must be .wav, got '{p.suffix or p.name}'")
    audio = check_audio(audio, "rendered audio")
    sr = check_sample_rate(sample_rate, "output sample rate")
    with atomic_path(p) as tmp, wav_writer(tmp, p, sr, audio.shape[0]) as write:
        for start in range(0, audio.shape[1], BLOCK_FRAMES):  # no full transposed copy
            write(audio[:, start:start + BLOCK_FRAMES])
    return p
